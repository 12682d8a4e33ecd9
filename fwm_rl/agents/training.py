"""Training runs of the paper's meta-RL experiment (section 4.2, Figure 5), with presets.

An *episode* here is what the authors' code calls one: every one of the
``n_envs`` (600) agents plays one 30-step episode on its own training graph
(agent ``i`` on graph ``i``), followed by one A2C update on the 600 x 30 batch.
Every ``eval_every`` episodes a run logs the mean training reward since the
last log and the reward of one fresh episode on each of the 600 test graphs and
on each of the 600 validation graphs (no gradient; :func:`~fwm_rl.envs.graphs.graph_set`),
to ``metrics.csv`` and TensorBoard, and writes ``checkpoint.pt``
atomically; ``resume`` continues exactly where the checkpoint left off.

Under ``torchrun`` a run is data-parallel (:mod:`fwm_rl.distributed`): each of
the K processes plays its share of the ``n_envs`` agents (a contiguous block of
the training graphs), the gradients are combined as if one process had played
them all, and rank 0 alone evaluates, logs and writes checkpoints.

Presets (:data:`PRESETS`): ``paper-fwm`` and ``paper-lstm-{512,1024,2048,4096}``
are the paper's runs, as long as the authors' released logs; ``cpu`` (the
default) trains the paper's FWM agent and its LSTM-512 baseline with the
learning recipe :data:`FAST_RECIPE` (the paper's, with a higher learning rate)
for 13 minutes each (about 28 minutes with the evaluations on a 2-core CPU);
``fast-fwm`` is the paper's FWM run with that recipe. A folder of runs gets ``figure5.png`` (:mod:`fwm_rl.agents.plotting`)
and ``results.md``.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.logger import Logger
from stable_baselines3.common.utils import ConstantSchedule

from fwm_rl.agents.a2c import RecurrentA2C
from fwm_rl.agents.evaluation import EvalResult, evaluate
from fwm_rl.agents.policies import FwmPolicy, LstmPolicy, RecurrentActorCriticPolicy
from fwm_rl.agents.vec_env import FWMGraphVecEnv
from fwm_rl.distributed import DistContext, all_reduce_sum, broadcast_object, hold_run_folder, init_distributed, rank_seed, row_share
from fwm_rl.envs import SEMANTICS, TaskConfig
from fwm_rl.envs.baselines import reference_levels
from fwm_rl.envs.graphs import graph_set
from fwm_rl.envs.vector_env import task_spaces
from fwm_rl.memory import IMPLS
from fwm_rl.runs import (
    RunLogger,
    SavedConfig,
    atomic_save,
    load_checkpoint,
    progress,
    resolve_device,
    run_record,
    set_seed,
)

__all__ = [
    "PRESETS",
    "RECIPES",
    "RECIPE_FIELDS",
    "RunSummary",
    "TrainConfig",
    "load_policy",
    "preset_configs",
    "recipe_of",
    "results_table",
    "run_dirs",
    "train_preset",
    "train_run",
    "with_recipe",
]

CHECKPOINT = "checkpoint.pt"
CONFIG = "config.json"
RESULTS = "results.json"
RUNS = "runs.json"
MEMORIES: dict[str, type[RecurrentActorCriticPolicy]] = {"fwm": FwmPolicy, "lstm": LstmPolicy}
#: What a run writes into its folder, and a preset into the folder of its runs (what ``overwrite`` replaces).
RUN_OUTPUTS = (CHECKPOINT, CONFIG, RESULTS, "metrics.csv", "model.zip", "tb", "figure5.png", f".{CHECKPOINT}.*.tmp")
PRESET_OUTPUTS = (RUNS, "figure5.png", "results.md")


@dataclass
class TrainConfig(SavedConfig):
    """One training run. Defaults are the paper's (appendix I and the authors' ``run.sh``)."""

    name: str = "fwm"
    memory: str = "fwm"  # "fwm" (LSTM + FWM) or "lstm"
    hidden_size: int = 32
    d_fwm: int = 16
    n_reads: int = 3
    fwm_impl: str = "auto"  # the memory's implementation (fwm_rl.memory): "auto" (fast) or "step" (reference)
    n_envs: int = 600  # agents per batch, agent i on training graph i
    episodes: int = 51_000  # A2C updates, each on one episode of every agent
    eval_every: int = 50
    learning_rate: float = 1e-3
    adam_eps: float = 1e-4
    gamma: float = 0.9
    gae_lambda: float = 1.0  # 1 = Monte-Carlo returns within the episode (paper)
    vf_coef: float = 0.1
    ent_coef: float = 0.03
    max_grad_norm: float | None = None  # None = no clipping (paper)
    normalize_advantage: bool = False
    semantics: str = "paper"  # task rules, see fwm_rl.envs ("released_code" = the authors' code)
    trials: int = 1  # episodes per trial on the same graph, the memory kept across them (k-shot meta-RL); 1 = the paper
    seed: int = 0
    device: str = "auto"
    time_budget: float | None = None  # seconds of training; the run stops at the first log after it
    final_episodes_per_graph: int = 5  # episodes per graph of the final evaluation (results table)

    def __post_init__(self) -> None:
        if self.memory not in MEMORIES:
            raise ValueError(f"unknown memory {self.memory!r}; choose one of {sorted(MEMORIES)}")
        if self.fwm_impl not in IMPLS:
            raise ValueError(f"unknown fwm_impl {self.fwm_impl!r}; choose one of {IMPLS}")
        if self.semantics not in SEMANTICS:
            raise ValueError(f"unknown semantics {self.semantics!r}; choose one of {SEMANTICS}")
        for name in ("hidden_size", "d_fwm", "n_reads", "n_envs", "episodes", "eval_every", "final_episodes_per_graph", "trials"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if self.n_envs > 600:
            raise ValueError(f"n_envs must be at most 600 (one agent per training graph), got {self.n_envs}")
        if not (0 < self.learning_rate < math.inf and 0 < self.adam_eps < math.inf):
            raise ValueError(f"learning_rate and adam_eps must be positive and finite, got {self.learning_rate} and {self.adam_eps}")
        if self.time_budget is not None and not self.time_budget > 0:
            raise ValueError(f"time_budget must be positive seconds or None, got {self.time_budget!r}")

    @property
    def policy_kwargs(self) -> dict[str, Any]:
        kwargs: dict[str, Any] = {"hidden_size": self.hidden_size, "optimizer_kwargs": {"eps": self.adam_eps}}
        if self.memory == "fwm":
            kwargs.update(d_fwm=self.d_fwm, n_reads=self.n_reads, impl=self.fwm_impl)
        return kwargs

    @property
    def label(self) -> str:
        """Legend label, e.g. ``FWM-32-16`` or ``LSTM-512`` (as in the authors' figure)."""
        return f"FWM-{self.hidden_size}-{self.d_fwm}" if self.memory == "fwm" else f"LSTM-{self.hidden_size}"


def _paper_lstm(hidden: int, episodes: int) -> TrainConfig:
    return TrainConfig(name=f"lstm-{hidden}", memory="lstm", hidden_size=hidden, episodes=episodes)


#: The learning recipe of the ``cpu`` and ``fast-fwm`` presets: the paper's A2C with Adam's
#: learning rate at 3e-3 instead of 1e-3, which took off after 3-4k episodes instead of the
#: paper's 6-10k in the comparison the README reports (``scripts/bench_learning.py --recipes``).
FAST_RECIPE = {"learning_rate": 3e-3}

#: Preset name -> the runs it trains. Paper runs are as long as the authors' logs
#: (``metaRL/paper_logs``: FWM 51k episodes, LSTM-512 278k, -1024 232k, -2048 200k, -4096 114k).
PRESETS: dict[str, tuple[TrainConfig, ...]] = {
    # The paper's FWM agent against its smallest LSTM baseline, the same recipe (FAST_RECIPE) and
    # the same 13 minutes of training each (about 28 minutes in all on a 2-core CPU).
    "cpu": (
        TrainConfig(name="fwm", episodes=51_000, time_budget=780.0, **FAST_RECIPE),
        TrainConfig(name="lstm-512", memory="lstm", hidden_size=512, episodes=278_000, time_budget=780.0, **FAST_RECIPE),
    ),
    # The paper's FWM run (51k episodes) with FAST_RECIPE.
    "fast-fwm": (TrainConfig(name="fwm", **FAST_RECIPE),),
    "paper-fwm": (TrainConfig(name="fwm"),),
    "paper-lstm-512": (_paper_lstm(512, 278_000),),
    "paper-lstm-1024": (_paper_lstm(1024, 232_000),),
    "paper-lstm-2048": (_paper_lstm(2048, 200_000),),
    "paper-lstm-4096": (_paper_lstm(4096, 114_000),),
}


#: The TrainConfig fields that make up a learning recipe (the A2C and Adam settings).
RECIPE_FIELDS = ("learning_rate", "adam_eps", "gamma", "gae_lambda", "vf_coef", "ent_coef", "max_grad_norm", "normalize_advantage")

#: Learning recipes: name -> the fields of :data:`RECIPE_FIELDS` in which it differs from the
#: paper's settings (appendix I). ``scripts/bench_learning.py --recipes ...`` compares them over seeds.
RECIPES: dict[str, dict[str, Any]] = {
    "paper": {},
    "lr3e-3": FAST_RECIPE,
    "lr3e-3-normadv": {"learning_rate": 3e-3, "normalize_advantage": True},
    "lr3e-3-gae0.95": {"learning_rate": 3e-3, "gae_lambda": 0.95},
    "lr1e-2-clip1": {"learning_rate": 1e-2, "max_grad_norm": 1.0},
}


def with_recipe(cfg: TrainConfig, recipe: str) -> TrainConfig:
    """``cfg`` with the learning settings of ``recipe`` (:data:`RECIPES`); its other fields unchanged."""
    if recipe not in RECIPES:
        raise ValueError(f"unknown recipe {recipe!r}; choose one of {sorted(RECIPES)}")
    paper = {f.name: f.default for f in dataclasses.fields(TrainConfig) if f.name in RECIPE_FIELDS}
    return dataclasses.replace(cfg, **{**paper, **RECIPES[recipe]})


def recipe_of(cfg: TrainConfig) -> str:
    """The name of the recipe whose settings ``cfg`` has, or ``"custom"``."""
    return next((name for name in RECIPES if with_recipe(cfg, name) == cfg), "custom")


def preset_configs(preset: str, **overrides: Any) -> list[TrainConfig]:
    """The runs of ``preset`` with ``overrides`` (``seed``, ``episodes``, ``device``, ...; None = keep)."""
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; choose one of {sorted(PRESETS)}")
    changes = {k: v for k, v in overrides.items() if v is not None}
    return [dataclasses.replace(cfg, **changes) for cfg in PRESETS[preset]]


# ------------------------------------------------------------------------ models
def make_model(cfg: TrainConfig, device: torch.device, dist: DistContext | None = None) -> RecurrentA2C:
    """The agent and its training env on ``device``: agent ``i`` on training graph ``i`` for the
    ``n_envs`` first graphs, or this process's contiguous share of them in a data-parallel run."""
    dist = DistContext(device=device) if dist is None else dist
    share = row_share(cfg.n_envs, dist, "--n-envs")
    env = FWMGraphVecEnv.make(share.stop - share.start, graphs=graph_set("train")[share], device=device, semantics=cfg.semantics, trials=cfg.trials)
    model = RecurrentA2C(
        MEMORIES[cfg.memory],
        env,
        learning_rate=cfg.learning_rate,
        n_steps=env.horizon,
        gamma=cfg.gamma,
        gae_lambda=cfg.gae_lambda,
        ent_coef=cfg.ent_coef,
        vf_coef=cfg.vf_coef,
        max_grad_norm=cfg.max_grad_norm,
        normalize_advantage=cfg.normalize_advantage,
        policy_kwargs=cfg.policy_kwargs,
        seed=cfg.seed,
        device=device,
        dist=dist,
    )
    model.set_logger(Logger(folder=None, output_formats=[]))  # metrics go to RunLogger
    return model


def read_checkpoint(run_dir: str | Path) -> tuple[dict, TrainConfig]:
    """The latest checkpoint of an A2C run (``run_dir``: a run folder, or its ``checkpoint.pt``) and
    the run's configuration stored in it; a clear error for anything else."""
    path = Path(run_dir)
    path = path if path.is_file() else path / CHECKPOINT
    ckpt = load_checkpoint(path, map_location="cpu")
    if not isinstance(ckpt, dict) or not {"config", "policy", "episodes"} <= set(ckpt):
        raise ValueError(f"{path} is not a checkpoint of an A2C run (written by fwm-rl train)")
    return ckpt, TrainConfig.from_dict(ckpt["config"])


def load_policy(run_dir: str | Path, device: str | torch.device = "auto") -> tuple[RecurrentActorCriticPolicy, TrainConfig, dict]:
    """The policy of a run's latest checkpoint (``run_dir``: a run folder, or a ``checkpoint.pt``
    file itself), its config and the checkpoint itself."""
    ckpt, cfg = read_checkpoint(run_dir)
    obs_space, action_space = task_spaces(TaskConfig(semantics=cfg.semantics))
    policy = MEMORIES[cfg.memory](obs_space, action_space, ConstantSchedule(cfg.learning_rate), **cfg.policy_kwargs)
    policy.load_state_dict(ckpt["policy"])
    return policy.to(resolve_device(device)), cfg, ckpt


class _Tracker(BaseCallback):
    """Collects the mean training reward of every update and moves the progress bar."""

    def __init__(self, bar) -> None:
        super().__init__()
        self.bar, self.rewards = bar, []

    def _on_step(self) -> bool:
        return True

    def _on_rollout_end(self) -> None:
        self.rewards.append(float(np.mean([info["r"] for info in self.model.ep_info_buffer])))
        self.bar.update(1)


def _agent_steps_per_second(cfg: TrainConfig, episodes: int, seconds: float) -> float:
    """Training throughput of a run: every one of its ``n_envs`` agents steps a whole trial per episode (update)."""
    return episodes * TaskConfig(semantics=cfg.semantics, trials=cfg.trials).trial_length * cfg.n_envs / max(seconds, 1e-9)


def _chunk_seed(seed: int, episode: int, stream: int) -> int:
    """Seed of the placements (``stream`` 0) or the action sampling (1) of the episodes from ``episode`` on."""
    return int(np.random.SeedSequence([seed, episode, stream]).generate_state(1)[0])


@dataclass
class RunSummary:
    """Outcome of one run (also ``results.json`` in its folder)."""

    name: str
    label: str
    episodes: int
    train_reward: float  # mean over the last logging interval
    test: EvalResult  # final evaluation on the test graphs
    train: EvalResult  # final evaluation on the training graphs
    train_seconds: float
    agent_steps_per_second: float
    stopped_by_time_budget: bool
    record: dict[str, Any]  # fwm_rl.runs.run_record: command, machine, start and end of this process's part of the run


def train_run(
    cfg: TrainConfig, run_dir: str | Path, resume: bool = False, show_progress: bool | None = None, overwrite: bool = False
) -> RunSummary:
    """Train one agent into ``run_dir`` (``resume``: continue from its ``checkpoint.pt``).

    A new run refuses a folder that holds a run (:class:`~fwm_rl.runs.RunExistsError`) unless
    ``overwrite``, which deletes that run's files (:data:`RUN_OUTPUTS`) first.

    Under ``torchrun`` every process calls it with the same arguments (see the module docstring)
    and gets the same summary back. Raises :class:`~fwm_rl.runs.NonFiniteLossError` if the loss
    stops being finite; the last checkpoint (written only after finite updates) is then left as it was.
    """
    run_dir = Path(run_dir)
    started = datetime.now(timezone.utc)
    dist = init_distributed(cfg.device)
    with hold_run_folder(run_dir, dist, () if resume else [(run_dir, RUN_OUTPUTS)], overwrite, f"--resume {run_dir}"):
        return _train(cfg, run_dir, resume, show_progress, dist, started)


def _train(cfg: TrainConfig, run_dir: Path, resume: bool, show_progress: bool | None, dist: DistContext, started: datetime) -> RunSummary:
    """The body of :func:`train_run`, in a folder this run holds."""
    ckpt = load_checkpoint(run_dir / CHECKPOINT) if resume else None
    set_seed(cfg.seed)  # the same initial weights in every process
    model = make_model(cfg, dist.device, dist)
    done, train_seconds = 0, 0.0
    if ckpt is not None:
        model.policy.load_state_dict(ckpt["policy"])
        model.policy.optimizer.load_state_dict(ckpt["optimizer"])
        done, train_seconds = ckpt["episodes"], ckpt["train_seconds"]
    env, n_steps = model.env, model.n_steps
    model.num_timesteps, model._n_updates = done * n_steps * env.num_envs, done
    logger = None
    if dist.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / CONFIG).write_text(json.dumps(cfg.to_dict(), indent=2) + "\n")
        logger = RunLogger(run_dir, resume_step=done if ckpt is not None else None)
    hide = not dist.is_main or (None if show_progress is None else not show_progress)  # None: tqdm's choice
    bar = progress(total=cfg.episodes, initial=done, desc=f"{cfg.label} episodes", disable=hide)
    tracker = _Tracker(bar)
    seed = rank_seed(cfg.seed, dist.rank)
    stopped = False
    try:
        while done < cfg.episodes:
            # Rank 0's clock decides, so that every process stops after the same update.
            if broadcast_object(cfg.time_budget is not None and train_seconds >= cfg.time_budget, dist):
                stopped = True
                break
            chunk = min(cfg.eval_every - done % cfg.eval_every, cfg.episodes - done)
            # Every chunk starts new episodes and action sampling from seeds fixed by
            # (seed, rank, episode): a resumed run continues exactly.
            env.seed(_chunk_seed(seed, done, 0))
            torch.manual_seed(_chunk_seed(seed, done, 1))
            model._last_obs, model._last_episode_starts, model._last_state = env.reset(), np.ones(env.num_envs, dtype=bool), None
            tracker.rewards = []
            start = time.perf_counter()
            model.learn(chunk * n_steps * env.num_envs, callback=tracker, reset_num_timesteps=False)
            train_seconds += time.perf_counter() - start
            done += chunk
            # Mean training reward over every process's agents.
            totals = all_reduce_sum({"reward": float(np.mean(tracker.rewards)) * env.num_envs, "agents": env.num_envs}, dist)
            if dist.is_main:
                train_reward = totals["reward"] / totals["agents"] / cfg.trials  # per episode (of a trial's total)
                test = evaluate(model.policy, "test", 1, seed=_chunk_seed(cfg.seed + 1, done, 0), semantics=cfg.semantics, trials=cfg.trials)
                valid = evaluate(model.policy, "valid", 1, seed=_chunk_seed(cfg.seed + 2, done, 0), semantics=cfg.semantics, trials=cfg.trials)
                metrics = {
                    "train/reward": train_reward,
                    "valid/reward": valid.mean,
                    "test/reward": test.mean,
                    **{f"train/{k}": v for k, v in model.last_losses.items()},
                    "time/train_seconds": train_seconds,
                    "time/agent_steps_per_second": _agent_steps_per_second(cfg, done, train_seconds),
                }
                logger.log(done, metrics)
                bar.set_postfix(train=f"{train_reward:.1f}", test=f"{test.mean:.1f}")
                atomic_save(
                    {
                        "config": cfg.to_dict(),
                        "episodes": done,
                        "policy": model.policy.state_dict(),
                        "optimizer": model.policy.optimizer.state_dict(),
                        "train_seconds": train_seconds,
                        "train_reward": train_reward,
                    },
                    run_dir / CHECKPOINT,
                )
    finally:
        bar.close()
        if logger is not None:
            logger.close()
    summary = None
    if dist.is_main:
        model.save(run_dir / "model.zip")
        summary = _finish(cfg, run_dir, model.policy, stopped, started)
    return broadcast_object(summary, dist)


def _finish(cfg: TrainConfig, run_dir: Path, policy: RecurrentActorCriticPolicy, stopped: bool, started: datetime) -> RunSummary:
    """Final evaluation on both graph sets, written to ``results.json``."""
    ckpt = load_checkpoint(run_dir / CHECKPOINT)
    k = cfg.final_episodes_per_graph
    summary = RunSummary(
        name=cfg.name,
        label=cfg.label,
        episodes=ckpt["episodes"],
        train_reward=ckpt["train_reward"],
        test=evaluate(policy, "test", k, seed=cfg.seed + 10_000, semantics=cfg.semantics, trials=cfg.trials),
        train=evaluate(policy, "train", k, seed=cfg.seed + 20_000, semantics=cfg.semantics, trials=cfg.trials),
        train_seconds=ckpt["train_seconds"],
        agent_steps_per_second=_agent_steps_per_second(cfg, ckpt["episodes"], ckpt["train_seconds"]),
        stopped_by_time_budget=stopped,
        record=run_record(started, next(policy.parameters()).device),
    )
    (run_dir / RESULTS).write_text(json.dumps(dataclasses.asdict(summary), indent=2) + "\n")
    return summary


# --------------------------------------------------------------- runs of a preset
def run_dirs(path: str | Path) -> list[Path]:
    """The run folders in ``path``: itself if it holds a run, else the runs listed in its ``runs.json``
    (or its sub-folders with a ``config.json``)."""
    path = Path(path)
    if not path.is_dir():
        raise FileNotFoundError(f"{path} is not a folder of training runs")
    if (path / CONFIG).exists():
        return [path]
    if (path / RUNS).exists():
        return [path / name for name in json.loads((path / RUNS).read_text())["runs"]]
    found = sorted(p for p in path.iterdir() if (p / CONFIG).exists())
    if not found:
        raise FileNotFoundError(f"{path} holds no training run (no {CONFIG}, {RUNS} or run sub-folders)")
    return found


def train_preset(
    configs: list[TrainConfig], out: str | Path, resume: bool = False, show_progress: bool | None = None, overwrite: bool = False
) -> list[RunSummary]:
    """Train ``configs`` one after the other into ``out/<name>``; then draw ``out/figure5.png`` and
    write ``out/results.md``. ``resume`` continues runs that have a checkpoint and starts the others.
    Without ``resume`` a folder holding runs is refused unless ``overwrite`` (see :func:`train_run`)."""

    out = Path(out)
    names = [cfg.name for cfg in configs]
    if len(set(names)) != len(names):
        raise ValueError(f"run names must differ, got {names}")
    dist = init_distributed(configs[0].device) if configs else DistContext()
    main = dist.is_main
    claims = () if resume else [(out, PRESET_OUTPUTS), *((out / name, RUN_OUTPUTS) for name in names)]
    with hold_run_folder(out, dist, claims, overwrite, f"--resume {out}"):
        return _train_preset(configs, out, resume, show_progress, main)


def _train_preset(configs: list[TrainConfig], out: Path, resume: bool, show_progress: bool | None, main: bool) -> list[RunSummary]:
    """The body of :func:`train_preset`, in a folder this process holds."""
    from fwm_rl.agents.plotting import plot_runs

    names = [cfg.name for cfg in configs]
    if main:
        out.mkdir(parents=True, exist_ok=True)
        (out / RUNS).write_text(json.dumps({"runs": names, "configs": [c.to_dict() for c in configs]}, indent=2) + "\n")
    summaries = []
    for cfg in configs:
        run_dir = out / cfg.name
        if main:
            print(f"training {cfg.label} ({cfg.episodes} episodes x {cfg.n_envs} agents) -> {run_dir}")
        # Resuming restarts a run that never reached a checkpoint, replacing what its interrupted start left there.
        checkpointed = (run_dir / CHECKPOINT).exists()
        summaries.append(train_run(cfg, run_dir, resume=resume and checkpointed, show_progress=show_progress, overwrite=resume and not checkpointed))
    if not main:
        return summaries
    plot_runs([out / name for name in names], out / "figure5.png")
    table = results_table(summaries, semantics=configs[0].semantics, trials=configs[0].trials)
    (out / "results.md").write_text(table)
    print(table, end="")
    print(f"wrote {out / 'figure5.png'} and {out / 'results.md'}")
    return summaries


def results_table(summaries: list[RunSummary], semantics: str = "paper", trials: int = 1) -> str:
    """Markdown table: final test and train reward of each run, with the reference policies."""
    lines = [
        "| agent | episodes | train seconds | agent-steps/s | train reward (last log) | test reward (final) | train-graph reward (final) |",
        "|---|---|---|---|---|---|---|",
    ]
    for s in summaries:
        note = " (time budget)" if s.stopped_by_time_budget else ""
        lines.append(
            f"| {s.label} | {s.episodes}{note} | {s.train_seconds:.0f} | {s.agent_steps_per_second:,.0f} | {s.train_reward:.1f} | "
            f"{s.test.mean:.1f} ± {s.test.sem:.1f} | {s.train.mean:.1f} ± {s.train.sem:.1f} |"
        )
    levels = {split: reference_levels(split, 6000 // trials, 0, semantics, trials) for split in ("test", "train")}
    for policy in ("random", "explorer", "oracle"):
        (test_mean, test_sem), (train_mean, train_sem) = levels["test"][policy], levels["train"][policy]
        lines.append(f"| {policy} policy | | | | | {test_mean:.1f} ± {test_sem:.1f} | {train_mean:.1f} ± {train_sem:.1f} |")
    return "\n".join(lines) + "\n"
