"""The run options every trainer shares (``engine.add_run_options``), the one resume check (``resume_folder``,
``SavedConfig.resume_changes``) and options several configs share (``add_options(..., also=...)``)."""

from __future__ import annotations

import argparse
from dataclasses import dataclass

import pytest

from fwm_rl.engine import SavedConfig, add_options, add_run_options, given, resume_folder, resume_options


@dataclass
class Run(SavedConfig):
    RENAMED = {"episodes": "steps"}
    RESUMABLE = ("steps", "device", "tensorboard")

    steps: int = 10
    """updates"""
    lr: float = 0.1
    """learning rate"""
    device: str = "cpu"
    """where it runs"""
    tensorboard: bool = True
    """TensorBoard events"""


@dataclass
class Other(SavedConfig):
    RENAMED = {"total_timesteps": "steps"}

    steps: int = 5
    """environment steps"""


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(exit_on_error=False)
    add_options(parser, Run, ["steps", "lr"], also=(Other,))
    assert add_run_options(parser, Run, out="runs/x") == ["device", "tensorboard"]
    return parser.parse_args(argv)


def test_run_options_and_shared_aliases():
    args = parse()
    assert (args.out, args.resume, args.overwrite, args.print_config, args.no_progress) == (None, None, False, False, False)
    assert given(args, ["steps", "lr", "device", "tensorboard"]) == {}  # nothing typed: every default is the config's
    args = parse("--episodes", "3", "--device", "cuda", "--no-tensorboard", "--out", "o", "--print-config")
    assert given(args, ["steps", "device", "tensorboard"]) == {"steps": 3, "device": "cuda", "tensorboard": False}
    assert parse("--total-timesteps", "4").steps == 4  # the other config's old name answers too
    assert parse("--resume").resume == "" and parse("--resume", "d").resume == "d"


def test_one_resume_check():
    assert resume_folder(parse("--resume", "d")) == "d"
    assert resume_folder(parse("--resume", "--out", "o")) == "o"  # --resume alone continues --out's run
    assert resume_folder(parse("--resume", "d", "--out", "d/")) == "d"
    for argv, message in (
        (("--resume", "d", "--overwrite"), "--overwrite starts a new run"),
        (("--resume",), "--resume needs the run folder"),
        (("--resume", "d", "--out", "e"), "name two folders"),
    ):
        with pytest.raises(ValueError, match=message):
            resume_folder(parse(*argv))
    folder, changes = resume_options(
        parse("--resume", "d", "--episodes", "20", "--no-tensorboard"), Run, ["steps", "lr", "tensorboard"]
    )
    assert (folder, changes) == ("d", {"steps": 20, "tensorboard": False})
    with pytest.raises(ValueError, match=r"only --steps, --device, --tensorboard and --data may change, not --lr$"):
        resume_options(parse("--resume", "d", "--lr", "1"), Run, ["steps", "lr"], "--data")
