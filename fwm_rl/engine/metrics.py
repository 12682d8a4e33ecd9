"""What a run shows and keeps: the metric log (CSV + TensorBoard), progress bars and figures."""

from __future__ import annotations

import csv
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

__all__ = ["RunLogger", "plot_curves", "progress", "read_curve", "save_figure"]


def progress(iterable: Iterable | None = None, *, total: int | None = None, desc: str = "", initial: int = 0, disable: bool | None = None):
    """A tqdm progress bar (shown on a terminal, quiet in logs unless forced)."""
    from tqdm.auto import tqdm

    return tqdm(iterable, total=total, desc=desc, initial=initial, disable=disable, dynamic_ncols=True)


class RunLogger:
    """Append-only metric log: ``metrics.csv`` plus TensorBoard event files in ``out_dir``.

    Rows may carry different keys; the CSV header grows (and the file is rewritten)
    when a new key appears, so a resumed run keeps one consistent file.
    """

    def __init__(
        self,
        out_dir: str | os.PathLike,
        tensorboard: bool = True,
        filename: str = "metrics.csv",
        resume_step: int | None = None,
    ):
        """``resume_step``: when resuming from a checkpoint taken at that step, rows
        logged after it (by the interrupted run) are dropped so none appears twice."""
        self.out_dir = Path(out_dir)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.csv_path = self.out_dir / filename
        self._fields: list[str] = []
        if self.csv_path.exists():
            with open(self.csv_path, newline="") as fh:
                self._fields = next(csv.reader(fh), [])
            if resume_step is None:
                self._rewrite(self._fields, keep_until=-1)
            else:
                self._rewrite(self._fields, keep_until=resume_step)
        self._writer = None
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            self._writer = SummaryWriter(log_dir=str(self.out_dir / "tb"))

    def log(self, step: int, metrics: Mapping[str, float]) -> None:
        row = {"step": step, **{k: float(v) for k, v in metrics.items()}}
        new = [k for k in row if k not in self._fields]
        if new:
            self._rewrite(self._fields + new)
        with open(self.csv_path, "a", newline="") as fh:
            csv.DictWriter(fh, fieldnames=self._fields).writerow(row)
        if self._writer is not None:
            for key, value in metrics.items():
                self._writer.add_scalar(key, float(value), step)
            self._writer.flush()

    def _rewrite(self, fields: list[str], keep_until: int | None = None) -> None:
        """Rewrite the CSV with ``fields`` as header, keeping rows with step <= keep_until (all if None)."""
        rows = []
        if self.csv_path.exists():
            with open(self.csv_path, newline="") as fh:
                rows = list(csv.DictReader(fh))
        if keep_until is not None:
            rows = [r for r in rows if float(r["step"]) <= keep_until]
        self._fields = fields
        tmp = self.csv_path.with_name(f".{self.csv_path.name}.tmp")  # a kill mid-write leaves the old file whole
        with open(tmp, "w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=fields)
            writer.writeheader()
            writer.writerows(rows)
        os.replace(tmp, self.csv_path)

    def read(self) -> list[dict[str, float]]:
        """All rows logged so far (numbers as floats, missing cells as NaN)."""
        if not self.csv_path.exists():
            return []
        with open(self.csv_path, newline="") as fh:
            return [{k: (float(v) if v not in ("", None) else float("nan")) for k, v in r.items()} for r in csv.DictReader(fh)]

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None


def save_figure(fig: Any, path: str | os.PathLike, **savefig_kwargs: Any) -> Path:
    """Write a matplotlib ``Figure`` to ``path`` (parent folders are created) and return the path.

    The project's figures are ``matplotlib.figure.Figure`` objects made without pyplot, so drawing
    neither changes the user's backend nor leaves figures open.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, **savefig_kwargs)
    return path


def read_curve(run_dir: str | os.PathLike, column: str, what: str) -> list[tuple[int, float | None, float]]:
    """``(step, training seconds or None, value)`` of every row of a run folder's ``metrics.csv`` that logged
    ``column``; the seconds are ``time/train_seconds`` (the clock of ``--time-budget``) where the row has them.
    ``what`` says in the errors which folders are meant (e.g. "a catbAbI run folder (written by fwm-rl babi train)")."""
    path = Path(run_dir) / "metrics.csv"
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist: give {what}")
    with path.open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    if rows and column not in rows[0]:
        raise ValueError(f"{path} has no {column} column: give {what}")
    curve = [(int(float(row["step"])), float(row["time/train_seconds"]) if row.get("time/train_seconds") else None, float(row[column]))
             for row in rows if row.get(column)]
    if not curve:
        raise ValueError(f"{path} holds no {column} yet")
    return curve


def plot_curves(run_dirs: list[str | os.PathLike], out: str | os.PathLike, *, column: str, ylabel: str, what: str,
                labels: list[str] | None = None, log_y: bool = False) -> Path:
    """Draw ``column`` of each run's ``metrics.csv`` (:func:`read_curve`) against training steps and, beside it,
    against hours of training, which is how models of different speed compare on equal time; rows without
    ``time/train_seconds`` are left out of that panel, which is dropped when no run has any. Writes the PNG ``out``."""
    from matplotlib.figure import Figure

    if not run_dirs:
        raise ValueError("no runs to plot")
    labels = [Path(d).name for d in run_dirs] if labels is None else labels
    if len(labels) != len(run_dirs):
        raise ValueError(f"give one label per run: {len(run_dirs)} runs, {len(labels)} labels")
    curves = [read_curve(d, column, what) for d in run_dirs]
    timed = any(c[1] is not None for curve in curves for c in curve)
    fig = Figure(figsize=(12 if timed else 6.5, 4.5))
    axes = fig.subplots(1, 2, sharey=True) if timed else [fig.subplots()]
    for curve, label in zip(curves, labels):
        axes[0].plot([c[0] for c in curve], [c[2] for c in curve], label=label)
        if timed:
            axes[1].plot([c[1] / 3600 for c in curve if c[1] is not None], [c[2] for c in curve if c[1] is not None], label=label)
    axes[0].set_xlabel("training steps")
    axes[0].set_ylabel(ylabel)
    if timed:
        axes[1].set_xlabel("hours of training (validation not counted)")
    for ax in axes:
        ax.grid(alpha=0.3)
        if log_y:
            ax.set_yscale("log")
    axes[-1].legend(fontsize=8)
    fig.tight_layout()
    return save_figure(fig, out, dpi=120)
