"""The ``fwm-rl`` command line.

Each part of the package contributes its own sub-commands through a
``register(subparsers)`` function in its ``cli`` module; this file only
assembles them, so adding a command never means editing a central table of
options.
"""

from __future__ import annotations

import argparse
import errno
import importlib
import os
import re
import sys
from collections.abc import Callable
from typing import Any

import torch

from fwm_rl import __version__
from fwm_rl.engine import NonFiniteLossError, RunFinished, trusted_checkpoints
from fwm_rl.engine.distributed import finish_distributed, launch_rank

#: Errors that mean bad input (a wrong value, path or name): one line and exit code 2, no traceback.
USER_ERRORS = (ValueError, FileNotFoundError, FileExistsError, IsADirectoryError, NotADirectoryError, KeyError)

#: ``errno`` values of a full disk or quota, or a file over the size limit: the run stops (exit code 1), its last
#: checkpoint intact.
DISK_FULL = (errno.ENOSPC, errno.EFBIG, errno.EDQUOT)

#: Modules whose ``register(subparsers)`` adds sub-commands, in help order.
COMMAND_MODULES = (
    "fwm_rl.envs.cli",  # show-graph, baselines
    "fwm_rl.agents.cli",  # train, eval, plot
    "fwm_rl.babi.cli",  # babi ...
    "fwm_rl.lm.cli",  # lm ...
)


class Parser(argparse.ArgumentParser):
    """An ``ArgumentParser`` that takes options only as spelled (``--gam 0.5`` is an error, not ``--gamma 0.5``). The
    sub-commands' parsers are of this class too: ``add_subparsers`` makes its parsers of its own parser's class."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **{"allow_abbrev": False, **kwargs})


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="fwm-rl",
        description="Fast Weight Memory (Schlag et al., ICLR 2021): meta-RL graphs, A2C agents, catbAbI and language modelling.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__} (torch {torch.__version__})")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    return parser


def _machine_error(exc: BaseException) -> tuple[str, int] | None:
    """The one line and exit code of a limit of the machine that stopped a command: a path it may not write or read
    (exit code 2), a full disk (1; :func:`~fwm_rl.engine.atomic_save` replaces a checkpoint only once its new copy is
    complete) or memory it could not get (1); ``None`` for other errors."""
    if isinstance(exc, PermissionError) or getattr(exc, "errno", None) == errno.EROFS:  # (a read-only file system)
        where = f": {exc.filename}" if exc.filename else ""
        return (
            f"error: {exc.strerror or 'permission denied'}{where}; choose a path you may read or write "
            "(for outputs, another --out) or change its permissions",
            2,
        )
    if isinstance(exc, OSError) and exc.errno in DISK_FULL:
        where = f"writing {exc.filename}" if exc.filename else "writing to disk"
        return (
            f"{where} failed: {exc.strerror} (errno {errno.errorcode[exc.errno]}); the last checkpoint written is intact "
            "(a checkpoint is replaced only once its new copy is complete): free some space, then resume the run",
            1,
        )
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    if isinstance(exc, (MemoryError, torch.cuda.OutOfMemoryError)) or "can't allocate memory" in text:  # (the CPU allocator's)
        amount = re.search(r"(?i)tried to allocate ([\d.]+ ?\w+)", text)
        return (
            f"out of memory{f' (tried to allocate {amount[1]})' if amount else ''}: choose smaller sizes (hidden sizes, "
            "batch sizes, environment copies) or a machine with more memory; a run's last checkpoint is intact",
            1,
        )
    return None


def run_reporting_errors(name: str, command: Callable[[], int | None]) -> int:
    """Run ``command`` and turn the project's errors into one line on stderr (once, under torchrun):
    bad input (:data:`USER_ERRORS`) exits 2, a run stopped by a non-finite loss exits 1, and so do a full disk and
    exhausted memory (a path that may not be written exits 2: :func:`_machine_error`); no traceback.
    A resumed run that has nothing left to do (:class:`~fwm_rl.engine.RunFinished`) says so in one line and exits 0."""
    try:
        return int(command() or 0)
    except RunFinished as exc:
        if launch_rank() == 0:
            print(f"{name}: {exc}")
        return 0
    except NonFiniteLossError as exc:
        if launch_rank() == 0:
            print(f"{name}: {exc} The last good checkpoint is kept; resume from it with other settings.", file=sys.stderr)
        return 1
    except BrokenPipeError:  # the output was piped into a program that stopped reading (| head): not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except USER_ERRORS as exc:
        if launch_rank() == 0:
            message = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
            print(f"{name}: error: {message}", file=sys.stderr)
        return 2
    except (OSError, MemoryError, RuntimeError) as exc:
        reported = _machine_error(exc)
        if reported is None:
            raise
        if launch_rank() == 0:
            print(f"{name}: {reported[0]}", file=sys.stderr)
        return reported[1]
    finally:
        finish_distributed()


def main(argv: list[str] | None = None) -> int:
    """Entry point: parse ``argv`` and run the chosen command's ``func(args)``."""
    args = build_parser().parse_args(argv)

    def command() -> int | None:
        with trusted_checkpoints(getattr(args, "trust_checkpoint", False)):
            return args.func(args)

    return run_reporting_errors(f"fwm-rl {args.command}", command)


if __name__ == "__main__":
    sys.exit(main())
