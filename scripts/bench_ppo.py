"""RecurrentPPO against RecurrentA2C at equal environment steps, FWM and LSTM cores, on two memory tasks.

    python scripts/bench_ppo.py                                   # both tasks, FWM and LSTM, seed 0
    python scripts/bench_ppo.py --tasks cartpole --steps 300000 --seeds 0 1 2
    python scripts/bench_ppo.py --algos a2c ppo sb3-ppo           # + sb3-contrib's RecurrentPPO (LSTM), if installed

Tasks:

* ``graph``: the paper's meta-RL task (600 agents on the 600 training graphs, 30-step episodes);
  scored by the mean reward of one episode on each of the 600 test graphs (random policy ~45).
* ``cartpole``: ``CartPoleNoVel-v1`` (CartPole with the velocities hidden), 16 copies; scored by
  the mean return of 50 evaluation episodes (at most 500).

Recipes, fixed in advance and not tuned on these scores (``RECIPES`` below): A2C on the graph task
is the ``fast-fwm`` preset's (lr 3e-3, the paper's A2C otherwise; one update per 30-step episode),
on CartPole ``fwm-rl train --env``'s defaults; PPO uses SB3's PPO settings with rollouts of one
graph episode (30 steps) or 128 steps, 4 epochs of 4 minibatches of whole environments.
sb3-contrib's ``RecurrentPPO`` (``MlpLstmPolicy``, its LSTM of 32 or 512 units after a small MLP)
gets the PPO recipe where its arguments match. The table gives the score, the wall time and the
environment steps per second of every run (same machine, one run at a time).
"""

from __future__ import annotations

import argparse
import importlib.util
import math
import time

import numpy as np
import torch

from fwm_rl.agents import FWMGraphVecEnv, RecurrentA2C, RecurrentPPO
from fwm_rl.agents.config import FAST_RECIPE
from fwm_rl.agents.env_training import evaluate_env, make_env, normalized
from fwm_rl.agents.evaluation import evaluate
from fwm_rl.engine import set_seed
from fwm_rl.envs.graphs import graph_set

#: task -> algorithm -> keyword arguments of the algorithm.
RECIPES: dict[str, dict[str, dict]] = {
    "graph": {
        "a2c": {
            "n_steps": 30,
            "gamma": 0.9,
            "gae_lambda": 1.0,
            "ent_coef": 0.03,
            "vf_coef": 0.1,
            "max_grad_norm": None,
            "learning_rate": FAST_RECIPE["lr"],
        },
        "ppo": {
            "n_steps": 30,
            "gamma": 0.9,
            "gae_lambda": 0.95,
            "ent_coef": 0.03,
            "learning_rate": 1e-3,
            "n_epochs": 4,
            "n_minibatches": 4,
        },
        "sb3-ppo": {
            "n_steps": 30,
            "gamma": 0.9,
            "gae_lambda": 0.95,
            "ent_coef": 0.03,
            "learning_rate": 1e-3,
            "n_epochs": 4,
            "batch_size": 4500,
        },
    },
    "cartpole": {
        "a2c": {
            "n_steps": 32,
            "gamma": 0.99,
            "gae_lambda": 0.95,
            "ent_coef": 0.01,
            "vf_coef": 0.5,
            "max_grad_norm": 0.5,
            "learning_rate": 1e-3,
        },
        "ppo": {"n_steps": 128, "gamma": 0.99, "gae_lambda": 0.95, "learning_rate": 1e-3, "n_epochs": 4, "n_minibatches": 4},
        "sb3-ppo": {
            "n_steps": 128,
            "gamma": 0.99,
            "gae_lambda": 0.95,
            "learning_rate": 1e-3,
            "n_epochs": 4,
            "batch_size": 512,
        },
    },
}
SIZES = {"fwm": {"hidden_size": 32, "d_fwm": 16, "n_reads": 3}, "lstm": {"hidden_size": 32}}
N_ENVS = {"graph": 600, "cartpole": 16}


def make_train_env(task: str, seed: int):
    if task == "graph":
        return FWMGraphVecEnv.make(600, graphs=graph_set("train"), device="cpu", seed=seed)
    # observations normalised as in ``fwm-rl train --env`` (normalize_obs)
    return normalized(make_env("CartPoleNoVel-v1", N_ENVS[task], seed=seed), None, training=True)


def scoring_env(model, task: str, seed: int):
    """The scoring env: the test graphs, or CartPole copies normalised by the training statistics, frozen."""
    if task == "graph":
        return FWMGraphVecEnv.make(600, split="test", device="cpu", seed=seed + 10_000)
    return normalized(make_env("CartPoleNoVel-v1", 10, seed=seed + 10_000), model.get_env().obs_rms, training=False)


def score(model, task: str, seed: int) -> float:
    if task == "graph":
        return evaluate(model.policy, "test", 1, seed=seed + 10_000).mean
    return evaluate_env(model.policy, scoring_env(model, task, seed), 50)[0]


def sb3_score(model, task: str, seed: int) -> float:
    from stable_baselines3.common.evaluation import evaluate_policy

    rewards, _ = evaluate_policy(
        model,
        scoring_env(model, task, seed),
        n_eval_episodes=600 if task == "graph" else 50,
        return_episode_rewards=True,
        warn=False,
    )
    return float(np.mean(rewards))


def run(task: str, algo: str, memory: str, steps: int, seed: int, lstm_size: int) -> tuple[float, float]:
    """Train one agent for ``steps`` environment steps; returns (score, seconds of training)."""
    set_seed(seed)
    env = make_train_env(task, seed)
    recipe = RECIPES[task][algo]
    sizes = SIZES[memory] if memory == "fwm" else {"hidden_size": lstm_size}
    if algo == "sb3-ppo":
        from sb3_contrib import RecurrentPPO as ContribPPO

        model = ContribPPO(
            "MlpLstmPolicy", env, seed=seed, device="cpu", policy_kwargs={"lstm_hidden_size": sizes["hidden_size"]}, **recipe
        )
        scorer = sb3_score
    else:
        algo_class = RecurrentA2C if algo == "a2c" else RecurrentPPO
        policy = "FwmPolicy" if memory == "fwm" else "LstmPolicy"
        model = algo_class(policy, env, seed=seed, device="cpu", policy_kwargs=sizes, **recipe)
        scorer = score
    start = time.perf_counter()
    model.learn(steps)
    seconds = time.perf_counter() - start
    return scorer(model, task, seed), seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        allow_abbrev=False, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tasks", nargs="+", choices=sorted(RECIPES), default=sorted(RECIPES), help="tasks (default both)")
    parser.add_argument(
        "--algos", nargs="+", choices=("a2c", "ppo", "sb3-ppo"), default=["a2c", "ppo"], help="algorithms (default a2c ppo)"
    )
    parser.add_argument(
        "--memories",
        nargs="+",
        choices=sorted(SIZES),
        default=sorted(SIZES),
        help="cores (default fwm lstm; sb3-ppo: lstm only)",
    )
    parser.add_argument(
        "--steps",
        type=int,
        default=None,
        help="environment steps per run (default: graph 5,400,000 = 300 episodes; cartpole 200,000)",
    )
    parser.add_argument("--seeds", type=int, nargs="+", default=[0], help="seeds (default 0)")
    parser.add_argument(
        "--lstm-size", type=int, default=None, help="LSTM units (default: graph 512, the paper's smallest; cartpole 32)"
    )
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default torch's)")
    args = parser.parse_args(argv)
    if "sb3-ppo" in args.algos and importlib.util.find_spec("sb3_contrib") is None:
        parser.error("sb3-ppo needs sb3-contrib: pip install sb3-contrib (an optional reference, not a dependency)")
    if args.steps is not None and args.steps < 1:
        parser.error(f"--steps must be at least 1, got {args.steps}")
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    print("| task | algorithm | memory | env steps | score (mean over seeds) | per seed | train seconds | env steps/s |")
    print("|---|---|---|---|---|---|---|---|")
    for task in args.tasks:
        steps = args.steps or {"graph": 300 * 600 * 30, "cartpole": 200_000}[task]
        lstm_size = args.lstm_size or {"graph": 512, "cartpole": 32}[task]
        for algo in args.algos:
            for memory in args.memories:
                if algo == "sb3-ppo" and memory != "lstm":
                    continue
                results = [run(task, algo, memory, steps, seed, lstm_size) for seed in args.seeds]
                scores, seconds = [r[0] for r in results], sum(r[1] for r in results)
                label = f"{memory}-{lstm_size}" if memory == "lstm" else "fwm-32-16"
                spread = f" ± {np.std(scores, ddof=1) / math.sqrt(len(scores)):.1f}" if len(scores) > 1 else ""
                print(
                    f"| {task} | {algo} | {label} | {steps:,} | {np.mean(scores):.1f}{spread} | {', '.join(f'{s:.1f}' for s in scores)} | "
                    f"{seconds:.0f} | {steps * len(scores) / seconds:,.0f} |",
                    flush=True,
                )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
