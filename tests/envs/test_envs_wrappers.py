"""The observation wrappers of fwm_rl.envs: PendulumNoVel-v1, TupleToDict and sb3_compatible (POPGym's Tuple spaces)."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.spaces import Box, Dict, Discrete, Tuple
from stable_baselines3.common.env_checker import check_env
from stable_baselines3.common.preprocessing import get_obs_shape
from stable_baselines3.common.torch_layers import CombinedExtractor

import fwm_rl  # noqa: F401  (registers the NoVel ids)
from fwm_rl.envs import NO_VELOCITY_IDS, TupleToDict, sb3_compatible


class SpaceEnv(gym.Env):
    """A one-step env whose observations are samples of ``space``."""

    def __init__(self, space: gym.Space) -> None:
        self.observation_space = space
        self.action_space = Discrete(2)

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple:
        super().reset(seed=seed)
        self.observation_space.seed(seed)
        return self.observation_space.sample(), {}

    def step(self, action: int) -> tuple:
        return self.observation_space.sample(), 0.0, True, False, {}


def test_pendulum_no_vel():
    assert NO_VELOCITY_IDS["PendulumNoVel-v1"] == "Pendulum-v1"
    env = gym.make("PendulumNoVel-v1")
    assert env.observation_space.shape == (2,) and env.action_space == gym.make("Pendulum-v1").action_space
    obs, _ = env.reset(seed=0)
    for _ in range(3):
        theta = env.unwrapped.state[0]
        assert obs.shape == (2,) and obs.dtype == np.float32
        np.testing.assert_allclose(obs, [np.cos(theta), np.sin(theta)], rtol=1e-6)
        assert env.observation_space.contains(obs)
        obs, *_ = env.step(np.array([1.0], dtype=np.float32))
    assert np.abs(env.unwrapped.state[1]) > 0  # the hidden velocity is not zero: there was something to hide


def test_tuple_to_dict():
    env = TupleToDict(SpaceEnv(Tuple((Discrete(2), Box(-1, 1, (3,))))))
    assert list(env.observation_space.keys()) == ["0", "1"]
    assert env.observation_space["0"] == Discrete(2) and env.observation_space["1"] == Box(-1, 1, (3,))
    raw, _ = env.unwrapped.reset(seed=5)
    obs, _ = env.reset(seed=5)
    assert obs["0"] == raw[0] and np.array_equal(obs["1"], raw[1]) and env.observation_space.contains(obs)
    obs, *_ = env.step(0)
    assert env.observation_space.contains(obs)


def test_tuple_to_dict_key_order():
    spaces = [Discrete(i + 2) for i in range(12)]
    env = TupleToDict(SpaceEnv(Tuple(spaces)))
    keys = [f"{i:02d}" for i in range(12)]
    assert list(env.observation_space.keys()) == keys == sorted(keys)
    assert list(env.observation_space.values()) == spaces
    assert list(Dict(dict(env.observation_space.spaces)).keys()) == keys  # rebuilt from a mapping (sorted): same order
    raw, _ = env.unwrapped.reset(seed=1)
    obs, _ = env.reset(seed=1)
    assert [obs[key] for key in keys] == list(raw)


def test_tuple_to_dict_flattens_nested_spaces():
    space = Tuple((Discrete(2), Tuple((Box(0, 1, (2,)), Discrete(3))), Dict({"pos": Box(0, 1, (1,)), "id": Discrete(4)})))
    env = TupleToDict(SpaceEnv(space))
    assert list(env.observation_space.keys()) == ["0", "1.0", "1.1", "2.id", "2.pos"]
    raw, _ = env.unwrapped.reset(seed=2)
    obs, _ = env.reset(seed=2)
    assert obs["1.1"] == raw[1][1] and obs["2.id"] == raw[2]["id"] and np.array_equal(obs["2.pos"], raw[2]["pos"])
    assert env.observation_space.contains(obs)
    with pytest.raises(ValueError, match="two entries get the key '0.a.b'"):
        TupleToDict(SpaceEnv(Tuple((Dict({"a.b": Discrete(2), "a": Dict({"b": Discrete(2)})}),))))
    with pytest.raises(ValueError, match="needs a Tuple observation space"):
        TupleToDict(gym.make("CartPole-v1"))


def test_sb3_compatible():
    box = gym.make("CartPole-v1")
    assert sb3_compatible(box) is box
    env = sb3_compatible(SpaceEnv(Tuple((Discrete(2), Box(-1, 1, (3,))))))
    assert isinstance(env, TupleToDict) and isinstance(env.observation_space, Dict)
    check_env(env)


def test_popgym_autoencode_for_sb3():
    pytest.importorskip("popgym")
    raw = gym.make("popgym:popgym-AutoencodeEasy-v0")
    assert isinstance(raw.observation_space, Tuple)
    env = sb3_compatible(raw)
    assert env.observation_space == Dict([("0", Discrete(2)), ("1", Discrete(4))])
    assert get_obs_shape(env.observation_space) == {"0": (1,), "1": (1,)}
    assert CombinedExtractor(env.observation_space).features_dim == 2 + 4  # one-hot Discrete entries
    check_env(env)
    assert gym.make("popgym:popgym-RepeatPreviousEasy-v0").observation_space == Discrete(4)  # 'module:Id' registers on import
