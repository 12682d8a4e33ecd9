"""Train FWM and LSTM A2C agents on the paper's metro graphs (the same as ``fwm-rl train``).

    python scripts/train_a2c.py                                  # CPU default: FWM + LSTM-512, ~25 min, 2 cores
    python scripts/train_a2c.py --preset paper-fwm --device cuda # the paper's FWM run (51k episodes)
    python scripts/train_a2c.py --resume runs/a2c-cpu-seed0      # continue

Writes metrics.csv + TensorBoard logs and checkpoints per run, figure5.png and results.md.
"""

import argparse
import sys

from fwm_rl.agents.cli import add_train_arguments, run_train
from fwm_rl.distributed import finish_distributed, launch_rank


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_train_arguments(parser)
    args = parser.parse_args(argv)
    try:
        return run_train(args)
    except (ValueError, FileNotFoundError, KeyError) as exc:
        if launch_rank() == 0:  # once, under torchrun
            print(f"train_a2c.py: error: {exc}", file=sys.stderr)
        return 2
    finally:
        finish_distributed()


if __name__ == "__main__":
    sys.exit(main())
