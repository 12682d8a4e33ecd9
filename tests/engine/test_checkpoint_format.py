"""Checkpoints of older formats (1: each trainer its own keys, written by fwm-rl before the one schema; 2: the one
schema with NumPy arrays in it) still load, evaluate and resume where they load without unpickling or are trusted
(``--trust-checkpoint``), and are refused in one line otherwise; a resumed one ends where the old code's
uninterrupted run ended.

The checkpoints in ``tests/data/checkpoints-format1/`` and ``-format2/`` were written by the old code (see the
READMEs there): tiny runs of each kind, and for catbAbI and LM (format 1) the weights of an uninterrupted run to a
later step.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch
from tiny_data import write_corpus, write_variant

from fwm_rl.agents.env_training import make_eval_env
from fwm_rl.agents.training import load_policy
from fwm_rl.babi import load_model as load_babi_model
from fwm_rl.babi.trainer import CatbAbITrainer
from fwm_rl.cli import main
from fwm_rl.engine import CHECKPOINT_FORMAT, UntrustedCheckpointError, load_checkpoint, read_checkpoint, trusted_checkpoints
from fwm_rl.lm.trainer import LMTrainer
from fwm_rl.lm.trainer import load_model as load_lm_model

DATA = Path(__file__).parents[1] / "data"
OLD = DATA / "checkpoints-format1"
OLD_FILES = [
    ("a2c", "fwm/checkpoint.pt"),
    ("a2c-env", "checkpoint.pt"),
    ("catbabi", "checkpoint.pt"),
    ("catbabi", "best.pt"),
    ("lm", "checkpoint.pt"),
    ("lm", "best.pt"),
]
#: The old files that need unpickling (NumPy arrays: the --env run's observation statistics, the LM's NumPy RNG state).
PICKLED = {(1, "a2c-env", "checkpoint.pt"), (2, "a2c-env", "checkpoint.pt"), (2, "lm", "checkpoint.pt")}


def _copy(kind: str, tmp_path: Path) -> Path:
    shutil.copytree(OLD / kind, tmp_path / kind)
    return tmp_path / kind


@pytest.mark.parametrize("version", [1, 2])
@pytest.mark.parametrize("kind, file", OLD_FILES)
def test_old_formats_are_upgraded_on_reading(version, kind, file):
    path = DATA / f"checkpoints-format{version}" / kind / file
    with trusted_checkpoints():
        assert load_checkpoint(path).get("format", 1) == version  # (really an old file)
        ckpt = read_checkpoint(path, kind)
    assert ckpt["kind"] == kind and ckpt["format"] == CHECKPOINT_FORMAT
    assert ckpt["step"] >= 1 and "train" in ckpt["configs"] and ckpt["model"]
    assert set(ckpt) == {"kind", "format", "step", "train_seconds", "configs", "model", "optimizer", "task", "rng"}
    assert not _numpy_inside(ckpt)  # what format 2 stored as NumPy arrays is now tensors and plain values


def _numpy_inside(obj) -> bool:
    if isinstance(obj, dict):
        return any(_numpy_inside(v) for v in obj.values())
    if isinstance(obj, (list, tuple)):
        return any(_numpy_inside(v) for v in obj)
    return type(obj).__module__.startswith("numpy")


@pytest.mark.parametrize("version", [1, 2])
@pytest.mark.parametrize("kind, file", OLD_FILES)
def test_old_files_load_safely_or_are_refused_in_one_line(version, kind, file):
    """Without trust, an old file either loads (it holds only what ``weights_only`` reads) or is refused naming
    --trust-checkpoint; none is unpickled silently."""
    path = DATA / f"checkpoints-format{version}" / kind / file
    if (version, kind, file) in PICKLED:
        with pytest.raises(UntrustedCheckpointError, match=r"needs unpickling.*--trust-checkpoint") as err:
            read_checkpoint(path, kind)
        assert "\n" not in str(err.value)
    else:
        assert read_checkpoint(path, kind)["format"] == CHECKPOINT_FORMAT


def test_old_a2c_runs_load_and_resume(tmp_path):
    policy, cfg, ckpt = load_policy(OLD / "a2c" / "fwm", "cpu")
    assert cfg.hidden_size == 8 and ckpt["step"] == 2
    run = _copy("a2c", tmp_path) / "fwm"
    assert main(["train", "--resume", str(run), "--steps", "4", "--no-progress"]) == 0
    new = load_checkpoint(run / "checkpoint.pt")
    assert (new["format"], new["step"]) == (CHECKPOINT_FORMAT, 4)


@pytest.mark.parametrize("version", [1, 2])
def test_old_env_runs_load_and_evaluate(version):
    with trusted_checkpoints():
        policy, cfg, ckpt = load_policy(DATA / f"checkpoints-format{version}" / "a2c-env", "cpu")
    assert cfg.env_id == "CartPoleNoVel-v1" and ckpt["step"] == 64
    env = make_eval_env(ckpt, 1, seed=0)  # with the run's frozen observation statistics
    assert env.reset().shape == (1, 2)


def test_old_catbabi_runs_evaluate_and_resume_to_where_the_old_code_went(tmp_path):
    model, vocab, _, _ = load_babi_model(OLD / "catbabi" / "best.pt", device="cpu")
    assert model.config.d_fwm == 4 and len(vocab) > 10
    data = write_variant(tmp_path / "data", n=(8, 3, 3))  # the same stories as the run's (a fixed seed), somewhere else
    trainer = CatbAbITrainer.resume(_copy("catbabi", tmp_path), device="cpu", steps=4, tensorboard=False, data_path=str(data))
    assert trainer.step == 2
    trainer.train()
    reference = torch.load(OLD / "catbabi-reference.pt", weights_only=True)
    assert reference["step"] == trainer.step == 4
    for name, w in reference["model"].items():
        # The reference was written by another process on one CPU (an AMD EPYC); other CPUs' kernels round float32
        # sums differently, so: equal within 3e-5, not bit for bit. That is ~10x the largest difference other kernel
        # paths make on one machine (LM 3.2e-6 under MKL_CBWR=COMPATIBLE, catbAbI 6e-8; .ci/run's second pass) and
        # ~20x below the smallest a wrong resume makes (a step too many, the optimizer state or the RNG lost:
        # >= 6.7e-4 in every tensor).
        torch.testing.assert_close(trainer.model.state_dict()[name], w, rtol=0, atol=3e-5, msg=name)


def test_old_lm_runs_evaluate_and_resume_to_where_the_old_code_went(tmp_path):
    model, ckpt = load_lm_model(OLD / "lm" / "checkpoint.pt", "cpu")
    assert (
        ckpt["task"]["optimizer_name"] == "asgd" and ckpt["task"]["eval_model"] is not None
    )  # the old file's averaged weights
    assert torch.equal(model.state_dict()["decoder.bias"], ckpt["task"]["eval_model"]["decoder.bias"])
    load_lm_model(OLD / "lm" / "best.pt", "cpu")
    data = write_corpus(tmp_path / "text")  # the same text as the run's (a fixed seed), somewhere else
    trainer = LMTrainer.resume(_copy("lm", tmp_path), device="cpu", data=data, steps=8)
    assert trainer.step == 4
    trainer.train(show_progress=False)
    reference = torch.load(OLD / "lm-reference.pt", weights_only=True)
    assert reference["step"] == trainer.step == 8
    for name, w in reference["model"].items():
        # written by another process on one CPU: within 3e-5, as in the catbAbI test above (which gives the LM's figures)
        torch.testing.assert_close(trainer.model.state_dict()[name], w, rtol=0, atol=3e-5, msg=name)
