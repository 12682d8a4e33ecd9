"""FWMGraph-v0 as Gymnasium / SB3 environments, single vs vector equivalence, errors, rendering, CLI, baselines."""

import argparse

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.utils.env_checker import check_env
from gymnasium.vector import AutoresetMode
from stable_baselines3.common.env_checker import check_env as sb3_check_env

import fwm_rl  # noqa: F401  (registers FWMGraph-v0)
from fwm_rl.envs import FWMGraphEnv, FWMGraphVectorEnv
from fwm_rl.envs import cli as envs_cli
from fwm_rl.envs.baselines import episode_returns, reference_levels


@pytest.mark.parametrize("kwargs", [{}, {"split": "test"}, {"split": "train", "semantics": "released_code"}])
def test_gymnasium_and_sb3_checkers(kwargs):
    check_env(gym.make("FWMGraph-v0", **kwargs).unwrapped, skip_render_check=True)
    sb3_check_env(FWMGraphEnv(**kwargs), warn=True)


def test_registration_and_make_vec():
    env = gym.make("fwm_rl:FWMGraph-v0")
    assert isinstance(env.unwrapped, FWMGraphEnv) and env.unwrapped.split == "random"
    assert env.observation_space.shape == (17,) and env.observation_space.dtype == np.float32
    venv = gym.make_vec("FWMGraph-v0", num_envs=600, split="train")
    assert isinstance(venv, FWMGraphVectorEnv) and venv.num_envs == 600
    assert venv.metadata["autoreset_mode"] == AutoresetMode.NEXT_STEP  # Gymnasium's usual mode
    obs, _ = venv.reset(seed=0)
    assert obs.shape == (600, 17) and venv.observation_space.contains(obs)
    assert np.array_equal(venv.core.graph_indices, np.arange(600))


def test_vector_autoreset_same_step_and_fresh_graphs():
    venv = FWMGraphVectorEnv(num_envs=16, horizon=5, autoreset_mode="same_step")
    venv.reset(seed=1)
    first_graphs = venv.core.tables.copy()
    for k in range(5):
        obs, _, terminated, truncated, infos = venv.step(np.zeros(16, dtype=int))
    assert terminated.all() and not truncated.any()
    assert infos["_final_obs"].all() and np.allclose(infos["final_obs"][:, 15], 1.0)
    assert np.allclose(obs[:, 15], 0.0) and np.allclose(obs[:, 10:14].argmax(1), 3)  # new episode
    assert not np.array_equal(first_graphs, venv.core.tables)
    obs, *_ = venv.step(np.zeros(16, dtype=int))
    assert np.allclose(obs[:, 15], 0.2)


def test_seeding_is_reproducible():
    runs = []
    for _ in range(2):
        env = gym.make("FWMGraph-v0")
        obs, _ = env.reset(seed=42)
        trace = [obs]
        for a in [0, 1, 2, 0, 1] * 8:
            obs, _, terminated, _, _ = env.step(a)
            trace.append(obs)
            if terminated:
                trace.append(env.reset()[0])
        runs.append(np.stack(trace))
    assert np.array_equal(*runs)
    v1, v2 = FWMGraphVectorEnv(num_envs=8), FWMGraphVectorEnv(num_envs=8)
    assert np.array_equal(v1.reset(seed=3)[0], v2.reset(seed=3)[0])


@pytest.mark.parametrize("semantics", ["paper", "released_code"])
def test_single_env_matches_vector_env(semantics):
    """Sub-environment i of the vector env behaves exactly as a single env on the same graph, given
    the same placement uniforms (the vector env's column i)."""
    n, steps = 6, 65  # crosses two episode boundaries
    draws = np.random.default_rng(0).random((steps + 3, 2, n))
    venv = FWMGraphVectorEnv(num_envs=n, split="test", semantics=semantics, autoreset_mode="same_step")
    counter = iter(range(len(draws)))
    venv.core.backend.random = lambda shape: draws[next(counter)]
    envs = [FWMGraphEnv(split="test", semantics=semantics) for _ in range(n)]
    counters = [iter(range(len(draws))) for _ in range(n)]
    for i, env in enumerate(envs):
        env.core.backend.random = lambda shape, i=i: draws[next(counters[i])][:, i : i + 1]
    vobs, _ = venv.reset()
    sobs = np.stack([env.reset(options={"graph_index": i})[0] for i, env in enumerate(envs)])
    assert np.array_equal(vobs, sobs)
    actions = np.random.default_rng(1).integers(0, 3, (steps, n))
    for k in range(steps):
        vobs, vrew, vterm, vtrunc, _ = venv.step(actions[k])
        results = [env.step(int(actions[k, i])) for i, env in enumerate(envs)]
        assert np.array_equal(vrew, np.array([r[1] for r in results], dtype=np.float32))
        assert np.array_equal(vterm, [r[2] for r in results]) and not vtrunc.any()
        sobs = np.stack([r[0] for r in results])
        if vterm.all():
            sobs = np.stack([env.reset(options={"graph_index": i})[0] for i, env in enumerate(envs)])
        assert np.array_equal(vobs, sobs), k


def test_torch_vector_env_returns_tensors():
    venv = FWMGraphVectorEnv(num_envs=32, split="test", device="cpu")
    obs, _ = venv.reset(seed=0)
    assert isinstance(obs, torch.Tensor) and obs.shape == (32, 17)
    obs, reward, terminated, truncated, _ = venv.step(torch.zeros(32, dtype=torch.long))
    assert reward.dtype == torch.float32 and terminated.dtype == truncated.dtype == torch.bool
    with pytest.raises(ValueError, match="outside the action space"):
        venv.step(torch.full((32,), 3))


def test_fixed_graph_index_and_info():
    env = FWMGraphEnv(split="train")
    _, info = env.reset(seed=0, options={"graph_index": 17})
    assert info["graph_index"] == 17
    from fwm_rl.envs.graphs import paper_graph_sets

    assert np.array_equal(env.graph, paper_graph_sets()[0][17])
    _, _, _, _, info = env.step(0)
    assert set(info) == {"valid_action", "reached_reward", "placed"}


def test_clear_errors():
    env = FWMGraphEnv(split="test")
    env.reset(seed=0)
    for bad in (3, -1, 1.5, "0"):
        with pytest.raises(ValueError, match="outside the action space"):
            env.step(bad)
    with pytest.raises(ValueError, match="out of range"):
        env.reset(options={"graph_index": 600})
    with pytest.raises(ValueError, match="unknown reset options"):
        env.reset(options={"graph": 1})
    with pytest.raises(ValueError, match="graph_index needs a graph set"):
        FWMGraphEnv().reset(options={"graph_index": 0})
    with pytest.raises(RuntimeError, match="reset"):
        FWMGraphEnv().step(0)
    venv = FWMGraphVectorEnv(num_envs=4, split="test")
    venv.reset(seed=0)
    with pytest.raises(ValueError, match=r"shape \(4,\)"):
        venv.step(np.zeros(5, dtype=int))
    with pytest.raises(ValueError, match=r"shape \(4,\)"):
        venv.step(np.zeros((4, 1), dtype=int))
    with pytest.raises(ValueError, match="outside the action space"):
        venv.step(np.array([0, 1, 2, 3]))
    with pytest.raises(ValueError, match="integers"):
        venv.step(np.zeros(4))
    with pytest.raises(ValueError, match="out of range"):
        venv.reset(options={"graph_indices": np.array([0, 1, 2, 600])})
    with pytest.raises(ValueError, match="unknown split"):
        FWMGraphEnv(split="validation")
    with pytest.raises(ValueError, match="not both"):
        FWMGraphVectorEnv(num_envs=2, split="train", graphs=np.zeros((1, 3, 5, 5)))
    with pytest.raises(ValueError, match="graphs must have shape"):
        FWMGraphVectorEnv(num_envs=2, graphs=np.zeros((1, 3, 4, 4)))
    with pytest.raises(ValueError, match="5 states and 3 actions"):
        FWMGraphEnv(split="train", n_states=6)
    for kwargs, match in [
        ({"n_states": 2}, "n_states"),
        ({"n_actions": 1}, "n_actions"),
        ({"horizon": 0}, "horizon"),
        ({"reset_after": -3}, "reset_after"),
        ({"penalty": -1.0}, "penalty"),
        ({"reward": float("nan")}, "reward"),
        ({"semantics": "code"}, "semantics"),
        ({"render_mode": "human"}, "render_mode"),
    ]:
        with pytest.raises(ValueError, match=match):
            FWMGraphEnv(**kwargs)
    with pytest.raises(ValueError, match="num_envs|n_envs"):
        FWMGraphVectorEnv(num_envs=0)


def test_other_task_sizes_run():
    env = FWMGraphEnv(n_states=7, n_actions=4, horizon=12, reward=1.0, penalty=0.5)
    obs, _ = env.reset(seed=0)
    assert obs.shape == (2 * 7 + 4 + 4,)
    check_env(env, skip_render_check=True)


def test_render_modes(tmp_path):
    env = FWMGraphEnv(split="test", render_mode="ansi")
    env.reset(seed=0, options={"graph_index": 3})
    text = env.render()
    assert "step 0/30" in text and "[A" in text and "R]" in text and len(text.splitlines()) == 6
    env = FWMGraphEnv(split="test", render_mode="rgb_array")
    env.reset(seed=0)
    image = env.render()
    assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3
    assert (image == [0x6C, 0xC2, 0x4A]).all(-1).sum() > 100  # the agent's green node is drawn


def _run_cli(argv):
    parser = argparse.ArgumentParser()
    envs_cli.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(argv)
    return args.func(args)


def test_cli_show_graph_and_baselines(tmp_path, capsys):
    out = tmp_path / "g" / "graph.png"
    assert _run_cli(["show-graph", "--split", "test", "--index", "5", "--agent", "0", "--out", str(out)]) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert _run_cli(["show-graph", "--seed", "3", "--out", str(tmp_path / "s.png")]) == 0
    with pytest.raises(ValueError, match="out of range"):
        _run_cli(["show-graph", "--split", "train", "--index", "600", "--out", str(out)])
    assert _run_cli(["baselines", "--split", "test", "--episodes", "300"]) == 0
    printed = capsys.readouterr().out
    assert all(name in printed for name in ("random", "explorer", "oracle"))
    with pytest.raises(SystemExit):  # argparse lists the choices, random among them
        _run_cli(["baselines", "--split", "validation", "--episodes", "10"])
    assert "'random'" in capsys.readouterr().err


def test_reference_levels_order_and_scale():
    levels = reference_levels("test", n_episodes=600, seed=0)
    assert set(levels) == {"random", "explorer", "oracle"}
    (r, r_se), (e, e_se), (o, _) = levels["random"], levels["explorer"], levels["oracle"]
    assert r + 10 * r_se < e and e + 10 * e_se < o
    assert o <= 10 * 30  # at most one reward per step
    # the oracle never takes an invalid action, so its totals are multiples of the reward
    assert np.allclose(episode_returns("oracle", "test", 100, 0) % 10, 0)
    with pytest.raises(ValueError, match="unknown policy"):
        episode_returns("greedy")
    with pytest.raises(ValueError, match="n_episodes"):
        reference_levels(n_episodes=1)


def test_invalid_graphs_are_refused_naming_the_rule():
    import gymnasium as gym

    from fwm_rl.envs import GraphBatch, TaskConfig
    from fwm_rl.envs.graphs import graph_set, validate_graphs

    good = np.asarray(graph_set("test")[:3], dtype=np.float32)
    validate_graphs(good)  # the paper's graphs pass
    cases = {
        "is not strongly connected": np.zeros_like(good),
        "has a self-loop": good.copy(),
        "has an entry other than 0 or 1": good.copy(),
        "is not deterministic": good.copy(),
    }
    a0, s0 = np.argwhere(good[1].sum(-1) == 0)[0]  # an action with no edge there: the loop is its only target
    cases["has a self-loop"][1, a0, s0, s0] = 1
    cases["has an entry other than 0 or 1"][2, 1, 0, 3] = np.nan
    a, s = np.argwhere(good[0].sum(-1) == 1)[0]
    cases["is not deterministic"][0, a, s] = 1 - np.eye(5)[s]  # every other location at once
    neg = good.copy()
    neg[0, 0, 0, 1] = -1
    cases["has an entry other than 0 or 1 (-1"] = neg
    for rule, graphs in cases.items():
        with pytest.raises(ValueError, match=r"graph \d+ " + rule.replace("(", r"\(")):
            GraphBatch(4, graphs=graphs)
    with pytest.raises(ValueError, match="not strongly connected"):
        gym.make("FWMGraph-v0", graphs=np.zeros((1, 3, 5, 5)))
    with pytest.raises(ValueError, match="limited to 64 locations"):
        GraphBatch(4, config=TaskConfig(n_states=400))


@pytest.mark.parametrize(
    "env_id",
    [
        "FWMGraph-v0",
        "FWMGraphTrain-v0",
        "FWMGraphValid-v0",
        "FWMGraphTest-v0",
        "FWMGraphReleased-v0",
        "FWMGraphReleasedTrain-v0",
        "FWMGraphReleasedValid-v0",
        "FWMGraphReleasedTest-v0",
    ],
)
def test_registered_ids_fix_the_split_and_the_rules(env_id):
    from fwm_rl.envs import ENV_IDS
    from fwm_rl.envs.graphs import graph_set

    split = ENV_IDS[env_id].get("split", "random")
    semantics = ENV_IDS[env_id].get("semantics", "paper")
    env = gym.make(env_id).unwrapped
    venv = gym.make_vec(env_id, num_envs=600 if split != "random" else 4)
    for e in (env, venv):
        assert (e.split, e.config.semantics) == (split, semantics)
    if split != "random":
        venv.reset(seed=0)
        assert np.array_equal(np.asarray(venv.core.graphs), np.asarray(graph_set(split), dtype=np.float32))
    assert gym.make(env_id, semantics="paper").unwrapped.config.semantics == "paper"  # keywords still override
