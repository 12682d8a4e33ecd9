"""Recurrent A2C on any Gymnasium env (fwm-rl train --env): the trainer, its CLI, HideVelocity, Dict observations."""

from __future__ import annotations

import csv
import dataclasses
import json

import gymnasium as gym
import numpy as np
import pytest
import torch
from stable_baselines3.common.vec_env import VecNormalize

import fwm_rl  # noqa: F401  (registers CartPoleNoVel-v1)
from fwm_rl.agents import FWMGraphVecEnv, RecurrentA2C, RecurrentPPO
from fwm_rl.agents.config import A2CConfig, EnvTrainConfig
from fwm_rl.agents.env_training import check_env_id, evaluate_env, make_env, make_env_model, make_eval_env
from fwm_rl.agents.training import load_policy, read_run_checkpoint, train_run
from fwm_rl.cli import main
from fwm_rl.envs import HideVelocity

TINY = {
    "n_envs": 4,
    "n_steps": 16,
    "steps": 128,
    "eval_every": 64,
    "eval_episodes": 2,
    "final_eval_episodes": 4,
    "hidden_size": 8,
}


class DictObsEnv(gym.Env):
    """A memory task with a Dict of Box observation: the cue is shown at the first step only; acting on it pays 1 at the last."""

    observation_space = gym.spaces.Dict({"cue": gym.spaces.Box(0.0, 1.0, (2,)), "time": gym.spaces.Box(0.0, 1.0, (1,))})
    action_space = gym.spaces.Discrete(2)
    metadata = {"render_modes": ["rgb_array"]}  # SB3's make_vec_env asks for it

    def __init__(self, render_mode=None):
        self.render_mode = render_mode

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.cue, self.t = int(self.np_random.integers(2)), 0
        return self._obs(), {}

    def _obs(self):
        cue = np.eye(2, dtype=np.float32)[self.cue] if self.t == 0 else np.zeros(2, dtype=np.float32)
        return {"cue": cue, "time": np.array([self.t / 4], dtype=np.float32)}

    def step(self, action):
        self.t += 1
        done = self.t == 4
        return self._obs(), float(done and action == self.cue), done, False, {}


class TupleActionEnv(DictObsEnv):
    """Actions no policy takes (a Tuple)."""

    action_space = gym.spaces.Tuple((gym.spaces.Discrete(2), gym.spaces.Discrete(2)))


if "TestDictCue-v0" not in gym.registry:
    gym.register("TestDictCue-v0", entry_point=DictObsEnv)
    gym.register("TestTupleAction-v0", entry_point=TupleActionEnv)


def rows(run_dir) -> list[dict]:
    with open(run_dir / "metrics.csv", newline="") as fh:
        return list(csv.DictReader(fh))


def test_hide_velocity():
    env = gym.make("CartPoleNoVel-v1")
    full = gym.make("CartPole-v1")
    assert env.observation_space.shape == (2,) and env.action_space == full.action_space
    obs, _ = env.reset(seed=3)
    full_obs, _ = full.reset(seed=3)
    assert np.array_equal(obs, full_obs[[0, 2]])
    obs, *_ = env.step(1)
    full_obs, *_ = full.step(1)
    assert np.array_equal(obs, full_obs[[0, 2]])
    assert gym.make("AcrobotNoVel-v1").observation_space.shape == (4,)
    assert gym.make("MountainCarNoVel-v0").observation_space.shape == (1,)
    assert HideVelocity(gym.make("Pendulum-v1"), indices=(2,)).observation_space.shape == (2,)
    with pytest.raises(ValueError, match="does not know the velocities of 'MountainCarContinuous'"):
        HideVelocity(gym.make("MountainCarContinuous-v0"))
    with pytest.raises(ValueError, match="some but not all"):
        HideVelocity(gym.make("CartPole-v1"), indices=(0, 1, 2, 3))


def test_check_env_id_and_make_env():
    obs, actions = check_env_id("TestDictCue-v0")
    assert obs.shape == (3,) and actions.n == 2
    venv = make_env("TestDictCue-v0", 3, seed=0)
    assert venv.observation_space.shape == (3,) and venv.reset().shape == (3, 3)
    assert isinstance(make_env("FWMGraph-v0", 600), FWMGraphVecEnv)  # fresh graphs: the native batched env
    # A fixed set: every copy draws from the whole set (the native env would give copy i graph i only)
    fixed = make_env("FWMGraphTest-v0", 3, seed=0)
    drawn = set()
    for _ in range(5):
        fixed.reset()
        drawn |= {info["graph_index"] for info in fixed.reset_infos}
    assert len(drawn) > 3 and max(drawn) >= 3
    assert make_env("FWMGraphReleased-v0", 2).venv.config.semantics == "released_code"
    for env_id, match in (
        ("TestTupleAction-v0", "Discrete, Box, MultiDiscrete or MultiBinary actions"),
        ("Nope-v0", "unknown environment 'Nope-v0'"),
    ):
        with pytest.raises(ValueError, match=match):
            check_env_id(env_id)


def test_evaluate_env_counts_episodes_per_copy():
    policy = load_env_policy_free("TestDictCue-v0")
    env = make_env("TestDictCue-v0", 3, seed=0)
    mean, sem = evaluate_env(policy, env, 7)
    assert 0.0 <= mean <= 1.0 and np.isfinite(sem)


def load_env_policy_free(env_id: str):
    """An untrained FWM policy for ``env_id``."""
    return make_env_model(EnvTrainConfig(env_id=env_id, **TINY), make_env(env_id, 2), torch.device("cpu")).policy


@pytest.mark.parametrize("memory", ["fwm", "lstm", "gru"])
def test_train_resume_and_eval(tmp_path, memory, capsys):
    cfg = EnvTrainConfig(env_id="CartPoleNoVel-v1", memory=memory, **TINY)
    summary = train_run(cfg, tmp_path / "run", show_progress=False)
    assert summary.timesteps == 128 and summary.eval_episodes == 4 and summary.label.endswith("on CartPoleNoVel-v1")
    assert [r["step"] for r in rows(tmp_path / "run")] == ["64", "128"]
    assert json.loads((tmp_path / "run" / "results.json").read_text())["eval_return"] == summary.eval_return
    # Resume to 192 steps (the CLI may change --steps, whose SB3 name --total-timesteps still works)
    # (a run's checkpoint.pt names its folder too)
    assert (
        main(["train", "--resume", str(tmp_path / "run" / "checkpoint.pt"), "--total-timesteps", "192", "--no-progress"]) == 0
    )
    assert [r["step"] for r in rows(tmp_path / "run")] == ["64", "128", "192"]
    assert "| agent | steps |" in capsys.readouterr().out
    assert main(["train", "--resume", str(tmp_path / "run"), "--lr", "0.1"]) == 2
    assert (
        "only --steps, --device, --time-budget and --final-eval-episodes may change, not --lr (--learning-rate)"
        in capsys.readouterr().err
    )
    policy, loaded, _ = load_policy(tmp_path / "run")
    assert loaded == dataclasses.replace(cfg, steps=192) and isinstance(policy, torch.nn.Module)
    assert main(["eval", str(tmp_path / "run")]) == 0
    assert "on CartPoleNoVel-v1" in capsys.readouterr().out
    assert main(["eval", str(tmp_path / "run"), "--split", "test"]) == 2
    capsys.readouterr()
    assert main(["plot", str(tmp_path / "run"), "--out", str(tmp_path / "f.png")]) == 2
    assert "runs on a Gymnasium env (fwm-rl train --env); fwm-rl plot draws graph-task runs" in capsys.readouterr().err


def test_dict_observations_and_the_native_graph_env(tmp_path):
    train_run(EnvTrainConfig(env_id="TestDictCue-v0", **TINY), tmp_path / "dict", show_progress=False)
    summary = train_run(
        EnvTrainConfig(env_id="FWMGraph-v0", **{**TINY, "n_steps": 30, "steps": 240, "eval_every": 120}),
        tmp_path / "graph",
        show_progress=False,
    )
    assert summary.timesteps == 240 and np.isfinite(summary.eval_return)


def test_observations_are_normalised_by_stored_statistics(tmp_path):
    cfg = EnvTrainConfig(env_id="CartPoleNoVel-v1", memory="lstm", **TINY)
    train_run(cfg, tmp_path / "run", show_progress=False)
    ckpt, loaded = read_run_checkpoint(tmp_path / "run")
    rms = ckpt["task"]["obs_rms"]
    assert (
        loaded.normalizes_obs(gym.spaces.Box(-1, 1, (2,))) and rms["mean"].shape == (2,) and rms["count"] > 128
    )  # every training step counted
    # evaluation uses the frozen statistics: its observations are the raw ones standardised
    raw, frozen = make_env("CartPoleNoVel-v1", 2, seed=3), make_eval_env(ckpt, 2, seed=3)
    mean, var = rms["mean"].numpy(), rms["var"].numpy()  # (float64 tensors in the checkpoint: it holds no NumPy objects)
    np.testing.assert_allclose(frozen.reset(), np.clip((raw.reset() - mean) / np.sqrt(var + 1e-8), -10, 10), rtol=1e-5)
    # resuming continues the statistics
    train_run(dataclasses.replace(cfg, steps=192), tmp_path / "run", resume=True, show_progress=False)
    assert read_run_checkpoint(tmp_path / "run")[0]["task"]["obs_rms"]["count"] > rms["count"] + 63
    # off on request, and never for the graph task (one-hot observations)
    train_run(dataclasses.replace(cfg, normalize_obs=False), tmp_path / "raw", show_progress=False)
    assert read_run_checkpoint(tmp_path / "raw")[0]["task"]["obs_rms"] is None
    graph_obs, _ = check_env_id("FWMGraph-v0")
    assert not EnvTrainConfig(env_id="FWMGraph-v0").normalizes_obs(graph_obs)
    assert EnvTrainConfig(env_id="CartPoleNoVel-v1").normalizes_obs(graph_obs)  # (a Box of another id)
    assert not EnvTrainConfig(env_id="CartPoleNoVel-v1").normalizes_obs(gym.spaces.Discrete(3))  # one-hot: never
    # format-1 checkpoints from before the option did not normalise, and still evaluate
    old = {
        "kind": "a2c-env",
        "config": {k: v for k, v in ckpt["configs"]["train"].items() if k != "normalize_obs"},
        "timesteps": ckpt["step"],
        "policy": ckpt["model"],
        "optimizer": ckpt["optimizer"],
        "train_seconds": 1.0,
        "train_return": 0.0,
    }
    torch.save(old, tmp_path / "old.pt")
    old, loaded = read_run_checkpoint(tmp_path / "old.pt")
    assert not loaded.normalize_obs and not isinstance(make_eval_env(old, 2), VecNormalize)


def test_refusals(tmp_path, monkeypatch):
    cfg = EnvTrainConfig(env_id="CartPoleNoVel-v1", **TINY)
    train_run(cfg, tmp_path / "run", show_progress=False)
    # a graph-task run cannot resume an --env run's checkpoint: the message names what it is
    with pytest.raises(ValueError, match="is a checkpoint of an A2C or PPO run on a Gymnasium env"):
        train_run(A2CConfig(name="fwm", steps=2, n_envs=4, device="cpu"), tmp_path / "run", resume=True, show_progress=False)
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(ValueError, match="trains in one process; start it without torchrun"):
        train_run(cfg, tmp_path / "other", show_progress=False)


def test_time_budget_stops_after_the_update_that_spends_it(tmp_path):
    # one update is 64 steps; the logs would come every 128: the run stops after its first update, logged and saved
    cfg = EnvTrainConfig(env_id="CartPoleNoVel-v1", time_budget=1e-6, **{**TINY, "eval_every": 128})
    summary = train_run(cfg, tmp_path / "run", show_progress=False)
    assert summary.stopped_by_time_budget and summary.timesteps == 64
    assert [row["step"] for row in rows(tmp_path / "run")] == ["64"]
    assert read_run_checkpoint(tmp_path / "run")[0]["step"] == 64


def test_logs_at_the_first_update_past_each_interval(tmp_path):
    # updates of 64 steps, logs every 100: at 128, 256 (the update past 200), 320 (the last)
    train_run(
        EnvTrainConfig(env_id="CartPoleNoVel-v1", **{**TINY, "steps": 300, "eval_every": 100}),
        tmp_path / "run",
        show_progress=False,
    )
    assert [row["step"] for row in rows(tmp_path / "run")] == ["128", "256", "320"]


def test_cli(tmp_path, capsys):
    out = tmp_path / "run"
    args = [
        "train",
        "--env",
        "CartPoleNoVel-v1",
        "--memory",
        "lstm",
        "--hidden-size",
        "8",
        "--total-timesteps",
        "64",
        "--eval-every",
        "64",
        "--n-envs",
        "2",
        "--n-steps",
        "8",
        "--eval-episodes",
        "1",
        "--final-eval-episodes",
        "2",
        "--gamma",
        "0.9",
        "--gae-lambda",
        "1",
        "--ent-coef",
        "0",
        "--vf-coef",
        "0.25",
        "--lr",
        "0.003",
        "--seed",
        "4",
        "--out",
        str(out),
    ]
    assert main([*args, "--print-config"]) == 0
    config = json.loads(capsys.readouterr().out)["config"]
    assert config == {
        **EnvTrainConfig().to_dict(),
        "memory": "lstm",
        "hidden_size": 8,
        "steps": 64,
        "eval_every": 64,
        "n_envs": 2,
        "n_steps": 8,
        "eval_episodes": 1,
        "final_eval_episodes": 2,
        "gamma": 0.9,
        "gae_lambda": 1.0,
        "ent_coef": 0.0,
        "vf_coef": 0.25,
        "lr": 0.003,
        "seed": 4,
    }
    assert main([*args, "--no-progress"]) == 0
    assert "LSTM-8 on CartPoleNoVel-v1 | 64 |" in capsys.readouterr().out
    assert main([*args, "--no-progress"]) == 2  # the folder holds a run
    assert "already holds a run" in capsys.readouterr().err
    for bad, message in (
        (["--env", "CartPoleNoVel-v1", "--preset", "cpu"], "--preset is an option of the graph task"),
        (["--n-steps", "5"], "--n-steps is an option of --env runs"),
        (["--preset", "cpu", "--memory", "lstm"], "preset cpu trains 2 runs"),
        (["--env", "FWMGraphTrain-v0", "--semantics", "released_code"], "fixes the rules to paper"),
        (["--env", "TestTupleAction-v0"], "Discrete, Box, MultiDiscrete or MultiBinary actions"),
        (["--env", "CartPoleNoVel-v1", "--resume", str(out)], "drop --env"),
    ):
        assert main(["train", *bad, "--print-config"]) == 2, bad
        assert message in capsys.readouterr().err


def test_graph_training_ids_select_the_graph_trainer(capsys):
    assert (
        main(
            [
                "train",
                "--env",
                "FWMGraphReleasedTrain-v0",
                "--preset",
                "paper-lstm-512",
                "--hidden-size",
                "64",
                "--gamma",
                "0.8",
                "--print-config",
            ]
        )
        == 0
    )
    (run,) = json.loads(capsys.readouterr().out)["runs"]
    assert (run["semantics"], run["memory"], run["hidden_size"], run["gamma"], run["name"]) == (
        "released_code",
        "lstm",
        64,
        0.8,
        "lstm-64",
    )


def test_resuming_a_finished_env_run_says_so_and_changes_nothing(tmp_path, capsys):
    run = tmp_path / "run"
    train_run(EnvTrainConfig(env_id="CartPoleNoVel-v1", **TINY), run, show_progress=False)
    files = lambda: {path: path.read_bytes() for path in run.rglob("*") if path.is_file() and not path.name.startswith(".")}  # noqa: E731
    before = files()
    for _ in range(2):
        capsys.readouterr()
        assert main(["train", "--resume", str(run), "--no-progress"]) == 0
        assert capsys.readouterr().out.splitlines() == [
            f"fwm-rl train: {run}: the run is finished (128 of 128 environment steps done; its results are in results.json); "
            "resume with a larger --steps to train it further"
        ]
        assert files() == before
    assert main(["train", "--resume", str(run), "--steps", "192", "--no-progress"]) == 0
    assert [r["step"] for r in rows(run)] == ["64", "128", "192"]


def test_ppo_from_the_command_line(tmp_path, capsys):
    """``--algo ppo`` trains an --env run with RecurrentPPO (n_epochs x n_minibatches optimizer steps per rollout, where
    A2C takes one), resumes and evaluates; PPO's options are refused without it."""
    tiny = [
        "--memory",
        "gru",
        "--hidden-size",
        "8",
        "--n-envs",
        "4",
        "--n-steps",
        "16",
        "--steps",
        "128",
        "--eval-every",
        "64",
        "--eval-episodes",
        "2",
        "--final-eval-episodes",
        "4",
        "--no-progress",
    ]
    for algo, extra, steps_per_rollout in (("ppo", ["--n-epochs", "3", "--n-minibatches", "2"], 6), ("a2c", [], 1)):
        run = tmp_path / algo
        assert main(["train", "--env", "CartPoleNoVel-v1", "--algo", algo, *extra, *tiny, "--out", str(run)]) == 0
        ckpt, cfg = read_run_checkpoint(run)
        assert cfg.algo == algo and isinstance(
            make_env_model(cfg, make_env(cfg.env_id, 4), torch.device("cpu")), RecurrentPPO if algo == "ppo" else RecurrentA2C
        )
        adam_steps = {int(s["step"]) for s in ckpt["optimizer"]["state"].values()}
        assert adam_steps == {2 * steps_per_rollout}  # two rollouts of 4 x 16 steps
    assert "(PPO)" in capsys.readouterr().out
    assert main(["train", "--resume", str(tmp_path / "ppo"), "--total-timesteps", "192", "--no-progress"]) == 0
    assert read_run_checkpoint(tmp_path / "ppo")[0]["step"] == 192
    assert main(["eval", str(tmp_path / "ppo")]) == 0
    capsys.readouterr()
    for argv, message in (
        (["--n-epochs", "3"], "--n-epochs is an option of PPO: add --algo ppo"),
        (["--algo", "a2c", "--n-epochs", "4"], "--n-epochs is an option of PPO: add --algo ppo"),
        (["--algo", "ppo", "--n-minibatches", "8"], "n_minibatches 8 is more than the 4 environment copies"),
    ):
        assert main(["train", "--env", "CartPoleNoVel-v1", *tiny, *argv, "--out", str(tmp_path / "x")]) == 2
        assert message in capsys.readouterr().err
    assert main(["train", "--preset", "cpu", "--algo", "ppo", "--out", str(tmp_path / "g")]) == 2
    assert "--algo is an option of --env runs" in capsys.readouterr().err
    with pytest.raises(ValueError, match="n_epochs is PPO's: give algo ppo"):  # (the library's own check)
        EnvTrainConfig(n_epochs=3)
