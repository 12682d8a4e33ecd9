"""Learning curves of catbAbI runs: validation answer accuracy against training steps and training time.

Two panels from each run folder's ``metrics.csv``: the periodic validation accuracy (``valid/answer_accuracy``)
against steps, and the same against hours of training (``time/train_seconds``, the clock of ``--time-budget``),
which is how models of different speed compare on equal time. ``fwm-rl babi plot`` draws them
(:func:`fwm_rl.engine.plot_curves`).
"""

from __future__ import annotations

from pathlib import Path

from fwm_rl.engine import plot_curves, read_curve

__all__ = ["plot_learning_curves", "read_valid_curve"]

_RUNS = "a catbAbI run folder (written by fwm-rl babi train)"


def read_valid_curve(run_dir: str | Path) -> list[tuple[int, float | None, float]]:
    """``(step, training seconds or None, valid answer accuracy)`` of every validation logged by a run."""
    return read_curve(run_dir, "valid/answer_accuracy", _RUNS)


def plot_learning_curves(run_dirs: list[str | Path], out: str | Path, labels: list[str] | None = None) -> Path:
    """Draw the validation accuracy of ``run_dirs`` against steps and against training hours into the PNG ``out``."""
    return plot_curves(
        run_dirs, out, column="valid/answer_accuracy", ylabel="validation answer accuracy", what=_RUNS, labels=labels
    )
