"""The ``fwm-rl`` command line.

Each part of the package contributes its own sub-commands through a
``register(subparsers)`` function in its ``cli`` module; this file only
assembles them, so adding a command never means editing a central table of
options.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Callable

import torch

from fwm_rl import __version__
from fwm_rl.distributed import finish_distributed, launch_rank
from fwm_rl.engine import NonFiniteLossError

#: Errors that mean bad input (a wrong value, path or name): one line and exit code 2, no traceback.
USER_ERRORS = (ValueError, FileNotFoundError, FileExistsError, IsADirectoryError, NotADirectoryError, KeyError)

#: Modules whose ``register(subparsers)`` adds sub-commands, in help order.
COMMAND_MODULES = (
    "fwm_rl.envs.cli",  # show-graph, baselines
    "fwm_rl.agents.cli",  # train, eval, plot
    "fwm_rl.babi.cli",  # babi ...
    "fwm_rl.lm.cli",  # lm ...
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fwm-rl",
        description="Fast Weight Memory (Schlag et al., ICLR 2021): meta-RL graphs, A2C agents, catbAbI and language modelling.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__} (torch {torch.__version__})")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    return parser


def run_reporting_errors(name: str, command: Callable[[], int | None]) -> int:
    """Run ``command`` and turn the project's errors into one line on stderr (once, under torchrun):
    bad input (:data:`USER_ERRORS`) exits 2, a run stopped by a non-finite loss exits 1; no traceback."""
    try:
        return int(command() or 0)
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
    finally:
        finish_distributed()


def main(argv: list[str] | None = None) -> int:
    """Entry point: parse ``argv`` and run the chosen command's ``func(args)``."""
    args = build_parser().parse_args(argv)
    return run_reporting_errors(f"fwm-rl {args.command}", lambda: args.func(args))


if __name__ == "__main__":
    sys.exit(main())
