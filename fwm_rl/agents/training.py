"""One trainer for every environment (:func:`train_run`): the paper's meta-RL experiment (section 4.2, Figure 5) and
any Gymnasium environment, A2C or PPO, each a :class:`TrainTask`.

A run is an agent, its environments and an evaluation hook (the task) on the engine's ``train_loop``: one update per
step, every ``eval_every`` units the training metrics of the interval and the task's evaluation logged (``metrics.csv``,
TensorBoard) and ``checkpoint.pt`` written atomically; ``resume`` continues where the checkpoint left off; at the end
the task's final evaluation goes to ``results.json`` and the model to ``model.zip`` (SB3's format). The tasks:

- :class:`GraphTask`, the paper's protocol (:class:`~fwm_rl.agents.config.A2CConfig`). An *episode* here is what the
  authors' code calls one: every one of the ``n_envs`` (600) agents plays one 30-step episode on its own training
  graph (agent ``i`` on graph ``i``), followed by one A2C update on the 600 x 30 batch. Its evaluation hook plays one
  fresh episode on each of the 600 test and the 600 validation graphs (no gradient;
  :func:`~fwm_rl.envs.graphs.graph_set`) beside the mean training reward of the interval. Under ``torchrun`` it is
  data-parallel (:mod:`fwm_rl.engine.distributed`): each of the K processes plays its share of the ``n_envs`` agents (a
  contiguous block of the training graphs), the gradients are combined as if one process had played them all, and
  rank 0 alone evaluates, logs and writes checkpoints.
- :class:`~fwm_rl.agents.env_training.EnvTask`, any registered environment
  (:class:`~fwm_rl.agents.config.EnvTrainConfig`, ``fwm-rl train --env ID``): steps are environment steps, the
  hook evaluates on fresh episodes of the env and keeps POPGym's MMER.

Presets (:data:`PRESETS`): ``paper-fwm`` and ``paper-lstm-{512,1024,2048,4096}``
are the paper's runs, as long as the authors' released logs; ``cpu`` (the
default) trains the paper's FWM agent and its LSTM-512 baseline with the
learning recipe :data:`FAST_RECIPE` (the paper's, with a higher learning rate)
for 13 minutes each (about 28 minutes with the evaluations on a 2-core CPU);
``fast-fwm`` is the paper's FWM run with that recipe. A folder of runs gets ``figure5.png`` (:mod:`fwm_rl.agents.plotting`)
and ``results.md``. The configuration, recipes and presets live in :mod:`fwm_rl.agents.config`.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Protocol

import gymnasium as gym
import numpy as np
import torch
from stable_baselines3.common.logger import Logger
from stable_baselines3.common.utils import ConstantSchedule

from fwm_rl.agents.a2c import RecurrentA2C
from fwm_rl.agents.config import (
    CONFIG,
    MEMORIES,
    PRESETS,
    RECIPE_FIELDS,
    RECIPES,
    A2CConfig,
    EnvTrainConfig,
    preset_configs,
    recipe_of,
    with_recipe,
)
from fwm_rl.agents.env_training import EnvTask
from fwm_rl.agents.evaluation import GraphEvalResult, evaluate
from fwm_rl.agents.plotting import plot_runs
from fwm_rl.agents.policies import RecurrentActorCriticPolicy
from fwm_rl.agents.vec_env import FWMGraphVecEnv
from fwm_rl.engine import (
    CHECKPOINT,
    MARKER,
    RESULTS,
    RunClaim,
    RunFinished,
    RunLogger,
    atomic_save,
    check_checkpoint,
    checkpoint_file,
    checkpoint_kind,
    finished_run,
    load_checkpoint,
    load_weights,
    make_checkpoint,
    older_run_problem,
    progress,
    read_checkpoint,
    recorded_results,
    resolve_device,
    run_record,
    set_seed,
    train_loop,
)
from fwm_rl.engine.distributed import (
    DistContext,
    all_reduce_sum,
    broadcast_object,
    hold_run_folder,
    init_distributed,
    rank_seed,
    row_share,
)
from fwm_rl.envs import TaskConfig
from fwm_rl.envs.baselines import reference_levels
from fwm_rl.envs.core import task_spaces
from fwm_rl.envs.graphs import graph_set

__all__ = [
    "PRESETS",
    "RECIPES",
    "RECIPE_FIELDS",
    "GraphTask",
    "RunSummary",
    "A2CConfig",
    "TrainTask",
    "load_policy",
    "make_task",
    "preset_configs",
    "read_run_checkpoint",
    "resume_finished",
    "recipe_of",
    "results_table",
    "run_dirs",
    "train_preset",
    "train_run",
    "with_recipe",
]

RUNS = "runs.json"
#: What a run writes into its folder, and a preset into the folder of its runs (what ``overwrite`` replaces).
RUN_OUTPUTS = (CHECKPOINT, CONFIG, RESULTS, "metrics.csv", "model.zip", "tb", "figure5.png", f".{CHECKPOINT}.*.tmp")
PRESET_OUTPUTS = (RUNS, "figure5.png", "results.md")


# ------------------------------------------------------------------------ tasks
class TrainTask(Protocol):
    """What differs between the environments a run trains on: its agent and environments, what a step counts, the
    training metrics of a logging interval and the evaluation hook. :func:`train_run` does the rest."""

    #: the run's configuration
    cfg: Any
    #: the kind of the run's checkpoint and folder (:func:`~fwm_rl.engine.make_checkpoint`)
    kind: str
    #: what a step of the run counts (e.g. ``episodes``; ``--steps`` sets how many)
    unit: str
    #: the name of the speed column (``time/NAME``) and the environment steps of one unit
    speed_name: str
    env_steps_per_unit: int
    #: whether the task trains data-parallel under ``torchrun``
    data_parallel: bool

    @property
    def total(self) -> int:
        """The units of the whole run."""

    def check(self) -> None:
        """Refuse settings the run cannot train with (before its folder is claimed)."""

    def spaces(self) -> tuple[gym.Space, gym.Space]:
        """The observation and action spaces of the agent."""

    def build(self, dist: DistContext, ckpt: dict | None) -> RecurrentA2C:
        """The environments and the model (untrained; a resumed run's weights come after), this process's share of them
        under ``torchrun``; ``ckpt`` is the checkpoint a resumed run continues (its step and task state)."""

    def advance(self, model: RecurrentA2C, step: int) -> int:
        """One update; the units done after it."""

    def end_interval(self, model: RecurrentA2C, dist: DistContext) -> None:
        """The training metrics of the logging interval that ends (every process)."""

    def evaluate(self, model: RecurrentA2C, step: int) -> dict[str, float]:
        """The evaluation hook (rank 0): the interval's training metrics and the evaluation, as logged."""

    def state(self) -> dict[str, Any]:
        """What the checkpoint keeps of the task (its ``task``)."""

    def finish(self, model: RecurrentA2C, ckpt: dict, stopped: bool, record: dict[str, Any]) -> Any:
        """The final evaluation: the run's summary (a dataclass, written to ``results.json``)."""

    def recorded(self, run_dir: Path, step: int) -> Any | None:
        """The summary the run's ``results.json`` records of its end at ``step``; ``None`` without one."""

    def close(self) -> None:
        """Close the environments."""


def make_task(cfg: A2CConfig | EnvTrainConfig) -> TrainTask:
    """The task of a run's configuration: :class:`GraphTask` or :class:`~fwm_rl.agents.env_training.EnvTask`."""
    return EnvTask(cfg) if isinstance(cfg, EnvTrainConfig) else GraphTask(cfg)


# ------------------------------------------------------------------------ the graph task
def make_model(cfg: A2CConfig, device: torch.device, dist: DistContext | None = None) -> RecurrentA2C:
    """The agent and its training env on ``device``: agent ``i`` on training graph ``i`` for the
    ``n_envs`` first graphs, or this process's contiguous share of them in a data-parallel run."""
    dist = DistContext(device=device) if dist is None else dist
    share = row_share(cfg.n_envs, dist, "--n-envs")
    env = FWMGraphVecEnv.make(
        share.stop - share.start, graphs=graph_set("train")[share], device=device, semantics=cfg.semantics, trials=cfg.trials
    )
    model = RecurrentA2C(
        MEMORIES[cfg.memory],
        env,
        learning_rate=cfg.lr,
        n_steps=env.horizon,
        gamma=cfg.gamma,
        gae_lambda=cfg.gae_lambda,
        ent_coef=cfg.ent_coef,
        vf_coef=cfg.vf_coef,
        max_grad_norm=cfg.max_grad_norm,
        normalize_advantage=cfg.normalize_advantage,
        loss=cfg.loss,
        policy_kwargs=cfg.policy_kwargs,
        seed=cfg.seed,
        device=device,
        dist=dist,
    )
    model.set_logger(Logger(folder=None, output_formats=[]))  # metrics go to RunLogger
    return model


def _interval_seed(seed: int, episode: int, stream: int) -> int:
    """Seed of the placements (``stream`` 0) or the action sampling (1) of the episodes from ``episode`` on."""
    return int(np.random.SeedSequence([seed, episode, stream]).generate_state(1)[0])


@dataclass
class RunSummary:
    """Outcome of one graph-task run (also ``results.json`` in its folder)."""

    name: str
    label: str
    episodes: int
    train_reward: float  # mean over the last logging interval
    test: GraphEvalResult  # final evaluation on the test graphs
    train: GraphEvalResult  # final evaluation on the training graphs
    train_seconds: float
    agent_steps_per_second: float
    stopped_by_time_budget: bool
    record: dict[str, Any]  # fwm_rl.engine.run_record: command, machine, start and end of this process's part of the run


class GraphTask:
    """The paper's protocol (section 4.2): a step is one update, in which every agent ends one episode (trial) on its
    training graph; the evaluation hook logs the interval's mean training reward with one episode on each test and
    validation graph; the final evaluation plays ``final_episodes_per_graph`` on each test and training graph.
    Every logging interval starts new episodes and action sampling from seeds fixed by (seed, rank, episode), so a
    resumed run continues exactly."""

    kind, unit, speed_name, data_parallel = "a2c", "episodes", "agent_steps_per_second", True

    def __init__(self, cfg: A2CConfig):
        self.cfg = cfg
        self.env_steps_per_unit = TaskConfig(semantics=cfg.semantics, trials=cfg.trials).trial_length * cfg.n_envs
        self._rewards: list[float] = []
        self._train_reward = float("nan")
        self._interval_started = False

    @property
    def total(self) -> int:
        return self.cfg.steps

    def check(self) -> None:
        pass  # (the config checks itself)

    def spaces(self) -> tuple[gym.Space, gym.Space]:
        return task_spaces(TaskConfig(semantics=self.cfg.semantics))

    def build(self, dist: DistContext, ckpt: dict | None) -> RecurrentA2C:
        self._seed = rank_seed(self.cfg.seed, dist.rank)  # (this process's share of the agents: its own episodes)
        model = make_model(self.cfg, dist.device, dist)
        model.set_progress(0 if ckpt is None else ckpt["step"])
        return model

    def advance(self, model: RecurrentA2C, step: int) -> int:
        if not self._interval_started:
            model.start_episodes(seed=_interval_seed(self._seed, step, 0))
            torch.manual_seed(_interval_seed(self._seed, step, 1))
            self._interval_started = True
        self._rewards.append(model.update())
        return step + 1

    def end_interval(self, model: RecurrentA2C, dist: DistContext) -> None:
        """The interval's mean training reward over every process's agents."""
        n_agents = model.env.num_envs
        totals = all_reduce_sum({"reward": float(np.mean(self._rewards)) * n_agents, "agents": n_agents}, dist)
        self._train_reward = totals["reward"] / totals["agents"] / self.cfg.trials  # per episode (of a trial's total)
        self._rewards = []
        self._interval_started = False

    def evaluate(self, model: RecurrentA2C, step: int) -> dict[str, float]:
        cfg, policy = self.cfg, model.policy
        test = evaluate(
            policy, "test", 1, seed=_interval_seed(cfg.seed + 1, step, 0), semantics=cfg.semantics, trials=cfg.trials
        )
        valid = evaluate(
            policy, "valid", 1, seed=_interval_seed(cfg.seed + 2, step, 0), semantics=cfg.semantics, trials=cfg.trials
        )
        return {"train/reward": self._train_reward, "valid/reward": valid.mean, "test/reward": test.mean}

    def state(self) -> dict[str, Any]:
        return {"train_reward": self._train_reward}

    def finish(self, model: RecurrentA2C, ckpt: dict, stopped: bool, record: dict[str, Any]) -> RunSummary:
        cfg, policy, k = self.cfg, model.policy, self.cfg.final_episodes_per_graph
        return RunSummary(
            name=cfg.name,
            label=cfg.label,
            episodes=ckpt["step"],
            train_reward=ckpt["task"]["train_reward"],
            test=evaluate(policy, "test", k, seed=cfg.seed + 10_000, semantics=cfg.semantics, trials=cfg.trials),
            train=evaluate(policy, "train", k, seed=cfg.seed + 20_000, semantics=cfg.semantics, trials=cfg.trials),
            train_seconds=ckpt["train_seconds"],
            agent_steps_per_second=ckpt["step"] * self.env_steps_per_unit / max(ckpt["train_seconds"], 1e-9),
            stopped_by_time_budget=stopped,
            record=record,
        )

    def recorded(self, run_dir: Path, step: int) -> RunSummary | None:
        results = recorded_results(run_dir, step, "episodes")
        if results is None:
            return None
        try:
            return RunSummary(**{**results, **{split: GraphEvalResult(**results[split]) for split in ("test", "train")}})
        except (TypeError, KeyError):
            return None  # one an older fwm-rl wrote: the run's end is done again

    def close(self) -> None:
        pass


# ------------------------------------------------------------------------ the trainer
def read_run_checkpoint(run_dir: str | Path) -> tuple[dict, A2CConfig | EnvTrainConfig]:
    """The latest checkpoint of a run (``run_dir``: a run folder, or its ``checkpoint.pt``) and the run's configuration
    stored in it; a clear error for anything else.

    The checkpoint (:func:`~fwm_rl.engine.make_checkpoint`): ``step`` counts the run's unit (episodes of the graph task,
    kind ``a2c``; environment steps of an ``--env`` run, kind ``a2c-env``), ``model`` the policy's weights, ``optimizer``
    Adam's state, ``task`` the task's state (:meth:`TrainTask.state`: the last interval's training reward or return, an
    ``--env`` run's MMER and observation statistics). No ``rng``: a graph run reseeds every logging interval from
    (seed, rank, episode), an ``--env`` run starts new episodes when resumed."""
    path = checkpoint_file(run_dir)
    loaded = load_checkpoint(path)
    ckpt = check_checkpoint(loaded, "a2c-env" if checkpoint_kind(loaded) == "a2c-env" else "a2c", path)
    if ckpt["kind"] == "a2c-env":  # (runs from before normalize_obs existed did not normalise)
        return ckpt, EnvTrainConfig.from_dict({"normalize_obs": False, **ckpt["configs"]["train"]})
    return ckpt, A2CConfig.from_dict(ckpt["configs"]["train"])


def load_policy(
    run_dir: str | Path, device: str | torch.device = "auto"
) -> tuple[RecurrentActorCriticPolicy, A2CConfig | EnvTrainConfig, dict]:
    """The policy of a run's latest checkpoint (``run_dir``: a run folder, or a ``checkpoint.pt``
    file itself), its config and the checkpoint itself."""
    ckpt, cfg = read_run_checkpoint(run_dir)
    obs_space, action_space = make_task(cfg).spaces()
    policy = MEMORIES[cfg.memory](obs_space, action_space, ConstantSchedule(cfg.lr), **cfg.policy_kwargs)
    load_weights(policy, ckpt["model"], run_dir)
    return policy.to(resolve_device(device)), cfg, ckpt


def resume_finished(cfg: A2CConfig | EnvTrainConfig, run_dir: Path, ckpt: dict) -> RunFinished | None:
    """What resuming the run in ``run_dir`` (at its checkpoint ``ckpt``) under ``cfg`` raises where it has nothing left
    to do (:func:`~fwm_rl.engine.finished_run`), its results the summary its ``results.json`` records."""
    task, step = make_task(cfg), ckpt["step"]
    return finished_run(
        run_dir,
        spent=f"{step} of {task.total} {task.unit}" if step >= task.total else None,
        flag="--steps",
        train_seconds=ckpt["train_seconds"],
        time_budget=cfg.time_budget,
        results=task.recorded(run_dir, step),
    )


def train_run(
    cfg: A2CConfig | EnvTrainConfig,
    run_dir: str | Path,
    resume: bool = False,
    show_progress: bool | None = None,
    overwrite: bool = False,
) -> Any:
    """Train one agent into ``run_dir`` (``resume``: continue from its ``checkpoint.pt``): on the graph task for a
    :class:`A2CConfig` (returns a :class:`RunSummary`), on ``cfg.env_id`` for an
    :class:`~fwm_rl.agents.config.EnvTrainConfig` (an :class:`~fwm_rl.agents.env_training.EnvRunSummary`).

    A new run refuses a folder that holds a run (:class:`~fwm_rl.engine.RunExistsError`) unless
    ``overwrite``, which deletes that run's files first, and only a run's (:func:`~fwm_rl.engine.claimed_run_folder`).

    Under ``torchrun`` every process of a graph run calls it with the same arguments (see the module docstring)
    and gets the same summary back. Raises :class:`~fwm_rl.engine.NonFiniteLossError` if the loss
    stops being finite; the last checkpoint (written only after finite updates) is then left as it was.
    """
    run_dir = Path(run_dir)
    started = datetime.now(timezone.utc)
    task = make_task(cfg)
    task.check()
    dist = init_distributed(cfg.device) if task.data_parallel else DistContext(device=resolve_device(cfg.device))
    claims = () if resume else [RunClaim(run_dir, task.kind, RUN_OUTPUTS)]
    with hold_run_folder(run_dir, dist, claims, overwrite, f"--resume {run_dir}"):
        return _train(task, run_dir, resume, show_progress, dist, started)


class _Run:
    """A run as the engine's :class:`~fwm_rl.engine.LoopTask`: a step is one update of the task. At the first update
    that reaches each multiple of ``eval_every`` units (and where the run stops) the task's training metrics and
    evaluation are logged and the checkpoint is written (rank 0)."""

    def __init__(
        self,
        task: TrainTask,
        model: RecurrentA2C,
        dist: DistContext,
        run_dir: Path,
        logger: RunLogger | None,
        bar,
        step: int,
        train_seconds: float,
    ):
        self.task, self.model, self.dist, self.run_dir, self.logger, self.bar = task, model, dist, run_dir, logger, bar
        self.step, self.train_seconds = step, train_seconds
        self._log_ended = False

    def advance(self) -> None:
        self.step = self.task.advance(self.model, self.step)

    def finished(self) -> bool:
        return self.step >= self.task.total

    def write_log(self) -> None:
        """End a log interval (``log_every`` is ``eval_every``): its metrics are logged with the evaluation, which
        :meth:`validation_due` then asks for."""
        self.task.end_interval(self.model, self.dist)
        self._log_ended = True

    def validation_due(self) -> bool:
        return self._log_ended

    def validate_and_save(self, scheduled: bool) -> None:
        """Evaluate, log and write the checkpoint (at every log, the stop's included: ``scheduled`` is not used)."""
        self._log_ended = False
        if not self.dist.is_main:
            return
        task, model, done = self.task, self.model, self.step
        metrics = task.evaluate(model, done)
        self.logger.log(done, {
            **metrics,
            **{f"train/{k}": v for k, v in model.last_losses.items()},
            "time/train_seconds": self.train_seconds,
            f"time/{task.speed_name}": done * task.env_steps_per_unit / max(self.train_seconds, 1e-9),
        })  # fmt: skip
        first, *_, last = metrics  # the training metric and the evaluation's (test or eval)
        self.bar.set_postfix({key.split("/")[0]: f"{metrics[key]:.1f}" for key in (first, last)})
        ckpt = make_checkpoint(
            task.kind,
            step=done,
            train_seconds=self.train_seconds,
            configs={"train": task.cfg.to_dict()},
            model=model.policy.state_dict(),
            optimizer=model.policy.optimizer.state_dict(),
            task=task.state(),
        )
        atomic_save(ckpt, self.run_dir / CHECKPOINT)


def _train(
    task: TrainTask, run_dir: Path, resume: bool, show_progress: bool | None, dist: DistContext, started: datetime
) -> Any:
    """The body of :func:`train_run`, in a folder this run holds."""
    cfg = task.cfg
    ckpt = read_checkpoint(checkpoint_file(run_dir), task.kind) if resume else None  # (a checkpoint of this task's kind)
    done_already = None if ckpt is None else resume_finished(cfg, run_dir, ckpt)
    if done_already is not None:
        raise done_already
    set_seed(cfg.seed)  # the same initial weights in every process
    model = task.build(dist, ckpt)
    done, train_seconds = 0, 0.0
    if ckpt is not None:
        load_weights(model.policy, ckpt["model"], run_dir)
        model.policy.optimizer.load_state_dict(ckpt["optimizer"])
        done, train_seconds = ckpt["step"], ckpt["train_seconds"]
    logger = None
    if dist.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        logger = RunLogger(run_dir, resume_step=done if ckpt is not None else None)  # (first: it refuses a log not the run's)
        (run_dir / CONFIG).write_text(json.dumps(cfg.to_dict(), indent=2) + "\n")
    hide = not dist.is_main or (None if show_progress is None else not show_progress)  # None: tqdm's choice
    bar = progress(total=task.total, initial=done, desc=f"{cfg.label} {task.unit}", disable=hide)
    run = _Run(task, model, dist, run_dir, logger, bar, done, train_seconds)
    try:
        stopped = train_loop(run, log_every=cfg.eval_every, time_budget=cfg.time_budget, bar=bar, ctx=dist)
    finally:
        bar.close()
        if logger is not None:
            logger.close()
    summary = None
    if dist.is_main:
        model.save(run_dir / "model.zip")
        ckpt = read_checkpoint(run_dir / CHECKPOINT, task.kind)
        summary = task.finish(model, ckpt, stopped, run_record(started, next(model.policy.parameters()).device))
        (run_dir / RESULTS).write_text(json.dumps(dataclasses.asdict(summary), indent=2) + "\n")
    task.close()
    return broadcast_object(summary, dist)


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


def _older_preset(folder: Path) -> str | None:
    """``None`` if ``folder`` (without a run marker) holds a preset trained by an older fwm-rl: its ``runs.json``
    lists runs, one of which holds an A2C checkpoint (:func:`~fwm_rl.engine.older_run_problem`); else why not."""
    try:
        names = json.loads((folder / RUNS).read_text())["runs"]
    except FileNotFoundError:
        return f"{folder} has no {MARKER} and no {RUNS}"
    except (OSError, ValueError, KeyError, TypeError):
        names = None
    if not isinstance(names, list) or not names:
        return f"{folder / RUNS} is not a list of runs"
    problems = [older_run_problem(folder / str(name), "a2c") for name in names]
    return None if None in problems else problems[0]


def train_preset(
    configs: list[A2CConfig],
    out: str | Path,
    resume: bool = False,
    show_progress: bool | None = None,
    overwrite: bool = False,
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
    claims = (
        ()
        if resume
        else [
            RunClaim(out, "a2c-preset", PRESET_OUTPUTS, _older_preset),
            *(RunClaim(out / name, "a2c", RUN_OUTPUTS) for name in names),
        ]
    )
    with hold_run_folder(out, dist, claims, overwrite, f"--resume {out}"):
        return _train_preset(configs, out, resume, show_progress, main)


def _train_preset(
    configs: list[A2CConfig], out: Path, resume: bool, show_progress: bool | None, main: bool
) -> list[RunSummary]:
    """The body of :func:`train_preset`, in a folder this process holds."""
    names = [cfg.name for cfg in configs]
    finished = {
        cfg.name: resume_finished(cfg, out / cfg.name, read_run_checkpoint(out / cfg.name)[0])
        for cfg in configs
        if resume and (out / cfg.name / CHECKPOINT).exists()
    }
    if configs and all(finished.get(name) is not None for name in names):  # (one line, that of the run where there is one)
        raise (
            finished[names[0]]
            if len(names) == 1
            else RunFinished(
                f"{out}: every run is finished ({', '.join(names)}: see their {RESULTS}); resume with a larger --steps or "
                "--time-budget to train them further",
                [finished[name].results for name in names],
            )
        )
    if main:
        out.mkdir(parents=True, exist_ok=True)
        (out / RUNS).write_text(json.dumps({"runs": names, "configs": [c.to_dict() for c in configs]}, indent=2) + "\n")
    summaries = []
    for cfg in configs:
        run_dir = out / cfg.name
        if finished.get(cfg.name) is not None:  # kept as it is, its results read back
            if main:
                print(finished[cfg.name])
            summaries.append(finished[cfg.name].results)
            continue
        if main:
            print(f"training {cfg.label} ({cfg.steps} episodes x {cfg.n_envs} agents) -> {run_dir}")
        # Resuming restarts a run that never reached a checkpoint, replacing what its interrupted start left there.
        checkpointed = (run_dir / CHECKPOINT).exists()
        summaries.append(
            train_run(
                cfg,
                run_dir,
                resume=resume and checkpointed,
                show_progress=show_progress,
                overwrite=resume and not checkpointed,
            )
        )
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
