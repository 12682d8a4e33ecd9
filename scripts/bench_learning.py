"""Learning benchmark: the FWM agent against LSTM-512, same episodes, same seeds (paper Figure 5 setting).

    python scripts/bench_learning.py                                  # CPU-sized: 300 episodes, seed 0
    python scripts/bench_learning.py --episodes 20000 --seeds 0 1 2 --device cuda

Trains both agents with the paper's A2C settings on the 600 training graphs (``fwm_rl.agents.training``),
then prints test reward against episodes, the final results table and training agent-steps/s.
"""

import argparse
from pathlib import Path

from fwm_rl.agents.plotting import curves_table
from fwm_rl.agents.training import TrainConfig, train_preset


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--episodes", type=int, default=300, help="episodes (A2C updates) per run (default 300)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0], help="seeds (default 0)")
    parser.add_argument("--eval-every", type=int, default=25, help="episodes between test evaluations (default 25)")
    parser.add_argument("--n-envs", type=int, default=600, help="agents per batch (default 600, the paper's)")
    parser.add_argument("--lstm-size", type=int, default=512, help="LSTM baseline units (default 512, the paper's smallest)")
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda")
    parser.add_argument("--out", type=Path, default=Path("runs/bench-learning"), help="output folder")
    args = parser.parse_args()
    common = {"episodes": args.episodes, "eval_every": args.eval_every, "n_envs": args.n_envs, "device": args.device}
    configs = [
        cfg
        for seed in args.seeds
        for cfg in (
            TrainConfig(name=f"fwm-seed{seed}", seed=seed, **common),
            TrainConfig(name=f"lstm-{args.lstm_size}-seed{seed}", memory="lstm", hidden_size=args.lstm_size, seed=seed, **common),
        )
    ]
    train_preset(configs, args.out)
    print("\ntest reward (one episode on each of the 600 test graphs) against episodes:")
    print(curves_table([args.out / cfg.name for cfg in configs]), end="")


if __name__ == "__main__":
    main()
