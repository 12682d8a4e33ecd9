"""``FWMGraphEnv``: one metro-graph POMDP (paper section 4.2) as a Gymnasium environment.

``gym.make("FWMGraph-v0")`` draws a fresh graph from Listing 1's distribution at
every reset; ``split="train"`` / ``"test"`` draws a graph of the paper's set
instead, and ``reset(options={"graph_index": i})`` fixes graph ``i``. The
dynamics are those of :class:`~fwm_rl.envs.core.GraphBatch` with one environment.
"""

from __future__ import annotations

from typing import Any, ClassVar

import gymnasium as gym
import numpy as np

from fwm_rl.checks import check_int
from fwm_rl.envs import render as render_lib
from fwm_rl.envs.core import GraphBatch, TaskConfig, task_graphs, task_spaces


class FWMGraphEnv(gym.Env):
    """A 5-state, 3-action metro graph; reach the reward location as often as possible in 30 steps.

    Keyword arguments are those of :class:`~fwm_rl.envs.vector_env.FWMGraphVectorEnv` (``split``,
    ``graphs``, the task's numbers, ``semantics``, ``n_graphs``, ``data_seed``) plus ``render_mode``
    (``"ansi"``: a text map, ``"rgb_array"``: the drawing of :mod:`fwm_rl.envs.render`).

    ``info`` holds ``graph_index`` (-1 for a sampled graph) after reset, and after each step
    ``valid_action``, ``reached_reward`` and ``placed`` (reward and agent were placed anew); with
    ``trials > 1`` also ``episode_in_trial`` (of the observation returned).
    """

    metadata: ClassVar[dict[str, Any]] = {"render_modes": ["ansi", "rgb_array"], "render_fps": 2}

    def __init__(
        self,
        split: str = "random",
        graphs: np.ndarray | None = None,
        n_states: int = 5,
        n_actions: int = 3,
        horizon: int = 30,
        reward: float = 10.0,
        penalty: float = 0.05,
        reset_after: int | None = None,
        semantics: str = "paper",
        trials: int = 1,
        n_graphs: int = 600,
        data_seed: int = 666,
        render_mode: str | None = None,
    ) -> None:
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"unknown render_mode {render_mode!r}; choose one of {self.metadata['render_modes']} or None")
        self.config = TaskConfig(n_states, n_actions, horizon, reward, penalty, reset_after, semantics, trials)
        self.split = split
        self.render_mode = render_mode
        self.core = GraphBatch(1, graphs=task_graphs(split, graphs, self.config, n_graphs, data_seed), config=self.config)
        self.observation_space, self.action_space = task_spaces(self.config)
        self._graph_index = -1

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        self.core.backend.rng = self.np_random  # one random stream, seeded the Gymnasium way
        options = dict(options or {})
        graph_index = options.pop("graph_index", None)
        if options:
            raise ValueError(f"unknown reset options {sorted(options)}; the only option is 'graph_index'")
        n_graphs = self.core.n_graphs
        if n_graphs is None:
            if graph_index is not None:
                raise ValueError(
                    "graph_index needs a graph set (split='train'/'test' or graphs=...); split='random' samples graphs"
                )
            obs = self.core.reset()
            self._graph_index = -1
        else:
            if graph_index is None:
                graph_index = int(self.np_random.integers(n_graphs))
            check_int("graph_index", graph_index, None)
            obs = self.core.reset(graph_indices=np.array([graph_index]))
            self._graph_index = int(graph_index)
        return obs[0], {"graph_index": self._graph_index}

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        if not self.action_space.contains(action):
            raise ValueError(
                f"action {action!r} is outside the action space {self.action_space} (an integer 0..{self.config.n_actions - 1})"
            )
        obs, reward, terminated, truncated = self.core.step(np.array([action], dtype=np.int64))
        info = {
            "valid_action": bool(self.core.valid[0]),
            "reached_reward": bool(self.core.reached[0]),
            "placed": bool(self.core.placed[0]),
        }
        if self.config.trials > 1:
            info["episode_in_trial"] = self.core.episode_in_trial
        return obs[0], float(reward[0]), bool(terminated[0]), bool(truncated[0]), info

    @property
    def graph(self) -> np.ndarray:
        """The current graph ``A[action, from, to]``."""
        return self.core.graphs[0]

    def render(self) -> str | np.ndarray | None:
        if self.render_mode is None:
            gym.logger.warn("render() called without a render_mode; pass render_mode='ansi' or 'rgb_array'")
            return None
        core = self.core
        agent, reward = int(core.agent_location[0]), int(core.reward_location[0])
        if self.render_mode == "ansi":
            return render_lib.ansi_map(
                self.graph, agent=agent, reward=reward, step=core.step_count, horizon=self.config.trial_length
            )
        return render_lib.render_rgb(
            self.graph, agent=agent, reward=reward, title=f"step {core.step_count}/{self.config.trial_length}"
        )
