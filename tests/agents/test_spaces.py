"""Every observation and action space stable-baselines3 takes (and Tuple observations), with each core and the
policy options around it: replay equals rollout, a tiny ``--env`` run trains, saves, loads and predicts."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium import spaces
from stable_baselines3.common.torch_layers import CombinedExtractor, NatureCNN
from stable_baselines3.common.vec_env import DummyVecEnv

from fwm_rl.agents import RecurrentA2C, RecurrentPPO
from fwm_rl.agents.config import EnvTrainConfig, parse_net_arch
from fwm_rl.agents.env_training import make_env
from fwm_rl.agents.policies import ActorCriticCores, FwmPolicy, LstmPolicy
from fwm_rl.agents.training import load_policy, train_run
from fwm_rl.envs import sb3_compatible

SMALL = {"FwmPolicy": {"hidden_size": 8, "d_fwm": 4}, "LstmPolicy": {"hidden_size": 8}, "GruPolicy": {"hidden_size": 8}}

OBSERVATIONS = {
    "box": spaces.Box(-1, 1, (3,), np.float32),
    "box2d": spaces.Box(-1, 1, (2, 3), np.float32),
    "discrete": spaces.Discrete(4),
    "multidiscrete": spaces.MultiDiscrete([2, 3]),
    "multibinary": spaces.MultiBinary(3),
    "dict": spaces.Dict({"pos": spaces.Box(-1, 1, (2,), np.float32), "cue": spaces.Discrete(3)}),
    "tuple": spaces.Tuple((spaces.Discrete(2), spaces.Box(-1, 1, (2,), np.float32))),
}
ACTIONS = {
    "discrete": spaces.Discrete(3),
    "box": spaces.Box(-2, 2, (2,), np.float32),
    "multidiscrete": spaces.MultiDiscrete([2, 3]),
    "multibinary": spaces.MultiBinary(2),
}


class SpaceEnv(gym.Env):
    """Random observations of ``observation_space`` for 6 steps; reward 1 when the action (any space) sums above its
    mid-range, so a policy can learn something. Checks every action it is given lies in ``action_space``."""

    metadata = {"render_modes": ["rgb_array"]}  # SB3's make_vec_env asks for it

    def __init__(self, observation: str = "box", action: str = "discrete", render_mode: str | None = None) -> None:
        self.render_mode = render_mode
        self.observation_space, self.action_space = OBSERVATIONS[observation], ACTIONS[action]
        self.t = 0

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        self.observation_space.seed(int(self.np_random.integers(2**31)))
        self.t = 0
        return self.observation_space.sample(), {}

    def step(self, action):
        assert self.action_space.contains(np.asarray(action, dtype=self.action_space.dtype)), action
        self.t += 1
        reward = float(np.sum(action) > np.sum(self.action_space.sample() * 0 + np.mean(_range(self.action_space))))
        return self.observation_space.sample(), reward, False, self.t >= 6, {}


def _range(space: spaces.Space) -> np.ndarray:
    if isinstance(space, spaces.Box):
        return np.array([space.low, space.high])
    if isinstance(space, spaces.Discrete):
        return np.array([0, space.n - 1])
    if isinstance(space, spaces.MultiDiscrete):
        return np.array([np.zeros_like(space.nvec), space.nvec - 1])
    return np.array([0, 1])


for _obs in OBSERVATIONS:
    for _act in ACTIONS:
        gym.register(id=f"fwmtest/Space-{_obs}-{_act}-v0", entry_point=SpaceEnv, kwargs={"observation": _obs, "action": _act})


def small_ppo(observation: str, action: str, policy: str = "LstmPolicy", **policy_kwargs) -> RecurrentPPO:
    env = DummyVecEnv([lambda: sb3_compatible(SpaceEnv(observation, action)) for _ in range(3)])
    env.seed(0)
    return RecurrentPPO(
        policy,
        env,
        n_steps=8,
        n_minibatches=3,
        n_epochs=2,
        seed=0,
        device="cpu",
        policy_kwargs={**SMALL[policy], **policy_kwargs},
    )


def replay_matches(model: RecurrentA2C) -> None:
    """One rollout, then the update's replay of it gives the rollout's values and log-probabilities."""
    model._setup_learn(1, None)
    assert model.collect_rollouts(model.env, model._init_callback(None), model.rollout_buffer, model.n_steps)
    buffer = model.rollout_buffer
    with torch.no_grad():
        values, log_probs, entropy = model.policy.evaluate_actions(
            buffer.observations, buffer.actions, buffer.initial_state, buffer.episode_starts
        )
    torch.testing.assert_close(values, buffer.values, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(log_probs, buffer.log_probs, atol=1e-5, rtol=1e-5)
    assert entropy.shape == values.shape and torch.isfinite(entropy).all()


@pytest.mark.parametrize("observation", sorted(OBSERVATIONS))
def test_every_observation_space(observation):
    model = small_ppo(observation, "discrete")
    replay_matches(model)
    expected = CombinedExtractor if observation in ("dict", "tuple") else None
    if expected is not None:
        assert isinstance(model.policy.features_extractor, expected)
    model.learn(48)
    assert model.num_timesteps == 48


@pytest.mark.parametrize("action", sorted(ACTIONS))
@pytest.mark.parametrize("policy", sorted(SMALL))
def test_every_action_space_with_every_core(action, policy):
    model = small_ppo("box", action, policy)
    replay_matches(model)
    assert model.rollout_buffer.actions.shape[:2] == (8, 3)
    before = [p.detach().clone() for p in model.policy.parameters()]
    model.learn(48)
    assert any(not torch.equal(a, b) for a, b in zip(before, model.policy.parameters()))
    actions, state = model.policy.predict(np.stack([OBSERVATIONS["box"].sample() for _ in range(2)]), episode_start=np.ones(2))
    assert all(ACTIONS[action].contains(a.astype(ACTIONS[action].dtype)) for a in actions)


def test_gaussian_actions_are_clipped_for_the_env_only():
    model = small_ppo("box", "box", log_std_init=2.0)  # wide: most samples fall outside [-2, 2]
    replay_matches(model)
    stored = model.rollout_buffer.actions
    assert stored.abs().max() > 2.0  # the rollout keeps what was sampled (its log-probabilities are of those)
    assert np.abs(model.policy.env_actions(stored[0])).max() <= 2.0


def test_policy_options_shape_the_network():
    model = small_ppo(
        "box",
        "box",
        "FwmPolicy",
        net_arch={"pi": [16], "vf": [12, 12]},
        features_net_arch=[10],
        activation_fn=torch.nn.ReLU,
        ortho_init=True,
        shared_core=False,
    )
    policy = model.policy
    assert isinstance(policy.core, ActorCriticCores) and policy.core.actor is not policy.core.critic
    assert policy.features_net[0].out_features == 10 and isinstance(policy.features_net[1], torch.nn.ReLU)
    assert policy.mlp_extractor.latent_dim_pi == 16 and policy.mlp_extractor.latent_dim_vf == 12
    assert not policy.paper_heads
    # SB3's orthogonal initialisation: the action layer's gain 0.01 makes its weights tiny
    assert policy.action_net.weight.abs().max() < 0.05
    replay_matches(model)
    # the separate critic: the value loss moves the critic core and not the actor's
    model._setup_learn(1, None)
    model.collect_rollouts(model.env, model._init_callback(None), model.rollout_buffer, model.n_steps)
    buffer = model.rollout_buffer
    values, _, _ = policy.evaluate_actions(buffer.observations, buffer.actions, buffer.initial_state, buffer.episode_starts)
    values.sum().backward()
    assert all(p.grad is None or not p.grad.any() for p in policy.core.actor.parameters())
    assert any(p.grad is not None and p.grad.any() for p in policy.core.critic.parameters())


def test_images_go_through_nature_cnn():
    space = spaces.Box(0, 255, (1, 36, 36), np.uint8)  # channels first, as SB3's VecTransposeImage gives them (make_env)
    policy = LstmPolicy(
        space, spaces.Discrete(2), lambda _: 1e-3, hidden_size=8, features_extractor_kwargs={"features_dim": 16}
    )
    assert isinstance(policy.features_extractor, NatureCNN)  # SB3's choice for images
    obs = np.stack([space.sample() for _ in range(2)])
    actions, state = policy.predict(obs, episode_start=np.ones(2))
    assert actions.shape == (2,) and state[0].shape == (1, 2, 8)


def test_tuple_observations_need_the_wrapper():
    with pytest.raises(ValueError, match="TupleToDict"):
        LstmPolicy(OBSERVATIONS["tuple"], spaces.Discrete(2), lambda _: 1e-3)


def test_parse_net_arch():
    assert parse_net_arch("") is None and parse_net_arch("64,64") == [64, 64]
    assert parse_net_arch("pi=64;vf=32,32") == {"pi": [64], "vf": [32, 32]} and parse_net_arch("vf=8") == {"pi": [], "vf": [8]}
    for bad in ("64,x", "pi=64;pi=32", "qf=3", "0"):
        with pytest.raises(ValueError, match="net_arch"):
            parse_net_arch(bad)


@pytest.mark.parametrize(
    ("observation", "action", "memory"),
    [
        ("dict", "box", "fwm"),
        ("tuple", "multidiscrete", "gru"),
        ("discrete", "multibinary", "lstm"),
        ("box2d", "discrete", "gru"),
    ],
)
def test_env_runs_train_save_load_and_predict(tmp_path, observation, action, memory):
    env_id = f"fwmtest/Space-{observation}-{action}-v0"
    cfg = EnvTrainConfig(
        env_id=env_id,
        memory=memory,
        hidden_size=8,
        d_fwm=4,
        algo="ppo",
        n_envs=2,
        n_steps=6,
        n_minibatches=2,
        steps=24,
        eval_every=12,
        eval_episodes=2,
        final_eval_episodes=2,
        norm_reward=True,
        lr_schedule="linear",
        clip_range_schedule="linear",
        net_arch="8",
        shared_core=False,
    )
    summary = train_run(cfg, tmp_path / "run", show_progress=False)
    assert summary.timesteps == 24 and summary.eval_deterministic and np.isfinite(summary.mmer)
    policy, stored, ckpt = load_policy(tmp_path / "run")
    assert stored == cfg
    env = make_env(env_id, 2, seed=3)
    obs, state = env.reset(), None
    for _ in range(3):
        actions, state = policy.predict(obs, state, deterministic=True)
        obs, *_ = env.step(actions)
    assert (ckpt["task"]["obs_rms"] is not None) == (observation in ("box2d",))
    assert ckpt["task"]["ret_rms"] is not None


def test_the_fwm_cell_options_reach_every_core():
    """--fwm-beta-bias / --fwm-update-scale / --fwm-zero-output set the cell of the actor's and the critic's core;
    their defaults are the authors' (+1, 1/d_fwm) and leave other cores alone."""
    cfg = EnvTrainConfig(memory="fwm", d_fwm=8, fwm_beta_bias=-0.5, fwm_update_scale=1.0, fwm_zero_output=True)
    box, two = spaces.Box(-1, 1, (3,)), spaces.Discrete(2)
    policy = FwmPolicy(box, two, lambda _: 1e-3, **{**cfg.policy_kwargs, "shared_core": False})
    for core in (policy.core.actor, policy.core.critic):
        memory = core.memory
        assert (memory.beta_bias, memory.update_scale) == (-0.5, 1.0)
        assert not memory.W_o.weight.any()
    default = FwmPolicy(box, two, lambda _: 1e-3, **EnvTrainConfig(memory="fwm", d_fwm=8).policy_kwargs)
    assert (default.core.memory.beta_bias, default.core.memory.update_scale) == (1.0, 1 / 8)
    assert default.core.memory.W_o.weight.any()
    assert "beta_bias" not in EnvTrainConfig(memory="lstm").policy_kwargs
    assert (default.core.memory.tanh_first_query, default.core.memory.tanh_read_keys) == (False, False)
    assert default.core.residual and not default.core.cat_h and default.core.output_size == 32
    with pytest.raises(ValueError, match="fwm_update_scale"):
        EnvTrainConfig(memory="fwm", fwm_update_scale=0.0)


@pytest.mark.parametrize("output, width", [("sum", 32), ("reads", 32), ("both", 64)])
def test_what_the_fwm_heads_see(output, width):
    """--fwm-output sets what every core gives its heads (h_t + reads, the reads, or [h_t; reads]) and the heads take
    its width; --fwm-read-tanh puts eqs 5-6's tanh on the queries; a sequence gives the same as its steps one by one."""
    cfg = EnvTrainConfig(memory="fwm", d_fwm=8, fwm_output=output, fwm_read_tanh=True)
    box, two = spaces.Box(-1, 1, (3,)), spaces.Discrete(2)
    policy = FwmPolicy(box, two, lambda _: 1e-3, **{**cfg.policy_kwargs, "shared_core": False})
    for core in (policy.core.actor, policy.core.critic):
        assert (core.residual, core.cat_h, core.output_size) == (output == "sum", output == "both", width)
        assert core.memory.tanh_first_query and core.memory.tanh_read_keys
    core = policy.core.actor
    x = torch.randn(5, 2, 3)
    out, _ = core(x)
    state, steps = None, []
    for t in range(5):
        o, state = core(x[t : t + 1], state)
        steps.append(o)
    torch.testing.assert_close(out, torch.cat(steps), atol=1e-5, rtol=1e-5)
    if output == "both":  # the LSTM's state beside the reads
        torch.testing.assert_close(out[..., :32], core.lstm(x)[0])
    obs = torch.randn(4, 2, 3)
    starts = torch.zeros(4, 2, dtype=torch.bool)
    values, log_prob, _ = policy.evaluate_actions(obs, torch.zeros(4, 2, dtype=torch.long), policy.initial_state(2), starts)
    assert values.shape == (4, 2) and torch.isfinite(log_prob).all()
    with pytest.raises(ValueError, match="fwm_output"):
        EnvTrainConfig(memory="fwm", fwm_output="h")
    with pytest.raises(ValueError, match="output"):
        FwmPolicy(box, two, lambda _: 1e-3, output="h")


def test_the_memory_trains_at_its_own_learning_rate(tmp_path):
    """--fwm-memory-lr-scale puts the memories' weights (the actor's and the critic's) in an optimizer group of their
    own: from the same weights and gradients their first Adam step is that factor times the default's and every other
    weight's step is the default's; the algorithm's schedule keeps the factor; save and load keep it; 1 is one group."""
    box, two = spaces.Box(-1, 1, (3,)), spaces.Discrete(2)
    kwargs = {**EnvTrainConfig(memory="fwm", d_fwm=4, hidden_size=8).policy_kwargs, "shared_core": False}
    steps = {}
    for scale in (1.0, 0.1):
        torch.manual_seed(0)
        policy = FwmPolicy(box, two, lambda _: 1e-3, **{**kwargs, "memory_lr_scale": scale})
        before = {n: p.detach().clone() for n, p in policy.named_parameters()}
        obs, starts = torch.randn(4, 2, 3), torch.zeros(4, 2, dtype=torch.bool)
        values, log_prob, _ = policy.evaluate_actions(obs, torch.ones(4, 2, dtype=torch.long), policy.initial_state(2), starts)
        (values.pow(2).mean() - log_prob.mean()).backward()
        policy.optimizer.step()
        steps[scale] = {n: p.detach() - before[n] for n, p in policy.named_parameters()}
        assert len(policy.optimizer.param_groups) == (1 if scale == 1.0 else 2)
    memory = [n for n in steps[1.0] if ".memory." in n]
    assert {n.split(".")[1] for n in memory} == {"actor", "critic"} and len(memory) < len(steps[1.0])
    for name, step in steps[1.0].items():
        expected = 0.1 * step if name in memory else step
        # (an Adam step is 1e-3 or 1e-4 here; the weights' float32 rounding, 3e-8)
        torch.testing.assert_close(steps[0.1][name], expected, rtol=1e-5, atol=1e-7)
        assert step.abs().max() > 1e-5, name
    env = make_env("CartPoleNoVel-v1", 2, seed=0)
    policy_kwargs = {**kwargs, "memory_lr_scale": 0.25}
    model = RecurrentPPO(
        "FwmPolicy", env, n_steps=8, n_epochs=1, n_minibatches=1, learning_rate=lambda p: 1e-3 * p, policy_kwargs=policy_kwargs
    )
    model.learn(32)
    lr = model.lr_schedule(model._current_progress_remaining)
    assert [g["lr"] for g in model.policy.optimizer.param_groups] == pytest.approx([lr, 0.25 * lr]) and lr < 1e-3
    model.save(tmp_path / "model.zip")
    loaded = RecurrentPPO.load(tmp_path / "model.zip", env=env)
    assert loaded.policy.memory_lr_scale == 0.25 and len(loaded.policy.optimizer.param_groups) == 2
    model.policy.save(tmp_path / "policy.zip")  # SB3's policy file: rebuilt from its constructor parameters
    assert FwmPolicy.load(tmp_path / "policy.zip").memory_lr_scale == 0.25
    assert EnvTrainConfig(memory="fwm", fwm_memory_lr_scale=0.5).policy_kwargs["memory_lr_scale"] == 0.5
    with pytest.raises(ValueError, match="fwm_memory_lr_scale"):
        EnvTrainConfig(memory="fwm", fwm_memory_lr_scale=0.0)
    with pytest.raises(ValueError, match="memory_lr_scale"):
        FwmPolicy(box, two, lambda _: 1e-3, memory_lr_scale=-1.0)
