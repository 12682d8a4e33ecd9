"""Env-steps per second of FWMGraph-v0 on one CPU core.

1. the native vector env vs gymnasium's SyncVectorEnv over single envs, 600 envs on the paper's train set (ratio);
2. the native vector env at 4096 envs with a fresh Listing-1 graph for every env and episode (FWMGraph-v0's default);
3. the native vector env in each autoreset mode (next_step, same_step, disabled), 600 envs, train set;
4. optionally (--torch) the torch core on --device.

    python scripts/bench_env.py --seconds 3
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")  # one core, set before numpy loads its BLAS

import argparse
import time

import gymnasium as gym
import numpy as np
import torch

from fwm_rl.envs import FWMGraphEnv, FWMGraphVectorEnv
from fwm_rl.envs.vector_env import AUTORESET_MODES


def steps_per_second(env, n_envs: int, seconds: float, actions) -> float:
    """Env-steps per second of ``env`` stepped with pre-drawn random actions for about ``seconds``,
    whole episodes only, the resets included: a NEXT_STEP env takes one more ``step`` per episode
    (its reset step, not counted as an env-step), a DISABLED one a ``reset()``."""
    env.reset(seed=0)
    mode = env.metadata.get("autoreset_mode", gym.vector.AutoresetMode.SAME_STEP)
    steps, start = 0, time.perf_counter()
    while True:
        for k in range(30):
            env.step(actions[k])
        if mode == gym.vector.AutoresetMode.NEXT_STEP:
            env.step(actions[0])
        elif mode == gym.vector.AutoresetMode.DISABLED:
            env.reset()
        steps += 30 * n_envs
        elapsed = time.perf_counter() - start
        if elapsed >= seconds:
            return steps / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(
        allow_abbrev=False, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=3.0, help="time per measurement")
    parser.add_argument("--torch", action="store_true", help="also time the torch core on --device")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()
    torch.set_num_threads(1)
    rng = np.random.default_rng(0)

    acts600 = rng.integers(0, 3, (30, 600))
    native = steps_per_second(FWMGraphVectorEnv(num_envs=600, split="train"), 600, args.seconds, acts600)
    sync = gym.vector.SyncVectorEnv([lambda: FWMGraphEnv(split="train") for _ in range(600)])
    synced = steps_per_second(sync, 600, args.seconds, acts600)
    print(
        f"600 envs, train set : native {native / 1e6:7.3f} M steps/s | SyncVectorEnv {synced / 1e6:7.4f} M steps/s"
        f" | ratio {native / synced:6.0f}x"
    )

    acts4096 = rng.integers(0, 3, (30, 4096))
    fresh = steps_per_second(FWMGraphVectorEnv(num_envs=4096), 4096, args.seconds, acts4096)
    print(f"4096 envs, fresh graph every episode: native {fresh / 1e6:7.3f} M steps/s")

    rates: dict[str, list[float]] = {mode.name.lower(): [] for mode in AUTORESET_MODES}
    for _ in range(3):  # alternate the modes: this machine drifts over minutes
        for mode in AUTORESET_MODES:
            env = FWMGraphVectorEnv(num_envs=600, split="train", autoreset_mode=mode)
            rates[mode.name.lower()].append(steps_per_second(env, 600, args.seconds / 3, acts600))
    best = {name: max(r) for name, r in rates.items()}
    print(
        "600 envs, train set, autoreset mode (best of 3): "
        + " | ".join(f"{name} {rate / 1e6:.3f} M steps/s ({rate / best['same_step']:.2f}x)" for name, rate in best.items())
    )

    if args.torch:
        acts = torch.as_tensor(acts4096, device=args.device)
        env = FWMGraphVectorEnv(num_envs=4096, device=args.device, check_actions=False)
        if env.core.backend.device.type == "cuda":
            torch.cuda.synchronize()
        rate = steps_per_second(env, 4096, args.seconds, acts)
        print(f"4096 envs, fresh graphs, torch on {args.device}: {rate / 1e6:7.3f} M steps/s")


if __name__ == "__main__":
    main()
