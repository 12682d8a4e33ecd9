"""Checkpoints: one schema (``kind``, ``format``) for every trainer, written atomically, read with clear errors."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

__all__ = ["CHECKPOINT_FORMAT", "CHECKPOINT_KINDS", "atomic_save", "check_checkpoint", "checkpoint_kind", "load_checkpoint", "load_weights"]


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


def load_weights(module: torch.nn.Module, state_dict: Mapping[str, torch.Tensor], source: str | os.PathLike) -> None:
    """``module.load_state_dict(state_dict)``; weights that do not fit the module (a checkpoint edited by hand, or
    one of another model given where this one was expected) raise a one-line ``ValueError`` naming ``source`` and
    the first difference, instead of torch's many-line ``RuntimeError``."""
    own = module.state_dict()
    missing = [k for k in own if k not in state_dict]
    unexpected = [k for k in state_dict if k not in own]
    shapes = [k for k in own if k in state_dict and tuple(own[k].shape) != tuple(state_dict[k].shape)]
    problems = [f"{len(missing)} missing, e.g. {missing[0]}" if missing else "",
                f"{len(unexpected)} unexpected, e.g. {unexpected[0]}" if unexpected else "",
                f"{shapes[0]} is {tuple(state_dict[shapes[0]].shape)}, the model's {tuple(own[shapes[0]].shape)}" if shapes else ""]
    problems = [p for p in problems if p]
    if problems:
        raise ValueError(f"the weights in {source} do not fit the model its settings describe ({'; '.join(problems)}); "
                         "was the checkpoint changed, or written for another model?")
    module.load_state_dict(state_dict)
