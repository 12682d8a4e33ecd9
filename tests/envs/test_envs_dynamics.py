"""Every dynamics rule of the batched core, in both semantics, against per-environment references."""

import numpy as np
import pytest
import torch

from fwm_rl.envs.core import GraphBatch, TaskConfig
from fwm_rl.envs.graphs import paper_graph_sets

# A hand-made graph: the ring 0 -0-> 1 -0-> 2 -0-> 3 -0-> 4 -0-> 0, plus 0 -1-> 2 and 3 -2-> 1.
RING = np.zeros((1, 3, 5, 5))
RING[0, 0, np.arange(5), (np.arange(5) + 1) % 5] = 1
RING[0, 1, 0, 2] = 1
RING[0, 2, 3, 1] = 1


class Scripted:
    """Stands in for a backend's ``random``: returns the given uniforms, one list per call."""

    def __init__(self, values):
        self.values = list(values)

    def __call__(self, shape):
        return np.asarray(self.values.pop(0), dtype=float).reshape(shape)


def _batch(semantics, draws, **kwargs):
    batch = GraphBatch(1, graphs=RING, config=TaskConfig(semantics=semantics, **kwargs))
    batch.backend.random = Scripted(draws)
    return batch


def _uniform(k, n):
    """A uniform draw u with floor(u * n) == k."""
    return (k + 0.5) / n


@pytest.mark.parametrize("semantics", ["paper", "released_code"])
def test_reset_places_reward_uniformly_and_agent_elsewhere(semantics):
    batch = GraphBatch(5000, config=TaskConfig(semantics=semantics), seed=0)
    obs = batch.reset()
    reward, agent = batch.reward_location, batch.agent_location
    assert (reward != agent).all()
    assert np.allclose(np.bincount(reward, minlength=5) / 5000, 0.2, atol=0.03)
    assert np.array_equal(obs[:, :5].argmax(1), reward) and np.array_equal(obs[:, 5:10].argmax(1), agent)
    assert (obs[:, :5].sum(1) == 1).all() and (obs[:, 5:10].sum(1) == 1).all()


@pytest.mark.parametrize("semantics", ["paper", "released_code"])
def test_valid_move_invalid_penalty_and_observation_layout(semantics):
    released = semantics == "released_code"
    # reset: reward at 4, agent at 0 (agent index 0 among the states other than 4)
    batch = _batch(semantics, [[_uniform(4, 5), _uniform(0, 4)]] + [[0.0, 0.0]] * 5)
    obs = batch.reset()
    assert (batch.reward_location[0], batch.agent_location[0]) == (4, 0)
    no_action = 14 if released else 13  # released: the "no action" bit is the bias bit
    expected = np.zeros(17, np.float32)
    expected[[4, 5, no_action, 14]] = 1
    assert np.array_equal(obs[0], expected)

    obs, reward, terminated, truncated = batch.step(np.array([1]))  # 0 -1-> 2: valid, no reward
    assert batch.agent_location[0] == 2 and reward[0] == 0 and batch.valid[0] and not batch.reached[0]
    assert obs[0, 7] == 1 and obs[0, (12 if released else 11)] == 1 and np.isclose(obs[0, 15], 1 / 30)
    assert not terminated[0] and not truncated[0]

    obs, reward, *_ = batch.step(np.array([2]))  # state 2 has no action 2: penalty, stays
    assert batch.agent_location[0] == 2 and np.isclose(reward[0], -0.05) and not batch.valid[0]
    assert obs[0, 16] == (0.0 if released else np.float32(-0.05))  # released: reward slot always 0
    assert obs[0, (13 if released else 12)] == 1 and obs[0, 14] == 1
    assert obs[0, 10:14].sum() + obs[0, 14] == 2  # one action bit and the bias


@pytest.mark.parametrize("semantics", ["paper", "released_code"])
def test_reaching_the_reward(semantics):
    released = semantics == "released_code"
    # reset: reward 2, agent 1; then after reaching: reward draw 0, agent draw 0
    draws = [[_uniform(2, 5), _uniform(1, 4)], [0.0, 0.0], [_uniform(0, 4 if released else 5), _uniform(0, 4)]]
    batch = _batch(semantics, draws)
    batch.reset()
    batch.step(np.array([2]))  # invalid at 1: timer 1
    assert batch.timer[0] == 1
    obs, reward, *_ = batch.step(np.array([0]))  # 1 -0-> 2 = reward
    assert reward[0] == 10 and batch.reached[0] and batch.placed[0]
    assert batch.reward_location[0] == 0 and batch.agent_location[0] == 1  # agent drawn among states != 0
    assert batch.timer[0] == (1 if released else 0)  # the released code does not reset the timer here
    assert obs[0, 16] == (0.0 if released else 10.0)
    assert obs[0, (11 if released else 10)] == 1  # the previous action is kept after reaching the reward


def test_released_code_never_places_the_reward_where_it_was():
    batch = GraphBatch(4000, graphs=paper_graph_sets()[1], config=TaskConfig(semantics="released_code"), seed=1)
    batch.reset()
    rng = np.random.default_rng(0)
    moved = 0
    for _ in range(29):
        before = batch.reward_location.copy()
        batch.step(rng.integers(0, 3, 4000))
        placed = batch.placed
        assert (batch.reward_location[placed] != before[placed]).all()
        moved += placed.sum()
    assert moved > 1000
    paper = GraphBatch(4000, graphs=paper_graph_sets()[1], seed=1)
    paper.reset()
    same = 0
    for _ in range(29):
        before = paper.reward_location.copy()
        paper.step(rng.integers(0, 3, 4000))
        same += (paper.reward_location[paper.placed] == before[paper.placed]).sum()
    assert same > 0  # the paper's placement is uniform over all states


@pytest.mark.parametrize("semantics", ["paper", "released_code"])
def test_timeout_after_six_unsuccessful_steps(semantics):
    released = semantics == "released_code"
    # reset: reward 4, agent 1. Invalid action 1 at state 1 five times, then a sixth.
    draws = [[_uniform(4, 5), _uniform(1, 4)]] + [[0.0, 0.0]] * 5 + [[_uniform(0, 4), _uniform(0, 4)]]
    batch = _batch(semantics, draws)
    batch.reset()
    for k in range(5):
        batch.step(np.array([1]))
        assert batch.timer[0] == k + 1 and not batch.placed[0]
    obs, reward, *_ = batch.step(np.array([1]))
    assert batch.placed[0] and not batch.reached[0] and batch.timer[0] == 0
    # new reward: released excludes the old location 4 (index 0 of {0,1,2,3}); paper draws over all 5
    assert batch.reward_location[0] == 0 and batch.agent_location[0] == 1
    assert np.isclose(reward[0], -0.05)
    if released:  # a timeout also clears the previous action to "no action" (on the bias bit)
        assert batch.previous_action[0] == 3 and obs[0, 10:14].sum() == 0
    else:
        assert batch.previous_action[0] == 1 and obs[0, 11] == 1


def test_timer_counts_since_placement_only_in_paper_semantics():
    # reward 2, agent 1; invalid x3 (timer 3), reach (paper: 0, released: 3), then 3 invalid steps
    for semantics, placed_at in (("paper", None), ("released_code", 3)):
        draws = [[_uniform(2, 5), _uniform(1, 4)]] + [[0.0, 0.0]] * 3 + [[_uniform(3, 4), _uniform(0, 4)]] + [[0.0, 0.0]] * 3
        batch = _batch(semantics, draws)
        batch.reset()
        for _ in range(3):
            batch.step(np.array([2]))
        batch.step(np.array([0]))  # reaches 2; reward placed at 3 (paper) / 4 (released skips 2), agent at 0
        timeouts = []
        for k in range(3):
            batch.step(np.array([2]))  # state 0 has no action 2
            if batch.placed[0]:
                timeouts.append(k + 1)
        assert timeouts == ([] if placed_at is None else [placed_at]), semantics


@pytest.mark.parametrize("semantics", ["paper", "released_code"])
def test_episode_ends_after_horizon(semantics):
    batch = GraphBatch(3, graphs=RING, config=TaskConfig(semantics=semantics, horizon=7), seed=0)
    batch.reset()
    for k in range(7):
        obs, _, terminated, truncated = batch.step(np.zeros(3, dtype=int))
        assert np.allclose(obs[:, 15], (k + 1) / 7)
        assert terminated.all() == (k == 6) and not truncated.any()
    with pytest.raises(RuntimeError, match="reset"):
        batch.step(np.zeros(3, dtype=int))
    assert batch.reset()[:, 15].sum() == 0


def _reference_step(state, action, graph, cfg):
    """One step of one environment, written per rule from the task's description (paper or released code)."""
    reward_loc, agent, previous, timer = state
    released = cfg.semantics == "released_code"
    targets = np.flatnonzero(graph[action, agent])
    reached = len(targets) == 1 and targets[0] == reward_loc
    reward = np.float32(0.0)
    if len(targets) == 0:
        reward -= np.float32(cfg.penalty)
    elif reached:
        reward += np.float32(cfg.reward)
    else:
        agent = targets[0]
    if released:
        timer = timer if reached else timer + 1
    else:
        timer = 0 if reached else timer + 1
    timeout = timer >= cfg.reset_after
    if timeout:
        timer = 0
    previous = cfg.n_actions if (released and timeout) else action
    return (reward_loc, agent, previous, timer), reward, reached or timeout


def _reference_obs(state, last_reward, step, cfg):
    reward_loc, agent, previous, _ = state
    obs = np.zeros(17, np.float32)
    obs[reward_loc] = 1
    obs[5 + agent] = 1
    if cfg.semantics == "released_code":
        obs[10 + previous + 1] = 1  # indices 11..14; "no action" (3) is index 14, the bias
        obs[14] = 1
        obs[15] = step / cfg.horizon
    else:
        obs[10 + previous] = 1
        obs[14] = 1
        obs[15] = step / cfg.horizon
        obs[16] = last_reward
    return obs


@pytest.mark.parametrize("semantics", ["paper", "released_code"])
def test_batch_matches_per_environment_reference(semantics):
    cfg = TaskConfig(semantics=semantics)
    graphs = paper_graph_sets()[1][:64]
    batch = GraphBatch(64, graphs=graphs, config=cfg, seed=3)
    rng = np.random.default_rng(4)
    for _ in range(2):
        obs = batch.reset()
        states = [(int(r), int(a), cfg.n_actions, 0) for r, a in zip(batch.reward_location, batch.agent_location)]
        for i in range(64):
            assert np.array_equal(obs[i], _reference_obs(states[i], 0.0, 0, cfg))
        for step in range(1, cfg.horizon + 1):
            actions = rng.integers(0, 3, 64)
            old_reward = batch.reward_location.copy()
            obs, reward, terminated, _ = batch.step(actions)
            for i in range(64):
                new_state, ref_reward, placed = _reference_step(states[i], actions[i], graphs[i], cfg)
                assert placed == batch.placed[i]
                if placed:  # the placement is random: take the core's, after checking its constraints
                    r, a = int(batch.reward_location[i]), int(batch.agent_location[i])
                    assert r != a and (cfg.semantics != "released_code" or r != old_reward[i])
                    new_state = (r, a, new_state[2], new_state[3])
                states[i] = new_state
                assert reward[i] == ref_reward
                assert np.array_equal(obs[i], _reference_obs(new_state, ref_reward, step, cfg)), (step, i)
            assert terminated.all() == (step == cfg.horizon)


def _shared_uniforms(seed):
    stream = np.random.default_rng(seed)
    return lambda shape: stream.random(shape)


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=pytest.mark.gpu)])
@pytest.mark.parametrize("sampled", [False, True])
def test_torch_core_equals_numpy_core(sampled, device):
    cfg = TaskConfig()
    graphs = None if sampled else paper_graph_sets()[0][:200]
    np_batch = GraphBatch(200, graphs=graphs, config=cfg)
    torch_batch = GraphBatch(200, graphs=graphs, config=cfg, device=device)
    np_batch.backend.random = _shared_uniforms(7)
    from_numpy = _shared_uniforms(7)
    torch_batch.backend.random = lambda shape: torch.from_numpy(from_numpy(shape)).to(device)
    rng = np.random.default_rng(0)
    for _ in range(2):
        a, b = np_batch.reset(), torch_batch.reset()
        assert isinstance(b, torch.Tensor) and b.dtype == torch.float32
        assert np.array_equal(np_batch.tables, torch_batch.tables.cpu().numpy())
        assert np.array_equal(a, b.cpu().numpy())
        for _ in range(cfg.horizon):
            actions = rng.integers(0, 3, 200)
            out_np = np_batch.step(actions)
            out_torch = torch_batch.step(torch.from_numpy(actions).to(device))
            for x, y in zip(out_np, out_torch):
                assert y.device.type == device and np.array_equal(x, y.cpu().numpy())
