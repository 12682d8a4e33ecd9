"""Run infrastructure shared by every trainer (A2C, catbAbI, LM).

One place for the things a long run needs: device selection, seeding, atomic
checkpoints, CSV + TensorBoard metric logs, progress bars and the non-finite
loss guard. Trainers import these instead of growing their own copies.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import math
import os
import platform
import random
import shlex
import shutil
import sys
import tempfile
from collections.abc import Iterable, Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch

from fwm_rl.checks import check_choice, check_int

__all__ = [
    "AMP_MODES",
    "NonFiniteLossError",
    "RunExistsError",
    "RunLogger",
    "SavedConfig",
    "atomic_save",
    "autocast",
    "CHECKPOINT_FORMAT",
    "CHECKPOINT_KINDS",
    "check_checkpoint",
    "check_finite",
    "checkpoint_kind",
    "claim_run_folder",
    "load_checkpoint",
    "machine_description",
    "progress",
    "run_record",
    "resolve_device",
    "run_lock",
    "save_figure",
    "set_seed",
]


class NonFiniteLossError(RuntimeError):
    """Raised when a training loss becomes NaN or infinite."""


class RunExistsError(ValueError):
    """A trainer was pointed at a folder that holds a run, without ``--resume`` or ``--overwrite``."""


def claim_run_folder(folder: str | os.PathLike, outputs: Iterable[str], overwrite: bool, resume_hint: str) -> list[Path]:
    """Make ``folder`` ready for a new run whose files are ``outputs`` (names or glob patterns).

    If the folder holds any of them, raise :class:`RunExistsError` naming both ways out
    (``resume_hint`` and ``--overwrite``), unless ``overwrite``: then exactly those files and folders
    are removed and returned. Nothing else in the folder is touched, and nothing is ever removed
    without ``overwrite``.
    """
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise RunExistsError(f"{folder} is a file, not a run folder: choose another --out")
    found = sorted({path for pattern in outputs for path in folder.glob(pattern)}) if folder.is_dir() else []
    if found and not overwrite:
        raise RunExistsError(f"{folder} already holds a run ({found[0].name}); pass {resume_hint} to continue it, "
                             "or --overwrite to start again (its checkpoints and logs are then deleted)")
    for path in found:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink()
    return found


#: The lock file a run holds in its folder while it writes there (:func:`run_lock`).
LOCK = ".lock"


@contextlib.contextmanager
def run_lock(folder: str | os.PathLike):
    """Hold ``folder``'s lock while a run writes there.

    A second run started on the same folder stops at once with a message naming the holder,
    instead of interleaving its logs and checkpoints. The lock is the operating system's
    (``flock``), so a killed run leaves nothing behind that blocks the next one; checkpoint
    temporary files a killed run left (``.NAME.*.tmp``) are removed once the lock is held.
    """
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise RunExistsError(f"{folder} is a file, not a run folder: choose another --out")
    folder.mkdir(parents=True, exist_ok=True)
    try:
        import fcntl
    except ImportError:  # not POSIX: no lock
        yield
        return
    fh = open(folder / LOCK, "a+")
    try:
        fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        fh.seek(0)
        holder = fh.read().strip() or "another process"
        fh.close()
        raise RunExistsError(f"{folder} is in use by another run ({holder}); wait for it to end or choose another --out") from None
    try:
        fh.seek(0)
        fh.truncate()
        fh.write(f"pid {os.getpid()} on {platform.node()}\n")
        fh.flush()
        for stale in folder.glob(".*.tmp"):  # left by a run killed while saving; nobody else writes here now
            stale.unlink(missing_ok=True)
        yield
    finally:
        fh.close()


class SavedConfig:
    """Mixin for dataclass configs stored in checkpoints: ``to_dict`` and a strict ``from_dict``."""

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]):
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(
                f"unknown {cls.__name__} fields {sorted(unknown)} (known: {sorted(known)}); "
                "is this checkpoint from a newer fwm-rl?"
            )
        return cls(**data)


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``"auto"`` picks CUDA when present and the CPU otherwise; anything else is checked."""
    if isinstance(device, torch.device):
        return device
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except RuntimeError as exc:
        raise ValueError(f"unknown device {device!r}: use 'auto', 'cpu' or 'cuda[:N]'") from exc
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} asked for, but CUDA is not available here: use --device cpu or auto")
    return dev


#: Mixed-precision modes of the catbAbI and LM trainers (``--amp``): ``"none"`` (float32 throughout)
#: or ``"bf16"`` (the slow network and the softmax under bfloat16 autocast, the FWM in float32).
AMP_MODES = ("none", "bf16")


def autocast(device: torch.device, amp: str) -> torch.autocast:
    """The autocast context of mixed-precision mode ``amp`` (:data:`AMP_MODES`) on ``device``.

    ``"bf16"`` needs no loss scaling (bfloat16 has float32's exponent range). Inside it the FWM
    turns autocast off for itself: its fast weights, writes and reads stay in float32
    (:meth:`fwm_rl.memory.FastWeightMemory.forward`).
    """
    check_choice("amp", amp, AMP_MODES)
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp == "bf16")


def machine_description(device: torch.device | None = None) -> str:
    """The machine a run ran on, in one line: processor, cores, system, torch and its threads (and the GPU)."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as fh:
            cpu = next((line.split(":", 1)[1].strip() for line in fh if line.startswith("model name")), cpu)
    except OSError:
        pass
    text = f"{cpu}, {os.cpu_count()} cores, {platform.system()} {platform.machine()}; torch {torch.__version__}, {torch.get_num_threads()} threads"
    if device is not None and device.type == "cuda":
        text += f"; {torch.cuda.get_device_name(device)}"
    return text


def run_record(started: datetime, device: torch.device | None = None) -> dict[str, Any]:
    """How a run was made, for its results: the command line, the machine and when it ran (UTC)."""
    finished = datetime.now(timezone.utc)
    return {
        "command": shlex.join([Path(sys.argv[0]).name, *sys.argv[1:]]),
        "machine": machine_description(device),
        "started": started.isoformat(timespec="seconds"),
        "finished": finished.isoformat(timespec="seconds"),
        "wall_seconds": round((finished - started).total_seconds(), 1),
    }


def set_seed(seed: int) -> None:
    """Seed Python, NumPy and torch (all devices)."""
    check_int("seed", seed, 0)
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def save_figure(fig: Any, path: str | os.PathLike, **savefig_kwargs: Any) -> Path:
    """Write a matplotlib ``Figure`` to ``path`` (parent folders are created) and return the path.

    The project's figures are ``matplotlib.figure.Figure`` objects made without pyplot, so drawing
    neither changes the user's backend nor leaves figures open.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, **savefig_kwargs)
    return path


def atomic_save(obj: Any, path: str | os.PathLike) -> Path:
    """``torch.save`` to a temporary file beside ``path``, then rename over it.

    A crash mid-write leaves the previous checkpoint intact, never a torn file.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            torch.save(obj, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict:
    """Load a checkpoint written by :func:`atomic_save`, with a clear error if it is missing."""
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(f"{path} is a directory: pass the checkpoint file inside it (e.g. {path}/checkpoint.pt)")
    if not path.exists():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    try:
        return torch.load(path, map_location=map_location, weights_only=False)
    except Exception as exc:  # torch raises several types for corrupt files
        raise ValueError(f"checkpoint {path} could not be read ({exc}); is it a fwm-rl checkpoint?") from exc


#: Every trainer's checkpoint is a dict with ``kind`` (a key of this table) and ``format`` (:data:`CHECKPOINT_FORMAT`);
#: kind -> (what it holds, the command that writes it).
CHECKPOINT_KINDS: dict[str, tuple[str, str]] = {
    "a2c": ("an A2C run on the graph task", "fwm-rl train"),
    "a2c-env": ("an A2C run on a Gymnasium env", "fwm-rl train --env"),
    "catbabi": ("a catbAbI run", "fwm-rl babi train"),
    "lm": ("a language-model run", "fwm-rl lm train"),
}
#: The checkpoint layout this version writes; a reader refuses a newer one with a clear message.
CHECKPOINT_FORMAT = 1


def checkpoint_kind(ckpt: Any) -> str | None:
    """The kind of a loaded checkpoint (:data:`CHECKPOINT_KINDS`), also for those written before ``kind``
    existed everywhere (A2C checkpoints, the LM's ``"fwm-rl lm"``); None for anything else."""
    if not isinstance(ckpt, dict):
        return None
    kind = {"fwm-rl lm": "lm"}.get(ckpt.get("kind"), ckpt.get("kind"))
    if kind is None and {"config", "policy"} <= set(ckpt):
        kind = "a2c" if "episodes" in ckpt else "a2c-env" if "timesteps" in ckpt else None
    return kind if kind in CHECKPOINT_KINDS else None


def check_checkpoint(ckpt: Any, kind: str, path: str | os.PathLike) -> dict:
    """``ckpt`` if it is a checkpoint of ``kind`` this version can read; else a one-line error that names
    what it is and which command reads it."""
    found = checkpoint_kind(ckpt)
    what, command = CHECKPOINT_KINDS[kind]
    if found is None:
        raise ValueError(f"{path} is not a checkpoint of {what} (written by '{command}')")
    if found != kind:
        found_what, found_command = CHECKPOINT_KINDS[found]
        raise ValueError(f"{path} is a checkpoint of {found_what} (written by '{found_command}'), not of {what}; "
                         f"use the commands of '{found_command.split(' --')[0]}'")
    if ckpt.get("format", 1) > CHECKPOINT_FORMAT:
        raise ValueError(f"{path} was written by a newer fwm-rl (checkpoint format {ckpt['format']}, this one reads "
                         f"{CHECKPOINT_FORMAT}); upgrade fwm-rl to read it")
    return ckpt


def check_finite(loss: torch.Tensor | float, step: int, hint: str = "") -> None:
    """Raise :class:`NonFiniteLossError` if ``loss`` is NaN or infinite."""
    value = float(loss.detach()) if isinstance(loss, torch.Tensor) else float(loss)
    if not math.isfinite(value):
        msg = f"non-finite loss ({value}) at step {step}; training stopped."
        if hint:
            msg += " " + hint
        raise NonFiniteLossError(msg)


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
