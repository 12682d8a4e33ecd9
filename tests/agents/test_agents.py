"""RecurrentA2C, its policies and the SB3 VecEnv adapter (fwm_rl.agents)."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium import spaces
from stable_baselines3.common.buffers import RolloutBuffer
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.evaluation import evaluate_policy
from stable_baselines3.common.monitor import Monitor
from stable_baselines3.common.vec_env import DummyVecEnv

import fwm_rl  # noqa: F401  (registers FWMGraph-v0)
from fwm_rl.agents import FWMGraphVecEnv, FwmPolicy, RecurrentA2C, RecurrentRolloutBuffer
from fwm_rl.agents.evaluation import episode_returns
from fwm_rl.memory import FactoredState, count_parameters

SMALL_FWM = {"hidden_size": 8, "d_fwm": 4, "n_reads": 2}
SMALL_LSTM = {"hidden_size": 8}
SMALL = {"FwmPolicy": SMALL_FWM, "LstmPolicy": SMALL_LSTM, "GruPolicy": SMALL_LSTM}


def small_model(policy: str = "FwmPolicy", n_envs: int = 4, horizon: int = 30, seed: int = 0, **kwargs) -> RecurrentA2C:
    env = FWMGraphVecEnv.make(n_envs, split="train", device="cpu", horizon=horizon, seed=seed)
    policy_kwargs = SMALL[policy]
    return RecurrentA2C(policy, env, seed=seed, device="cpu", policy_kwargs=policy_kwargs, **kwargs)


def collect(model: RecurrentA2C) -> RecurrentRolloutBuffer:
    """One rollout without an update (as ``learn`` does before ``train``)."""
    if model._last_obs is None:
        model._setup_learn(1, None)
    callback = model._init_callback(None)
    assert model.collect_rollouts(model.env, callback, model.rollout_buffer, model.n_steps)
    return model.rollout_buffer


def test_paper_agent_parameter_count():
    obs_space, action_space = spaces.Box(0, 10, (17,), np.float32), spaces.Discrete(3)
    policy = FwmPolicy(obs_space, action_space, lambda _: 1e-3)
    assert count_parameters(policy) == 10_933  # README: FWMLSTM(17, 32, 16, 3) + Linear(32, 3) + Linear(32, 1)
    assert isinstance(policy.optimizer, torch.optim.Adam)
    assert policy.optimizer.defaults["eps"] == 1e-4 and policy.optimizer.defaults["lr"] == 1e-3


@pytest.mark.parametrize("policy", ["FwmPolicy", "LstmPolicy", "GruPolicy"])
def test_replay_equals_rollout(policy):
    # 45 steps per rollout with 30-step episodes: the first rollout has an episode start inside it,
    # the second starts mid-episode from a carried memory state. The rollout's one-step calls use
    # the factored fast weights, the replay the chunked form.
    model = small_model(policy, n_envs=5, n_steps=45)
    for starts in ([0, 30], [15]):
        buffer = collect(model)
        assert buffer.episode_starts.all(1).nonzero().flatten().tolist() == starts
        if policy == "FwmPolicy":  # the rollout carries the fast weights factored
            assert isinstance(buffer.initial_state[1], FactoredState)
        with torch.no_grad():
            values, log_probs, _ = model.policy.evaluate_actions(
                buffer.observations, buffer.actions, buffer.initial_state, buffer.episode_starts
            )
        torch.testing.assert_close(values, buffer.values, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(log_probs, buffer.log_probs, atol=1e-5, rtol=1e-5)


def test_paper_loss_equals_hand_computed_a2c_loss():
    model = small_model("FwmPolicy", n_envs=3, horizon=4, n_steps=4)
    assert (model.gamma, model.gae_lambda, model.vf_coef, model.ent_coef, model.max_grad_norm) == (0.9, 1.0, 0.1, 0.03, None)
    buffer = collect(model)
    r = buffer.rewards
    # Monte-Carlo discounted returns within the 4-step episode, nothing after its end.
    R = torch.stack([sum(0.9**k * r[t + k] for k in range(4 - t)) for t in range(4)])
    torch.testing.assert_close(buffer.returns, R)
    # The authors' loss: per step, entropy penalty + policy gradient + 0.1 * squared error, averaged.
    policy, state = model.policy, buffer.initial_state
    total = 0.0
    for t in range(4):
        out, state = policy.core(buffer.observations[t : t + 1], state, episode_starts=buffer.episode_starts[t : t + 1])
        logits, V = policy.action_net(out[0]), policy.value_net(out[0]).squeeze(-1)
        dist = torch.distributions.Categorical(logits=logits)
        advantage = R[t] - V
        total = total - 0.03 * dist.entropy().mean() - (dist.log_prob(buffer.actions[t]) * advantage.detach()).mean()
        total = total + 0.1 * advantage.pow(2).mean()
    loss, _ = model.loss()
    torch.testing.assert_close(loss, total / 4, atol=1e-5, rtol=1e-5)


def _released_loop_loss(model: RecurrentA2C, buffer: RecurrentRolloutBuffer) -> torch.Tensor:
    """The loss of the authors' released loop (``metaRL/train_agent.py``), built as it builds it: the value head's
    output kept at shape ``[B, 1]``, the return ``R`` of shape ``[B]`` accumulated backwards from the rewards, so that
    ``R - values[t]`` broadcasts to ``[B, B]``; entropy penalty per step, everything divided by the steps."""
    T = buffer.rewards.shape[0]
    policy, state = model.policy, buffer.initial_state
    values, logprobs, loss = [], [], 0.0
    for t in range(T):
        out, state = policy.core(buffer.observations[t : t + 1], state, episode_starts=buffer.episode_starts[t : t + 1])
        dist = torch.distributions.Categorical(logits=policy.action_net(out[0]))
        values.append(policy.value_net(out[0]))  # [B, 1], as theirs
        logprobs.append(dist.log_prob(buffer.actions[t]))
        loss = loss + model.ent_coef * -dist.entropy().mean()
    R, lossv = torch.zeros(buffer.rewards.shape[1]), 0.0
    for t in reversed(range(T)):
        R = model.gamma * R + buffer.rewards[t]
        ctrR = R - values[t]
        assert ctrR.shape == (len(R), len(R))
        lossv = lossv + ctrR.pow(2).mean()
        loss = loss - (logprobs[t] * ctrR.detach()).mean()
    return (loss + model.vf_coef * lossv) / T


def test_released_code_loss_equals_the_released_loop_in_value_and_gradient():
    model = small_model("FwmPolicy", n_envs=5, horizon=6, n_steps=6, loss="released_code")
    buffer = collect(model)
    params = [p for p in model.policy.parameters() if p.requires_grad]
    expected = _released_loop_loss(model, buffer)
    want = torch.autograd.grad(expected, params)
    loss, parts = model.loss()
    got = torch.autograd.grad(loss, params)
    torch.testing.assert_close(loss, expected, atol=1e-5, rtol=1e-5)
    for g, w in zip(got, want):
        torch.testing.assert_close(g, w, atol=1e-6, rtol=1e-4)
    # and it is not the paper's per-agent loss: the two differ in value and gradient
    model.loss_rule = "paper"
    paper_loss, _ = model.loss()
    assert abs(float(paper_loss.detach()) - float(loss.detach())) > 1e-3
    assert not all(torch.allclose(a, b, atol=1e-6) for a, b in zip(torch.autograd.grad(paper_loss, params), got))


def test_released_code_loss_needs_monte_carlo_returns():
    with pytest.raises(ValueError, match="gae_lambda"):
        small_model("FwmPolicy", loss="released_code", gae_lambda=0.95)
    with pytest.raises(ValueError, match="loss"):
        small_model("FwmPolicy", loss="nonsense")


@pytest.mark.parametrize("gae_lambda", [1.0, 0.95])
def test_returns_match_sb3_rollout_buffer(gae_lambda):
    T, B = 7, 3
    gen = torch.Generator().manual_seed(0)
    rewards, values, last_values = (
        torch.randn(T, B, generator=gen),
        torch.randn(T, B, generator=gen),
        torch.randn(B, generator=gen),
    )
    starts = torch.zeros(T, B, dtype=torch.bool)
    starts[0], starts[3, 1], starts[5, 0] = True, True, True
    dones = torch.tensor([False, True, False])
    ours = RecurrentRolloutBuffer(
        T, B, spaces.Box(-1, 1, (2,)), spaces.Discrete(3), torch.device("cpu"), gamma=0.9, gae_lambda=gae_lambda
    )
    ours.reset(torch.zeros(1))
    sb3 = RolloutBuffer(
        T, spaces.Box(-1, 1, (2,)), spaces.Discrete(3), device="cpu", gamma=0.9, gae_lambda=gae_lambda, n_envs=B
    )
    for t in range(T):
        ours.add(torch.zeros(B, 2), torch.zeros(B, dtype=torch.long), rewards[t], starts[t], values[t], torch.zeros(B))
        sb3.add(np.zeros((B, 2)), np.zeros((B, 1)), rewards[t].numpy(), starts[t].numpy(), values[t], torch.zeros(B))
    ours.compute_returns_and_advantage(last_values, dones)
    sb3.compute_returns_and_advantage(last_values, dones.numpy())
    np.testing.assert_allclose(ours.returns.numpy(), sb3.returns, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(ours.advantages.numpy(), sb3.advantages, rtol=1e-5, atol=1e-5)


class CountSteps(BaseCallback):
    def __init__(self) -> None:
        super().__init__()
        self.steps = self.rollouts = 0

    def _on_step(self) -> bool:
        self.steps += 1
        return True

    def _on_rollout_end(self) -> None:
        self.rollouts += 1


def test_learn_with_callback_progress_bar_and_tensorboard(tmp_path):
    env = FWMGraphVecEnv.make(4, split="train", device="cpu", seed=0)
    model = RecurrentA2C("LstmPolicy", env, policy_kwargs=SMALL_LSTM, tensorboard_log=str(tmp_path), seed=0, device="cpu")
    counter = CountSteps()
    before = [p.detach().clone() for p in model.policy.parameters()]
    model.learn(2 * 4 * 30, callback=counter, progress_bar=True)
    assert (counter.steps, counter.rollouts, model._n_updates, model.num_timesteps) == (60, 2, 2, 240)
    assert any(not torch.equal(a, b) for a, b in zip(before, model.policy.parameters()))
    assert list(tmp_path.glob("RecurrentA2C_1/events.out.tfevents*"))
    assert len(model.ep_info_buffer) == 4 and all(info["l"] == 30 for info in model.ep_info_buffer)
    assert set(model.last_losses) == {"loss", "policy_loss", "value_loss", "entropy", "explained_variance"}


def test_learns_on_a_generic_sb3_vec_env():
    # Gymnasium single envs behind SB3's DummyVecEnv + Monitor: the numpy path with info dicts.
    env = DummyVecEnv([lambda i=i: Monitor(gym.make("FWMGraph-v0", split="train")) for i in range(3)])
    model = RecurrentA2C("FwmPolicy", env, policy_kwargs=SMALL_FWM, seed=0, device="cpu")
    model.learn(3 * 30)
    assert model._n_updates == 1 and len(model.ep_info_buffer) == 3


def test_save_load_predict_round_trip(tmp_path):
    model = small_model("FwmPolicy", n_envs=4)
    model.learn(4 * 30)
    model.save(tmp_path / "agent.zip")
    loaded = RecurrentA2C.load(tmp_path / "agent.zip", device="cpu")
    for a, b in zip(model.policy.state_dict().values(), loaded.policy.state_dict().values()):
        assert torch.equal(a, b)
    env = FWMGraphVecEnv.make(4, split="test", device="cpu", seed=3)
    obs, starts = env.reset(), np.ones(4, dtype=bool)
    states = [None, None]
    for _ in range(30):
        (a1, states[0]), (a2, states[1]) = (
            m.predict(obs, s, starts, deterministic=True) for m, s in zip((model, loaded), states)
        )
        np.testing.assert_array_equal(a1, a2)
        obs, _, starts, _ = env.step(a1)
    for x, y in zip(torch.utils._pytree.tree_leaves(states[0]), torch.utils._pytree.tree_leaves(states[1])):
        torch.testing.assert_close(x, y)
    # One observation (not vectorised) and a wrong episode_start shape.
    action, _ = loaded.predict(obs[0])
    assert np.shape(action) == () and 0 <= int(action) < 3
    with pytest.raises(ValueError, match="episode_start"):
        loaded.predict(obs, None, np.ones(3, dtype=bool))


def test_evaluate_policy_threads_the_memory_state():
    model = small_model("FwmPolicy", n_envs=4)
    model.learn(4 * 30)
    env = FWMGraphVecEnv.make(4, split="test", device="cpu")
    env.seed(7)
    rewards, lengths = evaluate_policy(
        model, env, n_eval_episodes=4, deterministic=True, return_episode_rewards=True, warn=False
    )
    assert lengths == [30] * 4
    # The same episodes by hand, carrying the state: evaluate_policy must have done exactly this.
    env.seed(7)
    obs, starts, state, totals = env.reset(), np.ones(4, dtype=bool), None, np.zeros(4)
    for _ in range(30):
        actions, state = model.predict(obs, state, starts, deterministic=True)
        obs, reward, starts, _ = env.step(actions)
        totals += reward
    np.testing.assert_allclose(sorted(rewards), sorted(totals), rtol=1e-6)


def test_vec_env_adapter_numpy_and_tensor_paths_agree():
    # SB3's numpy step and the tensor step RecurrentA2C uses, on two copies of one batch.
    numpy_env = FWMGraphVecEnv.make(6, split="train", device="cpu", seed=1)
    tensor_env = FWMGraphVecEnv.make(6, split="train", device="cpu", seed=1)
    np.testing.assert_array_equal(numpy_env.reset(), tensor_env.reset())
    rng = np.random.default_rng(0)
    for t in range(30):
        actions = rng.integers(0, 3, size=6)
        obs, reward, dones, infos = numpy_env.step(actions)
        obs_t, reward_t, dones_t = tensor_env.step_tensors(torch.as_tensor(actions))
        np.testing.assert_array_equal(obs, obs_t.numpy())
        np.testing.assert_allclose(reward, reward_t.numpy())
        np.testing.assert_array_equal(dones, dones_t.numpy())
        assert obs.dtype == np.float32 and dones.dtype == bool
        assert bool(dones.all()) == (t == 29)
    assert set(infos[0]) == {"terminal_observation", "episode", "TimeLimit.truncated"}
    assert infos[0]["episode"]["l"] == 30 and infos[0]["TimeLimit.truncated"] is False
    assert numpy_env.get_attr("split") == ["train"] * 6
    host_env = FWMGraphVecEnv.make(6, split="train", device=None, seed=1)  # numpy-backed batch
    host_env.reset()
    obs, reward, dones = host_env.step_tensors(torch.zeros(6, dtype=torch.long))
    assert obs.shape == (6, 17) and obs.dtype == torch.float32 and reward.dtype == torch.float32 and dones.dtype == torch.bool
    with pytest.raises(ValueError, match="outside the action space"):
        numpy_env.step(np.full(6, 3))
    with pytest.raises(ValueError, match="share one batch"):
        numpy_env.set_attr("split", "test", indices=[0])


def test_bad_arguments_are_rejected():
    env = FWMGraphVecEnv.make(2, split="train", device="cpu")
    with pytest.raises(ValueError, match="gamma"):
        RecurrentA2C("FwmPolicy", env, gamma=1.5)
    with pytest.raises(ValueError, match="max_grad_norm"):
        RecurrentA2C("FwmPolicy", env, max_grad_norm=0.0)
    with pytest.raises(ValueError, match="Discrete, Box, MultiDiscrete or MultiBinary actions"):
        FwmPolicy(spaces.Box(0, 1, (17,)), spaces.Tuple([spaces.Discrete(2)]), lambda _: 1e-3)
    with pytest.raises(ValueError, match="TupleToDict"):
        FwmPolicy(spaces.Tuple([spaces.Discrete(2)]), spaces.Discrete(2), lambda _: 1e-3)
    with pytest.raises(TypeError, match="FWMGraphVectorEnv"):
        FWMGraphVecEnv(gym.make("FWMGraph-v0"))


def test_evaluation_is_seeded_and_uses_every_graph():
    model = small_model("LstmPolicy", n_envs=2)
    a = episode_returns(model.policy, "test", episodes_per_graph=2, seed=5)
    b = episode_returns(model.policy, "test", episodes_per_graph=2, seed=5)
    assert a.shape == (1200,) and np.array_equal(a, b)
    assert not np.array_equal(a, episode_returns(model.policy, "test", episodes_per_graph=2, seed=6))
    with pytest.raises(ValueError, match="split"):
        episode_returns(model.policy, "random")


# ------------------------------------------------------------------ fused rollout step
def _paper_policy(dtype=torch.float64, **kwargs) -> FwmPolicy:
    torch.manual_seed(0)
    policy = FwmPolicy(spaces.Box(0, 10, (17,), np.float32), spaces.Discrete(3), lambda _: 1e-3, **kwargs)
    return policy.to(dtype)


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"read_tanh": True, "output": "reads"},
        {"n_reads": 1, "beta_bias": 0.0},
        {"output": "both"},
    ],
)
def test_fused_rollout_step_equals_the_general_path(options):
    """The fused step (rollout_step.fwm_step) against the policy's general path (nn.LSTM, the
    memory's factored step, log-softmax heads) in float64: same actions from the same generator,
    values, log-probabilities and every state tensor to 1e-10, over 90 steps with random episode
    starts (every row at steps 0 and 10) and writes strong enough to engage the cap of eq. 4."""
    from fwm_rl.agents import rollout_step
    from fwm_rl.agents.policies import RecurrentActorCriticPolicy

    policy = _paper_policy(update_scale=1.0, **options)
    B = 9
    fused, general = policy.initial_state(B), policy.initial_state(B)
    g_fused, g_general = torch.Generator().manual_seed(1), torch.Generator().manual_seed(1)
    data = torch.Generator().manual_seed(2)
    steps_fused = 0
    for t in range(90):
        obs = torch.rand(B, 17, generator=data, dtype=torch.float64) * 4
        starts = torch.rand(B, generator=data) < (1.0 if t in (0, 10) else 0.15)
        with torch.no_grad():
            steps_fused += rollout_step.applies(policy, fused)
            a1, v1, l1, fused = policy(obs, fused, starts, deterministic=t % 5 == 4, generator=g_fused)
            a2, v2, l2, general = RecurrentActorCriticPolicy.forward(
                policy, obs, general, starts, deterministic=t % 5 == 4, generator=g_general
            )
        assert torch.equal(a1, a2)
        torch.testing.assert_close(v1, v2, atol=1e-10, rtol=1e-10)
        torch.testing.assert_close(l1, l2, atol=1e-10, rtol=1e-10)
        for x, y in zip(torch.utils._pytree.tree_leaves(fused), torch.utils._pytree.tree_leaves(general)):
            torch.testing.assert_close(x, y, atol=1e-10, rtol=1e-10)
    assert steps_fused == 10 + 64  # the full reset empties the list; at max_writes (64) the general path folds it
    capped = general[1].f0_scale < 1
    assert bool(capped.any())  # the cap engaged
    with torch.no_grad():
        torch.testing.assert_close(
            policy.predict_values(obs, fused, starts), RecurrentActorCriticPolicy.predict_values(policy, obs, general, starts)
        )


def test_fused_rollout_step_compiled_equals_eager(monkeypatch):
    """torch.compile of the fused step gives the eager step's numbers (float32, a rollout batch)."""
    from fwm_rl.agents import rollout_step

    monkeypatch.setenv("FWM_RL_COMPILE", "1")
    policy = _paper_policy(torch.float32)
    B = rollout_step.COMPILE_MIN_BATCH
    states, outs = [policy.initial_state(B), policy.initial_state(B)], [[], []]
    data = torch.Generator().manual_seed(0)
    for t in range(6):
        obs, starts = torch.rand(B, 17, generator=data) * 4, torch.full((B,), t == 0)
        for i, compiled in enumerate((True, False)):
            monkeypatch.setenv("FWM_RL_COMPILE", "1" if compiled else "0")
            with torch.no_grad():
                _, v, lp, states[i] = policy(obs, states[i], starts, deterministic=True)
            outs[i].append((v, lp))
    assert callable(rollout_step._compiled)  # it compiled
    for (v1, l1), (v2, l2) in zip(*outs):
        torch.testing.assert_close(v1, v2, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(l1, l2, atol=1e-5, rtol=1e-5)


def test_inverse_cdf_action_draws_follow_the_policy():
    from fwm_rl.agents.rollout_step import sample_actions

    probs = torch.tensor([0.2, 0.5, 0.3])
    log_probs = probs.log().expand(200_000, 3)
    actions = sample_actions(log_probs, torch.rand(200_000, generator=torch.Generator().manual_seed(0)))
    freq = torch.bincount(actions, minlength=3) / 200_000.0
    torch.testing.assert_close(freq, probs, atol=4e-3, rtol=0)  # ~4 standard errors
    # The uniform number picks the first action whose cumulative probability exceeds it.
    assert sample_actions(probs.log().expand(4, 3), torch.tensor([0.0, 0.19, 0.69, 0.999999])).tolist() == [0, 0, 1, 2]


def test_rollout_starting_every_episode_drops_the_carried_memory():
    # Three whole-episode rollouts in one learn call: each starts with every row's episode, so the
    # rollout starts from an empty factored state (the list of writes never grows past 30).
    model = small_model("FwmPolicy", n_envs=3)
    model.learn(3 * 3 * 30)
    assert model._last_state[1].k1.shape[1] == 30


def test_advantage_normalisation_gives_mean_zero_and_unit_deviation():
    model = small_model("FwmPolicy", n_envs=4, normalize_advantage=True)
    buffer = collect(model)
    seen = {}
    log_probs_of = model.policy.evaluate_actions

    def spy(*args):
        values, log_prob, entropy = log_probs_of(*args)
        log_prob.register_hook(lambda g: seen.setdefault("grad", g))  # d policy_loss / d log_prob = -A / n
        return values, log_prob, entropy

    model.policy.evaluate_actions = spy
    loss, parts = model.loss()
    parts["policy_loss"].backward()
    normalised = -seen["grad"] * buffer.advantages.numel()
    assert abs(float(normalised.mean())) < 1e-5 and abs(float(normalised.std()) - 1.0) < 1e-4
    expected = (buffer.advantages - buffer.advantages.mean()) / (buffer.advantages.std() + 1e-8)
    torch.testing.assert_close(normalised, expected, atol=1e-5, rtol=1e-5)


def test_explain_matches_are_the_key_products_of_the_trace():
    from fwm_rl.agents.explain import read_matches, step_labels, write_key_similarity
    from fwm_rl.agents.watch import EpisodeRecord
    from fwm_rl.memory import MemoryTrace

    rng = np.random.default_rng(0)
    T, d, N = 5, 3, 2
    trace = MemoryTrace(*(rng.normal(size=s) for s in ((T, d), (T, d), (T, d), (T,), (T, N, d), (T, N, d))))
    record = EpisodeRecord(np.zeros((3, 5, 5)), "g", [0, 1, 2, 4, 4, 3], [2] * 6, [0, 1, 2, 1, 0], [True, True, False, True, True],
                           [0.0, 10.0, -0.05, 0.0, 0.0], trace)  # fmt: skip
    matches = read_matches(record)
    for i in range(N):
        for t in range(T):
            for j in range(T):
                key_write = np.outer(trace.k1[j], trace.k2[j]).ravel()
                key_read = np.outer(trace.n[t, i], trace.e[t, i]).ravel()
                assert np.isclose(matches[i, t, j], key_write @ key_read if j <= t else 0.0)
    np.testing.assert_allclose(np.diag(write_key_similarity(record)), 1.0)
    assert step_labels(record) == ["start 0", "0-0->1", "*2", "2-2->4", "4-1->4"]


@pytest.mark.parametrize("policy", ["FwmPolicy", "LstmPolicy", "GruPolicy"])
def test_update_is_one_iteration_of_learn(policy):
    """``start_episodes`` + ``update`` (the trainers' loop) equal ``learn`` on the same episodes, update for update."""
    by_learn, by_update = small_model(policy), small_model(policy)
    for model in (by_learn, by_update):
        model.start_episodes(seed=3)
    torch.manual_seed(5)
    by_learn.learn(2 * by_learn.n_steps * by_learn.n_envs, reset_num_timesteps=False)
    torch.manual_seed(5)
    rewards = [by_update.update(), by_update.update()]
    for a, b in zip(by_learn.policy.parameters(), by_update.policy.parameters()):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert by_update._n_updates == by_learn._n_updates == 2 and by_update.num_timesteps == by_learn.num_timesteps
    assert rewards[-1] == pytest.approx(np.mean([info["r"] for info in by_learn.ep_info_buffer]))
    by_update.set_progress(7)
    assert (by_update._n_updates, by_update.num_timesteps) == (7, 7 * by_update.n_steps * by_update.n_envs)


def test_update_reads_the_schedules_at_the_runs_progress():
    """``update(total_timesteps)`` moves SB3's progress as ``learn`` does after each rollout, so a learning-rate (or
    PPO clip-range) schedule follows the run; without it the schedules stay where they stand."""
    model = small_model("LstmPolicy", n_envs=2, learning_rate=lambda progress: 1e-3 * progress)
    model.update()
    assert model._current_progress_remaining == 1.0
    model.update(total_timesteps=4 * model.n_steps * model.n_envs)
    assert model._current_progress_remaining == pytest.approx(0.5)  # two of four rollouts done
    assert model.policy.optimizer.param_groups[0]["lr"] == pytest.approx(5e-4)
