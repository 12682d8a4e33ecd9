"""catbAbI under torch.distributed: 2 gloo processes against 1 process on the same tiny data."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import torch
from dist_launch import spawn_gloo
from tiny_data import write_variant

from fwm_rl.babi.batching import TrainStream
from fwm_rl.babi.catbabi import DataSpec, load_catbabi
from fwm_rl.babi.config import CatbAbIConfig, preset_configs
from fwm_rl.babi.trainer import CHECKPOINT, CatbAbITrainer
from fwm_rl.engine import load_checkpoint

MODEL, _ = preset_configs("small", "fwm", embedding_size=16, hidden_size=16, d_fwm=4, n_reads=2)
# 5 streams: shares of 3 and 2 rows; a few steps past the end of the first epoch
CONFIG = CatbAbIConfig(
    batch_size=5, bptt=30, steps=10, eval_every=4, eval_batch_size=3, log_every=2, lr=3e-3, device="cpu", tensorboard=False
)
STEPS, HALF = CONFIG.steps, 4


# Compared in float64: in float32 the rounding differences of split batches grow through Adam to ~1e-5.
pytestmark = pytest.mark.usefixtures("float64_default")


@pytest.fixture(scope="module")
def variant(tmp_path_factory) -> Path:
    return write_variant(tmp_path_factory.mktemp("babi"), n=(8, 3, 3))


def _trainer(variant, out, steps=STEPS) -> CatbAbITrainer:
    config = CatbAbIConfig(**{**CONFIG.to_dict(), "steps": steps})
    return CatbAbITrainer(MODEL, config, DataSpec(path=str(variant)), out)


def _worker(rank, world_size, variant, root):
    """A whole run, half a run (for one process to resume), and the resumption of a 1-process half run."""
    torch.set_num_threads(1)
    torch.set_default_dtype(torch.float64)
    root = Path(root)
    full = _trainer(variant, root / "full")
    seen = []  # the inputs the model trained on in this process, step by step

    def record(model, args):
        if model.training:
            seen.append(args[0].clone())

    full.model.register_forward_pre_hook(record)
    full.train()
    torch.save({"rows": (full.rows.start, full.rows.stop), "seen": seen}, root / f"seen{rank}.pt")
    _trainer(variant, root / "half", steps=HALF).train()
    CatbAbITrainer.resume(root / "half_of_one", device="cpu", steps=STEPS, tensorboard=False).train()


def _log(run: Path) -> list[dict]:
    with open(run / "metrics.csv", newline="") as fh:
        return list(csv.DictReader(fh))


def _assert_same_run(a: Path, b: Path) -> None:
    """Two run folders hold the same parameters, carried state, stream position and step (float tolerance)."""
    ca, cb = load_checkpoint(a / CHECKPOINT), load_checkpoint(b / CHECKPOINT)
    assert ca["step"] == cb["step"] and ca["task"]["stream"] == cb["task"]["stream"]
    for name, p in ca["model"].items():
        torch.testing.assert_close(p, cb["model"][name], rtol=1e-9, atol=1e-12, msg=name)
    (h, c), F = ca["task"]["state"]
    (h2, c2), F2 = cb["task"]["state"]
    for x, y in ((h, h2), (c, c2), (F, F2)):
        assert x.shape == y.shape and x.shape[1 if x.dim() == 3 else 0] == CONFIG.batch_size
        torch.testing.assert_close(x, y, rtol=1e-9, atol=1e-12)


@pytest.fixture(scope="module")
def single(variant, tmp_path_factory) -> Path:
    """The reference: one process, all steps."""
    out = tmp_path_factory.mktemp("single")
    _trainer(variant, out).train()
    return out


@pytest.fixture(scope="module")
def two(variant, tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("two")
    _trainer(variant, root / "half_of_one", steps=HALF).train()
    spawn_gloo(_worker, 2, str(variant), str(root))
    return root


def test_two_processes_train_like_one(single, two):
    _assert_same_run(single, two / "full")
    one_log, two_log = _log(single), _log(two / "full")
    assert [r["step"] for r in one_log] == [r["step"] for r in two_log]  # rank 0 alone wrote the log
    for r1, r2 in zip(one_log, two_log):
        assert r1.keys() == r2.keys()
        for key in r1:
            if key not in ("train/tokens_per_s", "time/train_seconds") and r1[key]:  # (timings differ)
                assert float(r2[key]) == pytest.approx(float(r1[key]), rel=1e-9, abs=1e-12), (r1["step"], key)
    res1, res2 = (json.loads((run / "results.json").read_text())["test"] for run in (single, two / "full"))
    assert res1["answers"] == res2["answers"] and res1["tokens"] == res2["tokens"]
    assert res2["answer_accuracy"] == pytest.approx(res1["answer_accuracy"], rel=1e-9)
    assert res2["answer_perplexity"] == pytest.approx(res1["answer_perplexity"], rel=1e-9)


def test_every_stream_row_is_trained_by_exactly_one_process(variant, two):
    records = [torch.load(two / f"seen{rank}.pt", weights_only=True) for rank in range(2)]
    assert [r["rows"] for r in records] == [(0, 3), (3, 5)]
    data = load_catbabi(DataSpec(path=str(variant)))
    stream = TrainStream(data.splits["train"], CONFIG.batch_size, CONFIG.bptt, data.vocab.eos, data.vocab.pad, CONFIG.seed)
    per_epoch = len(stream.epoch_segments(0))
    assert per_epoch < STEPS  # the run crossed into the second epoch
    for step in range(STEPS):
        expected = next(stream).x
        torch.testing.assert_close(torch.cat([r["seen"][step] for r in records], dim=1), expected, rtol=0, atol=0)


def test_checkpoint_of_two_processes_resumes_in_one(single, two, tmp_path):
    run = tmp_path / "half"
    run.mkdir()
    ckpt = load_checkpoint(two / "half" / CHECKPOINT)
    assert ckpt["step"] == HALF and ckpt["task"]["state"][1].shape[0] == CONFIG.batch_size  # whole-batch state
    (run / CHECKPOINT).write_bytes((two / "half" / CHECKPOINT).read_bytes())
    CatbAbITrainer.resume(run, device="cpu", steps=STEPS, tensorboard=False).train()
    _assert_same_run(single, run)


def test_checkpoint_of_one_process_resumes_in_two(single, two):
    _assert_same_run(single, two / "half_of_one")
