"""Language-model training under torch.distributed: 2 gloo processes against 1 process on a tiny corpus."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import torch
from dist_launch import spawn_gloo
from tiny_data import tiny_config, write_corpus

from fwm_rl.engine import load_checkpoint
from fwm_rl.lm.config import LMConfig
from fwm_rl.lm.corpus import load_corpus
from fwm_rl.lm.trainer import BEST, CHECKPOINT, LMTrainer, batchify

# 5 streams: shares of 3 and 2 rows; no dropout, so 2 processes must reproduce 1 exactly (to float
# tolerance); ASGD from the second validation on; the run crosses an epoch end (the state is reset)
CONFIG = LMConfig(
    batch_size=5,
    bptt=6,
    steps=14,
    eval_every=4,
    eval_batch_size=3,
    log_every=2,
    asgd_after=2,
    asgd_lr=0.5,
    lr=3e-3,
    tensorboard=False,
    device="cpu",
    tune_temperature=True,
    seed=3,
)
STEPS, HALF = CONFIG.steps, 6
NO_DROPOUT = {"dropout": 0.0, "dropout_h": 0.0, "dropout_i": 0.0, "dropout_e": 0.0, "wdrop": 0.0}


# Compared in float64: in float32 the rounding differences of split batches grow through Adam to ~1e-5.
pytestmark = pytest.mark.usefixtures("float64_default")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    return write_corpus(tmp_path_factory.mktemp("tiny"), {"train": 30, "valid": 9, "test": 3})


def _trainer(data: str, out, steps: int = STEPS) -> LMTrainer:
    corpus = load_corpus(data)
    config = LMConfig(**{**CONFIG.to_dict(), "steps": steps})
    return LMTrainer(corpus, tiny_config(len(corpus.vocab), "fwm", **NO_DROPOUT), config, out, data=data)


def _worker(rank, world_size, data, root):
    """A whole run, half a run (for one process to resume), and the resumption of a 1-process half run."""
    torch.set_num_threads(1)
    torch.set_default_dtype(torch.float64)
    root = Path(root)
    full = _trainer(data, root / "full")
    summary = full.train(show_progress=False)
    torch.save(
        {"rows": (full.rows.start, full.rows.stop), "train_x": full.train_x, "temperature": summary.temperature},
        root / f"rank{rank}.pt",
    )
    _trainer(data, root / "half", steps=HALF).train(show_progress=False)
    LMTrainer.resume(root / "half_of_one", steps=STEPS).train(show_progress=False)


def _log(run: Path) -> list[dict]:
    with open(run / "metrics.csv", newline="") as fh:
        return list(csv.DictReader(fh))


def _assert_same_run(a: Path, b: Path) -> None:
    """Same step, epoch, position, optimizer, parameters and whole-batch carried state (float tolerance)."""
    ca, cb = (load_checkpoint(run / CHECKPOINT) for run in (a, b))
    ta, tb = ca["task"], cb["task"]
    assert (ca["step"], ta["epoch"], ta["position"], ta["optimizer_name"]) == (
        cb["step"],
        tb["epoch"],
        tb["position"],
        tb["optimizer_name"],
    )
    for name, p in ca["model"].items():
        torch.testing.assert_close(p, cb["model"][name], rtol=1e-9, atol=1e-12, msg=name)
    for x, y in zip(
        [*(t for layer in ta["hidden"] for t in layer), ta["fast_weights"]],
        [*(t for layer in tb["hidden"] for t in layer), tb["fast_weights"]],
    ):
        assert x.shape == y.shape and CONFIG.batch_size in (x.shape[0], x.shape[1])
        torch.testing.assert_close(x, y, rtol=1e-9, atol=1e-12)


@pytest.fixture(scope="module")
def single(tiny, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("single") / "run"
    _trainer(str(tiny), out).train(show_progress=False)
    return out


@pytest.fixture(scope="module")
def two(tiny, tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("two")
    _trainer(str(tiny), root / "half_of_one", steps=HALF).train(show_progress=False)
    spawn_gloo(_worker, 2, str(tiny), str(root))
    return root


def test_two_processes_train_like_one(single, two):
    _assert_same_run(single, two / "full")
    assert load_checkpoint(two / "full" / CHECKPOINT)["task"]["epoch"] == 1  # crossed an epoch end
    one_log, two_log = _log(single), _log(two / "full")
    assert [r["step"] for r in one_log] == [r["step"] for r in two_log]  # rank 0 alone wrote the log
    keys = {
        "train/loss",
        "train/ppl",
        "lr",
        "valid/loss",
        "valid/ppl",
        "valid/ppl_tuned_temperature",
        "temperature",
        "asgd_switch",
    }
    assert keys <= set(one_log[0])
    for r1, r2 in zip(one_log, two_log):
        for key in keys:
            if r1[key]:  # (validation sums float32 token losses: in a different order over 2 processes)
                assert float(r2[key]) == pytest.approx(float(r1[key]), rel=1e-6), (r1["step"], key)
            else:
                assert not r2[key]
    best1, best2 = (load_checkpoint(run / BEST) for run in (single, two / "full"))
    assert best1["step"] == best2["step"] and best2["task"]["valid_loss"] == pytest.approx(
        best1["task"]["valid_loss"], rel=1e-6
    )
    rank1 = torch.load(two / "rank1.pt", weights_only=True)
    assert rank1["temperature"] == best1["task"]["temperature"] == best2["task"]["temperature"]


def test_every_stream_is_trained_by_exactly_one_process(tiny, two):
    records = [torch.load(two / f"rank{rank}.pt", weights_only=True) for rank in range(2)]
    assert [r["rows"] for r in records] == [(0, 3), (3, 5)]
    full_x, _ = batchify(load_corpus(tiny).train, CONFIG.batch_size, pad=False)
    assert torch.equal(torch.cat([r["train_x"] for r in records], dim=1), full_x)


def test_checkpoint_of_two_processes_resumes_in_one(single, two):
    assert load_checkpoint(two / "half" / CHECKPOINT)["step"] == HALF
    LMTrainer.resume(two / "half", steps=STEPS).train(show_progress=False)
    _assert_same_run(single, two / "half")


def test_checkpoint_of_one_process_resumes_in_two(single, two):
    _assert_same_run(single, two / "half_of_one")
