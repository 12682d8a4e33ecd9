"""k-shot trials: k episodes on the same graph as one Gymnasium episode, the memory (or the explorer's map) kept across them."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

import fwm_rl  # noqa: F401  (registers FWMGraph-v0)
from fwm_rl.agents import load_pretrained
from fwm_rl.agents.evaluation import episode_returns, evaluate, trial_returns
from fwm_rl.agents.training import A2CConfig, train_run
from fwm_rl.cli import main
from fwm_rl.envs import FWMGraphEnv, GraphBatch, TaskConfig, baselines


@pytest.mark.parametrize("semantics", ["paper", "released_code"])
def test_a_trial_is_k_episodes_on_one_graph(semantics):
    config = TaskConfig(horizon=5, trials=3, semantics=semantics)
    assert config.trial_length == 15
    batch = GraphBatch(64, config=config, seed=0)
    obs = batch.reset()
    tables = batch.tables.copy()
    progress = [obs[:, 15].copy()]
    for step in range(1, 16):
        obs, _, terminated, _ = batch.step(np.random.default_rng(step).integers(0, 3, 64))
        assert terminated.all() == (step == 15) and np.array_equal(batch.tables, tables)  # the same graphs all trial long
        progress.append(obs[:, 15].copy())
        assert batch.episode_in_trial == min(step // 5, 2)
        if step in (5, 10):  # a new episode of the trial starts as a first episode does
            assert np.allclose(obs[:, 15], 0.0) and np.allclose(obs[:, -1], 0.0)
            assert (obs[:, 10:14].argmax(1) == 3).all() if semantics == "paper" else (obs[:, 14] == 1).all()
            assert (batch.timer == 0).all() and (batch.reward_location != batch.agent_location).all()
    assert np.allclose([p[0] for p in progress], [0, 0.2, 0.4, 0.6, 0.8, 0, 0.2, 0.4, 0.6, 0.8, 0, 0.2, 0.4, 0.6, 0.8, 1.0])
    with pytest.raises(RuntimeError, match="reset"):
        batch.step(np.zeros(64, dtype=int))
    with pytest.raises(ValueError, match="trials must be a positive integer"):
        TaskConfig(trials=0)


def test_one_trial_is_the_paper_task():
    """trials=1 draws the same random numbers as before trials existed: the episodes are unchanged."""
    a, b = GraphBatch(8, config=TaskConfig(), seed=3), GraphBatch(8, config=TaskConfig(trials=1), seed=3)
    assert np.array_equal(a.reset(), b.reset())
    for k in range(30):
        actions = np.full(8, k % 3)
        assert all(np.array_equal(x, y) for x, y in zip(a.step(actions), b.step(actions)))


def test_gymnasium_classes_take_trials():
    env = gym.make("FWMGraphTest-v0", trials=2, horizon=4)
    env.reset(seed=0)
    infos = []
    for step in range(8):
        _, _, terminated, _, info = env.step(0)
        infos.append(info["episode_in_trial"])
        assert terminated == (step == 7)
    assert infos == [0, 0, 0, 1, 1, 1, 1, 1]
    assert "episode_in_trial" not in _step_info(FWMGraphEnv())  # trials=1: the info of the paper task
    venv = gym.make_vec("FWMGraph-v0", num_envs=4, trials=2, horizon=4, autoreset_mode="same_step")
    venv.reset(seed=0)
    for step in range(8):
        _, _, terminated, _, info = venv.step(np.zeros(4, dtype=int))
        assert terminated.all() == (step == 7) and ("final_obs" in info) == (step == 7)


def _step_info(env):
    env.reset(seed=0)
    return env.step(0)[-1]


def test_the_explorer_keeps_its_map_across_a_trial():
    returns = baselines.trial_returns("explorer", "test", 600, 0, "paper", trials=3)
    assert returns.shape == (600, 3)
    first, later = returns[:, 0].mean(), returns[:, 1:].mean()
    assert later > first + 20  # it knows the graph after the first episode
    assert np.array_equal(
        baselines.episode_returns("explorer", "test", 600, 0), baselines.trial_returns("explorer", "test", 600, 0)[:, 0]
    )
    random = baselines.trial_returns("random", "test", 600, 0, "paper", trials=3).mean(0)
    assert np.ptp(random) < 3  # a memoryless policy does the same in every episode


def test_agent_trials_keep_the_memory():
    policy = load_pretrained("fwm-cpu").policy
    single = episode_returns(policy, "test", 1, seed=5, n_graphs=600)
    trial = trial_returns(policy, "test", 1, seed=5, trials=2)
    assert trial.shape == (600, 2)
    assert np.allclose(trial[:, 0], single)  # the first episode of a trial is an ordinary episode
    assert evaluate(policy, "test", 1, seed=5, trials=2).episodes == 1200


def test_training_on_trials(tmp_path, capsys):
    cfg = A2CConfig(
        name="lstm",
        memory="lstm",
        hidden_size=8,
        steps=2,
        eval_every=2,
        n_envs=4,
        final_episodes_per_graph=1,
        device="cpu",
        trials=2,
    )
    summary = train_run(cfg, tmp_path / "run", show_progress=False)
    assert summary.test.episodes == 1200 and np.isfinite(summary.train_reward)
    assert main(["eval", str(tmp_path / "run"), "--split", "test", "--trials", "3", "--episodes-per-graph", "1"]) == 0
    out = capsys.readouterr().out
    assert "mean reward of each episode of a trial" in out and len(out.splitlines()[1].split()) == 5 + 3 + 2
    assert (
        main(["eval", str(tmp_path / "run"), "--split", "test", "--episodes-per-graph", "1"]) == 0
    )  # the run's own trials (2)
    assert len(capsys.readouterr().out.splitlines()[1].split()) == 5 + 2 + 2
    assert main(["train", "--preset", "fast-fwm", "--trials", "3", "--print-config"]) == 0
    assert '"trials": 3' in capsys.readouterr().out
    assert main(["baselines", "--trials", "2", "--episodes", "40"]) == 0
    assert "episode 2" in capsys.readouterr().out
