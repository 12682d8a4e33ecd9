"""The run contract, one suite over the three trainers (A2C on the graphs, catbAbI, LM), through their commands.

For every trainer: a resumed run ends exactly where an uninterrupted one does; a non-finite loss stops the run
(exit code 1, one line) with the last good checkpoint intact and resumable; a folder holding a run is never
overwritten without ``--overwrite``; a run killed with ``kill -9`` resumes from its last checkpoint (at most one
checkpoint interval lost, never a checkpoint that does not load) and still ends where the uninterrupted one does;
resuming a finished run says so (one line, exit code 0) and changes nothing, however often, and a run cut short in its
final evaluation finishes it; a torn ``metrics.csv`` is repaired from the checkpoint's step on resume and a foreign one
refused and kept; a checkpoint does not depend on the number of processes that wrote it (same layout and configs as one process's,
and it resumes under one process or two). That two processes train like one (same gradients, same weights) is
tested per trainer in ``test_*_distributed.py``: it needs the trainers' internals (a recorded rollout, no dropout,
float64) to compare exactly.
"""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from dist_launch import spawn_gloo
from tiny_data import write_corpus, write_variant

from fwm_rl.agents.a2c import RecurrentRolloutBuffer
from fwm_rl.cli import main
from fwm_rl.engine import load_checkpoint

INTERVAL = 2  # steps between checkpoints in every task below


@dataclass
class Task:
    """How the suite drives one trainer."""

    name: str
    #: the command line of a new run of ``steps`` steps into ``out`` (data made under ``root``)
    new: Callable[[Path, Path, int], list[str]]
    #: the command line that resumes ``out`` up to ``steps`` steps
    resume: Callable[[Path, int], list[str]]
    #: the run's checkpoint inside ``out``
    checkpoint: Callable[[Path], Path]
    #: make the loss of the third update non-finite (a pytest monkeypatch is given)
    poison: Callable[[pytest.MonkeyPatch], None]


def _poison_gradient_step(module: str) -> Callable[[pytest.MonkeyPatch], None]:
    """catbAbI and LM: the third call of the trainer's gradient step sees a NaN loss (as a diverged model gives)."""

    def poison(monkeypatch: pytest.MonkeyPatch) -> None:
        import importlib

        trainer = importlib.import_module(module)
        real, calls = trainer.gradient_step, []

        def poisoned(*args, totals, **kwargs):
            calls.append(1)
            return real(*args, totals={**totals, "loss": float("nan")} if len(calls) == 3 else totals, **kwargs)

        monkeypatch.setattr(trainer, "gradient_step", poisoned)

    return poison


def _poison_a2c(monkeypatch: pytest.MonkeyPatch) -> None:
    """A2C: the third rollout's returns hold a NaN."""
    real, calls = RecurrentRolloutBuffer.compute_returns_and_advantage, []

    def poisoned(self, last_values, dones):
        real(self, last_values, dones)
        calls.append(1)
        if len(calls) == 3:
            self.returns[0, 0] = float("nan")

    monkeypatch.setattr(RecurrentRolloutBuffer, "compute_returns_and_advantage", poisoned)


def _babi_data(root: Path) -> Path:
    return (
        write_variant(root, n=(8, 3, 3)) if not (root / "tasks_1-20_v1-2").exists() else root / "tasks_1-20_v1-2" / "en-valid"
    )


def _lm_data(root: Path) -> Path:
    return root / "text" if (root / "text").exists() else write_corpus(root / "text")


TASKS = [
    Task(
        "a2c",
        new=lambda root, out, steps: [
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
            str(steps),
            "--eval-every",
            str(INTERVAL),
            "--final-episodes-per-graph",
            "1",
            "--device",
            "cpu",
            "--no-progress",
            "--out",
            str(out),
        ],
        resume=lambda out, steps: ["train", "--resume", str(out), "--steps", str(steps), "--no-progress"],
        checkpoint=lambda out: out / "fwm" / "checkpoint.pt",
        poison=_poison_a2c,
    ),
    Task(
        "catbabi",
        new=lambda root, out, steps: [
            "babi",
            "train",
            "--data",
            str(_babi_data(root)),
            "--batch-size",
            "4",
            "--seq-len",
            "30",
            "--embedding-size",
            "12",
            "--hidden-size",
            "12",
            "--d-fwm",
            "4",
            "--n-reads",
            "2",
            "--eval-batch-size",
            "4",
            "--steps",
            str(steps),
            "--eval-every",
            str(INTERVAL),
            "--log-every",
            "1",
            "--device",
            "cpu",
            "--no-tensorboard",
            "--out",
            str(out),
        ],
        resume=lambda out, steps: [
            "babi",
            "train",
            "--resume",
            str(out),
            "--steps",
            str(steps),
            "--device",
            "cpu",
            "--no-tensorboard",
        ],
        checkpoint=lambda out: out / "checkpoint.pt",
        poison=_poison_gradient_step("fwm_rl.babi.trainer"),
    ),
    Task(
        "lm",
        # ASGD from the second validation on: resuming covers the averaged-SGD state too
        new=lambda root, out, steps: [
            "lm",
            "train",
            "--model",
            "fwm",
            "--data",
            str(_lm_data(root)),
            "--d-embed",
            "12",
            "--d-hidden",
            "16",
            "--n-layers",
            "2",
            "--d-fwm",
            "4",
            "--n-reads",
            "2",
            "--batch-size",
            "4",
            "--bptt",
            "6",
            "--steps",
            str(steps),
            "--eval-every",
            str(INTERVAL),
            "--log-every",
            "1",
            "--asgd-after",
            "2",
            "--seed",
            "3",
            "--no-tune-temperature",
            "--no-tensorboard",
            "--no-progress",
            "--device",
            "cpu",
            "--out",
            str(out),
        ],
        resume=lambda out, steps: [
            "lm",
            "train",
            "--out",
            str(out),
            "--resume",
            "--steps",
            str(steps),
            "--no-progress",
            "--device",
            "cpu",
        ],
        checkpoint=lambda out: out / "checkpoint.pt",
        poison=_poison_gradient_step("fwm_rl.lm.trainer"),
    ),
]
pytestmark = pytest.mark.parametrize("task", TASKS, ids=[t.name for t in TASKS])


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("contract")


def _run(argv: list[str]) -> int:
    return main(argv)


def _metrics(out: Path) -> list[dict]:
    """The training and validation rows of ``metrics.csv``, without the columns that measure time. (Test rows are
    left out: a run that ended, then was extended with ``--resume``, keeps the record of its first final test.)"""
    path = next(out.rglob("metrics.csv"))
    with open(path, newline="") as fh:
        rows = [
            {k: v for k, v in row.items() if not k.startswith(("time/", "test", "final/")) and "per_s" not in k}
            for row in csv.DictReader(fh)
        ]
    return [row for row in rows if any(v for k, v in row.items() if k != "step")]


def _assert_whole_log(out: Path) -> None:
    """``metrics.csv`` holds every row once, whole and in step order: no (step, filled columns) twice, no row without a
    value, no step going back (a torn row read as a row is all three)."""
    with open(next(out.rglob("metrics.csv")), newline="") as fh:
        entries = [(int(row["step"]), frozenset(k for k, v in row.items() if v and k != "step")) for row in csv.DictReader(fh)]
    assert len(set(entries)) == len(entries), "a row logged twice"
    assert all(columns for _, columns in entries), "a row without values"
    assert [step for step, _ in entries] == sorted(step for step, _ in entries), "a step going back"


def _files(out: Path) -> dict[Path, bytes]:
    """The run's files (not the engine's hidden lock and marker) and what they hold."""
    return {path: path.read_bytes() for path in sorted(out.rglob("*")) if path.is_file() and not path.name.startswith(".")}


def _assert_same_run(task: Task, a: Path, b: Path) -> None:
    ca, cb = load_checkpoint(task.checkpoint(a)), load_checkpoint(task.checkpoint(b))
    assert ca["kind"] == cb["kind"] == task.name and ca["step"] == cb["step"]
    wa, wb = ca["model"], cb["model"]  # (one checkpoint schema: the trained weights are "model" in every kind)
    assert wa.keys() == wb.keys()
    for name in wa:
        assert torch.equal(wa[name], wb[name]), name
    assert _metrics(a) == _metrics(b)


@pytest.fixture(scope="module")
def straight(root) -> dict[str, Path]:
    """Uninterrupted runs of every task, 6 steps and 12 steps, made once."""
    runs = {}
    for task in TASKS:
        for steps in (6, 12):
            out = root / f"{task.name}-straight-{steps}"
            assert _run(task.new(root, out, steps)) == 0
            runs[task.name, steps] = out
    return runs


def test_resume_continues_exactly(task, root, straight, tmp_path):
    out = tmp_path / "split"
    assert _run(task.new(root, out, 4)) == 0
    assert _run(task.resume(out, 6)) == 0
    _assert_same_run(task, straight[task.name, 6], out)
    _assert_whole_log(out)
    results = json.loads(next(out.rglob("results.json")).read_text())
    assert {"command", "code", "machine", "started", "finished", "wall_seconds"} <= set(results["record"])


def test_non_finite_loss_stops_with_the_last_good_checkpoint(task, root, straight, tmp_path, monkeypatch, capsys):
    out = tmp_path / "nan"
    with monkeypatch.context() as patch:
        task.poison(patch)
        assert _run(task.new(root, out, 6)) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "non-finite loss" in err and "last good checkpoint is kept" in err, err
    ckpt = load_checkpoint(task.checkpoint(out))
    assert ckpt["step"] == INTERVAL  # the checkpoint before the poisoned third update
    assert all(torch.isfinite(w).all() for w in ckpt["model"].values() if w.is_floating_point())
    assert _run(task.resume(out, 6)) == 0  # and it resumes: to where the uninterrupted run ends
    _assert_same_run(task, straight[task.name, 6], out)


def test_a_folder_holding_a_run_is_not_overwritten(task, root, straight, tmp_path, capsys):
    out = tmp_path / "kept"
    assert _run(task.new(root, out, 2)) == 0
    before = task.checkpoint(out).read_bytes()
    capsys.readouterr()
    assert _run(task.new(root, out, 2)) == 2
    err = capsys.readouterr().err
    assert str(out) in err and "--resume" in err and "--overwrite" in err
    assert task.checkpoint(out).read_bytes() == before
    assert _run([*task.new(root, out, 2), "--overwrite"]) == 0


def test_kill_9_then_resume_loses_at_most_one_interval(task, root, straight, tmp_path):
    out = tmp_path / "killed"
    argv = task.new(root, out, 12)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).parents[1]), *sys.path])}
    code = "import sys, torch; torch.set_num_threads(1); from fwm_rl.cli import main; sys.exit(main(sys.argv[1:]))"
    proc = subprocess.Popen([sys.executable, "-c", code, *argv], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    path, seen, deadline = task.checkpoint(out), 0, time.monotonic() + 120
    try:
        while proc.poll() is None and time.monotonic() < deadline:  # kill it once it has checkpointed twice
            if path.exists():
                try:
                    seen = load_checkpoint(path)["step"]
                except ValueError:  # (never: checkpoints are written atomically; the assertion below says so)
                    pass
                if seen >= 2 * INTERVAL:
                    break
            time.sleep(0.05)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    if proc.returncode == 0:
        pytest.skip("the run ended before it could be killed")
    ckpt = load_checkpoint(path)  # loads: never torn
    assert ckpt["step"] >= seen >= 2 * INTERVAL
    assert _run(task.resume(out, 12)) == 0
    _assert_same_run(task, straight[task.name, 12], out)
    _assert_whole_log(out)


def test_a_time_budget_stops_the_run_and_counts_across_resume(task, root, tmp_path, capsys):
    out = tmp_path / "budget"
    assert _run([*task.new(root, out, 12), "--time-budget", "1e-6"]) == 0
    first = load_checkpoint(task.checkpoint(out))
    assert 0 < first["step"] < 12  # stopped at the first step (A2C: the first log) past the budget
    # resumed with the same budget: the seconds already trained count, so nothing more is trained
    capsys.readouterr()
    assert _run([*task.resume(out, 12), "--time-budget", "1e-6"]) == 0
    said = capsys.readouterr().out
    assert "the run is finished (its time budget of 1e-06 s is spent" in said and "a larger --time-budget" in said, said
    assert load_checkpoint(task.checkpoint(out))["step"] == first["step"]


def test_resuming_a_finished_run_says_so_and_changes_nothing(task, root, tmp_path, capsys):
    out = tmp_path / "done"
    assert _run(task.new(root, out, 4)) == 0
    files = _files(out)
    for _ in range(2):  # (a script that resumes until the run is done stops at exit code 0)
        capsys.readouterr()
        assert _run(task.resume(out, 4)) == 0
        said = capsys.readouterr().out
        assert len(said.splitlines()) == 1 and "the run is finished (4 of 4 " in said and "a larger --steps" in said, said
        assert _files(out) == files  # no row logged again, no result written again
    assert _run(task.resume(out, 6)) == 0  # a larger budget continues it
    assert load_checkpoint(task.checkpoint(out))["step"] == 6
    _assert_whole_log(out)


def test_print_config_on_resume_prints_the_settings_it_would_continue_with_and_trains_nothing(task, root, tmp_path, capsys):
    out = tmp_path / "run"
    assert _run(task.new(root, out, 4)) == 0
    files = _files(out)
    capsys.readouterr()
    assert _run([*task.resume(out, 6), "--print-config"]) == 0
    printed = json.loads(capsys.readouterr().out)
    steps = [run["steps"] for run in printed.get("runs", [])] or [printed.get("config", printed.get("train", {})).get("steps")]
    assert steps == [6], printed  # the resumed budget, the checkpoint's other settings
    assert _files(out) == files


def test_a_run_cut_short_in_its_final_evaluation_finishes_it_on_resume(task, root, tmp_path):
    out = tmp_path / "cut"
    assert _run(task.new(root, out, 4)) == 0
    log, results = next(out.rglob("metrics.csv")), next(out.rglob("results.json"))
    before, recorded = log.read_bytes(), json.loads(results.read_text())
    results.unlink()  # killed after logging its final rows, before writing its results
    assert _run(task.resume(out, 4)) == 0  # not finished: the end is done again, and its rows logged once
    assert log.read_bytes() == before
    again = json.loads(results.read_text())
    assert {k: v for k, v in again.items() if k != "record"} == {k: v for k, v in recorded.items() if k != "record"}


def test_a_torn_log_is_repaired_from_the_checkpoint_on_resume(task, root, straight, tmp_path, capsys):
    out = tmp_path / "torn"
    assert _run(task.new(root, out, 4)) == 0
    log = next(out.rglob("metrics.csv"))
    with open(log, newline="") as fh:
        header = next(csv.reader(fh))
    with open(next(straight[task.name, 12].rglob("metrics.csv")), newline="") as fh:
        later = [row for row in csv.DictReader(fh) if int(row["step"]) > 4]
    with open(log, "a", newline="") as fh:  # the rows an interrupted run logged after its checkpoint at step 4 ...
        csv.DictWriter(fh, header).writerows(later[:-1])
        fh.write("1")  # ... killed while writing the row of step 12
    capsys.readouterr()
    assert _run(task.resume(out, 12)) == 0
    said = [line for line in capsys.readouterr().err.splitlines() if "metrics.csv" in line]
    assert said == [
        f"{log}: resumed at step 4 (the checkpoint's); dropped {len(later) - 1} rows logged after it and a torn last line '1'"
    ]
    _assert_same_run(task, straight[task.name, 12], out)
    _assert_whole_log(out)


def test_a_log_that_is_not_the_runs_is_refused_on_resume_and_kept(task, root, tmp_path, capsys):
    out = tmp_path / "foreign"
    assert _run(task.new(root, out, 4)) == 0
    log, checkpoint = next(out.rglob("metrics.csv")), task.checkpoint(out).read_bytes()
    log.write_text("date;loss\n2021-01-01;0.5\n")  # someone else's file in its place
    capsys.readouterr()
    assert _run(task.resume(out, 6)) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and f"{log} is not a metrics log written by fwm-rl" in err and "move it away" in err, err
    assert log.read_text() == "date;loss\n2021-01-01;0.5\n" and task.checkpoint(out).read_bytes() == checkpoint
    log.rename(tmp_path / "theirs.csv")  # moved away, as the message says: the run resumes
    assert _run(task.resume(out, 6)) == 0
    assert load_checkpoint(task.checkpoint(out))["step"] == 6
    _assert_whole_log(out)


def _layout(nest):
    """What a checkpoint holds, without the values: keys, tensor shapes and dtypes, the types of the rest."""
    if isinstance(nest, dict):
        return {key: _layout(value) for key, value in nest.items()}
    if isinstance(nest, (list, tuple)):
        return [_layout(value) for value in nest]
    if isinstance(nest, torch.Tensor):
        return ("tensor", tuple(nest.shape), nest.dtype)
    return type(nest).__name__


def _main_in_each_process(rank, world_size, argv):
    """One process of a torchrun-like run of the command line ``argv`` (the CLI joins the gloo group)."""
    torch.set_num_threads(1)
    groups, leave = [], torch.distributed.destroy_process_group

    def record_and_leave() -> None:  # (the processes leave together: rank 0 hosts the group's store)
        groups.append(torch.distributed.get_world_size())
        torch.distributed.barrier()
        leave()

    torch.distributed.destroy_process_group = record_and_leave
    assert main(argv) == 0
    assert groups == [world_size]  # the command joined the group, and left it at its end


def test_a_checkpoint_does_not_depend_on_the_number_of_processes(task, root, straight, tmp_path):
    def same_layout(a: dict, b: dict) -> None:
        assert a["kind"] == b["kind"] and a["step"] == b["step"] and a["configs"] == b["configs"]
        assert _layout(a) == _layout(b)

    two = tmp_path / "two"  # a new run in two processes ...
    spawn_gloo(_main_in_each_process, 2, task.new(root, two, 6))
    same_layout(load_checkpoint(task.checkpoint(two)), load_checkpoint(task.checkpoint(straight[task.name, 6])))
    assert _run(task.resume(two, 12)) == 0  # ... resumed in one
    same_layout(load_checkpoint(task.checkpoint(two)), load_checkpoint(task.checkpoint(straight[task.name, 12])))

    one = tmp_path / "one"  # a run of one process, resumed in two
    assert _run(task.new(root, one, 6)) == 0
    spawn_gloo(_main_in_each_process, 2, task.resume(one, 12))
    same_layout(load_checkpoint(task.checkpoint(one)), load_checkpoint(task.checkpoint(straight[task.name, 12])))
