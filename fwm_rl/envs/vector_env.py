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

import numpy as np
import torch
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from fwm_rl.envs.core import GraphBatch, TaskConfig, task_graphs, task_spaces


class FWMGraphVectorEnv(VectorEnv):
    """``num_envs`` metro-graph POMDPs stepped together with array operations.

    Args:
        num_envs: number of sub-environments.
        split: ``"random"`` (fresh graph per sub-environment and episode), ``"train"`` or ``"test"``
            (the paper's sets, :func:`~fwm_rl.envs.graphs.paper_graph_sets`).
        graphs: explicit adjacency tensors ``[n, n_actions, n_states, n_states]`` instead of a split.
        n_states, n_actions, horizon, reward, penalty, reset_after, semantics, trials: see
            :class:`~fwm_rl.envs.core.TaskConfig` (``trials=k``: k episodes on the same graph form one
            Gymnasium episode of ``k * horizon`` steps).
        n_graphs, data_seed: size and seed of the paper's sets.
        device: None (numpy arrays, the Gymnasium contract) or a torch device: then observations,
            rewards and flags are torch tensors on it and actions may be tensors there too.
        check_actions: validate every action batch (see :class:`~fwm_rl.envs.core.GraphBatch`).
        render_mode: must be None (render a single :class:`~fwm_rl.envs.FWMGraphEnv`).
        autoreset_mode: what happens when the episodes end (:data:`AUTORESET_MODES`), an
            :class:`~gymnasium.vector.AutoresetMode` or its name (``"next_step"``, ``"same_step"``,
            ``"disabled"``); ``gym.make_vec(..., autoreset_mode=...)`` passes it here.

    All sub-environments end their episodes together, after ``horizon`` steps (``trial_length`` with
    trials). Then, by ``autoreset_mode``:

    * ``NEXT_STEP`` (default, Gymnasium's usual mode, which every wrapper of
      :mod:`gymnasium.wrappers.vector` supports): that step returns the last observations with
      ``terminated`` all True; the next ``step`` ignores its actions, starts the next episodes and
      returns their first observations with reward 0 and ``terminated``/``truncated`` all False.
    * ``SAME_STEP`` (stable-baselines3's convention, used by :class:`~fwm_rl.agents.FWMGraphVecEnv`
      and the A2C trainer, which waste no step on resets): that step returns the first observations
      of the next episodes; ``infos["final_obs"]`` holds the last ones (``infos["_final_obs"]``
      marks every sub-environment) and ``infos["final_info"]`` their (empty) infos.
    * ``DISABLED``: that step returns the last observations; call ``reset()`` before stepping on.

    ``reset(options={"graph_indices": idx})`` chooses each sub-environment's graph from the set;
    ``reset(options={"reset_mask": mask})`` is accepted when ``mask`` covers every sub-environment
    (they share one clock, so a partial reset does not exist).
    """

    metadata: ClassVar[dict[str, Any]] = {"render_modes": [], "autoreset_mode": AutoresetMode.NEXT_STEP}

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
        trials: int = 1,
        n_graphs: int = 600,
        data_seed: int = 666,
        device: str | torch.device | None = None,
        check_actions: bool = True,
        render_mode: str | None = None,
        autoreset_mode: str | AutoresetMode = AutoresetMode.NEXT_STEP,
    ) -> None:
        if render_mode is not None:
            raise ValueError(f"FWMGraphVectorEnv does not render (render_mode={render_mode!r}); render a single FWMGraphEnv")
        self.config = TaskConfig(n_states, n_actions, horizon, reward, penalty, reset_after, semantics, trials)
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
        self.autoreset_mode = autoreset_mode_of(autoreset_mode)
        self.metadata = {**self.metadata, "autoreset_mode": self.autoreset_mode}
        self._episodes_over = False  # the last step ended the episodes and nothing has reset them yet

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[Any, dict[str, Any]]:
        options = dict(options or {})
        graph_indices = options.pop("graph_indices", None)
        reset_mask = options.pop("reset_mask", None)
        if options:
            raise ValueError(f"unknown reset options {sorted(options)}; the options are 'graph_indices' and 'reset_mask'")
        if reset_mask is not None:
            mask = np.asarray(reset_mask.detach().cpu() if isinstance(reset_mask, torch.Tensor) else reset_mask)
            if mask.shape != (self.num_envs,) or mask.dtype != np.bool_:
                raise ValueError(
                    f"options['reset_mask'] must be a bool array of shape ({self.num_envs},), got {mask.dtype} {mask.shape}"
                )
            if not mask.all():
                raise ValueError(
                    "options['reset_mask'] must select every sub-environment: they share one clock (episodes of "
                    f"{self.config.trial_length} steps start and end together), so a partial reset does not exist"
                )
        super().reset(seed=seed)  # Gymnasium's bookkeeping of the seed
        self._episodes_over = False
        return self.core.reset(seed=seed, graph_indices=graph_indices), {}

    def step(self, actions: Any) -> tuple[Any, Any, Any, Any, dict[str, Any]]:
        if self._episodes_over:
            if self.autoreset_mode == AutoresetMode.DISABLED:
                raise RuntimeError("the episodes have ended and autoreset is disabled: call reset() before step()")
            # NEXT_STEP: this step only starts the next episodes (its actions are ignored).
            self._episodes_over = False
            xp = self.core.backend
            no = xp.zeros((self.num_envs,), bool)
            return self.core.reset(), xp.zeros((self.num_envs,), xp.float_dtype), no, no, {}
        obs, reward, terminated, truncated = self.core.step(actions)
        infos: dict[str, Any] = {}
        if self.core.step_count >= self.config.trial_length:
            if self.autoreset_mode == AutoresetMode.SAME_STEP:
                every = np.ones(self.num_envs, dtype=bool)
                infos = {"final_obs": obs, "_final_obs": every, "final_info": {}, "_final_info": every}
                obs = self.core.reset()
            else:
                self._episodes_over = True
        return obs, reward, terminated, truncated, infos


#: The autoreset modes :class:`FWMGraphVectorEnv` offers (all of Gymnasium's).
AUTORESET_MODES: tuple[AutoresetMode, ...] = (AutoresetMode.NEXT_STEP, AutoresetMode.SAME_STEP, AutoresetMode.DISABLED)


def autoreset_mode_of(mode: str | AutoresetMode) -> AutoresetMode:
    """``mode`` as an :class:`~gymnasium.vector.AutoresetMode`: the enum itself, its value
    (``"NextStep"``) or its name in any case (``"next_step"``, ``"NEXT_STEP"``)."""
    if isinstance(mode, AutoresetMode):
        return mode
    for choice in AUTORESET_MODES:
        if isinstance(mode, str) and mode.lower() in (choice.value.lower(), choice.name.lower()):
            return choice
    raise ValueError(f"unknown autoreset_mode {mode!r}; choose one of {[m.name.lower() for m in AUTORESET_MODES]}")
