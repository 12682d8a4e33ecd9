"""Reference policies: the floor and ceiling that learning curves on the metro graphs are read against.

* ``random``: uniform random actions;
* ``explorer``: a perfect-memory explorer. It does not know the graph but
  remembers the outcome of every (state, action) it has tried in the episode
  (the graph stays fixed within an episode). When its memory holds a path to
  the reward it takes a shortest one; otherwise it tries an untried action
  where it stands, or walks (by a remembered shortest path) to the nearest
  state that still has one. This is what an ideal memory-based agent can do;
* ``oracle``: knows the graph and always takes a shortest path to the reward.

All three act on whole batches of environments at once (one
:class:`~fwm_rl.envs.core.GraphBatch`), so :func:`reference_levels` over
thousands of episodes takes well under a second.
"""

from __future__ import annotations

import math

import numpy as np

from fwm_rl.checks import check_int
from fwm_rl.envs.core import GraphBatch, TaskConfig, task_graphs
from fwm_rl.envs.graphs import adjacency_from_table, shortest_path_lengths

POLICIES: tuple[str, ...] = ("random", "explorer", "oracle")
UNKNOWN = -2  # explorer memory: not tried yet (-1: tried, invalid; >= 0: where it leads)


def _first_step_towards(tables: np.ndarray, state: np.ndarray, target_cost: np.ndarray) -> np.ndarray:
    """Per environment, the action from ``state`` whose (valid) successor minimises ``target_cost[env, successor]``.

    ``tables`` are next-state tables ``[B, S, A]`` (-1 or ``UNKNOWN``: not usable); ties go to the lowest action.
    """
    rows = np.arange(len(state))
    successors = tables[rows, state]  # [B, A]
    usable = successors >= 0
    cost = np.where(usable, target_cost[rows[:, None], np.where(usable, successors, 0)], np.inf)
    return cost.argmin(-1)


class RandomPolicy:
    """Uniform random actions."""

    def __init__(self, rng: np.random.Generator) -> None:
        self.rng = rng

    def reset(self, batch: GraphBatch) -> None:
        self.n_actions = batch.config.n_actions

    def act(self, batch: GraphBatch) -> np.ndarray:
        return self.rng.integers(self.n_actions, size=batch.n_envs)

    def observe(self, batch: GraphBatch, states: np.ndarray, actions: np.ndarray) -> None:
        return None


class OraclePolicy(RandomPolicy):
    """Knows the graph: a shortest path to the reward (ties to the lowest action)."""

    def reset(self, batch: GraphBatch) -> None:
        super().reset(batch)
        self.dist = shortest_path_lengths(adjacency_from_table(batch.tables))

    def act(self, batch: GraphBatch) -> np.ndarray:
        rows = np.arange(batch.n_envs)
        return _first_step_towards(batch.tables, batch.agent_location, self.dist[rows, :, batch.reward_location])


class ExplorerPolicy(RandomPolicy):
    """Perfect memory of the outcomes tried this episode, no prior knowledge of the graph."""

    def reset(self, batch: GraphBatch) -> None:
        super().reset(batch)
        cfg = batch.config
        self.memory = np.full((batch.n_envs, cfg.n_states, cfg.n_actions), UNKNOWN, dtype=np.int64)

    def act(self, batch: GraphBatch) -> np.ndarray:
        rows, state, memory = np.arange(batch.n_envs), batch.agent_location, self.memory
        dist = shortest_path_lengths(adjacency_from_table(np.where(memory >= 0, memory, -1)))  # remembered graph
        untried = memory == UNKNOWN  # [B, S, A]
        frontier = untried.any(-1)  # states with an untried action
        # Known way to the reward: take it.
        to_reward = _first_step_towards(memory, state, dist[rows, :, batch.reward_location])
        knows_way = np.isfinite(dist[rows, state, batch.reward_location])
        # Untried action here: a random one of them.
        keys = np.where(untried[rows, state], self.rng.random((batch.n_envs, self.n_actions)), -1.0)
        try_here = keys.argmax(-1)
        # Else walk to the nearest state with an untried action.
        to_frontier_cost = np.where(frontier[:, None, :], dist, np.inf).min(-1)  # [B, S]
        to_frontier = _first_step_towards(memory, state, to_frontier_cost)
        return np.where(knows_way, to_reward, np.where(frontier[rows, state], try_here, to_frontier))

    def observe(self, batch: GraphBatch, states: np.ndarray, actions: np.ndarray) -> None:
        rows = np.arange(batch.n_envs)
        self.memory[rows, states, actions] = batch.tables[rows, states, actions]  # the outcome it just saw


def trial_returns(
    policy: str, split: str = "test", n_trials: int = 600, seed: int = 0, semantics: str = "paper", trials: int = 1
) -> np.ndarray:
    """Total reward of each episode of ``n_trials`` trials of ``trials`` episodes (``[n_trials, trials]`` float64).

    Trial ``i`` plays graph ``i % 600`` of the paper's ``split`` (``"train"``/``"test"``/``"valid"``), or a
    fresh Listing-1 graph for ``split="random"``, for ``trials`` episodes; the policy keeps what it
    learnt across the episodes of a trial (the explorer its map) and starts afresh at the next trial.
    All trials run together as one batch.
    """
    if policy not in POLICIES:
        raise ValueError(f"unknown policy {policy!r}; choose one of {POLICIES}")
    config = TaskConfig(semantics=semantics, trials=trials)
    batch = GraphBatch(n_trials, graphs=task_graphs(split, None, config, 600, 666), config=config, seed=seed)
    rng = np.random.default_rng([seed, POLICIES.index(policy)])
    agent = {"random": RandomPolicy, "explorer": ExplorerPolicy, "oracle": OraclePolicy}[policy](rng)
    batch.reset()
    agent.reset(batch)
    totals = np.zeros((n_trials, trials))
    for step in range(config.trial_length):
        states = batch.agent_location
        actions = agent.act(batch)
        _, reward, _, _ = batch.step(actions)
        agent.observe(batch, states, actions)
        totals[:, step // config.horizon] += reward
    return totals


def trial_mean_sem(returns: np.ndarray) -> tuple[float, float]:
    """Mean total reward per episode of ``returns`` (``[n_trials, trials]``, as :func:`trial_returns` gives)
    and its standard error, taken over trials: the episodes of one trial share a graph and a memory, so
    they are not independent (with ``trials=1``, the usual error over episodes); NaN for one trial."""
    per_trial = returns.mean(1)
    sem = float(per_trial.std(ddof=1) / math.sqrt(len(per_trial))) if len(per_trial) > 1 else float("nan")
    return float(returns.mean()), sem


def episode_returns(
    policy: str, split: str = "test", n_episodes: int = 600, seed: int = 0, semantics: str = "paper"
) -> np.ndarray:
    """Total reward of each of ``n_episodes`` single episodes of ``policy`` (``[n_episodes]`` float64):
    :func:`trial_returns` with trials of one episode."""
    return trial_returns(policy, split, n_episodes, seed, semantics)[:, 0]


def reference_levels(
    split: str = "test", n_episodes: int = 6000, seed: int = 0, semantics: str = "paper", trials: int = 1
) -> dict[str, tuple[float, float]]:
    """``{policy: (mean total reward per episode, its standard error)}`` for ``random``, ``explorer``, ``oracle``
    (with ``trials``: over the episodes of ``n_episodes`` trials, the policies keeping their knowledge within a trial;
    the standard error then over trials, whose episodes are not independent)."""
    check_int("n_episodes", n_episodes, 2, why=" (for a standard error)")
    levels = {}
    for policy in POLICIES:
        levels[policy] = trial_mean_sem(trial_returns(policy, split, n_episodes, seed, semantics, trials))
    return levels
