"""Data-parallel A2C: 2 gloo processes on the CPU against one process (issue 8)."""

from __future__ import annotations

import csv
import json

import pytest
import torch
from dist_launch import spawn_gloo

from fwm_rl.agents.training import A2CConfig, make_model, train_run
from fwm_rl.engine import load_checkpoint
from fwm_rl.engine.distributed import init_distributed, shard_bounds

#: A small FWM agent on 7 training graphs (unequal shares: 4 + 3) with advantage normalisation (which needs the
#: statistics of every process's steps); and with the authors' released loss (whose baseline and critic target are
#: batch means over every process's agents).
CFG = A2CConfig(n_envs=7, hidden_size=16, d_fwm=8, normalize_advantage=True, device="cpu")
RELEASED = A2CConfig(n_envs=7, hidden_size=16, d_fwm=8, loss="released_code", device="cpu")
BUFFER_FIELDS = ("observations", "actions", "rewards", "episode_starts", "values", "log_probs", "returns", "advantages")


def _fill_buffer(model, rollout: dict, start: int, stop: int) -> None:
    """Put columns ``start:stop`` (environments) of a recorded rollout into the model's buffer."""
    buffer = model.rollout_buffer
    for name in BUFFER_FIELDS:
        getattr(buffer, name).copy_(rollout[name][:, start:stop])
    buffer.initial_state = model.policy.initial_state(stop - start)
    buffer.pos = buffer.n_steps


def _gradient_worker(rank, world_size, path):
    torch.set_num_threads(1)
    ctx = init_distributed("cpu")
    saved = torch.load(path, weights_only=True)
    cfg = A2CConfig.from_dict(saved["config"])
    model = make_model(cfg, torch.device("cpu"), ctx)
    model.policy.load_state_dict(saved["weights"])
    start, stop = shard_bounds(cfg.n_envs, ctx.rank, ctx.world_size)
    assert model.n_envs == stop - start
    _fill_buffer(model, saved["rollout"], start, stop)
    losses = model.compute_gradients()
    if ctx.is_main:
        grads = {n: p.grad.clone() for n, p in model.policy.named_parameters()}
        torch.save({"grads": grads, "losses": losses}, path.replace(".pt", "-dist.pt"))


@pytest.mark.parametrize("cfg", [CFG, RELEASED], ids=["normalized-advantage", "released-loss"])
def test_two_processes_give_the_gradient_of_one_process_with_all_environments(cfg, tmp_path):
    torch.manual_seed(0)
    model = make_model(cfg, torch.device("cpu"))
    weights = {k: v.clone() for k, v in model.policy.state_dict().items()}
    model.learn(model.n_steps * model.n_envs)  # one rollout (and one update, undone below)
    rollout = {name: getattr(model.rollout_buffer, name).clone() for name in BUFFER_FIELDS}
    model.policy.load_state_dict(weights)
    _fill_buffer(model, rollout, 0, cfg.n_envs)
    losses = model.compute_gradients()
    path = str(tmp_path / "rollout.pt")
    torch.save({"weights": weights, "rollout": rollout, "config": cfg.to_dict()}, path)

    spawn_gloo(_gradient_worker, 2, path)
    got = torch.load(path.replace(".pt", "-dist.pt"), weights_only=True)
    for name, p in model.policy.named_parameters():
        torch.testing.assert_close(got["grads"][name], p.grad, rtol=1e-5, atol=1e-7, msg=name)
    for key, value in losses.items():
        assert abs(got["losses"][key] - value) <= 1e-5 * max(1.0, abs(value)), key


def _train_worker(rank, world_size, run_dir):
    torch.set_num_threads(1)
    cfg = A2CConfig(
        name="lstm", memory="lstm", hidden_size=8, n_envs=6, steps=2, eval_every=1, final_episodes_per_graph=1, device="cpu"
    )
    summary = train_run(cfg, run_dir, show_progress=False)
    torch.save(summary, f"{run_dir}/rank{rank}.pt")


def test_two_process_training_run_logs_once_and_resumes_in_one_process(tmp_path):
    run_dir = tmp_path / "run"
    spawn_gloo(_train_worker, 2, str(run_dir))
    ranks = [torch.load(run_dir / f"rank{r}.pt", weights_only=False) for r in range(2)]
    assert ranks[0] == ranks[1]  # every process returns rank 0's summary
    with open(run_dir / "metrics.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [r["step"] for r in rows] == ["1", "2"]  # rank 0 alone logged
    assert load_checkpoint(run_dir / "checkpoint.pt")["step"] == 2
    # The checkpoint of the 2-process run continues in one process.
    cfg = A2CConfig.from_dict(json.loads((run_dir / "config.json").read_text()))
    resumed = train_run(A2CConfig(**{**cfg.to_dict(), "steps": 3}), run_dir, resume=True, show_progress=False)
    assert resumed.episodes == 3
    with open(run_dir / "metrics.csv", newline="") as fh:
        assert [r["step"] for r in csv.DictReader(fh)] == ["1", "2", "3"]
