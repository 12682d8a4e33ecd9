"""The ``fwm-rl`` command line.

Each part of the package contributes its own sub-commands through a
``register(subparsers)`` function in its ``cli`` module; this file only
assembles them, so adding a command never means editing a central table of
options.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from fwm_rl.distributed import finish_distributed, launch_rank

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
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point: parse ``argv`` and run the chosen command's ``func(args)``."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        result = args.func(args)
    except (ValueError, FileNotFoundError, KeyError) as exc:
        # Bad input: say what is wrong without a traceback (once, under torchrun).
        if launch_rank() == 0:
            print(f"fwm-rl {args.command}: error: {exc}", file=sys.stderr)
        return 2
    finally:
        finish_distributed()
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())
