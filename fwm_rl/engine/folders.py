"""Run folders: a new run never replaces another without ``--overwrite``, ``--overwrite`` deletes only the files a run
wrote in a folder that is provably a run's, and one run at a time writes in a folder."""

from __future__ import annotations

import contextlib
import json
import os
import platform
import shutil
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import NamedTuple

from fwm_rl.engine.checkpoints import CHECKPOINT_KINDS, checkpoint_kind, load_checkpoint

__all__ = [
    "BEST",
    "CHECKPOINT",
    "LOCK",
    "MARKER",
    "RESULTS",
    "RunClaim",
    "RunExistsError",
    "checkpoint_file",
    "claimed_run_folder",
    "older_run_problem",
    "run_lock",
]

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
    """A trainer was pointed at a folder it may not write in: one that holds a run (without ``--resume`` or
    ``--overwrite``), one in use by a live run, or one holding files a new run would replace that are not a run's."""


#: The lock file a run holds in its folder while it writes there (:func:`run_lock`).
LOCK = ".lock"
#: The marker a run writes into its folder when it claims it (:func:`claimed_run_folder`): ``{"kind": ..., "format":
#: 1, "outputs": [...]}``, the run's kind and the files it writes there. It makes the folder provably a run's, and
#: its ``outputs`` are what ``--overwrite`` deletes there.
MARKER = ".fwm-run.json"
MARKER_FORMAT = 1
#: The temporary files a run writes beside the real ones and renames over them (checkpoints:
#: :func:`~fwm_rl.engine.atomic_save`; the metric log: :class:`~fwm_rl.engine.RunLogger`; the marker); a run killed
#: while writing one leaves it, and the next run holding the folder's lock removes it.
TEMPORARIES = (f".{CHECKPOINT}.*.tmp", f".{BEST}.*.tmp", ".metrics.csv.tmp", f"{MARKER}.tmp")


class RunClaim(NamedTuple):
    """A folder a new run takes over (:func:`claimed_run_folder`).

    ``kind`` is what the folder's :data:`MARKER` records (a checkpoint kind, or e.g. ``a2c-preset`` for a folder of
    runs); ``outputs`` are the files the run writes there: plain names, or ``.NAME.*.tmp`` for its temporary files.
    ``older`` says whether a folder without a marker (written by an fwm-rl before markers) holds such a run: ``None``
    if it provably does, else why not, naming the file; by default :func:`older_run_problem` with ``kind``.
    """

    folder: Path
    kind: str
    outputs: tuple[str, ...]
    older: Callable[[Path], str | None] | None = None


def older_run_problem(folder: Path, kind: str) -> str | None:
    """``None`` if ``folder``, which has no :data:`MARKER`, holds a run of ``kind`` written by an older fwm-rl: its
    ``checkpoint.pt``, read as every loader reads it (:func:`~fwm_rl.engine.load_checkpoint`: without unpickling,
    unless the command was given ``--trust-checkpoint``), says so. Else why it is not provably one, naming the file."""
    path = folder / CHECKPOINT
    if not path.is_file():
        return f"{folder} has no {MARKER} and no {CHECKPOINT}"
    try:
        found = checkpoint_kind(load_checkpoint(path))
    except (OSError, ValueError) as exc:
        return f"{path} cannot be read safely: {exc}"
    if found != kind:
        what = CHECKPOINT_KINDS[found][0] if found else "not an fwm-rl checkpoint"
        return f"{path} is {what}, not {CHECKPOINT_KINDS[kind][0] if kind in CHECKPOINT_KINDS else kind}"
    return None


def _is_output_pattern(pattern: object) -> bool:
    """A name in the folder itself (no path), with wildcards only in a temporary file's ``.NAME.*.tmp``."""
    if not isinstance(pattern, str) or pattern in ("", ".", "..", LOCK, MARKER) or "/" in pattern or os.sep in pattern:
        return False
    return not any(c in pattern for c in "*?[") or (pattern.startswith(".") and pattern.endswith(".tmp"))


def _read_marker(folder: Path) -> dict | None:
    """``folder``'s :data:`MARKER` (``None`` where it has none); one this fwm-rl cannot read is refused, naming it."""
    path = folder / MARKER
    if not path.is_file():
        return None
    try:
        marker, reason = json.loads(path.read_text()), "not a run marker"
    except (OSError, ValueError) as exc:
        marker, reason = None, str(exc)
    if isinstance(marker, dict) and isinstance(marker.get("format"), int) and marker["format"] > MARKER_FORMAT:
        raise RunExistsError(
            f"{path} was written by a newer fwm-rl (run marker format {marker['format']}, this one reads "
            f"{MARKER_FORMAT}); upgrade fwm-rl or choose another --out"
        )
    if not (
        isinstance(marker, dict)
        and isinstance(marker.get("format"), int)
        and isinstance(marker.get("kind"), str)
        and isinstance(marker.get("outputs"), list)
        and all(map(_is_output_pattern, marker["outputs"]))
    ):
        raise RunExistsError(
            f"{path} is not a run marker this fwm-rl reads ({reason}), so nothing in {folder} is "
            "provably a run's and nothing was deleted: move it or choose another --out"
        )
    return marker


def _matches(folder: Path, patterns: Iterable[str]) -> set[Path]:
    return {path for pattern in patterns for path in folder.glob(pattern)} if folder.is_dir() else set()


def _names(paths: Iterable[Path]) -> str:
    return ", ".join(sorted(path.name for path in paths))


def _removals(claim: RunClaim, overwrite: bool, resume_hint: str) -> set[Path]:
    """What claiming ``claim.folder`` for a new run deletes: the files its run wrote there (those its
    :data:`MARKER` lists, or for a run of an older fwm-rl those of ``claim.outputs``), or nothing. Raises
    :class:`RunExistsError`, having deleted nothing, where the folder holds a run and not ``overwrite``, or holds
    files the new run would write that are not provably a run's."""
    folder = claim.folder
    if folder.exists() and not folder.is_dir():
        raise RunExistsError(f"{folder} is a file, not a run folder: choose another --out")
    marker = _read_marker(folder)
    ours = _matches(folder, marker["outputs"]) if marker else set()
    found = ours | _matches(folder, claim.outputs)
    if not found:
        return set()
    if marker:
        problem = f"its run ({marker['kind']}) did not write them"
    else:
        problem = (claim.older or (lambda path: older_run_problem(path, claim.kind)))(folder)
        ours = found if problem is None else set()
    if not overwrite and (marker or problem is None):
        raise RunExistsError(
            f"{folder} already holds a run ({min(found).name}); pass {resume_hint} to continue it, "
            "or --overwrite to start again (its checkpoints and logs are then deleted)"
        )
    if found - ours:
        raise RunExistsError(
            f"{folder} holds {_names(found - ours)}, which are not provably an fwm-rl run's ({problem}); "
            "a new run there would replace them and --overwrite deletes only a run's own files, so "
            "nothing was deleted: move them or choose another --out"
        )
    return ours


def _delete(paths: Iterable[Path]) -> None:
    for path in sorted(paths):
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink(missing_ok=True)


def _mark(claim: RunClaim) -> None:
    """Write ``claim``'s :data:`MARKER` (atomically: a killed run never leaves half a marker)."""
    claim.folder.mkdir(parents=True, exist_ok=True)
    tmp = claim.folder / f"{MARKER}.tmp"
    tmp.write_text(json.dumps({"kind": claim.kind, "format": MARKER_FORMAT, "outputs": list(claim.outputs)}, indent=2) + "\n")
    os.replace(tmp, claim.folder / MARKER)


def _folders_to_lock(folder: Path, claims: list[RunClaim], overwrite: bool) -> list[Path]:
    """The folders whose locks a claim takes besides ``folder``'s own: every claimed folder that exists and, with
    ``overwrite``, every folder in or below ``folder`` or a claimed one that has a :data:`LOCK` (a run is or was there)."""
    found = {claim.folder for claim in claims if claim.folder.is_dir()}
    if overwrite:
        for top in {folder, *found}:
            found |= {Path(path) for path, _, files in os.walk(top) if LOCK in files}
    held = folder.resolve()
    return sorted({path.resolve(): path for path in found if path.resolve() != held}.values())


@contextlib.contextmanager
def _locked(folder: Path) -> Iterator[bool]:
    """Hold ``folder``'s :data:`LOCK` (the operating system's ``flock``; yields ``False`` where there is none), or
    raise :class:`RunExistsError` naming the run that holds it."""
    try:
        import fcntl
    except ImportError:  # not POSIX: no lock
        yield False
        return
    fh = open(folder / LOCK, "a+")
    try:
        fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        fh.seek(0)
        holder = fh.read().strip() or "another process"
        fh.close()
        raise RunExistsError(
            f"{folder} is in use by another run ({holder}); wait for it to end or choose another --out"
        ) from None
    try:
        fh.seek(0)
        fh.truncate()
        fh.write(f"pid {os.getpid()} on {platform.node()}\n")
        fh.flush()
        yield True
    finally:
        fh.close()


@contextlib.contextmanager
def run_lock(folder: str | os.PathLike) -> Iterator[None]:
    """Hold ``folder``'s lock while a run writes there.

    A second run started on the same folder stops at once with a message naming the holder,
    instead of interleaving its logs and checkpoints. The lock is the operating system's
    (``flock``), so a killed run leaves nothing behind that blocks the next one; checkpoint
    temporary files a killed run left (:data:`TEMPORARIES`) are removed once the lock is held; other files are not
    touched.
    """
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise RunExistsError(f"{folder} is a file, not a run folder: choose another --out")
    folder.mkdir(parents=True, exist_ok=True)
    with _locked(folder) as held:
        if held:
            _delete(_matches(folder, TEMPORARIES))  # a run killed while saving left them
        yield


@contextlib.contextmanager
def claimed_run_folder(
    folder: str | os.PathLike, claims: Iterable[RunClaim] = (), overwrite: bool = False, resume_hint: str = ""
) -> Iterator[None]:
    """Hold ``folder``'s :func:`run_lock` while the block runs, having first claimed each of ``claims`` (``folder``
    itself, or folders of runs inside it) for a new run.

    Before anything is deleted, the locks of every claimed folder and, with ``overwrite``, of every run folder in
    or below them are taken (a live run anywhere there refuses the whole claim), and every claim is checked: a
    folder holding a run is refused without ``overwrite`` (the message names ``resume_hint`` and ``--overwrite``),
    and so is, even with it, a folder holding files the new run would write that are not provably a run's (no
    :data:`MARKER`, and no ``checkpoint.pt`` of the claim's kind, see :class:`RunClaim`). Then the files each
    claimed folder's run wrote are deleted, and nothing else, and the folder's :data:`MARKER` is written.
    """
    folder = Path(folder)
    claims = [claim._replace(folder=Path(claim.folder), outputs=tuple(claim.outputs)) for claim in claims]
    for claim in claims:
        if not all(map(_is_output_pattern, claim.outputs)):
            raise ValueError(f"run outputs must be names in the folder (wildcards only in .NAME.*.tmp): {claim.outputs}")
    with run_lock(folder):
        with contextlib.ExitStack() as below:
            for path in _folders_to_lock(folder, claims, overwrite):
                below.enter_context(_locked(path))
            removals = [_removals(claim, overwrite, resume_hint) for claim in claims]
            for claim, paths in zip(claims, removals):
                _delete(paths)
                _mark(claim)
        yield
