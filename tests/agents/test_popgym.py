"""POPGym's tasks train from ``--env popgym:ID`` whatever their spaces (skipped where popgym is not installed:
``pip install "fwm-rl[popgym]"``). The default suite covers one task of each space combination; ``-m slow`` all 42
tasks with each core."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

from fwm_rl.agents.config import EnvTrainConfig
from fwm_rl.agents.env_training import make_env
from fwm_rl.agents.training import load_policy, train_run

popgym = pytest.importorskip("popgym")

#: One task per combination of observation and action spaces (Tuple/Discrete/MultiDiscrete/Box x Discrete/MultiDiscrete/Box).
SPACES = [
    "AutoencodeEasy",
    "RepeatPreviousEasy",
    "CountRecallEasy",
    "PositionOnlyPendulumEasy",
    "BattleshipEasy",
    "ConcentrationEasy",
    "MineSweeperEasy",
    "HigherLowerEasy",
]
ALL = sorted(env_id for env_id in gym.registry if env_id.startswith("popgym-"))


def tiny_run(tmp_path, env_id: str, memory: str):
    cfg = EnvTrainConfig(
        env_id=f"popgym:{env_id}",
        memory=memory,
        algo="ppo",
        hidden_size=8,
        d_fwm=4,
        n_envs=2,
        n_steps=8,
        n_minibatches=2,
        steps=32,
        eval_every=16,
        eval_episodes=1,
        final_eval_episodes=1,
    )
    summary = train_run(cfg, tmp_path / env_id / memory, show_progress=False)
    assert summary.timesteps == 32 and np.isfinite(summary.eval_return)
    policy, _, _ = load_policy(tmp_path / env_id / memory)
    env = make_env(cfg.env_id, 2, seed=0)
    actions, _ = policy.predict(env.reset(), deterministic=True)
    env.step(actions)


@pytest.mark.parametrize("memory", ["fwm", "lstm", "gru"])
@pytest.mark.parametrize("task", SPACES)
def test_each_kind_of_popgym_task_trains(tmp_path, task, memory):
    tiny_run(tmp_path, f"popgym-{task}-v0", memory)


@pytest.mark.slow
@pytest.mark.parametrize("memory", ["fwm", "lstm", "gru"])
@pytest.mark.parametrize("env_id", ALL)
def test_every_popgym_task_trains_with_every_core(tmp_path, env_id, memory):
    tiny_run(tmp_path, env_id, memory)
