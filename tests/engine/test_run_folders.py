"""Run folders: ``--overwrite`` deletes only what a run wrote, in a folder whose files say it is a run's, and only
once it holds the locks of that folder and of every run below it.

A folder is a run's if its run marker (``.fwm-run.json``, written when a run claims the folder) says so, or, for a
run of an fwm-rl before run markers, if its ``checkpoint.pt``, read safely, is a checkpoint of the claiming kind;
never because a file named ``config.json`` or ``metrics.csv`` is there. A live run anywhere below refuses the whole
command, before anything is deleted; files that are not provably a run's refuse it too, even with ``--overwrite``.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from tiny_data import write_corpus, write_variant

from fwm_rl.cli import main
from fwm_rl.engine import MARKER, RunClaim, RunExistsError, claimed_run_folder, folders, make_checkpoint, run_lock

OUTPUTS = ("checkpoint.pt", "best.pt", "metrics.csv", "tb", ".checkpoint.pt.*.tmp")


def _files(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` (but the lock) with its bytes: what a refused command must leave as it was."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file() and p.name != ".lock"}


def _write(folder: Path, *names: str) -> None:
    for name in names:
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(f"{name} of the user")


@contextlib.contextmanager
def _held_by_another_process(folder: Path):
    """``folder``'s lock held by another process, as a live run holds it."""
    code = (
        "import fcntl, sys; f = open(sys.argv[1], 'a+'); fcntl.flock(f, fcntl.LOCK_EX); f.seek(0); f.truncate(); "
        "f.write('pid of a live run'); f.flush(); print('held', flush=True); sys.stdin.read()"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code, str(folder / ".lock")], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout.readline().strip() == "held"
        yield
    finally:
        proc.stdin.close()
        proc.wait(timeout=30)


# ----------------------------------------------------------------------------- the engine
def _claim(folder: Path, kind: str = "lm", overwrite: bool = False, outputs=OUTPUTS, top: Path | None = None) -> None:
    with claimed_run_folder(top or folder, [RunClaim(folder, kind, outputs)], overwrite, "--resume X"):
        pass


def test_a_run_marks_its_folder_and_overwrite_deletes_only_its_files(tmp_path):
    run = tmp_path / "run"
    _claim(run)
    assert json.loads((run / MARKER).read_text()) == {"kind": "lm", "format": 1, "outputs": list(OUTPUTS)}
    _claim(run)  # a folder the run claimed but wrote nothing into yet (a run stopped before its first checkpoint)
    _write(run, "checkpoint.pt", "metrics.csv", "tb/events", "notes.txt", "mine/best.pt")
    before = _files(run)
    with pytest.raises(RunExistsError, match=r"run already holds a run .*--resume X.*--overwrite"):
        _claim(run)
    assert _files(run) == before  # refused: nothing touched
    _claim(run, overwrite=True)
    assert sorted(p.name for p in run.iterdir()) == [MARKER, ".lock", "mine", "notes.txt"]  # not the run's: kept
    assert (run / "mine" / "best.pt").exists()
    (tmp_path / "file").write_text("x")
    with pytest.raises(RunExistsError, match="is a file"):
        _claim(tmp_path / "file", overwrite=True)


def test_overwrite_deletes_what_the_marked_run_wrote_and_refuses_what_it_did_not(tmp_path):
    run = tmp_path / "run"
    _claim(run, kind="lm")
    _write(run, "checkpoint.pt", "best.pt")
    _claim(run, kind="catbabi", overwrite=True, outputs=("checkpoint.pt", "metrics.csv"))  # best.pt was the lm run's
    assert not (run / "best.pt").exists() and json.loads((run / MARKER).read_text())["kind"] == "catbabi"
    _write(run, "checkpoint.pt", "figure5.png")  # figure5.png: the user's, not the catbAbI run's
    before = _files(run)
    with pytest.raises(
        RunExistsError,
        match=r"holds figure5.png, which are not provably an fwm-rl run's "
        r"\(its run \(catbabi\) did not write them\).*nothing was deleted",
    ):
        _claim(run, kind="a2c", overwrite=True, outputs=("checkpoint.pt", "figure5.png"))
    assert _files(run) == before


def test_a_folder_that_is_not_a_run_is_never_deleted(tmp_path):
    proj = tmp_path / "proj"
    _write(proj, "metrics.csv", "tb/my-events", "notes.txt")
    before = _files(proj)
    for overwrite in (False, True):
        with pytest.raises(
            RunExistsError,
            match=rf"{proj} holds metrics.csv, tb, which are not provably an fwm-rl run's "
            rf"\({proj} has no {MARKER} and no checkpoint.pt\)",
        ):
            _claim(proj, overwrite=overwrite)
        assert _files(proj) == before
    assert not (proj / MARKER).exists()


def test_an_older_run_is_a_run_only_if_its_checkpoint_says_so_read_safely(tmp_path):
    old = tmp_path / "old"
    _write(old, "metrics.csv", "tb/events", "notes.txt")
    torch.save(make_checkpoint("lm", step=1, configs={}, model={"w": torch.zeros(2)}), old / "checkpoint.pt")
    with pytest.raises(RunExistsError, match="already holds a run"):
        _claim(old)
    with pytest.raises(RunExistsError, match=rf"{old / 'checkpoint.pt'} is a language-model run, not a catbAbI run"):
        _claim(old, kind="catbabi", overwrite=True)
    _claim(old, overwrite=True)  # an lm run of an older fwm-rl (no run marker): its files go, the user's stay
    assert sorted(p.name for p in old.iterdir()) == [MARKER, ".lock", "notes.txt"]

    for name, content in [("pickled", {"kind": "lm", "model": np.zeros(2)}), ("garbage", None)]:  # not readable safely
        folder = tmp_path / name
        _write(folder, "metrics.csv")
        if content is None:
            (folder / "checkpoint.pt").write_bytes(b"not a checkpoint")
        else:
            torch.save(content, folder / "checkpoint.pt")
        before = _files(folder)
        unsafe = rf"not provably an fwm-rl run's \({folder / 'checkpoint.pt'} cannot be read safely"
        with pytest.raises(RunExistsError, match=unsafe):
            _claim(folder, overwrite=True)
        assert _files(folder) == before


@pytest.mark.parametrize(
    "marker",
    [
        "{not json",
        json.dumps({"kind": "lm", "format": 1, "outputs": ["*"]}),
        json.dumps({"kind": "lm", "format": 1, "outputs": ["../elsewhere"]}),
        json.dumps({"kind": "lm", "outputs": "checkpoint.pt"}),
        json.dumps([1, 2]),
    ],
)
def test_a_run_marker_this_version_cannot_read_deletes_nothing(tmp_path, marker):
    run = tmp_path / "run"
    _write(run, "checkpoint.pt", "notes.txt")
    (run / MARKER).write_text(marker)
    before = _files(run)
    with pytest.raises(RunExistsError, match=rf"{run / MARKER} is not a run marker this fwm-rl reads"):
        _claim(run, overwrite=True)
    assert _files(run) == before


def test_a_run_marker_of_a_newer_version_is_named(tmp_path):
    run = tmp_path / "run"
    _write(run, "checkpoint.pt")
    (run / MARKER).write_text(json.dumps({"kind": "lm", "format": 99, "outputs": []}))
    with pytest.raises(RunExistsError, match="written by a newer fwm-rl .*upgrade fwm-rl"):
        _claim(run, overwrite=True)


@pytest.mark.parametrize("live", ["run", "other", "run/deeper"])
def test_a_live_run_below_refuses_the_whole_overwrite_before_anything_is_deleted(tmp_path, live):
    top = tmp_path / "top"
    claims = [RunClaim(top, "a2c-preset", ("runs.json",)), RunClaim(top / "run", "lm", OUTPUTS)]
    with claimed_run_folder(top, claims):
        pass
    _write(top, "runs.json", "run/checkpoint.pt", "run/tb/events", "other/metrics.csv", "run/deeper/metrics.csv")
    (top / live / ".lock").touch()
    before = _files(top)
    with open(top / live / ".lock", "a+") as other:  # a second open file description: another holder of the lock
        fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)
        with pytest.raises(RunExistsError, match=rf"{top / live} is in use by another run"):
            with claimed_run_folder(top, claims, overwrite=True):
                pass
        assert _files(top) == before
    with claimed_run_folder(top, claims, overwrite=True):  # that run ended: the overwrite goes through
        assert not (top / "runs.json").exists()
        assert sorted(p.name for p in (top / "run").iterdir()) == [MARKER, ".lock", "deeper"]


def test_the_claimed_run_folders_are_locked_without_overwrite_too(tmp_path):
    top = tmp_path / "top"
    (top / "run").mkdir(parents=True)
    with open(top / "run" / ".lock", "a+") as other:
        fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)
        with pytest.raises(RunExistsError, match=rf"{top / 'run'} is in use"):
            _claim(top / "run", top=top)
    assert not (top / "run" / MARKER).exists()


def test_the_lock_removes_only_checkpoint_temporaries(tmp_path):
    run = tmp_path / "run"
    _write(run, ".checkpoint.pt.x1y2.tmp", ".best.pt.x1y2.tmp", ".notes.tmp", ".cache/a.tmp")
    with run_lock(run):  # a killed run's half-written checkpoints go; a user's .tmp files stay
        assert sorted(_files(run)) == [".cache/a.tmp", ".notes.tmp"]


def test_run_outputs_are_names_in_the_folder(tmp_path):
    with pytest.raises(ValueError, match="names in the folder"):
        _claim(tmp_path / "run", outputs=("*.pt",))


# ----------------------------------------------------------------------------- the commands
def _env_run(out: Path, *extra: str) -> list[str]:
    return [
        "train",
        "--env",
        "CartPoleNoVel-v1",
        "--memory",
        "lstm",
        "--hidden-size",
        "8",
        "--steps",
        "128",
        "--n-envs",
        "4",
        "--final-eval-episodes",
        "4",
        "--no-progress",
        "--out",
        str(out),
        *extra,
    ]


def _preset(out: Path, *extra: str) -> list[str]:
    return [
        "train",
        "--preset",
        "paper-fwm",
        "--hidden-size",
        "8",
        "--d-fwm",
        "4",
        "--n-reads",
        "2",
        "--n-envs",
        "4",
        "--steps",
        "2",
        "--eval-every",
        "2",
        "--final-episodes-per-graph",
        "1",
        "--device",
        "cpu",
        "--no-progress",
        "--out",
        str(out),
        *extra,
    ]


def _babi(out: Path, root: Path) -> list[str]:
    data = write_variant(root, n=(8, 3, 3))
    return [
        "babi",
        "train",
        "--data",
        str(data),
        "--batch-size",
        "4",
        "--seq-len",
        "30",
        "--embedding-size",
        "12",
        "--hidden-size",
        "12",
        "--eval-batch-size",
        "4",
        "--steps",
        "2",
        "--device",
        "cpu",
        "--no-tensorboard",
        "--out",
        str(out),
    ]


def _lm(out: Path, root: Path) -> list[str]:
    data = write_corpus(root / "text")
    return [
        "lm",
        "train",
        "--model",
        "lstm",
        "--data",
        str(data),
        "--d-embed",
        "12",
        "--d-hidden",
        "16",
        "--n-layers",
        "2",
        "--batch-size",
        "4",
        "--bptt",
        "6",
        "--steps",
        "2",
        "--no-tune-temperature",
        "--no-tensorboard",
        "--no-progress",
        "--device",
        "cpu",
        "--out",
        str(out),
    ]


def test_overwriting_a_parent_folder_while_a_run_inside_is_live_deletes_nothing(tmp_path, capsys):
    """``train --env ... --out P/fwm &`` then ``train --preset ... --out P --overwrite``: refused, the live run's
    files untouched; once it has ended the overwrite replaces it (an --env run: its marker says which files are its)."""
    top = tmp_path / "P"
    assert main(_env_run(top / "fwm")) == 0
    before = _files(top)
    capsys.readouterr()
    with _held_by_another_process(top / "fwm"):
        assert main(_preset(top, "--overwrite")) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and f"{top / 'fwm'} is in use by another run (pid of a live run)" in err
        assert _files(top) == before  # checkpoint.pt, config.json, metrics.csv, tb/ of the live run: all as they were
    assert main(_preset(top, "--overwrite")) == 0
    assert json.loads((top / "fwm" / MARKER).read_text())["kind"] == "a2c"
    assert json.loads((top / MARKER).read_text())["kind"] == "a2c-preset"


def test_a_preset_folder_of_an_older_version_is_overwritten_only_where_its_runs_prove_it(tmp_path, capsys):
    """A preset folder without run markers (as fwm-rl before them wrote it): its runs.json names runs whose checkpoints
    say they are A2C runs, so --overwrite replaces it, the user's files kept; without such a checkpoint it is refused."""
    top = tmp_path / "P"
    assert main(_preset(top)) == 0
    for marker in top.rglob(MARKER):
        marker.unlink()
    _write(top, "notes.txt", "fwm/notes.txt")
    assert main(_preset(top, "--overwrite")) == 0
    assert (top / "notes.txt").exists() and (top / "fwm" / "notes.txt").exists() and (top / "fwm" / "checkpoint.pt").exists()
    for marker in top.rglob(MARKER):
        marker.unlink()
    (top / "fwm" / "checkpoint.pt").unlink()
    before = _files(top)
    capsys.readouterr()
    assert main(_preset(top, "--overwrite")) == 2
    err = capsys.readouterr().err
    unproven = f"{top} holds figure5.png, results.md, runs.json, which are not provably an fwm-rl run's ({top / 'fwm'} has no"
    assert unproven in err
    assert _files(top) == before


@pytest.mark.parametrize("trainer", ["env", "preset", "babi", "lm"])
def test_overwrite_never_deletes_a_users_files(trainer, tmp_path, capsys):
    """``mkdir proj proj/tb; echo '{}' > proj/config.json; fwm-rl ... --out proj --overwrite``: refused, one line naming
    the files that are not a run's; nothing deleted. Through every trainer's command."""
    proj = tmp_path / "proj"
    argv = {
        "env": lambda: _env_run(proj),
        "preset": lambda: _preset(proj),
        "babi": lambda: _babi(proj, tmp_path),
        "lm": lambda: _lm(proj, tmp_path),
    }[trainer]()
    folder = proj / "fwm" if trainer == "preset" else proj  # a preset's runs are in sub-folders
    _write(folder, "config.json", "metrics.csv", "results.json", "tb/my-events", "notes.txt")
    before = _files(proj)
    for extra in ([], ["--overwrite"]):
        assert main([*argv, *extra]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and f"{folder} holds " in err and "which are not provably an fwm-rl run's" in err
        assert "metrics.csv" in err and "tb" in err and "notes.txt" not in err
        assert _files(proj) == before


def test_two_overwrites_of_one_folder_one_wins_the_other_is_refused(tmp_path, monkeypatch, capsys):
    """The second overwrite starts while the first is deleting (it holds the folder's lock): it is refused in one line
    without touching anything; the first goes on and the user's file in the folder survives both."""
    run = tmp_path / "run"
    assert main(_env_run(run)) == 0
    _write(run, "notes.txt")
    real_delete, second = folders._delete, []

    def delete_while_another_overwrite_starts(paths):
        if paths and not second:  # (the first overwrite deletes the old run's files)
            kept = _files(run)
            second.append(main(_env_run(run, "--overwrite")))
            second.append(capsys.readouterr().err)
            assert _files(run) == kept
        real_delete(paths)

    monkeypatch.setattr(folders, "_delete", delete_while_another_overwrite_starts)
    assert main(_env_run(run, "--overwrite")) == 0
    assert second[0] == 2 and second[1].count("\n") == 1 and f"{run} is in use by another run (pid " in second[1]
    assert (run / "notes.txt").read_text() == "notes.txt of the user" and (run / "checkpoint.pt").exists()
