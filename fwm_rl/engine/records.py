"""How a run was made: the machine and the command, for its results."""

from __future__ import annotations

import json
import os
import platform
import shlex
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch

from fwm_rl.engine.folders import RESULTS

__all__ = ["code_revision", "machine_description", "recorded_results", "run_record"]


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


def code_revision() -> str:
    """The code a run ran: the fwm-rl version, and the git commit when the package sits in a git checkout
    (``+`` when that checkout has uncommitted changes)."""
    from fwm_rl import __version__

    here = Path(__file__).resolve().parent
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short=12", "HEAD"], cwd=here, capture_output=True, text=True, timeout=10
        )
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"], cwd=here, capture_output=True, text=True, timeout=10
        )
    except (OSError, subprocess.SubprocessError):
        return __version__
    if commit.returncode != 0:
        return __version__
    return f"{__version__} (git {commit.stdout.strip()}{'+' if dirty.stdout.strip() else ''})"


def run_record(started: datetime, device: torch.device | None = None) -> dict[str, Any]:
    """How a run was made, for its results: the command line, the code, the machine and when it ran (UTC)."""
    finished = datetime.now(timezone.utc)
    return {
        "command": shlex.join([Path(sys.argv[0]).name, *sys.argv[1:]]),
        "code": code_revision(),
        "machine": machine_description(device),
        "started": started.isoformat(timespec="seconds"),
        "finished": finished.isoformat(timespec="seconds"),
        "wall_seconds": round((finished - started).total_seconds(), 1),
    }


def recorded_results(folder: str | os.PathLike, step: int, *keys: str) -> dict[str, Any] | None:
    """``folder``'s ``results.json`` where it records the end of a run at ``step`` (the number found under ``keys`` in
    it), else ``None``: no such file, one that does not parse, or one of an earlier end of the run."""
    try:
        results = json.loads((Path(folder) / RESULTS).read_text())
        recorded = results
        for key in keys:
            recorded = recorded[key]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return results if recorded == step else None
