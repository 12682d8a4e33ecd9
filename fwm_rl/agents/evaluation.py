"""Evaluation of a recurrent policy on the paper's graph sets, all episodes as one batch.

The paper's test (section 4.2) plays one fresh episode on each of the 600 test
graphs with the memory emptied at its start and no gradient; the reported
figure is the mean total reward per 30-step episode. :func:`episode_returns`
does this for ``episodes_per_graph`` episodes per graph at once (one
:class:`~fwm_rl.envs.GraphBatch` on the policy's device), and
:func:`evaluate` adds the standard error.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from fwm_rl.agents.policies import RecurrentActorCriticPolicy
from fwm_rl.checks import check_int
from fwm_rl.envs import GraphBatch, TaskConfig
from fwm_rl.envs.baselines import trial_mean_sem
from fwm_rl.envs.core import task_graphs
from fwm_rl.envs.graphs import SPLITS

__all__ = ["GraphEvalResult", "episode_returns", "evaluate", "trial_returns"]


@dataclass(frozen=True)
class GraphEvalResult:
    """Mean total reward per episode, its standard error and the number of episodes."""

    mean: float
    sem: float
    episodes: int

    def __str__(self) -> str:
        return f"{self.mean:.2f} ± {self.sem:.2f} ({self.episodes} episodes)"


def trial_returns(
    policy: RecurrentActorCriticPolicy,
    split: str = "test",
    episodes_per_graph: int = 1,
    seed: int = 0,
    semantics: str = "paper",
    deterministic: bool = False,
    n_graphs: int = 600,
    trials: int = 1,
) -> np.ndarray:
    """Total reward of each episode of ``n_graphs * episodes_per_graph`` trials of ``trials`` episodes
    (``[n_graphs * episodes_per_graph, trials]``): trial ``i`` plays graph ``i % n_graphs`` of ``split``
    (``"train"``, ``"test"`` or ``"valid"``, see :func:`~fwm_rl.envs.graphs.graph_set`) with the memory
    emptied at the trial's start only, actions sampled from the policy (``deterministic``: the most
    likely action). ``seed`` fixes placements and sampling."""
    check_int("episodes_per_graph", episodes_per_graph)
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS} (the paper's graph sets, or the validation set), got {split!r}")
    config = TaskConfig(semantics=semantics, trials=trials)
    graphs = task_graphs(split, None, config, n_graphs, 666)
    n = n_graphs * episodes_per_graph
    device = policy.device
    batch = GraphBatch(n, graphs=graphs, config=config, device=device, seed=seed, check_actions=False)
    generator = torch.Generator(device=device)
    generator.manual_seed(seed)
    was_training = policy.training
    policy.set_training_mode(False)
    obs = batch.reset()
    state = policy.initial_state(n)
    starts = torch.ones(n, dtype=torch.bool, device=device)
    totals = torch.zeros(n, trials, dtype=torch.float64, device=device)
    with torch.no_grad():
        for step in range(config.trial_length):
            actions, _, _, state = policy(obs, state, starts, deterministic=deterministic, generator=generator)
            obs, reward, _, _ = batch.step(actions)
            totals[:, step // config.horizon] += reward
            starts = torch.zeros_like(starts)
    policy.set_training_mode(was_training)
    return totals.cpu().numpy()


def episode_returns(
    policy: RecurrentActorCriticPolicy,
    split: str = "test",
    episodes_per_graph: int = 1,
    seed: int = 0,
    semantics: str = "paper",
    deterministic: bool = False,
    n_graphs: int = 600,
) -> np.ndarray:
    """Total reward of each single episode (``[n_graphs * episodes_per_graph]``): :func:`trial_returns`
    with trials of one episode, the memory emptied at every episode's start (the paper's test)."""
    return trial_returns(policy, split, episodes_per_graph, seed, semantics, deterministic, n_graphs)[:, 0]


def evaluate(
    policy: RecurrentActorCriticPolicy,
    split: str = "test",
    episodes_per_graph: int = 1,
    seed: int = 0,
    semantics: str = "paper",
    deterministic: bool = False,
    trials: int = 1,
) -> GraphEvalResult:
    """:func:`trial_returns` summarised as the mean total reward per episode over all episodes (with
    ``trials``: of all trials' episodes) and its standard error, taken over trials (the episodes of
    one trial share a graph and a memory, so they are not independent)."""
    returns = trial_returns(policy, split, episodes_per_graph, seed, semantics, deterministic, trials=trials)
    return GraphEvalResult(*trial_mean_sem(returns), returns.size)
