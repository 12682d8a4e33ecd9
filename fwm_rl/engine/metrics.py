"""What a run shows and keeps: the metric log (CSV + TensorBoard), progress bars and figures."""

from __future__ import annotations

import csv
import io
import os
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

__all__ = ["RunLogger", "plot_curves", "progress", "read_curve", "read_metrics", "save_figure"]


def progress(
    iterable: Iterable | None = None,
    *,
    total: int | None = None,
    desc: str = "",
    initial: int = 0,
    disable: bool | None = None,
):
    """A tqdm progress bar (shown on a terminal, quiet in logs unless forced)."""
    from tqdm.auto import tqdm

    return tqdm(iterable, total=total, desc=desc, initial=initial, disable=disable, dynamic_ncols=True)


#: The first column of every ``metrics.csv``: the step a row was logged at.
STEP = "step"


def _read_log(path: Path, fix: str) -> tuple[list[str], list[dict[str, str]], str | None]:
    """The header, the whole rows (each its filled cells, as written) and the torn last line (``None`` where the file
    ends with a whole row) of a ``metrics.csv`` as :class:`RunLogger` writes it. A file that is not one raises a
    ValueError in one line naming it, the line at fault, and ``fix``."""

    def refuse(why: str) -> ValueError:
        return ValueError(f"{path} is not a metrics log written by fwm-rl: {why}; {fix}")

    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise refuse("it is not text") from None
    whole, _, torn = text.rpartition("\n") if "\n" in text else (text, "", "")
    reader = csv.reader(io.StringIO(whole, newline=""))
    try:
        header = next(reader, [])
        if not header or header[0] != STEP or "" in header or len(set(header)) < len(header):
            first = text.partition("\n")[0]
            raise refuse(
                f"its first line {first[:60]!r} is not a header of distinct names starting with {STEP!r}"
                if text
                else "it is empty"
            )
        rows = []
        for row in reader:
            cells = {name: value for name, value in zip(header, row) if value != ""}
            if len(row) != len(header) or STEP not in cells or not all(_is_number(v) for v in cells.values()):
                line = ",".join(row)[:60]
                raise refuse(
                    f"line {reader.line_num} ({line!r}) is not a row of {len(header)} cells, each a number or empty "
                    "(the step a number)"
                )
            rows.append(cells)
    except csv.Error as exc:
        raise refuse(f"line {reader.line_num}: {exc}") from None
    return header, rows, torn.strip() or None


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def read_metrics(
    path: str | os.PathLike, fix: str = "give a run folder written by fwm-rl"
) -> tuple[list[str], list[dict[str, float]]]:
    """The header and rows of a ``metrics.csv`` (:class:`RunLogger`'s), each row its filled cells as numbers, in the
    order logged. A torn last line (of a run killed while writing it, or writing it now) is left out. A file that is
    not such a log raises a ValueError in one line naming it and ``fix``."""
    header, rows, _ = _read_log(Path(path), fix)
    return header, [{name: float(value) for name, value in row.items()} for row in rows]


class RunLogger:
    """Append-only metric log: ``metrics.csv`` plus TensorBoard event files in ``out_dir``.

    Rows may carry different keys; the CSV header grows (and the file is rewritten)
    when a new key appears, so a resumed run keeps one consistent file.
    """

    #: What to do with a ``metrics.csv`` that is not such a log, in the error that names it.
    _MOVE_AWAY = "move it away to start the log anew there (the run's checkpoints do not depend on it)"

    def __init__(
        self,
        out_dir: str | os.PathLike,
        tensorboard: bool = True,
        filename: str = "metrics.csv",
        resume_step: int | None = None,
    ):
        """``resume_step``: when resuming from a checkpoint taken at that step, rows logged after it (by the
        interrupted run) and a torn last line (of a run killed while writing it) are dropped, so none appears twice
        or half, and one line on stderr says so; ``None``: a new run, whose log starts empty. A ``metrics.csv`` that
        is not a log of this kind is refused (a ValueError naming it) and left as it is."""
        self.out_dir = Path(out_dir)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.csv_path = self.out_dir / filename
        self._fields: list[str] = []
        if self.csv_path.exists():
            fields, rows, torn = _read_log(self.csv_path, self._MOVE_AWAY)
            kept = [] if resume_step is None else [row for row in rows if float(row[STEP]) <= resume_step]
            if resume_step is not None and (torn is not None or len(kept) < len(rows)):
                self._say_repaired(resume_step, len(rows) - len(kept), torn)
            self._rewrite(fields, kept)
        self._writer = None
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            self._writer = SummaryWriter(log_dir=str(self.out_dir / "tb"))

    def _say_repaired(self, step: int, dropped: int, torn: str | None) -> None:
        """One line on stderr: what resuming at ``step`` dropped from the log."""
        what = [f"{dropped} row{'s' * (dropped != 1)} logged after it"] if dropped else []
        what += [f"a torn last line {torn[:40]!r}"] if torn is not None else []
        print(f"{self.csv_path}: resumed at step {step} (the checkpoint's); dropped {' and '.join(what)}", file=sys.stderr)

    def log(self, step: int, metrics: Mapping[str, float], replace: bool = False) -> None:
        """Append a row. With ``replace`` (a run's final rows) an earlier row of the same step and keys is removed
        first: a run's end that was cut short and is done again logs each of its rows once."""
        row = {STEP: step, **{k: float(v) for k, v in metrics.items()}}
        new = [k for k in row if k not in self._fields]
        rows = _read_log(self.csv_path, self._MOVE_AWAY)[1] if (new or replace) and self.csv_path.exists() else []
        kept = [r for r in rows if not (replace and float(r[STEP]) == step and r.keys() == row.keys())]
        if new or len(kept) < len(rows):
            self._rewrite(self._fields + new, kept)
        with open(self.csv_path, "a", newline="") as fh:
            csv.DictWriter(fh, fieldnames=self._fields).writerow(row)
        if self._writer is not None:
            for key, value in metrics.items():
                self._writer.add_scalar(key, float(value), step)
            self._writer.flush()

    def _rewrite(self, fields: list[str], rows: list[dict[str, str]]) -> None:
        """Write the CSV anew with ``fields`` as header and ``rows``, atomically (a kill mid-write leaves the old file)."""
        self._fields = fields
        tmp = self.csv_path.with_name(f".{self.csv_path.name}.tmp")
        with open(tmp, "w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=fields)
            writer.writeheader()
            writer.writerows(rows)
        os.replace(tmp, self.csv_path)

    def read(self) -> list[dict[str, float]]:
        """All rows logged so far (numbers as floats, missing cells as NaN)."""
        if not self.csv_path.exists():
            return []
        fields, rows = read_metrics(self.csv_path)
        return [{name: row.get(name, float("nan")) for name in fields} for row in rows]

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
    header, rows = read_metrics(path, f"give {what}")
    if rows and column not in header:
        raise ValueError(f"{path} has no {column} column: give {what}")
    curve = [(int(row[STEP]), row.get("time/train_seconds"), row[column]) for row in rows if column in row]
    if not curve:
        raise ValueError(f"{path} holds no {column} yet")
    return curve


def plot_curves(
    run_dirs: list[str | os.PathLike],
    out: str | os.PathLike,
    *,
    column: str,
    ylabel: str,
    what: str,
    labels: list[str] | None = None,
    log_y: bool = False,
) -> Path:
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
            axes[1].plot(
                [c[1] / 3600 for c in curve if c[1] is not None], [c[2] for c in curve if c[1] is not None], label=label
            )
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
