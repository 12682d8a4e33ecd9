"""Learning benchmarks of the meta-RL agents, at equal episodes and seeds (paper Figure 5 setting).

    python scripts/bench_learning.py                                  # FWM vs LSTM-512: 300 episodes, seed 0
    python scripts/bench_learning.py --episodes 20000 --seeds 0 1 2 --device cuda
    python scripts/bench_learning.py --recipes paper lr3e-3 --seeds 0 1 2 --episodes 3000 --at 1000 2000 3000

Without ``--recipes`` it trains the FWM agent and the LSTM baseline with the paper's A2C settings
and prints test reward against episodes and the final results table. With ``--recipes`` it trains
one agent (``--memory``) with each learning recipe of ``fwm_rl.agents.training.RECIPES`` for every
seed and prints, at the ``--at`` episode counts, the mean and spread over seeds of the reward on the
validation graphs (choose recipes by this column), the test graphs (report only) and the training
graphs. Runs go to ``--out``/<recipe>-seed<S>; a folder that exists is refused unless ``--resume``
continues its runs (to a larger ``--episodes``, say) and starts those it lacks.
"""

import argparse
import dataclasses
import sys
from pathlib import Path

from fwm_rl.agents.plotting import curves_table, seeds_table
from fwm_rl.agents.training import RECIPES, A2CConfig, train_preset, with_recipe
from fwm_rl.engine import RunFinished


def _train(configs: list[A2CConfig], out: Path, resume: bool) -> None:
    """Train the runs into ``out`` (``resume``: continue them); a folder whose runs are all finished says so (its
    tables are then read as they are)."""
    try:
        train_preset(configs, out, resume=resume)
    except RunFinished as finished:
        print(finished)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        allow_abbrev=False, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--episodes", type=int, default=300, help="episodes (A2C updates) per run (default 300)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0], help="seeds (default 0)")
    parser.add_argument("--eval-every", type=int, default=25, help="episodes between evaluations (default 25)")
    parser.add_argument("--n-envs", type=int, default=600, help="agents per batch (default 600, the paper's)")
    parser.add_argument("--lstm-size", type=int, default=512, help="LSTM baseline units (default 512, the paper's smallest)")
    parser.add_argument("--recipes", nargs="+", choices=sorted(RECIPES), default=None, help="compare these learning recipes")
    parser.add_argument(
        "--memory", choices=("fwm", "lstm"), default="fwm", help="agent of the recipe comparison (default fwm)"
    )
    parser.add_argument(
        "--at", type=int, nargs="+", default=None, help="episode counts of the recipe table (default: every evaluation)"
    )
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda")
    parser.add_argument("--out", type=Path, default=Path("runs/bench-learning"), help="output folder")
    parser.add_argument(
        "--resume",
        action="store_true",
        help="continue (or extend, with a larger --episodes) the runs in --out; start the missing ones",
    )
    args = parser.parse_args(argv)
    for name in ("episodes", "eval_every", "n_envs", "lstm_size"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1, got {getattr(args, name)}")
    if args.out.exists() and not args.resume:
        parser.error(
            f"--out {args.out} exists; give a new folder (runs are never overwritten) or --resume to continue its runs"
        )
    common = {"steps": args.episodes, "eval_every": args.eval_every, "n_envs": args.n_envs, "device": args.device}
    if args.recipes is None:
        configs = [
            cfg
            for seed in args.seeds
            for cfg in (
                A2CConfig(name=f"fwm-seed{seed}", seed=seed, **common),
                A2CConfig(
                    name=f"lstm-{args.lstm_size}-seed{seed}", memory="lstm", hidden_size=args.lstm_size, seed=seed, **common
                ),
            )
        ]
        _train(configs, args.out, args.resume)
        print("\ntest reward (one episode on each of the 600 test graphs) against episodes:")
        print(curves_table([args.out / cfg.name for cfg in configs]), end="")
        return 0
    agent = A2CConfig(**common) if args.memory == "fwm" else A2CConfig(memory="lstm", hidden_size=args.lstm_size, **common)
    # Seeds in the outer loop: an interrupted comparison has every recipe at the same seeds.
    configs = [
        dataclasses.replace(with_recipe(agent, r), name=f"{r}-seed{s}", seed=s) for s in args.seeds for r in args.recipes
    ]
    _train(configs, args.out, args.resume)
    at = args.at or list(range(args.eval_every, args.episodes + 1, args.eval_every))
    groups = {r: [args.out / f"{r}-seed{s}" for s in args.seeds] for r in args.recipes}
    table = seeds_table(groups, at)
    (args.out / "recipes.md").write_text(table)
    print(
        f"\n{agent.label}: reward against episodes, mean ± sd over seeds {args.seeds} "
        "(valid: the validation graphs, for choosing; test: the paper's test graphs, for reporting):"
    )
    print(table, end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
