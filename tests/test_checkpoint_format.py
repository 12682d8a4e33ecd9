"""Format-1 checkpoints (each trainer its own keys, written by fwm-rl before the one schema) still load,
evaluate and resume; a resumed one ends where the old code's uninterrupted run ended.

The checkpoints in ``tests/data/checkpoints-format1/`` were written by the old code (see the README there):
tiny runs of each kind, and for catbAbI and LM the weights of an uninterrupted run to a later step.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch
from test_babi import write_variant
from test_lm import write_corpus

from fwm_rl.agents.env_training import load_env_policy, make_eval_env
from fwm_rl.agents.training import load_policy
from fwm_rl.babi import load_model as load_babi_model
from fwm_rl.babi.trainer import CatbAbITrainer
from fwm_rl.cli import main
from fwm_rl.engine import CHECKPOINT_FORMAT, load_checkpoint, read_checkpoint
from fwm_rl.lm.trainer import LMTrainer
from fwm_rl.lm.trainer import load_model as load_lm_model

OLD = Path(__file__).parent / "data" / "checkpoints-format1"


def _copy(kind: str, tmp_path: Path) -> Path:
    shutil.copytree(OLD / kind, tmp_path / kind)
    return tmp_path / kind


@pytest.mark.parametrize("kind, file", [("a2c", "fwm/checkpoint.pt"), ("a2c-env", "checkpoint.pt"), ("catbabi", "checkpoint.pt"),
                                        ("catbabi", "best.pt"), ("lm", "checkpoint.pt"), ("lm", "best.pt")])
def test_format_1_is_upgraded_on_reading(kind, file):
    raw = load_checkpoint(OLD / kind / file)
    assert raw.get("format", 1) == 1  # (really an old file)
    ckpt = read_checkpoint(OLD / kind / file, kind)
    assert ckpt["kind"] == kind and ckpt["format"] == CHECKPOINT_FORMAT
    assert ckpt["step"] >= 1 and "train" in ckpt["configs"] and ckpt["model"]
    assert set(ckpt) == {"kind", "format", "step", "train_seconds", "configs", "model", "optimizer", "task", "rng"}


def test_old_a2c_runs_load_and_resume(tmp_path):
    policy, cfg, ckpt = load_policy(OLD / "a2c" / "fwm", "cpu")
    assert cfg.hidden_size == 8 and ckpt["step"] == 2
    run = _copy("a2c", tmp_path) / "fwm"
    assert main(["train", "--resume", str(run), "--steps", "4", "--no-progress"]) == 0
    new = load_checkpoint(run / "checkpoint.pt")
    assert (new["format"], new["step"]) == (CHECKPOINT_FORMAT, 4)


def test_old_env_runs_load_and_evaluate():
    policy, cfg, ckpt = load_env_policy(OLD / "a2c-env", "cpu")
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
    reference = torch.load(OLD / "catbabi-reference.pt")
    assert reference["step"] == trainer.step == 4
    for name, w in reference["model"].items():
        torch.testing.assert_close(trainer.model.state_dict()[name], w, rtol=0, atol=0, msg=name)


def test_old_lm_runs_evaluate_and_resume_to_where_the_old_code_went(tmp_path):
    model, ckpt = load_lm_model(OLD / "lm" / "checkpoint.pt", "cpu")
    assert ckpt["task"]["optimizer_name"] == "asgd" and ckpt["task"]["eval_model"] is not None  # the old file's averaged weights
    assert torch.equal(model.state_dict()["decoder.bias"], ckpt["task"]["eval_model"]["decoder.bias"])
    load_lm_model(OLD / "lm" / "best.pt", "cpu")
    data = write_corpus(tmp_path / "text")  # the same text as the run's (a fixed seed), somewhere else
    trainer = LMTrainer.resume(_copy("lm", tmp_path), device="cpu", data=data, steps=8)
    assert trainer.step == 4
    trainer.train(show_progress=False)
    reference = torch.load(OLD / "lm-reference.pt")
    assert reference["step"] == trainer.step == 8
    for name, w in reference["model"].items():
        torch.testing.assert_close(trainer.model.state_dict()[name], w, rtol=0, atol=0, msg=name)
