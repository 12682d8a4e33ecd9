"""The training loop every trainer runs (A2C, catbAbI, LM): one step at a time until the run's budget is spent,
the training log and the validation (with its checkpoint) on their cadence, and the time budget decided by
rank 0 so that every process stops after the same step.

An experiment supplies a :class:`LoopTask`: its one training step, when it is finished, its log, when a
validation is due, and its validation. The loop owns the order and the clock.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Protocol

from tqdm.auto import tqdm

from fwm_rl.engine.distributed import DistContext, rank0_clock
from fwm_rl.engine.folders import RESULTS

__all__ = ["LoopTask", "RunFinished", "finished_run", "train_loop"]


class LoopTask(Protocol):
    """What an experiment gives :func:`train_loop`."""

    #: training steps done (in the unit of the run's ``steps``)
    step: int
    #: seconds spent in :meth:`advance` so far (what ``--time-budget`` counts; validation and checkpoints are not counted)
    train_seconds: float

    def advance(self) -> None:
        """Take one training step (``step`` grows: by one, or by the units one step counts, e.g. environment steps)."""

    def finished(self) -> bool:
        """Whether the run's own budget (steps, epochs) is spent; the time budget is the loop's."""

    def write_log(self) -> None:
        """Log the training metrics of the steps since the last log."""

    def validation_due(self) -> bool:
        """Whether the step just taken ends a validation interval."""

    def validate_and_save(self, scheduled: bool) -> None:
        """Validate, keep the best weights and write the checkpoint; ``scheduled`` is false when the run
        validates only because it stops between two validations."""


def train_loop(task: LoopTask, *, log_every: int, time_budget: float | None, bar: tqdm, ctx: DistContext) -> bool:
    """Train ``task`` until it is :meth:`~LoopTask.finished` or has spent ``time_budget`` seconds in training
    steps (``None``: no limit). It logs every ``log_every`` steps and validates when due; the step it stops at is
    always logged and validated. A step may count several units (``step`` grows by more than one): the log then
    comes at the first step that reaches or passes each multiple of ``log_every``. Under ``torchrun`` (``ctx``)
    every process takes rank 0's clock, so all stop after the same step. ``bar`` counts the units. Returns
    whether the time budget stopped it.
    """

    def spent() -> bool:
        return _out_of_time(task.train_seconds, time_budget)

    while not (task.finished() or spent()):
        before, start = task.step, time.perf_counter()
        task.advance()
        seconds = task.train_seconds + time.perf_counter() - start
        task.train_seconds = rank0_clock(seconds, ctx) if time_budget is not None else seconds
        bar.update(task.step - before)
        last = task.finished() or spent()
        if task.step // log_every > before // log_every or last:  # the step crossed a multiple of log_every
            task.write_log()
        due = task.validation_due()
        if due or last:
            task.validate_and_save(scheduled=due)
    return spent() and not task.finished()


def _out_of_time(train_seconds: float, time_budget: float | None) -> bool:
    """Whether ``train_seconds`` of training steps have spent ``time_budget`` (``None``: no limit)."""
    return time_budget is not None and train_seconds >= time_budget


class RunFinished(Exception):
    """A resumed run with nothing left to do: its budget is spent and its end is recorded (:func:`finished_run`).
    The command line says so in one line and exits 0, so a script that resumes a run until it is done stops there;
    ``results`` are the run's results as its ``results.json`` records them."""

    def __init__(self, message: str, results: Any):
        super().__init__(message)
        self.results = results


def finished_run(
    folder: Path, *, spent: str | None, flag: str, train_seconds: float, time_budget: float | None, results: Any
) -> RunFinished | None:
    """The :class:`RunFinished` that resuming the run in ``folder`` raises where :func:`train_loop` would take no step
    and the run's end is recorded; else ``None``. ``spent`` says how far the run's own budget is spent where it is
    (e.g. "40 of 40 episodes"; ``None`` where it is not), ``flag`` the option that enlarges it; ``results`` are the
    run's results where its ``results.json`` records the end at the checkpoint's step
    (:func:`~fwm_rl.engine.recorded_results`), else ``None``: a run cut short in its final evaluation finishes it then."""
    if results is None or not (spent or _out_of_time(train_seconds, time_budget)):
        return None
    why, more = (f"{spent} done", flag) if spent else (f"its time budget of {time_budget:g} s is spent", "--time-budget")
    return RunFinished(
        f"{folder}: the run is finished ({why}; its results are in {RESULTS}); resume with a larger {more} "
        "to train it further",
        results,
    )
