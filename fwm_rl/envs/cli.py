"""``fwm-rl show-graph`` and ``fwm-rl baselines``."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from fwm_rl.envs.baselines import POLICIES, reference_levels, trial_returns
from fwm_rl.envs.core import SEMANTICS
from fwm_rl.envs.graphs import N_ACTIONS, N_STATES, graph_at, sample_adjacency_matrix
from fwm_rl.envs.render import ansi_map, save_graph_png


def register(subparsers: argparse._SubParsersAction) -> None:
    show = subparsers.add_parser(
        "show-graph",
        help="draw a metro graph (paper Figure 4 style) to a PNG",
        description="Draw one graph: Listing 1 with RandomState(--seed), or graph --index of the paper's --split set.",
    )
    source = show.add_mutually_exclusive_group()
    source.add_argument(
        "--seed", type=int, default=None, help="draw a graph with Listing 1 from RandomState(SEED) (default 0)"
    )
    source.add_argument(
        "--split",
        choices=("train", "test", "valid"),
        default=None,
        help="take a graph of the paper's sets or of the validation set",
    )
    show.add_argument("--index", type=int, default=0, help="graph index in --split (default 0)")
    show.add_argument("--agent", type=int, default=None, help="colour this location green (the agent)")
    show.add_argument("--reward", type=int, default=None, help="colour this location yellow (the reward)")
    show.add_argument("--out", type=Path, default=Path("graph.png"), help="PNG path (default graph.png)")
    show.set_defaults(func=_show_graph)

    base = subparsers.add_parser(
        "baselines",
        help="mean total reward per episode of the reference policies (random, explorer, oracle)",
        description="Run the reference policies on the paper's graphs and print mean total reward per episode +- standard error.",
    )
    base.add_argument(
        "--split",
        choices=("train", "test", "valid", "random"),
        default="test",
        help="train | test | valid (this project's validation set) | random (fresh graphs); default test",
    )
    base.add_argument(
        "--episodes", type=int, default=6000, help="episodes per policy (episode i on graph i %% 600); default 6000"
    )
    base.add_argument("--seed", type=int, default=0, help="seed of placements and random choices (default 0)")
    base.add_argument("--semantics", choices=SEMANTICS, default="paper", help="task rules (default paper)")
    base.add_argument(
        "--trials",
        type=int,
        default=1,
        help="trials of this many episodes on the same graph, the policies keeping their knowledge across them; "
        "shows the reward of each episode of a trial (default 1)",
    )
    base.set_defaults(func=_baselines)


def _show_graph(args: argparse.Namespace) -> int:
    if args.split is not None:
        adjacency, title = graph_at(args.split, args.index), f"{args.split} graph {args.index}"
    else:
        seed = 0 if args.seed is None else args.seed
        if seed < 0:
            raise ValueError(f"--seed must be >= 0, got {seed}")
        adjacency, title = sample_adjacency_matrix(N_ACTIONS, N_STATES, np.random.RandomState(seed)), f"Listing 1, seed {seed}"
    for name in ("agent", "reward"):
        value = getattr(args, name)
        if value is not None and not 0 <= value < N_STATES:
            raise ValueError(f"--{name} {value} is not a location (0..{N_STATES - 1})")
    path = save_graph_png(args.out, adjacency, agent=args.agent, reward=args.reward, title=title)
    print(ansi_map(adjacency, agent=args.agent, reward=args.reward), end="")
    print(f"wrote {path}")
    return 0


def _baselines(args: argparse.Namespace) -> int:
    if args.trials < 1:
        raise ValueError(f"--trials must be at least 1, got {args.trials}")
    if args.trials == 1:
        levels = reference_levels(args.split, args.episodes, args.seed, args.semantics)
        print(f"split={args.split} episodes={args.episodes} seed={args.seed} semantics={args.semantics}")
        print(f"{'policy':10s} {'mean total reward':>18s} {'std. error':>11s}")
        for policy in POLICIES:
            mean, sem = levels[policy]
            print(f"{policy:10s} {mean:18.2f} {sem:11.2f}")
        return 0
    n_trials = max(args.episodes // args.trials, 2)
    print(f"split={args.split} trials={n_trials} of {args.trials} episodes seed={args.seed} semantics={args.semantics}")
    print(
        f"{'policy':10s} "
        + " ".join(f"{'episode ' + str(k + 1):>10s}" for k in range(args.trials))
        + "   (mean total reward; std. error)"
    )
    for policy in POLICIES:
        returns = trial_returns(policy, args.split, n_trials, args.seed, args.semantics, args.trials)
        sems = returns.std(0, ddof=1) / np.sqrt(n_trials)
        print(
            f"{policy:10s} "
            + " ".join(f"{m:10.2f}" for m in returns.mean(0))
            + "   ("
            + ", ".join(f"{e:.2f}" for e in sems)
            + ")"
        )
    return 0
