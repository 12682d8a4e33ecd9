"""Checkpoints: one schema for every trainer (:func:`make_checkpoint`), written atomically, read with clear errors
(:func:`read_checkpoint`), older formats upgraded.

A checkpoint holds tensors and plain containers of ``str``/``int``/``float``/``bool``/``None`` only (format 3), so
it is read with ``torch.load(..., weights_only=True)``: a file someone sends you cannot run code when it is loaded.
Files that need unpickling (formats 1 and 2 stored NumPy arrays; a hostile file, anything) are refused with a
one-line :class:`UntrustedCheckpointError`, unless the caller trusts them explicitly (:func:`trusted_checkpoints`,
the commands' ``--trust-checkpoint``).
"""

from __future__ import annotations

import contextlib
import contextvars
import math
import os
import pickle
import random
import re
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

__all__ = [
    "CHECKPOINT_FORMAT",
    "CHECKPOINT_KINDS",
    "UntrustedCheckpointError",
    "atomic_save",
    "capture_rng",
    "check_checkpoint",
    "checkpoint_kind",
    "load_checkpoint",
    "load_weights",
    "make_checkpoint",
    "read_checkpoint",
    "restore_rng",
    "trusted_checkpoints",
]


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
    except BaseException as exc:
        if os.path.exists(tmp):
            os.unlink(tmp)
        if isinstance(exc, OSError) and exc.filename is None:  # (torch.save wrote through the handle: name the file)
            raise OSError(exc.errno, exc.strerror or str(exc), str(path)) from exc
        raise
    return path


class UntrustedCheckpointError(ValueError):
    """A checkpoint that only unpickling can read, refused because nobody said it may be trusted."""


#: Whether :func:`load_checkpoint` may unpickle a file that ``weights_only`` loading refuses (:func:`trusted_checkpoints`).
_TRUSTED: contextvars.ContextVar[bool] = contextvars.ContextVar("fwm_rl_trusted_checkpoints", default=False)


@contextlib.contextmanager
def trusted_checkpoints(trust: bool = True) -> Iterator[None]:
    """Within the block, :func:`load_checkpoint` (and so every loader) also reads checkpoints that need unpickling,
    such as those of fwm-rl before format 3. Unpickling can run code: use it only for files you trust. The
    commands' ``--trust-checkpoint`` runs the command inside this block."""
    token = _TRUSTED.set(trust)
    try:
        yield
    finally:
        _TRUSTED.reset(token)


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict:
    """Load a checkpoint written by :func:`atomic_save` with ``torch.load(..., weights_only=True)``.

    A missing or unreadable file is a one-line error; so is a file that needs unpickling
    (:class:`UntrustedCheckpointError`), unless inside :func:`trusted_checkpoints`. No code in the file runs.
    """
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(f"{path} is a directory: pass the checkpoint file inside it (e.g. {path}/checkpoint.pt)")
    if not path.exists():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # torch raises several types for corrupt files
        refused = isinstance(exc, pickle.UnpicklingError)  # (by the weights-only unpickler: a global, or an opcode)
        needs = re.search(r"GLOBAL [`']?([\w.]+)", str(exc)) if refused else None
        if not refused or (needs is None and not _TRUSTED.get()):
            raise ValueError(
                f"checkpoint {path} could not be read ({_first_line(exc)}); is it a fwm-rl checkpoint? "
                "(one of an older fwm-rl from a source you trust: pass --trust-checkpoint)"
            ) from None
        if not _TRUSTED.get():
            raise UntrustedCheckpointError(
                f"{path} needs unpickling to be read (it refers to {needs.group(1)}: a checkpoint of fwm-rl before format 3, "
                "or not fwm-rl's), which can run code, so it was not loaded; if you trust its source, pass "
                "--trust-checkpoint (in Python: with fwm_rl.engine.trusted_checkpoints():)"
            ) from None
    try:
        return torch.load(path, map_location=map_location, weights_only=False)
    except Exception as exc:
        raise ValueError(f"checkpoint {path} could not be read ({_first_line(exc)}); is it a fwm-rl checkpoint?") from None


def _first_line(exc: BaseException) -> str:
    """The first line of ``exc``'s message (torch's unpickling errors run to many lines), or its type's name."""
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


#: kind -> (what a checkpoint of that kind holds, the command that writes it).
CHECKPOINT_KINDS: dict[str, tuple[str, str]] = {
    "a2c": ("an A2C run on the graph task", "fwm-rl train"),
    "a2c-env": ("an A2C or PPO run on a Gymnasium env", "fwm-rl train --env"),
    "catbabi": ("a catbAbI run", "fwm-rl babi train"),
    "lm": ("a language-model run", "fwm-rl lm train"),
}
#: The checkpoint layout this version writes (:func:`make_checkpoint`). Format 3 holds tensors and plain values only
#: (read with ``weights_only=True``); format 2 (the same layout, NumPy arrays in the RNG state and observation
#: statistics) and format 1 (each trainer its own keys) are still read where they load safely or are trusted:
#: :func:`check_checkpoint` upgrades them. A newer format is refused with a clear message.
CHECKPOINT_FORMAT = 3


def make_checkpoint(
    kind: str,
    *,
    step: int,
    configs: Mapping[str, dict],
    model: Mapping[str, torch.Tensor],
    optimizer: dict | None = None,
    task: Mapping[str, Any] | None = None,
    rng: dict | None = None,
    train_seconds: float = 0.0,
) -> dict:
    """The one checkpoint schema of every trainer, as a dict:

    * ``kind`` (:data:`CHECKPOINT_KINDS`) and ``format`` (:data:`CHECKPOINT_FORMAT`);
    * ``step``: the steps done, in the unit of the kind's ``steps`` setting (episodes for ``a2c``, environment
      steps for ``a2c-env``, optimizer steps for ``catbabi`` and ``lm``); ``train_seconds``: the training time
      spent on them (what ``--time-budget`` counts);
    * ``configs``: the settings as plain dicts, by role (``train``; ``model`` and ``data`` where the kind has them);
    * ``model``: the weights (a ``state_dict``); ``optimizer``: its ``state_dict``, ``None`` in files that only
      evaluate (an LM ``best.pt``);
    * ``task``: the kind's own state (data position, carried recurrent state, best validation, ...);
    * ``rng``: the random generators (:func:`capture_rng`), ``None`` where a kind reseeds them itself.
    """
    if kind not in CHECKPOINT_KINDS:
        raise ValueError(f"unknown checkpoint kind {kind!r}; one of {', '.join(CHECKPOINT_KINDS)}")
    return {
        "kind": kind,
        "format": CHECKPOINT_FORMAT,
        "step": int(step),
        "train_seconds": float(train_seconds),
        "configs": dict(configs),
        "model": model,
        "optimizer": optimizer,
        "task": dict(task or {}),
        "rng": rng,
    }


def capture_rng() -> dict:
    """The state of Python's, NumPy's and torch's (CPU and CUDA) global random generators, as tensors and plain
    values (NumPy's Mersenne Twister key as an int64 tensor)."""
    name, key, pos, has_gauss, cached = np.random.get_state()
    numpy_state = (name, torch.from_numpy(key.astype(np.int64)), int(pos), int(has_gauss), float(cached))
    rng = {"python": random.getstate(), "numpy": numpy_state, "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        rng["cuda"] = torch.cuda.get_rng_state_all()
    return rng


def restore_rng(rng: Mapping[str, Any]) -> None:
    """Set the generators :func:`capture_rng` saved (those it holds; CUDA's only where CUDA is, a CPU
    checkpoint resumed on a GPU keeps the GPU's own)."""
    if "python" in rng:
        random.setstate(rng["python"])
    if "numpy" in rng:
        name, key, pos, has_gauss, cached = rng["numpy"]
        np.random.set_state((name, np.asarray(torch.as_tensor(key).cpu(), dtype=np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(rng["torch"].cpu())
    if "cuda" in rng and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in rng["cuda"]])


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
    """``ckpt`` in this version's schema (:func:`make_checkpoint`; format 1 is upgraded, into a new dict) if it
    is a checkpoint of ``kind``; else a one-line error that names what it is and which command reads it."""
    found = checkpoint_kind(ckpt)
    what, command = CHECKPOINT_KINDS[kind]
    if found is None:
        raise ValueError(f"{path} is not a checkpoint of {what} (written by '{command}')")
    if found != kind:
        found_what, found_command = CHECKPOINT_KINDS[found]
        raise ValueError(
            f"{path} is a checkpoint of {found_what} (written by '{found_command}'), not of {what}; "
            f"use the commands of '{found_command.split(' --')[0]}'"
        )
    version = ckpt.get("format", 1)
    if version > CHECKPOINT_FORMAT:
        raise ValueError(
            f"{path} was written by a newer fwm-rl (checkpoint format {version}, this one reads "
            f"{CHECKPOINT_FORMAT}); upgrade fwm-rl to read it"
        )
    if version == 1:
        ckpt = _FROM_FORMAT_1[kind](ckpt)
    return {**_plain(ckpt), "format": CHECKPOINT_FORMAT} if version < CHECKPOINT_FORMAT else ckpt


def read_checkpoint(path: str | os.PathLike, kind: str, map_location: str | torch.device = "cpu") -> dict:
    """:func:`load_checkpoint` then :func:`check_checkpoint`: the checkpoint of ``kind`` at ``path``, in this
    version's schema, or a one-line error."""
    return check_checkpoint(load_checkpoint(path, map_location), kind, path)


# ------------------------------------------------------------------ formats 1 and 2 -> 3
def _plain(obj: Any) -> Any:
    """``obj`` with NumPy arrays as tensors (unsigned integers as int64) and NumPy scalars as Python ones: what
    format 2 stored beside tensors (the RNG state, observation statistics), in format 3's terms."""
    if isinstance(obj, np.ndarray):
        return torch.from_numpy(obj.astype(np.int64) if obj.dtype.kind == "u" else obj.copy())
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, dict):
        return {k: _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_plain(v) for v in obj)
    return obj


# Format 1 (fwm-rl before the one schema) kept each trainer's own keys; these map them onto format 2's layout
# (:func:`_plain` then makes that format 3).
def _a2c_from_1(c: dict) -> dict:
    return make_checkpoint(
        "a2c",
        step=c["episodes"],
        train_seconds=c["train_seconds"],
        configs={"train": c["config"]},
        model=c["policy"],
        optimizer=c["optimizer"],
        task={"train_reward": c["train_reward"]},
    )


def _a2c_env_from_1(c: dict) -> dict:
    return make_checkpoint(
        "a2c-env",
        step=c["timesteps"],
        train_seconds=c["train_seconds"],
        configs={"train": c["config"]},
        model=c["policy"],
        optimizer=c["optimizer"],
        task={"train_return": c["train_return"], "obs_rms": c.get("obs_rms")},
    )


def _catbabi_from_1(c: dict) -> dict:
    task = {
        "vocab": c["vocab"],
        "stream": c["stream"],
        "state": c["state"],
        "best_valid_accuracy": c["best_valid_accuracy"],
        "best_valid_loss": c.get("best_valid_loss", math.inf),
        "best_step": c.get("best_step"),
    }
    return make_checkpoint(
        "catbabi",
        step=c["step"],
        train_seconds=c.get("train_seconds", 0.0),
        model=c["model"],
        configs={"model": c["model_config"], "train": c["train_config"], "data": c["data_spec"]},
        optimizer=c["optimizer"],
        task=task,
    )


def _lm_from_1(c: dict) -> dict:
    configs = {"model": c["model_config"], "train": c["train_config"]}
    task = {k: c[k] for k in ("vocab", "data", "data_source", "temperature", "valid_loss")}
    ts = c.get("train_state")
    if ts is None:  # a best.pt: the evaluation weights only
        return make_checkpoint(
            "lm", step=c["step"], configs=configs, model=c["model_state"], task={**task, "eval_model": None}
        )
    task.update(
        {
            k: ts[k]
            for k in (
                "optimizer_name",
                "epoch",
                "position",
                "hidden",
                "fast_weights",
                "val_history",
                "best_valid",
                "tokens_seen",
                "running",
            )
        }
    )
    task["eval_model"] = c["model_state"] if ts["optimizer_name"] == "asgd" else None
    task["bptt_rng"] = ts["rng"]["bptt"]
    rng = {k: v for k, v in ts["rng"].items() if k != "bptt"}
    return make_checkpoint(
        "lm",
        step=ts["step"],
        train_seconds=ts["elapsed"],
        configs=configs,
        model=ts["model"],
        optimizer=ts["optimizer"],
        task=task,
        rng=rng,
    )


_FROM_FORMAT_1 = {"a2c": _a2c_from_1, "a2c-env": _a2c_env_from_1, "catbabi": _catbabi_from_1, "lm": _lm_from_1}


def load_weights(module: torch.nn.Module, state_dict: Mapping[str, torch.Tensor], source: str | os.PathLike) -> None:
    """``module.load_state_dict(state_dict)``; weights that do not fit the module (a checkpoint edited by hand, or
    one of another model given where this one was expected) raise a one-line ``ValueError`` naming ``source`` and
    the first difference, instead of torch's many-line ``RuntimeError``."""
    own = module.state_dict()
    missing = [k for k in own if k not in state_dict]
    unexpected = [k for k in state_dict if k not in own]
    shapes = [k for k in own if k in state_dict and tuple(own[k].shape) != tuple(state_dict[k].shape)]
    problems = [
        f"{len(missing)} missing, e.g. {missing[0]}" if missing else "",
        f"{len(unexpected)} unexpected, e.g. {unexpected[0]}" if unexpected else "",
        f"{shapes[0]} is {tuple(state_dict[shapes[0]].shape)}, the model's {tuple(own[shapes[0]].shape)}" if shapes else "",
    ]
    problems = [p for p in problems if p]
    if problems:
        raise ValueError(
            f"the weights in {source} do not fit the model its settings describe ({'; '.join(problems)}); "
            "was the checkpoint changed, or written for another model?"
        )
    module.load_state_dict(state_dict)
