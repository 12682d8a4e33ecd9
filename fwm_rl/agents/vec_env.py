"""An SB3 ``VecEnv`` over the native batched metro-graph environment.

stable-baselines3 talks to vectorised environments through its own ``VecEnv``
interface (numpy arrays, a list of info dicts, autoreset with
``infos[i]["terminal_observation"]``). :class:`FWMGraphVecEnv` offers that
interface on top of :class:`~fwm_rl.envs.FWMGraphVectorEnv`, whose single
:class:`~fwm_rl.envs.GraphBatch` steps all sub-environments with array
operations, so nothing loops over sub-environments in Python while stepping.

It also offers a tensor interface, :meth:`FWMGraphVecEnv.step_tensors`, which
:class:`~fwm_rl.agents.RecurrentA2C` uses instead of ``step``: with the
batch on the policy's device (``device="cuda"``) a whole rollout then stays on
that device, with no copy to the host per step.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from gymnasium.vector import AutoresetMode
from stable_baselines3.common.vec_env import VecEnv
from stable_baselines3.common.vec_env.base_vec_env import VecEnvIndices, VecEnvStepReturn

from fwm_rl.envs import FWMGraphVectorEnv

__all__ = ["FWMGraphVecEnv"]


def _numpy(x: Any) -> np.ndarray:
    return x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)


class FWMGraphVecEnv(VecEnv):
    """SB3 view of an :class:`~fwm_rl.envs.FWMGraphVectorEnv`.

    Args:
        venv: the native vector env (numpy or torch backed) with ``autoreset_mode="same_step"``,
            SB3's convention. :meth:`make` builds one.

    ``step`` returns numpy arrays as every SB3 ``VecEnv`` does; when an episode ends, the info of
    each sub-environment holds ``terminal_observation`` and ``episode`` (``r``: total reward,
    ``l``: length, ``t``: seconds since creation), as SB3's ``VecMonitor`` would add.
    ``seed(s)`` applies at the next ``reset`` (SB3 convention); the whole batch is seeded with ``s``.
    """

    def __init__(self, venv: FWMGraphVectorEnv) -> None:
        if not isinstance(venv, FWMGraphVectorEnv):
            raise TypeError(f"FWMGraphVecEnv wraps an fwm_rl.envs.FWMGraphVectorEnv, got {type(venv).__name__}")
        if venv.autoreset_mode != AutoresetMode.SAME_STEP:
            raise ValueError(
                f"FWMGraphVecEnv needs autoreset_mode='same_step' (SB3's convention), got {venv.autoreset_mode.name.lower()}; "
                "build the vector env with FWMGraphVectorEnv(..., autoreset_mode='same_step') or use FWMGraphVecEnv.make"
            )
        self.venv = venv
        super().__init__(venv.num_envs, venv.single_observation_space, venv.single_action_space)
        self._actions: Any = None
        self._returns = np.zeros(self.num_envs, dtype=np.float64)
        self._lengths = np.zeros(self.num_envs, dtype=np.int64)
        self._t0 = time.monotonic()

    @classmethod
    def make(
        cls,
        num_envs: int = 600,
        split: str | None = None,
        device: str | torch.device | None = None,
        seed: int | None = None,
        **task_kwargs: Any,
    ) -> FWMGraphVecEnv:
        """Build the native vector env (``split``, ``device``, ``graphs`` and task keywords as in
        :class:`~fwm_rl.envs.FWMGraphVectorEnv`) and wrap it; ``seed`` seeds the first reset.
        ``split`` defaults to ``"train"``, the paper's training graphs, unless ``graphs`` are given."""
        if split is None:
            split = "random" if task_kwargs.get("graphs") is not None else "train"
        env = cls(
            FWMGraphVectorEnv(num_envs, split=split, device=device, autoreset_mode=AutoresetMode.SAME_STEP, **task_kwargs)
        )
        if seed is not None:
            env.seed(seed)
        return env

    @property
    def device(self) -> torch.device | None:
        """Device of the batch's tensors, or None for the numpy backend."""
        backend = self.venv.core.backend
        return backend.device if backend.name == "torch" else None

    @property
    def horizon(self) -> int:
        """Length of a (Gymnasium) episode: ``horizon`` steps, or a whole trial's ``trial_length``
        with ``trials``; all sub-environments start and end their episodes together."""
        return self.venv.config.trial_length

    # -------------------------------------------------------------- SB3 API
    def reset(self) -> np.ndarray:
        obs, _ = self.venv.reset(seed=self._seeds[0], options=self._options[0] or None)
        self._reset_seeds()
        self._reset_options()
        self._returns[:] = 0.0
        self._lengths[:] = 0
        return _numpy(obs)

    def step_async(self, actions: np.ndarray) -> None:
        self._actions = actions

    def step_wait(self) -> VecEnvStepReturn:
        if self._actions is None:
            raise RuntimeError("step_wait() called without step_async(actions)")
        actions, self._actions = np.asarray(self._actions).reshape(self.num_envs), None
        self.venv.core.check_actions = True  # actions from outside: validate them
        obs, reward, terminated, truncated, info = self.venv.step(self._as_backend(actions))
        obs, reward, terminated, truncated = (_numpy(x) for x in (obs, reward, terminated, truncated))
        dones = terminated | truncated
        self._returns += reward
        self._lengths += 1
        infos: list[dict[str, Any]] = [{} for _ in range(self.num_envs)]
        if dones.any():
            final_obs = _numpy(info["final_obs"])
            elapsed = round(time.monotonic() - self._t0, 6)
            for i in np.flatnonzero(dones):
                infos[i] = {
                    "terminal_observation": final_obs[i],
                    "episode": {"r": float(self._returns[i]), "l": int(self._lengths[i]), "t": elapsed},
                    "TimeLimit.truncated": bool(truncated[i] and not terminated[i]),
                }
            self._returns[dones] = 0.0
            self._lengths[dones] = 0
        return obs, reward.astype(np.float32), dones, infos

    def step_tensors(self, actions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Step with a tensor of actions ``[num_envs]``; returns ``(obs, reward, done)`` tensors on the
        actions' device (autoreset as in ``step``, no info dicts). With the batch on that device
        nothing is copied to the host and nothing waits for it."""
        self.venv.core.check_actions = False  # sampled from the policy: always valid
        obs, reward, terminated, truncated, _ = self.venv.step(self._as_backend(actions))
        device = actions.device
        obs, reward, terminated, truncated = (torch.as_tensor(x, device=device) for x in (obs, reward, terminated, truncated))
        return obs, reward.float(), terminated | truncated

    def _as_backend(self, actions: Any) -> Any:
        if self.device is None:
            return _numpy(actions)
        return torch.as_tensor(actions, device=self.device)

    def close(self) -> None:
        self.venv.close()

    def _indices(self, indices: VecEnvIndices) -> list[int]:
        if indices is None:
            return list(range(self.num_envs))
        if isinstance(indices, int):
            return [indices]
        return list(indices)

    def get_attr(self, attr_name: str, indices: VecEnvIndices = None) -> list[Any]:
        """The sub-environments share one batch, so an attribute of the native vector env
        (``config``, ``split``, ``render_mode``, ...) is the same for every index."""
        value = getattr(self.venv, attr_name)
        return [value for _ in self._indices(indices)]

    def set_attr(self, attr_name: str, value: Any, indices: VecEnvIndices = None) -> None:
        if len(self._indices(indices)) != self.num_envs:
            raise ValueError(
                f"the {self.num_envs} sub-environments share one batch; set {attr_name!r} for all of them (indices=None)"
            )
        setattr(self.venv, attr_name, value)

    def env_method(
        self, method_name: str, *method_args: Any, indices: VecEnvIndices = None, **method_kwargs: Any
    ) -> list[Any]:
        if len(self._indices(indices)) != self.num_envs:
            raise ValueError(
                f"the {self.num_envs} sub-environments share one batch; call {method_name!r} on all of them (indices=None)"
            )
        result = getattr(self.venv, method_name)(*method_args, **method_kwargs)
        return [result for _ in range(self.num_envs)]

    def env_is_wrapped(self, wrapper_class: type[gym.Wrapper], indices: VecEnvIndices = None) -> list[bool]:
        return [False for _ in self._indices(indices)]

    def get_images(self) -> Sequence[np.ndarray | None]:
        raise NotImplementedError("FWMGraphVecEnv does not render; render a single FWMGraphEnv (render_mode='rgb_array')")
