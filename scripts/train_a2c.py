"""Train FWM and LSTM A2C agents on the paper's metro graphs (the same as ``fwm-rl train``).

    python scripts/train_a2c.py                                  # CPU default: FWM + LSTM-512, ~25 min, 2 cores
    python scripts/train_a2c.py --preset paper-fwm --device cuda # the paper's FWM run (51k episodes)
    python scripts/train_a2c.py --resume runs/a2c-cpu-seed0      # continue

Writes metrics.csv + TensorBoard logs and checkpoints per run, figure5.png and results.md.
"""

import argparse
import sys

from fwm_rl.agents.cli import add_train_arguments, run_train
from fwm_rl.cli import run_reporting_errors


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        allow_abbrev=False, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_train_arguments(parser)
    args = parser.parse_args(argv)
    return run_reporting_errors("train_a2c.py", lambda: run_train(args))


if __name__ == "__main__":
    sys.exit(main())
