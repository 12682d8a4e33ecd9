"""Observation wrappers: memory tasks made from classic control, and Tuple observations for stable-baselines3.

Without its velocities CartPole is a POMDP: one observation tells where the cart and pole are
but not where they are going, so an agent must remember earlier observations, which is the
job of the recurrent core (the FWM or an LSTM). :class:`HideVelocity` removes the velocity
entries of the environments in :data:`VELOCITY_INDICES`; importing :mod:`fwm_rl.envs` registers
``CartPoleNoVel-v1``, ``MountainCarNoVel-v0``, ``AcrobotNoVel-v1`` and ``PendulumNoVel-v1`` (the names
stable-baselines3's zoo uses for such tasks)::

    env = gym.make("CartPoleNoVel-v1")          # Box(2,): cart position, pole angle

stable-baselines3 refuses ``Tuple`` observation spaces (POPGym's Autoencode tasks have one);
:func:`sb3_compatible` turns them into ``Dict`` spaces with :class:`TupleToDict`::

    env = sb3_compatible(gym.make("popgym:popgym-AutoencodeEasy-v0"))   # Dict("0": Discrete(2), "1": Discrete(4))
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import gymnasium as gym
import numpy as np

__all__ = ["NO_VELOCITY_IDS", "VELOCITY_INDICES", "HideVelocity", "TupleToDict", "make_no_velocity", "sb3_compatible"]

#: Environment name (the id without its version) -> indices of the velocities in its observation.
VELOCITY_INDICES: dict[str, tuple[int, ...]] = {
    "CartPole": (1, 3),  # cart velocity, pole angular velocity
    "MountainCar": (1,),  # car velocity
    "Acrobot": (4, 5),  # angular velocities of the two links
    "Pendulum": (2,),  # angular velocity (the observation is cos, sin of the angle and its velocity)
}

#: Registered ids -> the environment whose velocities they hide.
NO_VELOCITY_IDS: dict[str, str] = {
    "CartPoleNoVel-v1": "CartPole-v1",
    "MountainCarNoVel-v0": "MountainCar-v0",
    "AcrobotNoVel-v1": "Acrobot-v1",
    "PendulumNoVel-v1": "Pendulum-v1",
}


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
                raise ValueError(
                    f"HideVelocity does not know the velocities of {name!r} (it knows {sorted(VELOCITY_INDICES)}); pass indices=..."
                )
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


class TupleToDict(gym.ObservationWrapper):
    """``env`` with its ``Tuple`` observation space turned into a ``Dict`` space, which stable-baselines3 accepts.

    Entry ``i`` of the tuple becomes key ``"i"``, zero-padded to the width of the largest index (``"00"``, ``"01"``,
    ... for 11 entries or more), so that the keys in sorted order are the tuple's order: the ``Dict`` (and
    SB3's ``CombinedExtractor``, which concatenates its features key by key) keeps the tuple's order even where
    it is rebuilt from a mapping (which Gymnasium sorts). SB3 takes no nested spaces either, so a ``Tuple`` or
    ``Dict`` inside the tuple is flattened recursively into the same ``Dict``, the keys joined with a dot:
    entry 0 of a tuple at entry 1 is ``"1.0"``, key ``"pos"`` of a dict at entry 2 is ``"2.pos"``.

    Args:
        env: an environment with a ``gymnasium.spaces.Tuple`` observation space.
    """

    def __init__(self, env: gym.Env) -> None:
        super().__init__(env)
        space = env.observation_space
        if not isinstance(space, gym.spaces.Tuple):
            raise ValueError(f"TupleToDict needs a Tuple observation space, got {space}; sb3_compatible(env) takes any env")
        leaves = list(_leaves(space, "", ()))
        #: Key of the ``Dict`` -> where its entry lies in the original observation (tuple indices and dict keys).
        self.paths: dict[str, tuple[Any, ...]] = {}
        for key, path, _ in leaves:
            if key in self.paths:
                raise ValueError(f"TupleToDict cannot flatten {space}: two entries get the key {key!r}; rename keys with dots")
            self.paths[key] = path
        self.observation_space = gym.spaces.Dict([(key, leaf) for key, _, leaf in leaves])  # a list keeps this order

    def observation(self, observation: tuple[Any, ...]) -> dict[str, Any]:
        flat = {}
        for key, path in self.paths.items():
            entry = observation
            for step in path:
                entry = entry[step]
            flat[key] = entry
        return flat


def _leaves(space: gym.Space, key: str, path: tuple[Any, ...]) -> Iterator[tuple[str, tuple[Any, ...], gym.Space]]:
    """The subspaces of ``space`` that are neither ``Tuple`` nor ``Dict``, depth first, with their keys and paths.

    :param space: a space, possibly ``Tuple`` and ``Dict`` spaces nested in each other.
    :param key: the key of ``space`` ("" for the outermost one).
    :param path: the steps (tuple indices, dict keys) that lead from the observation to ``space``'s part of it.
    :return: ``(key, path, subspace)`` for each leaf; a tuple index adds itself to the key zero-padded to the
        width of its tuple's largest index, a dict key adds itself; both after a dot.
    """
    if isinstance(space, gym.spaces.Tuple):
        width = len(str(len(space) - 1))
        children = [(f"{i:0{width}d}", i, sub) for i, sub in enumerate(space)]
    elif isinstance(space, gym.spaces.Dict):
        children = [(str(name), name, sub) for name, sub in space.items()]
    else:
        yield key, path, space
        return
    for name, step, sub in children:
        yield from _leaves(sub, f"{key}.{name}" if key else name, (*path, step))


def sb3_compatible(env: gym.Env) -> gym.Env:
    """``env`` in a form whose observation space stable-baselines3 accepts: :class:`TupleToDict` for a ``Tuple`` space.

    :param env: any environment.
    :return: ``TupleToDict(env)`` when its observation space is a ``gymnasium.spaces.Tuple``, else ``env`` itself.
    """
    return TupleToDict(env) if isinstance(env.observation_space, gym.spaces.Tuple) else env
