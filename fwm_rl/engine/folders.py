"""Run folders: a new run never replaces another without ``--overwrite``, and one run at a time writes in a folder."""

from __future__ import annotations

import contextlib
import os
import platform
import shutil
from collections.abc import Iterable
from pathlib import Path

__all__ = ["BEST", "CHECKPOINT", "LOCK", "RESULTS", "RunExistsError", "checkpoint_file", "claim_run_folder", "run_lock"]

#: The files every trainer writes into its run folder: the latest checkpoint (``--resume`` continues from it), the
#: checkpoint with the lowest validation loss so far (catbAbI and LM), and the final results.
CHECKPOINT = "checkpoint.pt"
BEST = "best.pt"
RESULTS = "results.json"


def checkpoint_file(path: str | os.PathLike, best: bool = False) -> Path:
    """``path`` itself (a checkpoint file), or a run folder's checkpoint: its latest (``checkpoint.pt``), or with
    ``best`` the one with the lowest validation loss (``best.pt``, what the run's results report) where it has one."""
    path = Path(path)
    if not path.is_dir():
        return path
    return path / BEST if best and (path / BEST).exists() else path / CHECKPOINT


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
