"""RecurrentPPO: minibatches of whole environments replay the rollout exactly, PPO's loss, save/load/predict, evaluate_policy."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from stable_baselines3.common.evaluation import evaluate_policy

import fwm_rl  # noqa: F401  (registers FWMGraph-v0)
from fwm_rl.agents import FWMGraphVecEnv, RecurrentA2C, RecurrentPPO
from fwm_rl.memory import FactoredState

SMALL = {
    "FwmPolicy": {"hidden_size": 8, "d_fwm": 4, "n_reads": 2},
    "LstmPolicy": {"hidden_size": 8},
    "GruPolicy": {"hidden_size": 8},
}


def small(algo=RecurrentPPO, policy="FwmPolicy", n_envs=6, seed=0, **kwargs):
    env = FWMGraphVecEnv.make(n_envs, split="train", device="cpu", seed=seed)
    return algo(policy, env, seed=seed, device="cpu", policy_kwargs=SMALL[policy], **kwargs)


def collect(model):
    if model._last_obs is None:
        model._setup_learn(1, None)
    assert model.collect_rollouts(model.env, model._init_callback(None), model.rollout_buffer, model.n_steps)
    return model.rollout_buffer


@pytest.mark.parametrize("policy", ["FwmPolicy", "LstmPolicy", "GruPolicy"])
def test_minibatch_of_environments_replays_the_rollout(policy):
    """A minibatch's rows of the start state and its columns of the rollout give the rollout's values
    and log-probabilities, also for a rollout that starts mid-episode from a carried memory."""
    model = small(policy=policy, n_steps=20, n_minibatches=3)
    for _ in range(2):  # 20-step rollouts of 30-step episodes: the second starts mid-episode
        buffer = collect(model)
    assert not buffer.episode_starts[0].any()
    if policy == "FwmPolicy":
        assert isinstance(buffer.initial_state[1], FactoredState) and buffer.initial_state[1].k1.shape[1] > 0
    envs = torch.tensor([4, 1])
    state = model.policy.core.state_rows(buffer.initial_state, envs)
    with torch.no_grad():
        values, log_probs, _ = model.policy.evaluate_actions(
            buffer.observations[:, envs], buffer.actions[:, envs], state, buffer.episode_starts[:, envs]
        )
    torch.testing.assert_close(values, buffer.values[:, envs], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(log_probs, buffer.log_probs[:, envs], atol=1e-5, rtol=1e-5)


def test_first_gradient_is_a2c_policy_gradient():
    """Before any step the ratio is 1, so the clipped objective's gradient is the policy gradient
    (A2C's with the same advantages) and the value loss is A2C's."""
    ppo, a2c = small(n_steps=30, normalize_advantage=False), small(RecurrentA2C, n_steps=30)
    a2c.policy.load_state_dict(ppo.policy.state_dict())
    buffer = collect(ppo)
    a2c.rollout_buffer = buffer
    (_, ppo_parts), (_, a2c_parts) = ppo.minibatch_loss(torch.arange(6), 0.2), a2c.loss()
    for model, parts in ((ppo, ppo_parts), (a2c, a2c_parts)):
        model.policy.zero_grad()
        parts["policy_loss"].backward()
    for p1, p2 in zip(ppo.policy.parameters(), a2c.policy.parameters()):
        torch.testing.assert_close(p1.grad, p2.grad)
    torch.testing.assert_close(ppo_parts["value_loss"], a2c_parts["value_loss"])


def test_learn_logs_and_target_kl_stops_early():
    model = small(n_steps=30, n_epochs=3, n_minibatches=2, clip_range_vf=0.5, ent_coef=0.01)
    model.learn(2 * 6 * 30)
    assert model._n_updates == 2 * 3  # epochs, as SB3's PPO counts
    assert model.last_losses["gradient_steps"] == 6
    assert {"policy_loss", "value_loss", "entropy", "approx_kl", "clip_fraction", "explained_variance"} <= set(
        model.last_losses
    )
    eager = small(n_steps=30, n_epochs=10, n_minibatches=2, target_kl=1e-9, learning_rate=1e-2)
    eager.learn(2 * 6 * 30)
    assert eager.last_losses["gradient_steps"] < 20


@pytest.mark.parametrize("algo", [RecurrentA2C, RecurrentPPO])
def test_a_non_finite_loss_stops_before_the_weights_change(algo, monkeypatch):
    from fwm_rl.engine import NonFiniteLossError

    model = small(algo, n_steps=30)
    collect(model)
    name = "minibatch_loss" if algo is RecurrentPPO else "loss"
    real = getattr(model, name)

    def poisoned(*args):
        loss, parts = real(*args)
        return loss * float("nan"), parts

    monkeypatch.setattr(model, name, poisoned)
    before = {k: v.clone() for k, v in model.policy.state_dict().items()}
    with pytest.raises(NonFiniteLossError, match="non-finite loss"):
        model.train()
    assert all(torch.equal(v, model.policy.state_dict()[k]) for k, v in before.items())


def test_save_load_predict_and_evaluate_policy(tmp_path):
    model = small(n_steps=30)
    model.learn(6 * 30)
    model.save(tmp_path / "ppo.zip")
    loaded = RecurrentPPO.load(tmp_path / "ppo.zip", device="cpu")
    assert (loaded.n_epochs, loaded.n_minibatches) == (4, 4)
    # predicting needs no minibatches: fewer environments than n_minibatches load; learning says why it cannot
    few = RecurrentPPO.load(tmp_path / "ppo.zip", env=FWMGraphVecEnv.make(2, split="test", device="cpu"), device="cpu")
    with pytest.raises(ValueError, match="n_minibatches=4 is more than the 2 environments"):
        few.learn(60)
    for a, b in zip(model.policy.state_dict().values(), loaded.policy.state_dict().values()):
        assert torch.equal(a, b)
    env = FWMGraphVecEnv.make(4, split="test", device="cpu", seed=2)
    obs, starts, states = env.reset(), np.ones(4, dtype=bool), [None, None]
    for _ in range(30):
        (a1, states[0]), (a2, states[1]) = (
            m.predict(obs, s, starts, deterministic=True) for m, s in zip((model, loaded), states)
        )
        np.testing.assert_array_equal(a1, a2)
        obs, _, starts, _ = env.step(a1)
    rewards, lengths = evaluate_policy(loaded, env, n_eval_episodes=4, return_episode_rewards=True, warn=False)
    assert lengths == [30] * 4 and all(np.isfinite(rewards))


def test_invalid_arguments():
    for kwargs, name in (
        ({"n_epochs": 0}, "n_epochs"),
        ({"clip_range": -1.0}, "clip_range"),
        ({"target_kl": 0.0}, "target_kl"),
        ({"clip_range_vf": 0.0}, "clip_range_vf"),
    ):
        with pytest.raises(ValueError, match=name):
            small(**kwargs)
    with pytest.raises(ValueError, match="n_minibatches=7 is more than the 6 environments"):
        small(n_minibatches=7)


def test_bench_ppo_script_runs(capsys):
    import importlib.util
    from pathlib import Path

    spec = importlib.util.spec_from_file_location("bench_ppo", Path(__file__).parents[2] / "scripts" / "bench_ppo.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    assert bench.main(["--tasks", "graph", "cartpole", "--steps", "2048", "--lstm-size", "8"]) == 0
    rows = [
        line for line in capsys.readouterr().out.splitlines() if line.startswith("| graph") or line.startswith("| cartpole")
    ]
    assert len(rows) == 8  # 2 tasks x 2 algorithms x 2 memories
    with pytest.raises(SystemExit):
        bench.main(["--steps", "0"])
