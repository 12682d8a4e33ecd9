"""Batched dynamics of the metro-graph POMDPs (paper section 4.2, appendix I).

:class:`GraphBatch` advances ``n_envs`` environments at once with array
operations and no Python loop over environments, on numpy (``device=None``) or
on torch tensors (``device="cpu"``, ``"cuda"``, ...). Both Gymnasium classes
(:class:`~fwm_rl.envs.graph_env.FWMGraphEnv` with one environment,
:class:`~fwm_rl.envs.vector_env.FWMGraphVectorEnv` with many) drive this one
core, so they cannot diverge; agents may also drive it directly::

    batch = GraphBatch(600, graphs=graph_set("train"), device="cuda")
    obs = batch.reset(seed=0)                      # [600, 17] float32
    for _ in range(batch.config.horizon):
        obs, reward, terminated, truncated = batch.step(actions)   # all on the device

Rules (``semantics="paper"``, the default):

* the reward location is uniform over the states and the agent is placed
  uniformly on another state; a timer is set to 0 whenever this placement happens;
* a valid action moves the agent along its edge; an invalid one (no edge)
  costs ``penalty`` and leaves the agent in place;
* reaching the reward location gives ``reward`` and places reward and agent
  again; after ``reset_after`` (6) steps without reaching it, both are placed again;
* an episode lasts ``horizon`` (30) steps and then ``terminated`` is True
  (elapsed time is part of the observation, so this is not a truncation).

Trials (k-shot meta-RL, as in RL^2): with ``trials=k`` the
environments play ``k`` consecutive episodes on the same graph, and these ``k`` episodes form one
Gymnasium episode of ``k * horizon`` steps (:attr:`TaskConfig.trial_length`), so that a recurrent
agent keeps its memory across the trial and empties it only at the next one. Each episode of the
trial starts as a first episode does (reward and agent placed anew, timer 0, no previous action,
progress 0, no last reward): the progress feature dropping to 0 is what tells the agent a new
episode began, and :attr:`GraphBatch.episode_in_trial` (``info["episode_in_trial"]`` of the
single env) says which one it is. ``trials=1`` is the paper's task, unchanged.

``semantics="released_code"`` reproduces the authors' released
``metaRL/train_agent.py`` instead (see :data:`SEMANTICS` and the README):
the timer counts every unsuccessful step and is not reset when the reward is
reached; a new reward location always differs from the previous one; a
timeout also clears the previous action to "no action"; and the observation
has its reward slot fixed at 0 and the "no action" bit on the bias bit.

Observation (``obs_dim = 2 n_states + n_actions + 4`` = 17):

====================  ======================================================
slice                 content
====================  ======================================================
``[0, S)``            one-hot reward location
``[S, 2S)``           one-hot current location
``[2S, 2S+A+1)``      one-hot previous action, last value = "no action yet"
``2S+A+1``            constant 1 (bias)
``2S+A+2``            progress ``step / horizon``
``2S+A+3``            reward received at the previous step
====================  ======================================================
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch
from gymnasium import spaces

from fwm_rl.checks import check_int, check_ints
from fwm_rl.envs._backend import Backend, make_backend
from fwm_rl.envs.graphs import (
    MAX_SAMPLED_STATES,
    SPLITS,
    adjacency_from_table,
    check_sizes,
    graph_set,
    next_state_table,
    sample_table_batch,
    validate_graphs,
)

Semantics = Literal["paper", "released_code"]
#: ``"paper"``: the rules as the paper states them (default). ``"released_code"``: the authors' released code, bit for bit.
SEMANTICS: tuple[str, ...] = ("paper", "released_code")


@dataclass(frozen=True)
class TaskConfig:
    """The numbers of the task; defaults are the paper's (appendix I)."""

    n_states: int = 5
    n_actions: int = 3
    horizon: int = 30
    reward: float = 10.0
    penalty: float = 0.05
    #: Unsuccessful steps after which reward and agent are placed again; None -> ``n_states + 1``
    #: (6 for the paper's 5 states, and the released code's rule ``timer > n_states``).
    reset_after: int | None = None
    semantics: Semantics = "paper"
    #: Episodes per trial on the same graph (one Gymnasium episode; see the module docstring).
    trials: int = 1

    def __post_init__(self) -> None:
        check_sizes(self.n_actions, self.n_states)
        if self.reset_after is None:
            object.__setattr__(self, "reset_after", self.n_states + 1)
        check_ints(self, ("horizon", "reset_after", "trials"))
        if not math.isfinite(self.reward):
            raise ValueError(f"reward must be a finite number, got {self.reward!r}")
        if not (math.isfinite(self.penalty) and self.penalty >= 0):
            raise ValueError(f"penalty must be a finite number >= 0 (it is subtracted), got {self.penalty!r}")
        if self.semantics not in SEMANTICS:
            raise ValueError(f"unknown semantics {self.semantics!r}; choose one of {SEMANTICS}")

    @property
    def trial_length(self) -> int:
        """Steps of a Gymnasium episode: ``trials`` episodes of ``horizon`` steps."""
        return self.horizon * self.trials

    @property
    def obs_dim(self) -> int:
        return 2 * self.n_states + self.n_actions + 4

    @property
    def no_action(self) -> int:
        """The previous-action value before the first action ("no action yet")."""
        return self.n_actions

    @property
    def bias_index(self) -> int:
        return 2 * self.n_states + self.n_actions + 1

    def action_bit(self, previous_action: Any) -> Any:
        """Observation index of the previous-action bit. The released code adds one to it,
        so its actions use indices ``2S+1 .. 2S+A`` and "no action" lands on the bias bit."""
        offset = 2 * self.n_states + (1 if self.semantics == "released_code" else 0)
        return previous_action + offset

    def observation_bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """``(low, high)`` of the observation ``Box``."""
        low = np.zeros(self.obs_dim, dtype=np.float32)
        high = np.ones(self.obs_dim, dtype=np.float32)
        low[-1] = min(0.0, -self.penalty, self.reward)
        high[-1] = max(0.0, self.reward)
        return low, high


class GraphBatch:
    """``n_envs`` metro-graph environments advanced together.

    Args:
        n_envs: number of environments.
        graphs: adjacency tensors ``[n_graphs, n_actions, n_states, n_states]`` to play on
            (environment ``i`` gets graph ``i % n_graphs`` unless :meth:`reset` is told otherwise),
            or None for a fresh graph from Listing 1's distribution for every environment at
            every reset (:func:`~fwm_rl.envs.graphs.sample_table_batch`).
        config: the task's numbers and semantics.
        device: None for numpy arrays, else a torch device (``"cpu"``, ``"cuda"``) for tensors.
        seed: seed of the random placements (and sampled graphs); :meth:`reset` can re-seed.
        check_actions: validate the actions in :meth:`step` (on CUDA this costs one
            host synchronisation per step; turn it off for actions sampled from the policy).

    All environments share the step counter: episodes (and trials) have a fixed length, so
    they start and end together.

    State (arrays ``[n_envs]`` of the backend unless noted), readable after :meth:`reset`:
    ``tables`` (next-state tables ``[n_envs, n_states, n_actions]``, -1 = invalid; :attr:`graphs`
    gives the adjacency tensors), ``graph_indices`` (index in the fixed set, None when sampled),
    ``reward_location``, ``agent_location``, ``previous_action`` (``n_actions`` = none yet),
    ``timer``, ``last_reward``, ``step_count`` (int, steps into the trial), and the last step's ``valid`` (the action had
    an edge), ``reached`` (the reward was reached) and ``placed`` (reward and agent were placed anew).
    """

    def __init__(
        self,
        n_envs: int,
        graphs: np.ndarray | torch.Tensor | None = None,
        config: TaskConfig = TaskConfig(),
        device: str | torch.device | None = None,
        seed: int | None = None,
        check_actions: bool = True,
    ) -> None:
        check_int("n_envs", n_envs)
        self.n_envs = int(n_envs)
        self.config = config
        self.backend: Backend = make_backend(device, seed)
        self.check_actions = check_actions
        xp = self.backend
        if graphs is None:
            if config.n_states > MAX_SAMPLED_STATES:
                raise ValueError(
                    f"n_states={config.n_states}: freshly sampled graphs are limited to {MAX_SAMPLED_STATES} locations "
                    "(Listing 1's sampler takes seconds to minutes per reset beyond); pass fixed graphs= for larger tasks"
                )
            self.graph_set_tables = None
        else:
            if not isinstance(graphs, torch.Tensor):
                graphs = np.asarray(graphs)
            if tuple(graphs.shape[1:]) != (config.n_actions, config.n_states, config.n_states) or graphs.ndim != 4:
                raise ValueError(
                    f"graphs must have shape [n_graphs, n_actions={config.n_actions}, n_states={config.n_states}, "
                    f"n_states={config.n_states}], got {tuple(graphs.shape)}"
                )
            if graphs.shape[0] < 1:
                raise ValueError("graphs is empty; pass at least one graph or None for freshly sampled graphs")
            validate_graphs(graphs)
            self.graph_set_tables = xp.to_int(xp.asarray(next_state_table(graphs)))
        n, s, a = self.n_envs, config.n_states, config.n_actions
        self._rows = xp.arange(n)
        self._obs_rows = self._rows * config.obs_dim
        self._table_rows = self._rows * (s * a)
        self.tables = xp.full((n, s, a), -1, xp.int_dtype)
        self.graph_indices = None
        self.reward_location = xp.zeros((n,), xp.int_dtype)
        self.agent_location = xp.zeros((n,), xp.int_dtype)
        self.previous_action = xp.full((n,), config.no_action, xp.int_dtype)
        self.timer = xp.zeros((n,), xp.int_dtype)
        self.last_reward = xp.zeros((n,), xp.float_dtype)
        self.step_count = 0
        self._needs_reset = True
        # Outcome of the last step, for inspection (info dicts, tests, plots).
        self.valid = xp.zeros((n,), bool)
        self.reached = xp.zeros((n,), bool)
        self.placed = xp.zeros((n,), bool)

    # ------------------------------------------------------------------ graphs
    @property
    def n_graphs(self) -> int | None:
        """Size of the fixed graph set, or None when graphs are sampled at every reset."""
        return None if self.graph_set_tables is None else int(self.graph_set_tables.shape[0])

    @property
    def graphs(self) -> Any:
        """Current adjacency tensors ``[n_envs, n_actions, n_states, n_states]`` (0/1)."""
        return adjacency_from_table(self.tables)

    # ------------------------------------------------------------------ episode
    def reset(self, seed: int | None = None, graph_indices: Any = None) -> Any:
        """Start new episodes in all environments and return the first observations ``[n_envs, obs_dim]``.

        ``seed`` re-seeds the placements (and graph sampling). ``graph_indices`` (``[n_envs]`` integers)
        picks each environment's graph from the fixed set; by default environment ``i`` plays graph
        ``i % n_graphs``, or a freshly sampled graph when there is no fixed set.
        """
        xp, cfg = self.backend, self.config
        if seed is not None:
            xp.seed(seed)
        if self.graph_set_tables is None:
            if graph_indices is not None:
                raise ValueError(
                    "graph_indices needs a fixed graph set (split 'train'/'test' or graphs=...), not sampled graphs"
                )
            self.tables = sample_table_batch(xp, self.n_envs, cfg.n_actions, cfg.n_states)
        else:
            self.graph_indices = self._check_graph_indices(graph_indices)
            self.tables = self.graph_set_tables[self.graph_indices]
        self._flat_tables = self.tables.reshape(-1)
        self.reward_location = xp.zeros((self.n_envs,), xp.int_dtype)
        self.agent_location = xp.zeros((self.n_envs,), xp.int_dtype)
        self._start_episode()
        self.valid = xp.zeros((self.n_envs,), bool)
        self.reached = xp.zeros((self.n_envs,), bool)
        self.step_count = 0
        self._needs_reset = False
        return self.observation()

    def _start_episode(self) -> None:
        """Reward and agent placed anew everywhere, timer 0, no previous action, no last reward
        (the start of a trial, and of each of its later episodes on the same graphs)."""
        xp, cfg = self.backend, self.config
        self._place(xp.full((self.n_envs,), True, bool), exclude_previous=False)
        self.previous_action = xp.full((self.n_envs,), cfg.no_action, xp.int_dtype)
        self.timer = xp.zeros((self.n_envs,), xp.int_dtype)
        self.last_reward = xp.zeros((self.n_envs,), xp.float_dtype)
        self.placed = xp.full((self.n_envs,), True, bool)

    @property
    def episode_in_trial(self) -> int:
        """Which episode of the trial the environments play (0 .. trials-1); the last one after the trial's end."""
        return min(self.step_count // self.config.horizon, self.config.trials - 1)

    def _check_graph_indices(self, graph_indices: Any) -> Any:
        xp, n_graphs = self.backend, self.n_graphs
        if graph_indices is None:
            return self._rows % n_graphs
        if isinstance(graph_indices, torch.Tensor):
            graph_indices = graph_indices.detach().cpu()
        indices = np.asarray(graph_indices)
        if indices.shape != (self.n_envs,):
            raise ValueError(f"graph_indices must have shape ({self.n_envs},), got {indices.shape}")
        if not np.issubdtype(indices.dtype, np.integer):
            raise ValueError(f"graph_indices must be integers, got dtype {indices.dtype}")
        if (indices < 0).any() or (indices >= n_graphs).any():
            bad = int(indices[(indices < 0) | (indices >= n_graphs)][0])
            raise ValueError(
                f"graph index {bad} is out of range: the graph set has {n_graphs} graphs (valid 0..{n_graphs - 1})"
            )
        return xp.asarray(indices.astype(np.int64))

    def _place(self, mask: Any, exclude_previous: bool) -> None:
        """Place reward and agent anew where ``mask``: reward uniform (over the states other than
        the previous reward location when ``exclude_previous``), agent uniform on another state."""
        xp, n_states = self.backend, self.config.n_states
        draws = xp.random((2, self.n_envs))
        if exclude_previous:
            reward = xp.to_int(draws[0] * (n_states - 1))
            reward = reward + xp.to_int(reward >= self.reward_location)
        else:
            reward = xp.to_int(draws[0] * n_states)
        agent = xp.to_int(draws[1] * (n_states - 1))
        agent = agent + xp.to_int(agent >= reward)
        self.reward_location = xp.where(mask, reward, self.reward_location)
        self.agent_location = xp.where(mask, agent, self.agent_location)

    def _check_actions(self, actions: Any) -> Any:
        xp, n_actions = self.backend, self.config.n_actions
        if xp.name == "torch":
            actions = torch.as_tensor(actions, device=xp.device)
            integral = not (actions.dtype.is_floating_point or actions.dtype.is_complex or actions.dtype == torch.bool)
        else:
            actions = np.asarray(actions)
            integral = np.issubdtype(actions.dtype, np.integer)
        if tuple(actions.shape) != (self.n_envs,):
            raise ValueError(f"actions must have shape ({self.n_envs},) (one per environment), got {tuple(actions.shape)}")
        if not integral:
            raise ValueError(f"actions must be integers in [0, {n_actions}), got dtype {actions.dtype}")
        if bool((actions < 0).any()) or bool((actions >= n_actions).any()):
            bad = actions[(actions < 0) | (actions >= n_actions)][0]
            raise ValueError(f"action {int(bad)} is outside the action space Discrete({n_actions}) (valid 0..{n_actions - 1})")
        return xp.to_int(actions)

    def step(self, actions: Any) -> tuple[Any, Any, Any, Any]:
        """Take one action per environment.

        Returns ``(obs [n_envs, obs_dim] float32, reward [n_envs] float32, terminated [n_envs] bool,
        truncated [n_envs] bool)``. ``terminated`` is all True after ``trial_length`` steps (``horizon``
        when ``trials=1``); then call :meth:`reset` (stepping on raises ``RuntimeError``). Within a
        trial, the step that ends an episode returns the first observation of the next one.
        """
        if self._needs_reset:
            raise RuntimeError("call reset() first: the episode has not started or has ended (after `trial_length` steps)")
        xp, cfg = self.backend, self.config
        if self.check_actions:
            actions = self._check_actions(actions)
        elif xp.name == "torch":
            actions = torch.as_tensor(actions, device=xp.device).long()
        else:
            actions = np.asarray(actions, dtype=np.int64)
        released = cfg.semantics == "released_code"
        target = self._flat_tables[self._table_rows + self.agent_location * cfg.n_actions + actions]
        valid = target >= 0
        position = xp.where(valid, target, self.agent_location)
        reached = position == self.reward_location
        reward = xp.to_float(reached) * cfg.reward - xp.to_float(~valid) * cfg.penalty
        unsuccessful = xp.to_int(~reached)
        # Paper: the timer counts steps since the last placement (reaching the reward places anew).
        # Released code: it counts every unsuccessful step and reaching the reward does not reset it.
        timer = self.timer + unsuccessful if released else (self.timer + 1) * unsuccessful
        timeout = timer >= cfg.reset_after
        placed = reached | timeout
        self.agent_location = position
        self._place(placed, exclude_previous=released)
        self.timer = xp.where(timeout, 0, timer)
        self.previous_action = xp.where(timeout, cfg.no_action, actions) if released else actions
        self.last_reward = reward
        self.valid, self.reached, self.placed = valid, reached, placed
        self.step_count += 1
        done = self.step_count >= cfg.trial_length
        if not done and self.step_count % cfg.horizon == 0:  # the next episode of the trial, same graphs
            self._start_episode()
        self._needs_reset = done
        terminated = xp.full((self.n_envs,), done, bool)
        truncated = xp.zeros((self.n_envs,), bool)
        return self.observation(), reward, terminated, truncated

    def observation(self) -> Any:
        """The current observations ``[n_envs, obs_dim]`` float32 (layout in the module docstring)."""
        xp, cfg = self.backend, self.config
        obs = xp.zeros((self.n_envs, cfg.obs_dim), xp.float_dtype)
        flat = obs.reshape(-1)
        flat[self._obs_rows + self.reward_location] = 1.0
        flat[self._obs_rows + cfg.n_states + self.agent_location] = 1.0
        flat[self._obs_rows + cfg.action_bit(self.previous_action)] = 1.0
        obs[:, cfg.bias_index] = 1.0
        obs[:, cfg.bias_index + 1] = (self.step_count - cfg.horizon * self.episode_in_trial) / cfg.horizon
        if cfg.semantics == "paper":  # the released code feeds a reward that is always 0 here
            obs[:, cfg.bias_index + 2] = self.last_reward
        return obs


def task_graphs(split: str, graphs: np.ndarray | None, config: TaskConfig, n_graphs: int, data_seed: int) -> np.ndarray | None:
    """The graphs an environment plays: an explicit set, one of the paper's sets, or None (sampled every episode)."""
    if graphs is not None:
        if split != "random":
            raise ValueError(f"pass either graphs=... or split={split!r}, not both")
        return graphs
    if split == "random":
        return None
    if (config.n_states, config.n_actions) != (5, 3):
        raise ValueError(
            f"the paper's {split!r} set has 5 states and 3 actions, not {config.n_states} and {config.n_actions}; "
            "use split='random' or pass graphs=..."
        )
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; choose one of {(*SPLITS, 'random')}")
    return graph_set(split, n_graphs, data_seed)


def task_spaces(config: TaskConfig) -> tuple[spaces.Box, spaces.Discrete]:
    """Observation ``Box(obs_dim,)`` float32 and action ``Discrete(n_actions)`` of one environment."""
    low, high = config.observation_bounds()
    return spaces.Box(low, high, dtype=np.float32), spaces.Discrete(config.n_actions)
