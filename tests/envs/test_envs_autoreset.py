"""The native vector env's autoreset modes (NEXT_STEP, SAME_STEP, DISABLED), Gymnasium's vector wrappers on it,
and the SB3 adapter's need for SAME_STEP."""

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.vector import AutoresetMode
from gymnasium.wrappers import vector as vw

import fwm_rl  # noqa: F401  (registers FWMGraph-v0)
from fwm_rl.agents import FWMGraphVecEnv
from fwm_rl.envs import FWMGraphVectorEnv
from fwm_rl.envs.vector_env import AUTORESET_MODES, autoreset_mode_of

N, HORIZON, EPISODES = 6, 4, 3


def _trace(mode: AutoresetMode, device=None):
    """(obs, reward, terminated) of every env-step of EPISODES episodes, the first observation of
    each episode as its own entry, whatever the mode does to get there."""
    venv = FWMGraphVectorEnv(num_envs=N, split="test", horizon=HORIZON, autoreset_mode=mode, device=device)
    actions = np.random.default_rng(0).integers(0, 3, (EPISODES, HORIZON, N))
    obs, _ = venv.reset(seed=7)
    trace = [("start", np.asarray(obs))]
    for episode in range(EPISODES):
        for k in range(HORIZON):
            obs, reward, terminated, truncated, info = venv.step(actions[episode, k])
            obs, reward, terminated = (np.asarray(x) for x in (obs, reward, terminated))
            assert not np.asarray(truncated).any()
            last = k == HORIZON - 1
            assert terminated.all() == last and terminated.any() == last
            if mode == AutoresetMode.SAME_STEP and last:
                assert info["_final_obs"].all() and info["_final_info"].all()
                trace += [("step", np.asarray(info["final_obs"]), reward), ("start", obs)]
            else:
                assert "final_obs" not in info
                trace.append(("step", obs, reward))
        if mode == AutoresetMode.NEXT_STEP:
            obs, reward, terminated, truncated, info = venv.step(np.full(N, 7))  # ignored: even invalid actions
            assert not np.asarray(terminated).any() and not np.asarray(truncated).any() and not np.asarray(reward).any()
            trace.append(("start", np.asarray(obs)))
        elif mode == AutoresetMode.DISABLED:
            with pytest.raises(RuntimeError, match="call reset"):
                venv.step(actions[episode, 0])
            obs, _ = venv.reset(options={"reset_mask": np.ones(N, dtype=bool)})
            trace.append(("start", np.asarray(obs)))
    return trace


@pytest.mark.parametrize("device", [None, "cpu"], ids=["numpy", "torch"])
@pytest.mark.parametrize("mode", [AutoresetMode.NEXT_STEP, AutoresetMode.DISABLED], ids=lambda m: m.name.lower())
def test_every_mode_plays_the_same_episodes(mode, device):
    """Same seed, same actions: the modes differ only in where the first observation of the next episode appears."""
    reference = _trace(AutoresetMode.SAME_STEP, device)
    trace = _trace(mode, device)
    assert len(trace) == len(reference) == 1 + EPISODES * (HORIZON + 1)
    for ours, theirs in zip(trace, reference):
        assert ours[0] == theirs[0]
        for a, b in zip(ours[1:], theirs[1:]):
            assert np.array_equal(a, b)


def test_mode_names_metadata_and_make_vec():
    assert [autoreset_mode_of(name) for name in ("next_step", "SAME_STEP", "Disabled")] == list(AUTORESET_MODES)
    assert autoreset_mode_of("NextStep") is AutoresetMode.NEXT_STEP
    with pytest.raises(ValueError, match="unknown autoreset_mode 'later'.*next_step"):
        FWMGraphVectorEnv(num_envs=2, autoreset_mode="later")
    venv = gym.make_vec("FWMGraphTest-v0", num_envs=600, autoreset_mode="same_step")
    assert venv.autoreset_mode is AutoresetMode.SAME_STEP and venv.metadata["autoreset_mode"] is AutoresetMode.SAME_STEP
    assert FWMGraphVectorEnv.metadata["autoreset_mode"] is AutoresetMode.NEXT_STEP  # the class default is untouched
    assert FWMGraphVectorEnv(num_envs=2).autoreset_mode is AutoresetMode.NEXT_STEP


def test_reset_mask_must_cover_every_sub_environment():
    venv = FWMGraphVectorEnv(num_envs=3)
    venv.reset(seed=0, options={"reset_mask": np.ones(3, dtype=bool)})
    venv.reset(options={"reset_mask": torch.ones(3, dtype=torch.bool)})
    with pytest.raises(ValueError, match="share one clock"):
        venv.reset(options={"reset_mask": np.array([True, False, True])})
    with pytest.raises(ValueError, match=r"bool array of shape \(3,\)"):
        venv.reset(options={"reset_mask": np.ones(3)})
    with pytest.raises(ValueError, match="'graph_indices' and 'reset_mask'"):
        venv.reset(options={"mask": np.ones(3, dtype=bool)})


def _wrapped(name: str, venv):
    return {
        "RecordEpisodeStatistics": lambda: vw.RecordEpisodeStatistics(venv),
        "NormalizeObservation": lambda: vw.NormalizeObservation(venv),
        "NormalizeReward": lambda: vw.NormalizeReward(venv),
        "FlattenObservation": lambda: vw.FlattenObservation(venv),
        "DtypeObservation": lambda: vw.DtypeObservation(venv, np.float64),
        "RescaleObservation": lambda: vw.RescaleObservation(venv, np.float32(-1.0), np.float32(1.0)),
        "ReshapeObservation": lambda: vw.ReshapeObservation(venv, (17, 1)),
        "TransformObservation": lambda: vw.TransformObservation(venv, lambda obs: obs * 0.5, venv.observation_space),
        "ClipReward": lambda: vw.ClipReward(venv, -1.0, 1.0),
        "TransformReward": lambda: vw.TransformReward(venv, lambda r: r / 10.0),
        "DictInfoToList": lambda: vw.DictInfoToList(venv),
        "NumpyToTorch": lambda: vw.NumpyToTorch(venv),
    }[name]()


#: Wrappers that support only some modes (Gymnasium's own rules): the observation wrappers refuse SAME_STEP
#: (the reason this env's default is NEXT_STEP), NormalizeObservation needs NEXT_STEP.
OBSERVATION_WRAPPERS = (
    "NormalizeObservation",
    "FlattenObservation",
    "DtypeObservation",
    "RescaleObservation",
    "ReshapeObservation",
    "TransformObservation",
)
UNSUPPORTED = {(name, AutoresetMode.SAME_STEP) for name in OBSERVATION_WRAPPERS} | {
    ("NormalizeObservation", AutoresetMode.DISABLED)
}
#: Gymnasium checks the vector wrappers' autoreset modes from 1.4 on; before, they accept every mode, and
#: RecordEpisodeStatistics counts SAME_STEP episodes one step short (Gymnasium's behaviour, not the env's).
GYMNASIUM_CHECKS_MODES = tuple(int(x) for x in gym.__version__.split(".")[:2]) >= (1, 4)
WRAPPERS = [
    "RecordEpisodeStatistics",
    "NormalizeObservation",
    "NormalizeReward",
    "FlattenObservation",
    "DtypeObservation",
    "RescaleObservation",
    "ReshapeObservation",
    "TransformObservation",
    "ClipReward",
    "TransformReward",
    "DictInfoToList",
    "NumpyToTorch",
]


@pytest.mark.parametrize("mode", AUTORESET_MODES, ids=lambda m: m.name.lower())
@pytest.mark.parametrize("name", WRAPPERS)
def test_gymnasium_vector_wrappers(name, mode):
    if name == "NumpyToTorch":
        pytest.importorskip("array_api_compat")  # Gymnasium's optional dependency of its array conversions
    venv = FWMGraphVectorEnv(num_envs=N, split="train", horizon=HORIZON, autoreset_mode=mode)
    if not GYMNASIUM_CHECKS_MODES and (
        (name, mode) in UNSUPPORTED or (name, mode) == ("RecordEpisodeStatistics", AutoresetMode.SAME_STEP)
    ):
        pytest.skip(f"Gymnasium {gym.__version__} < 1.4 does not check this wrapper's autoreset mode")
    if (name, mode) in UNSUPPORTED:
        with pytest.raises(ValueError, match="NEXT_STEP"):
            _wrapped(name, venv)
        return
    env = _wrapped(name, venv)
    obs, _ = env.reset(seed=0)
    steps = HORIZON + (mode == AutoresetMode.NEXT_STEP)
    for episode in range(2):
        for k in range(steps):
            actions = env.action_space.sample()
            if name == "NumpyToTorch":
                actions = torch.as_tensor(actions)
            obs, reward, terminated, truncated, info = env.step(actions)
            assert obs.shape[0] == N and reward.shape == (N,)
            assert env.observation_space.contains(np.asarray(obs)) or name in ("NormalizeObservation", "NumpyToTorch")
            if k == HORIZON - 1:
                assert bool(terminated.all())
                if name == "RecordEpisodeStatistics":
                    assert np.array_equal(info["episode"]["l"], np.full(N, HORIZON))
        if mode == AutoresetMode.DISABLED:
            obs, _ = env.reset()
    if name == "RecordEpisodeStatistics":
        assert env.episode_count == 2 * N


def test_sb3_adapter_needs_same_step():
    assert FWMGraphVecEnv.make(4).venv.autoreset_mode is AutoresetMode.SAME_STEP
    FWMGraphVecEnv(FWMGraphVectorEnv(num_envs=4, autoreset_mode="same_step"))
    with pytest.raises(ValueError, match="autoreset_mode='same_step'"):
        FWMGraphVecEnv(FWMGraphVectorEnv(num_envs=4))
