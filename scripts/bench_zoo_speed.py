"""Training speed at the RL Zoo's recipe: our RecurrentPPO (each core) against sb3-contrib's RecurrentPPO.

    python scripts/bench_zoo_speed.py                                  # CartPoleNoVel-v1: contrib, lstm, gru, fwm
    python scripts/bench_zoo_speed.py --variants contrib lstm --steps 20000 --rounds 3

Every variant trains on the recipe fwm-rl ships for the env (``fwm_rl/agents/recipes/ppo.yml``, the Zoo's
``ppo_lstm.yml`` entry: for CartPoleNoVel-v1 8 envs x 32 steps, 20 epochs of one minibatch, LSTM 64 with a critic
LSTM and 64-unit ReLU heads, VecNormalize) from a fresh model for ``--steps`` environment steps; ``contrib`` is
sb3-contrib's ``RecurrentPPO("MlpLstmPolicy")`` with the same recipe (its policy_kwargs as the Zoo gives them). The
rounds alternate the variants, so that a machine's drift reaches each alike; the table gives each variant's
environment steps per second (median over rounds) and its ratio to ``contrib`` and to ``lstm``. sb3-contrib is an
optional reference (``pip install "fwm-rl[bench]"``), not a dependency.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import time

import numpy as np
import torch
from stable_baselines3.common.utils import LinearSchedule

from fwm_rl.agents.config import EnvTrainConfig
from fwm_rl.agents.env_training import make_env, make_env_model, normalized
from fwm_rl.agents.hyperparams import shipped_recipe
from fwm_rl.agents.policies import ACTIVATIONS
from fwm_rl.engine import set_seed

VARIANTS = ("contrib", "lstm", "gru", "fwm")


def recipe_config(env_id: str, memory: str, seed: int) -> EnvTrainConfig:
    recipe = shipped_recipe("ppo", env_id)
    if recipe is None:
        raise SystemExit(f"fwm-rl ships no PPO recipe for {env_id}")
    return EnvTrainConfig(env_id=env_id, algo="ppo", **{**recipe.fields, "memory": memory, "seed": seed})


def contrib_model(cfg: EnvTrainConfig, env):
    """sb3-contrib's RecurrentPPO with ``cfg``'s recipe (the Zoo's MlpLstmPolicy arguments)."""
    from sb3_contrib import RecurrentPPO as ContribPPO

    schedule = {"linear": lambda value: LinearSchedule(value, 0.0, 1.0), "constant": lambda value: value}
    net_arch = cfg.policy_kwargs["net_arch"]
    return ContribPPO(
        "MlpLstmPolicy", env, n_steps=cfg.n_steps, batch_size=cfg.rollout_steps // cfg.n_minibatches, n_epochs=cfg.n_epochs,
        gamma=cfg.gamma, gae_lambda=cfg.gae_lambda, ent_coef=cfg.ent_coef, vf_coef=cfg.vf_coef, max_grad_norm=cfg.max_grad_norm,
        learning_rate=schedule[cfg.lr_schedule](cfg.lr), clip_range=schedule[cfg.clip_range_schedule](cfg.clip_range),
        seed=cfg.seed, device="cpu",
        policy_kwargs={"lstm_hidden_size": cfg.hidden_size, "enable_critic_lstm": not cfg.shared_core, "ortho_init": cfg.ortho_init,
                       "activation_fn": ACTIVATIONS[cfg.activation_fn], "net_arch": net_arch if net_arch is not None else []},
    )  # fmt: skip


def steps_per_second(variant: str, env_id: str, steps: int, seed: int) -> float:
    cfg = recipe_config(env_id, "lstm" if variant == "contrib" else variant, seed)
    set_seed(seed)
    env = normalized(
        make_env(env_id, cfg.n_envs, seed=seed),
        None,
        training=True,
        norm_obs=cfg.normalize_obs,
        norm_reward=cfg.norm_reward,
        gamma=cfg.gamma,
    )
    model = (
        contrib_model(cfg, env)
        if variant == "contrib"
        else make_env_model(dataclasses.replace(cfg, device="cpu"), env, torch.device("cpu"))
    )
    start = time.perf_counter()
    model.learn(steps)
    return model.num_timesteps / (time.perf_counter() - start)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        allow_abbrev=False, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--env", default="CartPoleNoVel-v1", help="an env id fwm-rl ships a PPO recipe for (default CartPoleNoVel-v1)"
    )
    parser.add_argument("--variants", nargs="+", choices=VARIANTS, default=list(VARIANTS), help="what to time (default all)")
    parser.add_argument("--steps", type=int, default=20_000, help="environment steps per variant and round (default 20,000)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds, each timing every variant in turn (default 3)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default torch's)")
    args = parser.parse_args(argv)
    if "contrib" in args.variants and importlib.util.find_spec("sb3_contrib") is None:
        parser.error('the contrib variant needs sb3-contrib: pip install "fwm-rl[bench]" (or leave contrib out of --variants)')
    if args.steps < 1 or args.rounds < 1:
        parser.error("--steps and --rounds must be at least 1")
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    rates: dict[str, list[float]] = {variant: [] for variant in args.variants}
    for round_ in range(args.rounds):
        for variant in args.variants:
            rates[variant].append(steps_per_second(variant, args.env, args.steps, seed=round_))
            print(f"round {round_ + 1}: {variant} {rates[variant][-1]:,.0f} env steps/s", flush=True)
    median = {variant: float(np.median(values)) for variant, values in rates.items()}
    print(
        f"\n{args.env}, {args.steps:,} env steps per run, {args.rounds} rounds alternated, {torch.get_num_threads()} threads"
    )
    print("| variant | env steps/s (median) | per round | vs contrib | vs lstm |")
    print("|---|---|---|---|---|")
    for variant, value in median.items():

        def ratio(base: str) -> str:
            return f"{value / median[base]:.2f}x" if base in median else "-"

        print(
            f"| {variant} | {value:,.0f} | {', '.join(f'{r:,.0f}' for r in rates[variant])} | {ratio('contrib')} | {ratio('lstm')} |"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
