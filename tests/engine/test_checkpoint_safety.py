"""A checkpoint someone sends you cannot run code when it is loaded: every command and Python loader that reads a run
folder or checkpoint reads it with ``torch.load(..., weights_only=True)``, and a file that needs unpickling is
refused in one line naming ``--trust-checkpoint``, before anything in it runs.

The hostile file here is a checkpoint of the right kind and layout with one extra object whose unpickling would
create a canary file (``open(canary, "w")``): if any loader unpickled it, the canary would exist.
"""

from __future__ import annotations

import builtins
import shutil
from pathlib import Path

import pytest
import torch

from fwm_rl.agents.training import load_policy
from fwm_rl.babi import load_model as load_babi_model
from fwm_rl.cli import main
from fwm_rl.engine import UntrustedCheckpointError, load_checkpoint, read_checkpoint, trusted_checkpoints
from fwm_rl.lm.trainer import load_model as load_lm_model

OLD = Path(__file__).parents[1] / "data" / "checkpoints-format1"


class _Payload:
    """Unpickling this calls ``open(canary, "w")``: the canary file appears iff the file was unpickled."""

    def __init__(self, canary: Path):
        self.canary = str(canary)

    def __reduce__(self):
        return builtins.open, (self.canary, "w")


def _hostile_run(tmp_path: Path, kind: str) -> tuple[Path, Path]:
    """A copy of a real tiny run of ``kind`` whose checkpoints (``checkpoint.pt``, and ``best.pt`` where the run has
    one) each carry a payload; returns the run folder and the canary the payload would create."""
    run = tmp_path / kind
    shutil.copytree(OLD / kind, run)
    canary = tmp_path / "code-ran"
    for path in run.rglob("*.pt"):
        with trusted_checkpoints():  # (the test's own, known files)
            ckpt = read_checkpoint(path, kind)
        ckpt["task"]["extra"] = _Payload(canary)
        torch.save(ckpt, path)
    return (run / "fwm" if kind == "a2c" else run), canary


def test_a_plain_torch_load_of_the_hostile_file_really_runs_its_code(tmp_path):
    run, canary = _hostile_run(tmp_path, "lm")
    torch.load(run / "best.pt", weights_only=False)
    assert canary.exists()  # (so the tests below would see it, had a loader unpickled)


COMMANDS = {
    "eval": ("a2c", lambda r: ["eval", str(r), "--split", "test", "--episodes-per-graph", "1", "--device", "cpu"]),
    "watch": ("a2c", lambda r: ["watch", str(r), "--split", "test", "--out", str(r.parent / "e.gif")]),
    "explain": ("a2c", lambda r: ["explain", str(r), "--split", "test", "--out", str(r.parent / "e.png")]),
    "train --resume": ("a2c", lambda r: ["train", "--resume", str(r), "--steps", "4", "--no-progress"]),
    "eval (--env run)": ("a2c-env", lambda r: ["eval", str(r), "--device", "cpu"]),
    "train --env --resume": ("a2c-env", lambda r: ["train", "--resume", str(r), "--steps", "128", "--no-progress"]),
    "babi eval": ("catbabi", lambda r: ["babi", "eval", str(r), "--device", "cpu"]),
    "babi answer": (
        "catbabi",
        lambda r: ["babi", "answer", str(r.parent / "story.txt"), "--checkpoint", str(r), "--device", "cpu"],
    ),
    "babi explain": ("catbabi", lambda r: ["babi", "explain", str(r), "--device", "cpu", "--out", str(r.parent / "x.png")]),
    "babi train --resume": ("catbabi", lambda r: ["babi", "train", "--resume", str(r), "--device", "cpu", "--steps", "4"]),
    "lm eval": ("lm", lambda r: ["lm", "eval", str(r), "--device", "cpu"]),
    "lm compare": (
        "lm",
        lambda r: [
            "lm",
            "compare",
            str(r / "best.pt"),
            str(r / "checkpoint.pt"),
            "--device",
            "cpu",
            "--out",
            str(r.parent / "c.png"),
        ],
    ),
    "lm train --resume": ("lm", lambda r: ["lm", "train", "--resume", "--out", str(r), "--steps", "8", "--no-progress"]),
}


@pytest.mark.parametrize("command", list(COMMANDS))
def test_no_command_runs_the_code_in_a_checkpoint(command, tmp_path, capsys):
    kind, argv = COMMANDS[command]
    run, canary = _hostile_run(tmp_path, kind)
    (tmp_path / "story.txt").write_text("1 Mary went to the kitchen.\n2 Where is Mary?\n")
    assert main(argv(run)) == 2
    err = capsys.readouterr().err.strip()
    assert not canary.exists()
    assert len(err.splitlines()) == 1 and "needs unpickling" in err and "--trust-checkpoint" in err, err


LOADERS = {
    "load_policy": ("a2c", lambda r: load_policy(r, "cpu")),
    "load_policy (an --env run)": ("a2c-env", lambda r: load_policy(r, "cpu")),
    "babi.load_model": ("catbabi", lambda r: load_babi_model(r, device="cpu")),
    "lm.load_model": ("lm", lambda r: load_lm_model(r, "cpu")),
    "engine.read_checkpoint": ("lm", lambda r: read_checkpoint(r / "checkpoint.pt", "lm")),
    "engine.load_checkpoint": ("catbabi", lambda r: load_checkpoint(r / "checkpoint.pt")),
}


@pytest.mark.parametrize("loader", list(LOADERS))
def test_no_python_loader_runs_the_code_in_a_checkpoint(loader, tmp_path):
    kind, load = LOADERS[loader]
    run, canary = _hostile_run(tmp_path, kind)
    with pytest.raises(UntrustedCheckpointError, match="--trust-checkpoint"):
        load(run)
    assert not canary.exists()


def test_trusting_is_explicit_and_ends_with_its_block(tmp_path):
    run, canary = _hostile_run(tmp_path, "lm")
    with trusted_checkpoints():
        read_checkpoint(run / "best.pt", "lm")
    assert canary.exists()  # the user said so
    canary.unlink()
    with pytest.raises(UntrustedCheckpointError):
        read_checkpoint(run / "best.pt", "lm")
    assert not canary.exists()


@pytest.mark.parametrize("version", [1, 2])
def test_every_checkpoint_this_version_writes_loads_without_unpickling(version, tmp_path):
    """The old tiny runs of every kind, resumed (trusted: some of their files need unpickling) and so rewritten by
    this version, are then read with ``weights_only=True`` alone."""
    from tiny_data import write_corpus, write_variant

    data = {
        "catbabi": ["--data", str(write_variant(tmp_path / "data", n=(8, 3, 3)))],
        "lm": ["--data", str(write_corpus(tmp_path / "text"))],
    }
    resume = {
        "a2c": ["train", "--resume", "{run}/fwm", "--steps", "4", "--no-progress"],
        "a2c-env": ["train", "--resume", "{run}", "--steps", "128", "--no-progress"],
        "catbabi": ["babi", "train", "--resume", "{run}", "--device", "cpu", "--steps", "4", "--no-tensorboard"],
        "lm": ["lm", "train", "--resume", "--out", "{run}", "--steps", "8", "--no-progress"],
    }
    for kind, argv in resume.items():
        run = tmp_path / kind
        shutil.copytree(OLD.parent / f"checkpoints-format{version}" / kind, run)
        assert main([a.format(run=run) for a in argv] + data.get(kind, []) + ["--trust-checkpoint"]) == 0, kind
        for path in run.rglob("*.pt"):
            torch.load(path, weights_only=True)  # raises if anything in it needs unpickling
