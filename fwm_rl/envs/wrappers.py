"""Memory tasks made from classic control: the velocities hidden from the observation.

Without its velocities CartPole is a POMDP: one observation tells where the cart and pole are
but not where they are going, so an agent must remember earlier observations, which is the
job of the recurrent core (the FWM or an LSTM). :class:`HideVelocity` removes the velocity
entries of the environments in :data:`VELOCITY_INDICES`; importing :mod:`fwm_rl.envs` registers
``CartPoleNoVel-v1``, ``MountainCarNoVel-v0`` and ``AcrobotNoVel-v1`` (the names stable-baselines3's
zoo uses for such tasks)::

    env = gym.make("CartPoleNoVel-v1")          # Box(2,): cart position, pole angle
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

__all__ = ["NO_VELOCITY_IDS", "VELOCITY_INDICES", "HideVelocity", "make_no_velocity"]

#: Environment name (the id without its version) -> indices of the velocities in its observation.
VELOCITY_INDICES: dict[str, tuple[int, ...]] = {
    "CartPole": (1, 3),  # cart velocity, pole angular velocity
    "MountainCar": (1,),  # car velocity
    "Acrobot": (4, 5),  # angular velocities of the two links
}

#: Registered ids -> the environment whose velocities they hide.
NO_VELOCITY_IDS: dict[str, str] = {"CartPoleNoVel-v1": "CartPole-v1", "MountainCarNoVel-v0": "MountainCar-v0", "AcrobotNoVel-v1": "Acrobot-v1"}


class HideVelocity(gym.ObservationWrapper):
    """``env`` with the velocity entries of its observation removed (a smaller ``Box``).

    Args:
        env: an environment named in :data:`VELOCITY_INDICES` (by its spec's name), or any env with
            a flat ``Box`` observation when ``indices`` are given.
        indices: the observation entries to hide; default: the env's velocities.
    """

    def __init__(self, env: gym.Env, indices: tuple[int, ...] | None = None) -> None:
        super().__init__(env)
        space = env.observation_space
        if not isinstance(space, gym.spaces.Box) or len(space.shape) != 1:
            raise ValueError(f"HideVelocity needs a flat Box observation space, got {space}")
        if indices is None:
            name = env.spec.name if env.spec is not None else type(env.unwrapped).__name__
            if name not in VELOCITY_INDICES:
                raise ValueError(f"HideVelocity does not know the velocities of {name!r} (it knows {sorted(VELOCITY_INDICES)}); pass indices=...")
            indices = VELOCITY_INDICES[name]
        hidden = set(indices)
        if not hidden or not hidden <= set(range(space.shape[0])) or len(hidden) == space.shape[0]:
            raise ValueError(f"indices must name some but not all of the {space.shape[0]} observation entries, got {indices}")
        self.kept = np.array([i for i in range(space.shape[0]) if i not in hidden])
        self.observation_space = gym.spaces.Box(space.low[self.kept], space.high[self.kept], dtype=space.dtype)

    def observation(self, observation: np.ndarray) -> np.ndarray:
        return observation[self.kept]


def make_no_velocity(env_id: str, **kwargs: Any) -> gym.Env:
    """``HideVelocity(gym.make(env_id, **kwargs))``: the entry point of the ids in :data:`NO_VELOCITY_IDS`."""
    return HideVelocity(gym.make(env_id, **kwargs))
