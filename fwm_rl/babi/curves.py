"""Learning curves of catbAbI runs: validation answer accuracy against training steps and training time.

Two panels from each run folder's ``metrics.csv``: the periodic validation accuracy (``valid/answer_accuracy``)
against steps, and the same against hours of training (``time/train_seconds``, the clock of ``--time-budget``),
which is how models of different speed compare on equal time. ``fwm-rl babi plot`` draws them.
"""

from __future__ import annotations

import csv
from pathlib import Path

from fwm_rl.engine import save_figure

__all__ = ["plot_learning_curves", "read_valid_curve"]


def read_valid_curve(run_dir: str | Path) -> list[tuple[int, float | None, float]]:
    """``(step, training seconds or None, valid answer accuracy)`` of every validation logged by a run."""
    path = Path(run_dir) / "metrics.csv"
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist: give a catbAbI run folder (written by fwm-rl babi train)")
    with path.open(newline="") as f:
        rows = list(csv.DictReader(f))
    if rows and "valid/answer_accuracy" not in rows[0]:
        raise ValueError(f"{path} has no valid/answer_accuracy column: is it a catbAbI run?")
    curve = []
    for row in rows:
        if row.get("valid/answer_accuracy"):
            seconds = row.get("time/train_seconds") or None  # (runs before the time budget did not log it)
            curve.append((int(float(row["step"])), None if seconds is None else float(seconds), float(row["valid/answer_accuracy"])))
    if not curve:
        raise ValueError(f"{path} holds no validation yet")
    return curve


def plot_learning_curves(run_dirs: list[str | Path], out: str | Path, labels: list[str] | None = None) -> Path:
    """Draw the validation accuracy of ``run_dirs`` against steps and against training hours into the PNG ``out``."""
    from matplotlib.figure import Figure

    if not run_dirs:
        raise ValueError("no runs to plot")
    labels = [Path(d).name for d in run_dirs] if labels is None else labels
    if len(labels) != len(run_dirs):
        raise ValueError(f"give one label per run: {len(run_dirs)} runs, {len(labels)} labels")
    fig = Figure(figsize=(12, 4.5))
    by_step, by_time = fig.subplots(1, 2, sharey=True)
    for run_dir, label in zip(run_dirs, labels):
        curve = read_valid_curve(run_dir)
        by_step.plot([c[0] for c in curve], [c[2] for c in curve], label=label)
        timed = [c for c in curve if c[1] is not None]
        if timed:
            by_time.plot([c[1] / 3600 for c in timed], [c[2] for c in timed], label=label)
    by_step.set_xlabel("training steps")
    by_time.set_xlabel("hours of training (validation not counted)")
    by_step.set_ylabel("validation answer accuracy")
    for ax in (by_step, by_time):
        ax.grid(alpha=0.3)
    by_time.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    return save_figure(fig, out, dpi=120)
