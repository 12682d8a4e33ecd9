"""Configuration of the agents: the agent (:class:`AgentConfig`), the graph-task runs (paper section 4.2, appendix I:
:class:`A2CConfig`), the learning recipes (:data:`RECIPES`) and the presets (:data:`PRESETS`). Runs on any Gymnasium
environment are configured by :class:`~fwm_rl.agents.env_training.EnvTrainConfig` (an :class:`AgentConfig` too).

Its own module so that everything that reads a run's ``config.json`` (the trainer, the plots, the
shipped agents' records) imports it without importing the trainer.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from fwm_rl.agents.a2c import A2C_LOSSES
from fwm_rl.agents.policies import FwmPolicy, GruPolicy, LstmPolicy, RecurrentActorCriticPolicy
from fwm_rl.checks import MAX_D_FWM, MAX_DEPTH, MAX_UNITS, at_most, check_ints, check_real, check_reals
from fwm_rl.engine import Preset, SavedConfig
from fwm_rl.envs import SEMANTICS
from fwm_rl.memory import IMPLS

__all__ = [
    "A2CConfig", "AgentConfig", "CONFIG", "FAST_RECIPE", "MAX_COEF", "MEMORIES", "PRESETS", "RECIPES", "RECIPE_FIELDS",
    "check_recipe", "preset_configs", "recipe_of", "with_recipe",
]  # fmt: skip

CONFIG = "config.json"
MEMORIES: dict[str, type[RecurrentActorCriticPolicy]] = {"fwm": FwmPolicy, "lstm": LstmPolicy, "gru": GruPolicy}
#: Largest weight of the value loss and of the entropy bonus (the paper's: 0.1 and 0.03; SB3's: 0.5 and 0.0).
MAX_COEF = 100.0


@dataclass
class AgentConfig(SavedConfig):
    """The agent: an LSTM with the FWM on top (section 3), or an LSTM alone; the fields of both A2C trainers."""

    memory: str = "fwm"
    """fwm: LSTM + FWM; lstm: the LSTM baseline; gru: a GRU baseline"""
    hidden_size: int = at_most(32, MAX_UNITS)
    """LSTM units (the FWM agent's LSTM, or the whole LSTM baseline), or GRU units"""
    d_fwm: int = at_most(16, MAX_D_FWM)
    """the FWM's key size d_fwm (fast weights d_fwm^2 x d_fwm)"""
    n_reads: int = at_most(3, MAX_DEPTH)
    """the FWM's reads per step N_r"""
    fwm_impl: str = "auto"
    """the memory's implementation (fwm_rl.memory): auto (fast) or step (reference)"""
    adam_eps: float = 1e-4
    """Adam's epsilon"""

    def __post_init__(self) -> None:
        if self.memory not in MEMORIES:
            raise ValueError(f"unknown memory {self.memory!r}; choose one of {sorted(MEMORIES)}")
        if self.fwm_impl not in IMPLS:
            raise ValueError(f"unknown fwm_impl {self.fwm_impl!r}; choose one of {IMPLS}")
        check_ints(self, ("hidden_size", "d_fwm", "n_reads"))
        check_real("adam_eps", self.adam_eps, positive=True)

    @property
    def policy_kwargs(self) -> dict[str, Any]:
        """The policy's keyword arguments (:data:`MEMORIES`)."""
        kwargs: dict[str, Any] = {"hidden_size": self.hidden_size, "optimizer_kwargs": {"eps": self.adam_eps}}
        if self.memory == "fwm":
            kwargs.update(d_fwm=self.d_fwm, n_reads=self.n_reads, impl=self.fwm_impl)
        return kwargs

    @property
    def label(self) -> str:
        """Legend label, e.g. ``FWM-32-16``, ``LSTM-512`` (as in the authors' figure) or ``GRU-128``."""
        return f"FWM-{self.hidden_size}-{self.d_fwm}" if self.memory == "fwm" else f"{self.memory.upper()}-{self.hidden_size}"


@dataclass
class A2CConfig(AgentConfig):
    """One A2C training run on the graph task. Defaults are the paper's (appendix I and the authors' ``run.sh``)."""

    RENAMED = {"learning_rate": "lr", "episodes": "steps"}
    RESUMABLE = ("steps", "device", "time_budget", "final_episodes_per_graph")

    name: str = "fwm"
    """the run's folder name inside a preset folder"""
    n_envs: int = 600
    """agents per batch, agent i on training graph i (at most 600)"""
    steps: int = 51_000
    """A2C updates, each on one episode of every agent: the paper's training episodes"""
    eval_every: int = 50
    """episodes between logs, test evaluations and checkpoints"""
    lr: float = 1e-3
    """Adam learning rate"""
    gamma: float = at_most(0.9, 1.0)
    """discount"""
    gae_lambda: float = at_most(1.0, 1.0)
    """GAE lambda (1: Monte-Carlo returns within the episode, the paper)"""
    vf_coef: float = at_most(0.1, MAX_COEF)
    """weight of the value loss"""
    ent_coef: float = at_most(0.03, MAX_COEF)
    """weight of the entropy bonus"""
    max_grad_norm: float | None = None
    """gradient-norm clipping (None: none, the paper)"""
    normalize_advantage: bool = False
    """normalise the advantages of each update"""
    loss: str = "paper"
    """A2C loss: paper (each agent's own value as baseline and target) or released_code (the authors' released
    loop: batch-mean baseline, critic towards the batch-mean return)"""
    semantics: str = "paper"
    """task rules, see fwm_rl.envs (released_code: the authors' code)"""
    trials: int = 1
    """episodes per trial on the same graph with the memory kept across them (k-shot meta-RL; 1: the paper)"""
    seed: int = 0
    """seed of the weights, the placements and the sampling"""
    device: str = "auto"
    """auto (CUDA when present), cpu or cuda[:N]"""
    time_budget: float | None = None
    """seconds of training; the run stops after the first update past it (logged, evaluated and checkpointed)"""
    final_episodes_per_graph: int = 5
    """episodes per graph of the final evaluation (the results table)"""

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.semantics not in SEMANTICS:
            raise ValueError(f"unknown semantics {self.semantics!r}; choose one of {SEMANTICS}")
        if self.loss not in A2C_LOSSES:
            raise ValueError(f"unknown loss {self.loss!r}; choose one of {A2C_LOSSES}")
        if self.loss == "released_code" and (self.gae_lambda != 1.0 or self.normalize_advantage):
            raise ValueError(
                "loss released_code is the authors' Monte-Carlo loss: it needs gae_lambda 1 and no advantage normalisation"
            )
        check_ints(self, ("n_envs", "steps", "eval_every", "final_episodes_per_graph", "trials"))
        if self.n_envs > 600:
            raise ValueError(f"n_envs must be at most 600 (one agent per training graph), got {self.n_envs}")
        check_recipe(self)


def check_recipe(cfg: Any) -> None:
    """The checks of the learning settings of both A2C trainers' configs, ``cfg`` (an :class:`A2CConfig` or an
    :class:`~fwm_rl.agents.env_training.EnvTrainConfig`), and of their ``time_budget``: a positive
    ``lr``, the discount and GAE lambda in [0, 1], non-negative loss weights up to :data:`MAX_COEF`."""
    check_real("lr", cfg.lr, positive=True)
    check_reals(cfg, ("gamma", "gae_lambda", "vf_coef", "ent_coef"), non_negative=True)
    check_real("max_grad_norm", cfg.max_grad_norm, positive=True, optional=True)
    check_real("time_budget", cfg.time_budget, positive=True, optional=True)


#: The learning recipe of the ``cpu`` and ``fast-fwm`` presets: the paper's A2C with Adam's
#: learning rate at 3e-3 instead of 1e-3, which took off after 3-4k episodes instead of the
#: paper's 6-10k in the comparison the README reports (``scripts/bench_learning.py --recipes``).
FAST_RECIPE = {"lr": 3e-3}


def _paper_lstm(hidden: int, episodes: int) -> Preset:
    return Preset(
        f"the paper's LSTM-{hidden} baseline, {episodes:,} episodes (as long as the authors' log), GPU-sized",
        {f"lstm-{hidden}": {"memory": "lstm", "hidden_size": hidden, "steps": episodes}},
    )


#: Preset name -> the runs it trains (each an :class:`A2CConfig` named by its run). Paper runs are as long as the
#: authors' logs (``metaRL/paper_logs``: FWM 51k episodes, LSTM-512 278k, -1024 232k, -2048 200k, -4096 114k).
PRESETS: dict[str, Preset] = {
    "cpu": Preset(
        "the FWM agent and an LSTM-512 baseline, the same recipe (lr 3e-3) and 13 minutes of training each, about 28 "
        "minutes on 2 CPU cores",
        {
            "fwm": {"steps": 51_000, "time_budget": 780.0, **FAST_RECIPE},
            "lstm-512": {"memory": "lstm", "hidden_size": 512, "steps": 278_000, "time_budget": 780.0, **FAST_RECIPE},
        },
    ),
    "fast-fwm": Preset("paper-fwm with lr 3e-3", {"fwm": FAST_RECIPE}),
    "paper-fwm": Preset("the paper's FWM run, 51,000 episodes, GPU-sized", {"fwm": {}}),
    "paper-lstm-512": _paper_lstm(512, 278_000),
    "paper-lstm-1024": _paper_lstm(1024, 232_000),
    "paper-lstm-2048": _paper_lstm(2048, 200_000),
    "paper-lstm-4096": _paper_lstm(4096, 114_000),
}


#: The A2CConfig fields that make up a learning recipe (the A2C and Adam settings).
RECIPE_FIELDS = (
    "lr",
    "adam_eps",
    "gamma",
    "gae_lambda",
    "vf_coef",
    "ent_coef",
    "max_grad_norm",
    "normalize_advantage",
    "loss",
)

#: Learning recipes: name -> the fields of :data:`RECIPE_FIELDS` in which it differs from the
#: paper's settings (appendix I). ``scripts/bench_learning.py --recipes ...`` compares them over seeds.
RECIPES: dict[str, dict[str, Any]] = {
    "paper": {},
    "lr3e-3": FAST_RECIPE,
    "lr3e-3-normadv": {"lr": 3e-3, "normalize_advantage": True},
    "lr3e-3-gae0.95": {"lr": 3e-3, "gae_lambda": 0.95},
    "lr1e-2-clip1": {"lr": 1e-2, "max_grad_norm": 1.0},
    "released-loss": {"loss": "released_code"},
    "lr3e-3-released-loss": {"lr": 3e-3, "loss": "released_code"},
}


def with_recipe(cfg: A2CConfig, recipe: str) -> A2CConfig:
    """``cfg`` with the learning settings of ``recipe`` (:data:`RECIPES`); its other fields unchanged."""
    if recipe not in RECIPES:
        raise ValueError(f"unknown recipe {recipe!r}; choose one of {sorted(RECIPES)}")
    paper = {f.name: f.default for f in dataclasses.fields(A2CConfig) if f.name in RECIPE_FIELDS}
    return dataclasses.replace(cfg, **{**paper, **RECIPES[recipe]})


def recipe_of(cfg: A2CConfig) -> str:
    """The name of the recipe whose settings ``cfg`` has, or ``"custom"``."""
    return next((name for name in RECIPES if with_recipe(cfg, name) == cfg), "custom")


def preset_configs(preset: str, **overrides: Any) -> list[A2CConfig]:
    """The runs of ``preset`` with ``overrides`` (``seed``, ``steps``, ``device``, ...; None = keep)."""
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; choose one of {sorted(PRESETS)}")
    changes = {k: v for k, v in overrides.items() if v is not None}
    return [A2CConfig(**{**fields, "name": name, **changes}) for name, fields in PRESETS[preset].runs.items()]
