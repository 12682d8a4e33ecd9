"""The training loop every trainer runs (A2C, catbAbI, LM): one step at a time until the run's budget is spent,
the training log and the validation (with its checkpoint) on their cadence, and the time budget decided by
rank 0 so that every process stops after the same step.

An experiment supplies a :class:`LoopTask`: its one training step, when it is finished, its log, when a
validation is due, and its validation. The loop owns the order and the clock.
"""

from __future__ import annotations

import time
from typing import Protocol

from tqdm.auto import tqdm

from fwm_rl.distributed import DistContext, rank0_clock

__all__ = ["LoopTask", "train_loop"]


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
    def out_of_time() -> bool:
        return time_budget is not None and task.train_seconds >= time_budget

    while not (task.finished() or out_of_time()):
        before, start = task.step, time.perf_counter()
        task.advance()
        seconds = task.train_seconds + time.perf_counter() - start
        task.train_seconds = rank0_clock(seconds, ctx) if time_budget is not None else seconds
        bar.update(task.step - before)
        last = task.finished() or out_of_time()
        if task.step // log_every > before // log_every or last:  # the step crossed a multiple of log_every
            task.write_log()
        due = task.validation_due()
        if due or last:
            task.validate_and_save(scheduled=due)
    return out_of_time() and not task.finished()
