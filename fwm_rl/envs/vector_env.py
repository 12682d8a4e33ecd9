"""``FWMGraphVectorEnv``: many metro-graph environments as one native batched Gymnasium vector env.

``gym.make_vec("FWMGraph-v0", num_envs=600, split="train")`` returns this class
(the ``vector_entry_point`` of ``FWMGraph-v0``). Sub-environment ``i`` plays
graph ``i`` of the set (``i % n_graphs`` when there are more environments than
graphs), as in the paper's batch of 600 agents; with ``split="random"`` every
sub-environment gets a fresh graph from Listing 1's distribution at every
episode. Everything is computed by one :class:`~fwm_rl.envs.core.GraphBatch`.
"""

from __future__ import annotations

from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
import torch
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from fwm_rl.envs.core import GraphBatch, TaskConfig
from fwm_rl.envs.graphs import SPLITS, graph_set


def task_graphs(
    split: str, graphs: np.ndarray | None, config: TaskConfig, n_graphs: int, data_seed: int
) -> np.ndarray | None:
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


def task_spaces(config: TaskConfig) -> tuple[gym.spaces.Box, gym.spaces.Discrete]:
    """Observation ``Box(obs_dim,)`` float32 and action ``Discrete(n_actions)`` of one environment."""
    low, high = config.observation_bounds()
    return gym.spaces.Box(low, high, dtype=np.float32), gym.spaces.Discrete(config.n_actions)


class FWMGraphVectorEnv(VectorEnv):
    """``num_envs`` metro-graph POMDPs stepped together with array operations.

    Args:
        num_envs: number of sub-environments.
        split: ``"random"`` (fresh graph per sub-environment and episode), ``"train"`` or ``"test"``
            (the paper's sets, :func:`~fwm_rl.envs.graphs.paper_graph_sets`).
        graphs: explicit adjacency tensors ``[n, n_actions, n_states, n_states]`` instead of a split.
        n_states, n_actions, horizon, reward, penalty, reset_after, semantics: see
            :class:`~fwm_rl.envs.core.TaskConfig`.
        n_graphs, data_seed: size and seed of the paper's sets.
        device: None (numpy arrays, the Gymnasium contract) or a torch device: then observations,
            rewards and flags are torch tensors on it and actions may be tensors there too.
        check_actions: validate every action batch (see :class:`~fwm_rl.envs.core.GraphBatch`).

    Autoreset is ``SAME_STEP``: all sub-environments end together after ``horizon`` steps; that
    step returns the first observation of the next episode and ``infos["final_obs"]`` holds the
    last observation of the finished one (``infos["_final_obs"]`` marks every sub-environment).
    ``reset(options={"graph_indices": idx})`` chooses each sub-environment's graph from the set.
    """

    metadata: ClassVar[dict[str, Any]] = {"render_modes": [], "autoreset_mode": AutoresetMode.SAME_STEP}

    def __init__(
        self,
        num_envs: int = 600,
        split: str = "random",
        graphs: np.ndarray | None = None,
        n_states: int = 5,
        n_actions: int = 3,
        horizon: int = 30,
        reward: float = 10.0,
        penalty: float = 0.05,
        reset_after: int | None = None,
        semantics: str = "paper",
        n_graphs: int = 600,
        data_seed: int = 666,
        device: str | torch.device | None = None,
        check_actions: bool = True,
        render_mode: str | None = None,
    ) -> None:
        if render_mode is not None:
            raise ValueError(f"FWMGraphVectorEnv does not render (render_mode={render_mode!r}); render a single FWMGraphEnv")
        self.config = TaskConfig(n_states, n_actions, horizon, reward, penalty, reset_after, semantics)
        self.split = split
        self.core = GraphBatch(
            num_envs,
            graphs=task_graphs(split, graphs, self.config, n_graphs, data_seed),
            config=self.config,
            device=device,
            check_actions=check_actions,
        )
        self.num_envs = self.core.n_envs
        self.single_observation_space, self.single_action_space = task_spaces(self.config)
        self.observation_space = batch_space(self.single_observation_space, self.num_envs)
        self.action_space = batch_space(self.single_action_space, self.num_envs)
        self.render_mode = None

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[Any, dict[str, Any]]:
        options = dict(options or {})
        graph_indices = options.pop("graph_indices", None)
        if options:
            raise ValueError(f"unknown reset options {sorted(options)}; the only option is 'graph_indices'")
        super().reset(seed=seed)  # Gymnasium's bookkeeping of the seed
        return self.core.reset(seed=seed, graph_indices=graph_indices), {}

    def step(self, actions: Any) -> tuple[Any, Any, Any, Any, dict[str, Any]]:
        obs, reward, terminated, truncated = self.core.step(actions)
        infos: dict[str, Any] = {}
        if self.core.step_count >= self.config.horizon:
            infos = {"final_obs": obs, "_final_obs": np.ones(self.num_envs, dtype=bool)}
            obs = self.core.reset()
        return obs, reward, terminated, truncated, infos
