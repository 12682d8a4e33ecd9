"""Configuration of the agents: the agent (:class:`AgentConfig`), the graph-task runs (paper section 4.2, appendix I:
:class:`A2CConfig`), the runs on any Gymnasium environment (:class:`EnvTrainConfig`, ``fwm-rl train --env ID``), the
learning recipes (:data:`RECIPES`) and the presets (:data:`PRESETS`).

Its own module so that everything that reads a run's ``config.json`` (the trainer, the plots, the
shipped agents' records) imports it without importing the trainer.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
from stable_baselines3.common.preprocessing import is_image_space
from stable_baselines3.common.type_aliases import Schedule
from stable_baselines3.common.utils import LinearSchedule

from fwm_rl.agents.a2c import A2C_LOSSES
from fwm_rl.agents.policies import ACTIVATIONS, FWM_OUTPUTS, FwmPolicy, GruPolicy, LstmPolicy, RecurrentActorCriticPolicy
from fwm_rl.checks import (
    MAX_D_FWM,
    MAX_DEPTH,
    MAX_LENGTH,
    MAX_STREAMS,
    MAX_UNITS,
    at_most,
    check_choice,
    check_ints,
    check_real,
    check_reals,
)
from fwm_rl.engine import Preset, SavedConfig
from fwm_rl.envs import ENV_IDS, SEMANTICS
from fwm_rl.memory import IMPLS

__all__ = [
    "A2CConfig", "ALGOS", "AgentConfig", "CONFIG", "EnvTrainConfig", "FAST_RECIPE", "MAX_COEF", "MAX_EPOCHS", "MEMORIES",
    "POLICY_OPTIONS", "PPO_OPTIONS", "PRESETS", "RECIPES", "RECIPE_FIELDS", "SCHEDULES", "check_recipe", "graph_env_kwargs",
    "parse_layers", "parse_net_arch", "preset_configs", "recipe_of", "with_recipe",
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
    :class:`EnvTrainConfig`), and of their ``time_budget``: a positive
    ``lr``, the discount and GAE lambda in [0, 1], non-negative loss weights up to :data:`MAX_COEF`."""
    check_real("lr", cfg.lr, positive=True)
    check_reals(cfg, ("gamma", "gae_lambda", "vf_coef", "ent_coef"), non_negative=True)
    check_real("max_grad_norm", cfg.max_grad_norm, positive=True, optional=True)
    check_real("time_budget", cfg.time_budget, positive=True, optional=True)


#: The algorithms of an ``--env`` run, and the options only PPO has.
ALGOS = ("a2c", "ppo")
PPO_OPTIONS = ("n_epochs", "n_minibatches", "clip_range", "clip_range_vf", "target_kl", "clip_range_schedule")
#: The options of the policy's layers around the core.
POLICY_OPTIONS = (
    "net_arch",
    "features_net_arch",
    "activation_fn",
    "ortho_init",
    "shared_core",
    "log_std_init",
    "fwm_zero_output",
    "fwm_beta_bias",
    "fwm_update_scale",
    "fwm_read_tanh",
    "fwm_output",
    "fwm_memory_lr_scale",
)
#: How a learning rate or clip range moves over a run.
SCHEDULES = ("constant", "linear")
#: Largest number of PPO passes over one rollout.
MAX_EPOCHS = 1000


@dataclass
class EnvTrainConfig(AgentConfig):
    """One A2C or PPO run on a Gymnasium environment (the agent's fields: :class:`~fwm_rl.agents.config.AgentConfig`)."""

    RENAMED = {"learning_rate": "lr", "total_timesteps": "steps"}
    RESUMABLE = ("steps", "device", "time_budget", "final_eval_episodes")

    env_id: str = "CartPoleNoVel-v1"
    """any registered id with Discrete actions and Box (or Dict of Box) observations ("module:Id" imports module)"""
    steps: int = 200_000
    """environment steps of the run, over all n_envs copies (SB3's total_timesteps), rounded up to whole rollouts of n_envs x n_steps
    steps (at least one)"""
    n_envs: int = at_most(16, MAX_STREAMS)
    """copies of the environment stepped together"""
    n_steps: int = at_most(32, MAX_LENGTH)
    """steps per copy and update; the gradients flow through the whole rollout"""
    lr: float = 1e-3
    """Adam learning rate"""
    adam_eps: float = 1e-5
    """Adam's epsilon (SB3's)"""
    gamma: float = at_most(0.99, 1.0)
    """discount"""
    gae_lambda: float = at_most(0.95, 1.0)
    """GAE lambda (1: Monte-Carlo returns, bootstrapped where a rollout cuts an episode)"""
    vf_coef: float = at_most(0.5, MAX_COEF)
    """weight of the value loss"""
    ent_coef: float = at_most(0.01, MAX_COEF)
    """weight of the entropy bonus"""
    max_grad_norm: float | None = 0.5
    """gradient-norm clipping (None: none)"""
    normalize_advantage: bool = False
    """normalise the advantages of each update (PPO: of each minibatch)"""
    algo: str = "a2c"
    """a2c: RecurrentA2C, one gradient step per rollout; ppo: RecurrentPPO, n_epochs passes over each rollout in
    n_minibatches minibatches of whole environments, with the clipped objective"""
    n_epochs: int = at_most(4, MAX_EPOCHS)
    """PPO: passes over each rollout"""
    n_minibatches: int = at_most(4, MAX_STREAMS)
    """PPO: minibatches per pass, each a random set of whole environments (at most n_envs)"""
    clip_range: float = at_most(0.2, MAX_COEF)
    """PPO: the clipping of the probability ratio"""
    clip_range_vf: float | None = None
    """PPO: clip each value's change to this range around the rollout's (None: no clipping)"""
    target_kl: float | None = None
    """PPO: stop an update's epochs once the approximate KL divergence passes 1.5 target_kl (None: never)"""
    lr_schedule: str = "constant"
    """constant, or linear: the learning rate falls linearly from lr to 0 over the run (the RL Zoo's lin_X)"""
    clip_range_schedule: str = "constant"
    """PPO: constant, or linear: the clip range falls linearly from clip_range to 0 over the run"""
    normalize_obs: bool = True
    """normalise Box observations by running mean and variance (SB3's VecNormalize), the statistics stored in the
    checkpoint and frozen for evaluation. The recurrent cores take the observation as it comes, and small unscaled
    inputs (CartPole's angles) barely move them. Not for the graph task's ids nor other spaces (one-hot observations)"""
    norm_reward: bool = False
    """scale the training rewards by the running deviation of the discounted return (SB3's VecNormalize; the
    logged and evaluated returns stay the environment's)"""
    net_arch: str = ""
    """MLP layers of the heads after the core: '64' or '64,64' for each head, 'pi=64;vf=64,64' for each its own;
    empty: linear heads (the paper's)"""
    features_net_arch: str = ""
    """MLP layers between the observation's features and the core, e.g. '64' (empty: none)"""
    activation_fn: str = "tanh"
    """activation of the MLP layers: tanh, relu, elu, leaky_relu, gelu or silu"""
    ortho_init: bool = False
    """SB3's orthogonal initialisation of the layers outside the core"""
    shared_core: bool = True
    """one core for the policy and the value; --no-shared-core: the value reads a core of its own (sb3-contrib's
    enable_critic_lstm)"""
    log_std_init: float = 0.0
    """Box actions: the initial log standard deviation of the Gaussian"""
    fwm_zero_output: bool = False
    """the FWM's output projection W_o (eq. 8) starts at zero, so with --fwm-output sum the agent starts as its LSTM
    (beyond the paper)"""
    fwm_beta_bias: float = 1.0
    """constant added before the sigmoid of the write strength beta (eq. 2); the authors' code: +1 ("bias to writing")"""
    fwm_update_scale: float | None = None
    """factor on the update term of eq. 3 (None: 1/d_fwm, the authors' code; the paper's text: 1)"""
    fwm_read_tanh: bool = False
    """tanh on the read queries n^(0) and e^(i), as eqs 5 and 6 of the paper's text (the authors' meta-RL code: none)"""
    fwm_output: str = "sum"
    """what the heads see: sum (h_t + FWM(h_t, F_t), section 3), reads (FWM(h_t, F_t) alone) or both ([h_t; FWM(h_t, F_t)])"""
    fwm_memory_lr_scale: float = 1.0
    """the FWM's own weights (its projections, eqs 1-2 and 5-8) train at this factor times the learning rate, the LSTM
    and the heads at the learning rate (beyond the paper)"""
    stochastic_eval: bool = False
    """evaluate with actions sampled from the policy instead of its most likely ones"""
    recipe: str = ""
    """the hyperparameter entry the run started from, e.g. 'fwm_rl/agents/recipes/ppo.yml: CartPoleNoVel-v1' (empty: none)"""
    eval_every: int = 10_000
    """environment steps between logs, evaluations and checkpoints"""
    eval_episodes: int = 10
    """evaluation episodes at every log"""
    final_eval_episodes: int = 100
    """evaluation episodes of the final results"""
    seed: int = 0
    """seed of the weights, the environments and the sampling"""
    device: str = "cpu"
    """cpu (small batches: usually faster than a GPU here), auto or cuda[:N]"""
    time_budget: float | None = None
    """seconds of training; the run stops after the first update past it (logged, evaluated and checkpointed)"""

    def __post_init__(self) -> None:
        super().__post_init__()
        check_ints(
            self,
            (
                "steps",
                "n_envs",
                "n_steps",
                "eval_every",
                "eval_episodes",
                "final_eval_episodes",
                "n_epochs",
                "n_minibatches",
            ),
        )
        check_recipe(self)
        check_choice("algo", self.algo, ALGOS)
        check_choice("lr_schedule", self.lr_schedule, SCHEDULES)
        check_choice("clip_range_schedule", self.clip_range_schedule, SCHEDULES)
        check_choice("activation_fn", self.activation_fn, tuple(ACTIVATIONS))
        parse_net_arch(self.net_arch)
        parse_layers("features_net_arch", self.features_net_arch)
        check_real("log_std_init", self.log_std_init)
        check_real("fwm_beta_bias", self.fwm_beta_bias)
        check_real("fwm_update_scale", self.fwm_update_scale, positive=True, optional=True)
        check_real("fwm_memory_lr_scale", self.fwm_memory_lr_scale, positive=True)
        check_choice("fwm_output", self.fwm_output, FWM_OUTPUTS)
        check_reals(self, ("clip_range",), positive=True)
        check_real("clip_range_vf", self.clip_range_vf, positive=True, optional=True)
        check_real("target_kl", self.target_kl, positive=True, optional=True)
        if self.algo == "a2c":
            ppo = [f.name for f in dataclasses.fields(self) if f.name in PPO_OPTIONS and getattr(self, f.name) != f.default]
            if ppo:
                raise ValueError(f"{', '.join(ppo)} {'is' if len(ppo) == 1 else 'are'} PPO's: give algo ppo (--algo ppo)")
        elif self.n_minibatches > self.n_envs:
            raise ValueError(
                f"n_minibatches {self.n_minibatches} is more than the {self.n_envs} environment copies a minibatch "
                "is made of: lower --n-minibatches or raise --n-envs"
            )

    @property
    def rollout_steps(self) -> int:
        """Environment steps of one update: ``n_envs`` copies times ``n_steps`` steps."""
        return self.n_envs * self.n_steps

    @property
    def planned_timesteps(self) -> int:
        """The environment steps the run takes: ``steps`` rounded up to whole rollouts. A ``ValueError``
        when ``steps`` is below one rollout (a config read from a checkpoint still loads and evaluates)."""
        if self.steps < self.rollout_steps:
            raise ValueError(
                f"steps {self.steps} is less than one rollout of n_envs {self.n_envs} x "
                f"n_steps {self.n_steps} = {self.rollout_steps} steps: give --steps {self.rollout_steps} "
                "or more, or fewer --n-envs / --n-steps"
            )
        return -(-self.steps // self.rollout_steps) * self.rollout_steps

    @property
    def budget(self) -> str:
        """The run's length in words, e.g. ``6400 environment steps (2 rollouts of 100 copies x 32 steps; --steps
        5000 rounded up to whole rollouts)``."""
        steps = self.planned_timesteps
        rollouts = steps // self.rollout_steps
        rounded = "" if steps == self.steps else f"; --steps {self.steps} rounded up to whole rollouts"
        return (
            f"{steps} environment steps ({rollouts} rollout{'s' if rollouts > 1 else ''} of {self.n_envs} copies x "
            f"{self.n_steps} steps{rounded})"
        )

    def normalizes_obs(self, observation_space: gym.Space) -> bool:
        """Whether this run normalises its observations, of ``observation_space``: ``normalize_obs``, not a graph-task
        id, and a ``Box`` that is not an image."""
        return (
            self.normalize_obs
            and graph_env_kwargs(self.env_id) is None
            and isinstance(observation_space, gym.spaces.Box)
            and not is_image_space(observation_space)
        )

    @property
    def policy_kwargs(self) -> dict[str, Any]:
        """The policy's keyword arguments: the core's (:class:`~fwm_rl.agents.config.AgentConfig`) and the heads'."""
        core = {}
        if self.memory == "fwm":
            core = {
                "zero_output": self.fwm_zero_output,
                "beta_bias": self.fwm_beta_bias,
                "update_scale": self.fwm_update_scale,
                "read_tanh": self.fwm_read_tanh,
                "output": self.fwm_output,
                "memory_lr_scale": self.fwm_memory_lr_scale,
            }
        return {
            **super().policy_kwargs,
            **core,
            "net_arch": parse_net_arch(self.net_arch),
            "activation_fn": ACTIVATIONS[self.activation_fn],
            "ortho_init": self.ortho_init,
            "shared_core": self.shared_core,
            "log_std_init": self.log_std_init,
            "features_net_arch": parse_layers("features_net_arch", self.features_net_arch),
        }

    def schedule(self, name: str) -> float | Schedule:
        """``lr`` or ``clip_range`` as its schedule says: the value, or SB3's linear schedule from it to 0."""
        value, kind = getattr(self, name), getattr(self, "lr_schedule" if name == "lr" else f"{name}_schedule")
        return LinearSchedule(value, 0.0, 1.0) if kind == "linear" else value

    @property
    def label(self) -> str:
        return f"{super().label} on {self.env_id}" + (" (PPO)" if self.algo == "ppo" else "")


def parse_layers(name: str, text: str) -> list[int]:
    """Layer widths from ``'64,64'`` (empty: none); a ``ValueError`` naming ``name`` otherwise."""
    try:
        widths = [int(w) for w in text.split(",")] if text.strip() else []
    except ValueError:
        widths = [0]
    if any(not 1 <= w <= MAX_UNITS for w in widths):
        raise ValueError(f"{name} {text!r} is not a list of layer widths: give e.g. '64' or '64,64' (each 1 to {MAX_UNITS})")
    return widths


def parse_net_arch(text: str) -> list[int] | dict[str, list[int]] | None:
    """SB3's ``net_arch`` from ``net_arch``'s text: ``''`` -> None, ``'64,64'`` -> ``[64, 64]``,
    ``'pi=64;vf=64,64'`` -> ``dict(pi=[64], vf=[64, 64])``."""
    if not text.strip():
        return None
    if "=" not in text:
        return parse_layers("net_arch", text)
    heads: dict[str, list[int]] = {}
    for part in text.split(";"):
        key, _, widths = part.partition("=")
        if key.strip() not in ("pi", "vf") or key.strip() in heads:
            raise ValueError(f"net_arch {text!r}: give each head once, as 'pi=64;vf=64,64'")
        heads[key.strip()] = parse_layers("net_arch", widths)
    return {"pi": heads.get("pi", []), "vf": heads.get("vf", [])}


def graph_env_kwargs(env_id: str) -> dict[str, Any] | None:
    """The keyword arguments a graph-task id fixes (:data:`~fwm_rl.envs.ENV_IDS`), or None for other ids."""
    return ENV_IDS.get(env_id.split(":")[-1])


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
