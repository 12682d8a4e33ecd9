"""``fwm-rl train``, ``fwm-rl eval`` and ``fwm-rl plot`` (``scripts/train_a2c.py`` is ``train``)."""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

from fwm_rl.agents.a2c import A2C_LOSSES
from fwm_rl.agents.config import (
    ALGOS,
    CONFIG,
    MEMORIES,
    POLICY_OPTIONS,
    PPO_OPTIONS,
    PRESETS,
    SCHEDULES,
    A2CConfig,
    EnvTrainConfig,
    preset_configs,
)
from fwm_rl.agents.env_training import EnvRunSummary, check_env_id, evaluate_env, make_eval_env
from fwm_rl.agents.evaluation import trial_returns
from fwm_rl.agents.explain import explain_figure
from fwm_rl.agents.hyperparams import Recipe, read_hyperparams, shipped_recipe
from fwm_rl.agents.plotting import plot_runs
from fwm_rl.agents.policies import ACTIVATIONS, FWM_OUTPUTS
from fwm_rl.agents.pretrained import PRETRAINED, load_pretrained
from fwm_rl.agents.training import (
    CHECKPOINT,
    RUNS,
    load_policy,
    read_run_checkpoint,
    results_table,
    resume_finished,
    run_dirs,
    train_preset,
    train_run,
)
from fwm_rl.agents.watch import check_gif_options, episode_gif, play_episode
from fwm_rl.checks import upper_bound
from fwm_rl.engine import add_device_option, add_options, add_run_options, add_trust_option, flag, given, resume_folder
from fwm_rl.engine.distributed import launch_rank
from fwm_rl.envs import ENV_IDS, SEMANTICS
from fwm_rl.envs.baselines import trial_mean_sem
from fwm_rl.envs.graphs import SPLITS

__all__ = ["add_train_arguments", "register", "run_train"]

#: The graph task's training sets: ``--env`` with one of them trains with the paper's protocol (the rules the id fixes).
GRAPH_TRAIN_IDS = {env_id: kwargs for env_id, kwargs in ENV_IDS.items() if kwargs.get("split") == "train"}
#: Options of both trainers (fields of both configs, their defaults may differ; ``steps`` counts episodes of the graph
#: task and environment steps of ``--env`` runs).
COMMON_OPTIONS = ("steps", "seed", "eval_every", "n_envs", "lr", "time_budget")
#: Options of both trainers that set one run's agent (refused for a preset of several runs).
AGENT_OPTIONS = ("memory", "hidden_size", "d_fwm", "n_reads")
RECIPE_OPTIONS = ("gamma", "gae_lambda", "ent_coef", "vf_coef", "max_grad_norm", "normalize_advantage")
#: Options of ``--env`` runs only, and of graph runs only.
ENV_ONLY = (
    "n_steps",
    "eval_episodes",
    "final_eval_episodes",
    "stochastic_eval",
    "normalize_obs",
    "norm_reward",
    "lr_schedule",
    "algo",
    *PPO_OPTIONS,
    *POLICY_OPTIONS,
)
GRAPH_ONLY = ("semantics", "loss", "trials", "final_episodes_per_graph")


def _defaults(names: tuple[str, ...]) -> dict[str, str]:
    """The help's default of options of both trainers: the graph task's, and the ``--env`` runs' default and largest value
    where they differ (the graph task's largest value follows, from :func:`~fwm_rl.engine.add_options`)."""
    graph, env = A2CConfig(), EnvTrainConfig()

    def text(value: object) -> str:
        return "none" if value is None else str(value)

    def env_text(name: str) -> str:
        most = upper_bound(EnvTrainConfig, name)
        parts = [text(getattr(env, name))] if getattr(env, name) != getattr(graph, name) else []
        parts += [f"at most {most:g}"] if most != upper_bound(A2CConfig, name) else []
        return f"; --env runs: {', '.join(parts)}" if parts else ""

    return {name: f"default: {text(getattr(graph, name))}{env_text(name)}" for name in names}


def add_train_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``fwm-rl train`` and ``scripts/train_a2c.py`` (help and defaults from :class:`A2CConfig` and
    :class:`EnvTrainConfig`)."""
    parser.add_argument(
        "--preset",
        choices=sorted(PRESETS),
        default=None,
        help="the graph-task runs to train (default cpu): " + "; ".join(f"{k}: {v.description}" for k, v in PRESETS.items()),
    )
    defaults = _defaults((*COMMON_OPTIONS, "device"))
    defaults["steps"] = (
        f"default: the preset's; --env runs: environment steps, {EnvTrainConfig.steps}, rounded up to whole rollouts"
    )
    add_options(parser, A2CConfig, COMMON_OPTIONS, defaults=defaults, also=(EnvTrainConfig,))
    add_options(parser, A2CConfig, GRAPH_ONLY, choices={"semantics": SEMANTICS, "loss": A2C_LOSSES})
    add_run_options(parser, A2CConfig, out="runs/a2c-PRESET-seedSEED, or for --env runs ALGO-ENV-MEMORY-seedSEED",
                    what="the runs", defaults=defaults)  # fmt: skip
    env = parser.add_argument_group(
        "any environment",
        "--env ID trains one agent on any Gymnasium env whose spaces stable-baselines3 takes (and Tuple observations); "
        f"{' / '.join(GRAPH_TRAIN_IDS)} train on the paper's graphs as without --env, under the rules the id fixes",
    )
    env.add_argument(
        "--env",
        default=None,
        metavar="ID",
        help="environment id, e.g. CartPoleNoVel-v1 ('module:Id' imports the module that registers Id)",
    )
    env.add_argument(
        "--hyperparams",
        default=None,
        metavar="FILE",
        help="the recipe: FILE.yml in the RL Zoo's format (its entry for --env; keys it does not give take SB3's "
        "defaults for --algo), or none for fwm-rl's defaults (default: the recipe fwm-rl ships for --algo and "
        "--env where there is one); flags override it",
    )
    add_options(
        env,
        EnvTrainConfig,
        ENV_ONLY,
        choices={
            "algo": ALGOS,
            "lr_schedule": SCHEDULES,
            "clip_range_schedule": SCHEDULES,
            "activation_fn": sorted(ACTIVATIONS),
            "fwm_output": FWM_OUTPUTS,
        },
    )
    agent = parser.add_argument_group(
        "agent and recipe", "for --env runs, and for graph presets of one run (fast-fwm, paper-fwm, paper-lstm-N)"
    )
    add_options(
        agent,
        A2CConfig,
        AGENT_OPTIONS + RECIPE_OPTIONS,
        choices={"memory": sorted(MEMORIES)},
        defaults=_defaults(AGENT_OPTIONS + RECIPE_OPTIONS),
    )


def _options(names: list[str]) -> str:
    """``--a is an option`` / ``--a, --b are options``."""
    return f"{', '.join(flag(name, A2CConfig) for name in names)} {'is an option' if len(names) == 1 else 'are options'}"


def _recipe(hyperparams: str | None, algo: str, env_id: str) -> Recipe | None:
    """The recipe of an ``--env`` run: the entry for ``env_id`` in the user's file ``hyperparams`` (``none``: no
    recipe), else the one fwm-rl ships for ``algo`` and ``env_id``, if any."""
    if hyperparams is None:
        return shipped_recipe(algo, env_id)
    return None if hyperparams.lower() == "none" else read_hyperparams(hyperparams, env_id, algo)


def _print_config(out: str | Path, configs: list[A2CConfig] | list[EnvTrainConfig], preset: str | None = None) -> None:
    """``--print-config``: the settings of the runs (an ``--env`` run's as ``config``, graph runs' as ``runs``) they train
    with, or continue with when resumed, as JSON."""
    if isinstance(configs[0], EnvTrainConfig):
        settings = {"env": configs[0].env_id, "out": str(out), "config": configs[0].to_dict()}
    else:
        settings = {**({"preset": preset} if preset else {}), "out": str(out), "runs": [c.to_dict() for c in configs]}
    print(json.dumps(settings, indent=2))


def run_train(args: argparse.Namespace) -> int:
    """Train a preset (or resume), then write the plot and the results table; or one ``--env`` run."""
    show = False if args.no_progress else None
    typed = given(args, (*AGENT_OPTIONS, *RECIPE_OPTIONS, *ENV_ONLY, *GRAPH_ONLY))
    common = given(args, (*COMMON_OPTIONS, "device"))
    graph_env = args.env is None or args.env.split(":")[-1] in GRAPH_TRAIN_IDS
    if args.resume is not None:
        if args.env is not None or args.hyperparams is not None or args.preset is not None:
            raise ValueError(
                "--resume continues the stored configuration, environment and recipe included "
                "(drop --env, --hyperparams and --preset)"
            )
        _resume(Path(resume_folder(args)), {**common, **typed}, show, args.print_config)
        return 0
    if not graph_env:
        wrong = [k for k in typed if k in GRAPH_ONLY] + (["preset"] if args.preset is not None else [])
        if wrong:
            raise ValueError(f"{_options(wrong)} of the graph task; an --env run takes --steps (and no preset)")
        algo = typed.get("algo", "a2c")
        ppo_given = [k for k in typed if k in PPO_OPTIONS]
        if ppo_given and algo != "ppo":
            raise ValueError(f"{_options(ppo_given)} of PPO: add --algo ppo")
        recipe = _recipe(args.hyperparams, algo, args.env)
        cfg = EnvTrainConfig(
            env_id=args.env, **{**(recipe.fields if recipe else {}), **common, **typed}, recipe=recipe.source if recipe else ""
        )
        check_env_id(cfg.env_id)
        budget = cfg.budget  # (refuses a budget below one rollout)
        out = args.out or Path("runs") / f"{cfg.algo}-{args.env.split(':')[-1]}-{cfg.memory}-seed{cfg.seed}"
        if args.print_config:
            _print_config(out, [cfg])
            return 0
        print(
            f"recipe: {recipe.source}" + "".join(f"\n  {note}" for note in recipe.notes)
            if recipe
            else f"recipe: fwm-rl's defaults (none {'given' if args.hyperparams else f'shipped for {algo} on {args.env}'})"
        )
        print(f"training {cfg.label}: {budget} -> {out}")
        print(env_results_table([train_run(cfg, Path(out), show_progress=show, overwrite=args.overwrite)]), end="")
        return 0
    wrong = [k for k in typed if k in ENV_ONLY] + (["hyperparams"] if args.hyperparams is not None else [])
    if wrong:
        raise ValueError(f"{_options(wrong)} of --env runs; the graph task trains A2C for --steps (--episodes)")
    if args.env is not None:
        semantics = GRAPH_TRAIN_IDS[args.env.split(":")[-1]].get("semantics", "paper")
        if typed.get("semantics", semantics) != semantics:
            raise ValueError(f"--env {args.env} fixes the rules to {semantics}; drop --semantics {typed['semantics']}")
        typed["semantics"] = semantics
    preset = args.preset or "cpu"
    configs = preset_configs(preset, **common, **typed)
    agent = [k for k in typed if k in AGENT_OPTIONS]
    if agent and len(configs) > 1:
        raise ValueError(
            f"preset {preset} trains {len(configs)} runs and {_options(agent)} for one agent: "
            "choose a preset of one run (fast-fwm, paper-fwm, paper-lstm-N)"
        )
    if agent:
        memory = configs[0].memory
        configs = [dataclasses.replace(configs[0], name=memory if memory == "fwm" else f"{memory}-{configs[0].hidden_size}")]
    out = args.out or Path("runs") / f"a2c-{preset}-seed{configs[0].seed}"
    if args.print_config:
        _print_config(out, configs, preset)
        return 0
    train_preset(configs, Path(out), show_progress=show, overwrite=args.overwrite)
    return 0


def env_results_table(summaries: list[EnvRunSummary]) -> str:
    """Markdown table of ``--env`` runs: steps, time, training return at the last log, MMER (the best of those
    returns over the logs) and the final evaluation."""
    lines = [
        "| agent | steps | train seconds | steps/s | train return (last log) | MMER | eval return (final) |",
        "|---|---|---|---|---|---|---|",
    ]
    for s in summaries:
        note = " (time budget)" if s.stopped_by_time_budget else ""
        lines.append(
            f"| {s.label} | {s.timesteps}{note} | {s.train_seconds:.0f} | {s.steps_per_second:,.0f} | {s.train_return:.1f} | "
            f"{s.mmer:.2f} | {s.eval_return:.1f} ± {s.eval_sem:.1f} ({s.eval_episodes} episodes, "
            f"{'deterministic' if s.eval_deterministic else 'sampled'}) |"
        )
    return "\n".join(lines) + "\n"


def _is_env_run(path: Path) -> bool:
    config = path / CONFIG if path.is_dir() else path.parent / CONFIG
    try:
        return "env_id" in json.loads(config.read_text())
    except (OSError, ValueError):
        return False


def _resume(path: Path, options: dict, show: bool | None, print_config: bool) -> None:
    """Continue the run(s) in ``path`` (a folder, or a run's ``checkpoint.pt``); of ``options`` (the flags
    given) only the resume overrides may be there (the config's :meth:`~fwm_rl.engine.SavedConfig.resume_changes`).
    ``print_config``: print the settings the runs would continue with instead."""
    if path.is_file() and path.name == CHECKPOINT:
        path = path.parent
    env_run = _is_env_run(path)
    options = (EnvTrainConfig if env_run else A2CConfig).resume_changes(**options)
    if env_run:
        ckpt, stored = read_run_checkpoint(path)
        cfg = stored.resumed(**options)
        if print_config:
            _print_config(path, [cfg])
            return
        finished = resume_finished(cfg, path, ckpt)
        if finished is not None:  # (said before anything else)
            raise finished
        print(f"resuming {cfg.label}: {cfg.budget} -> {path}")
        print(env_results_table([train_run(cfg, path, resume=True, show_progress=show)]), end="")
        return
    if (path / RUNS).exists():
        # A run that has a checkpoint continues under the settings it was trained with (its checkpoint's);
        # runs.json gives those of the runs not started yet.
        stored = json.loads((path / RUNS).read_text())
        configs = [
            read_run_checkpoint(path / name)[1] if (path / name / CHECKPOINT).exists() else A2CConfig.from_dict(c)
            for name, c in zip(stored["runs"], stored["configs"])
        ]
        configs = [c.resumed(**options) for c in configs]
        if print_config:
            _print_config(path, configs)
            return
        train_preset(configs, path, resume=True, show_progress=show)
        return
    if not (path / CHECKPOINT).exists():
        raise FileNotFoundError(f"nothing to resume in {path}: no {RUNS} and no {CHECKPOINT}")
    cfg = read_run_checkpoint(path)[1].resumed(**options)
    if print_config:
        _print_config(path, [cfg])
        return
    summary = train_run(cfg, path, resume=True, show_progress=show)
    if launch_rank() == 0:
        plot_runs([path], path / "figure5.png")
        print(results_table([summary], cfg.semantics, cfg.trials), end="")


def _agents(args: argparse.Namespace, source: str) -> list[tuple]:
    """``(policy, config, name)`` of the agents the command names: a run (or checkpoint), or ``--pretrained``."""
    given = getattr(args, source)
    if (given is None) == (args.pretrained is None):
        raise ValueError(
            f"give either a {source.upper().replace('_', ' ')} or --pretrained NAME (one of {sorted(PRETRAINED)})"
        )
    if args.pretrained is not None:
        model, record = load_pretrained(args.pretrained, args.device), PRETRAINED[args.pretrained]
        return [(model.policy, record.train_config(), f"{args.pretrained} ({record.label} @ {record.episodes})")]
    if given.is_file():
        policy, cfg, ckpt = load_policy(given, args.device)
        return [(policy, cfg, f"{cfg.label} @ {ckpt['step']}")]
    agents = []
    for run_dir in run_dirs(given):
        if not (run_dir / CHECKPOINT).exists():
            raise FileNotFoundError(f"{run_dir} has no {CHECKPOINT}: the run has not logged yet")
        policy, cfg, ckpt = load_policy(run_dir, args.device)
        agents.append((policy, cfg, f"{cfg.label} @ {ckpt['step']}"))
    return agents


def _eval_env_run(args: argparse.Namespace) -> int:
    """``fwm-rl eval`` of an ``--env`` run: its final evaluation, done again with ``--seed``."""
    if args.pretrained is not None or args.split is not None:
        raise ValueError(
            f"{args.run_dir} is a run on a Gymnasium env (fwm-rl train --env): --split and --pretrained belong to the graph task"
        )
    policy, cfg, ckpt = load_policy(args.run_dir, args.device)
    env = make_eval_env(ckpt, min(cfg.n_envs, cfg.final_eval_episodes), seed=args.seed)
    mean, sem = evaluate_env(policy, env, cfg.final_eval_episodes, args.deterministic or not cfg.stochastic_eval)
    print(f"{'agent':40s} {'mean return':>12s} {'std. error':>11s} {'episodes':>9s}")
    print(f"{cfg.label:40s} {mean:12.2f} {sem:11.2f} {cfg.final_eval_episodes:9d}")
    return 0


def _eval(args: argparse.Namespace) -> int:
    if args.run_dir is not None and _is_env_run(args.run_dir):
        return _eval_env_run(args)
    agents = _agents(args, "run_dir")  # (errors before the table's header)
    if args.trials is not None and args.trials < 1:
        raise ValueError(f"--trials must be at least 1, got {args.trials}")
    splits = ("train", "test") if args.split is None else (args.split,)
    width = max(24, *(len(name) + 1 for _, _, name in agents))
    print(
        f"{'agent':{width}s} {'split':6s} {'mean reward':>12s} {'std. error':>11s} {'episodes':>9s}  (with trials: the mean reward of each episode of a trial)"
    )
    for policy, cfg, name in agents:
        trials = cfg.trials if args.trials is None else args.trials
        for split in splits:
            returns = trial_returns(
                policy, split, args.episodes_per_graph, args.seed, cfg.semantics, args.deterministic, trials=trials
            )
            mean, sem = trial_mean_sem(returns)
            line = f"{name:{width}s} {split:6s} {mean:12.2f} {sem:11.2f} {returns.size:9d}"
            if trials > 1:
                line += "  " + " ".join(f"{m:6.1f}" for m in returns.mean(0))
            print(line)
    return 0


def _add_episode_arguments(parser: argparse.ArgumentParser) -> None:
    """The agent and the episode of ``watch`` and ``explain``."""
    parser.add_argument(
        "source", type=Path, nargs="?", default=None, metavar="RUN", help="a run folder or a checkpoint.pt file"
    )
    parser.add_argument(
        "--pretrained",
        default=None,
        metavar="NAME",
        help=f"a shipped agent instead: {', '.join(sorted(PRETRAINED)) or 'none yet'}",
    )
    graph = parser.add_mutually_exclusive_group()
    graph.add_argument("--split", choices=SPLITS, default=None, help="graph set (default test)")
    graph.add_argument("--seed", type=int, default=None, help="a fresh Listing-1 graph from RandomState(SEED) instead")
    parser.add_argument("--index", type=int, default=0, help="graph index in --split (default 0)")
    parser.add_argument("--episode-seed", type=int, default=0, help="seed of placements and action sampling (default 0)")
    parser.add_argument("--deterministic", action="store_true", help="take the most likely action instead of sampling")
    add_device_option(parser, EnvTrainConfig)


def _episode(args: argparse.Namespace):
    """The agent the options name playing the episode they name: ``(record, label)``."""
    if args.index < 0:
        raise ValueError(f"--index must be >= 0, got {args.index}")
    if args.source is not None and not (args.source.is_file() or (args.source / CHECKPOINT).exists()):
        raise FileNotFoundError(f"{args.source} is neither a run folder with a {CHECKPOINT} nor a checkpoint file")
    ((policy, cfg, name),) = _agents(args, "source")
    record = play_episode(policy, args.split, args.index, args.seed, args.episode_seed, args.deterministic, cfg.semantics)
    print(f"{record.title}: total reward {sum(record.rewards):g} in {len(record.actions)} steps")
    return record, f"{name} episodes"


def _watch(args: argparse.Namespace) -> int:
    check_gif_options(args.out, args.fps)
    record, label = _episode(args)
    print(f"wrote {episode_gif(record, args.out, args.fps, label=label)}")
    return 0


def _explain(args: argparse.Namespace) -> int:
    if args.out.suffix.lower() != ".png":
        raise ValueError(f"the output must be a .png file, got {args.out}")
    record, label = _episode(args)
    print(f"wrote {explain_figure(record, args.out, label=label)}")
    return 0


def _plot(args: argparse.Namespace) -> int:
    dirs = [d for path in args.run_dirs for d in run_dirs(path)]
    env_runs = [str(d) for d in dirs if _is_env_run(d)]
    if env_runs:
        raise ValueError(
            f"{', '.join(env_runs)}: runs on a Gymnasium env (fwm-rl train --env); fwm-rl plot draws graph-task runs "
            "(Figure 5). An --env run's metrics.csv holds train/return and eval/return per step, and TensorBoard shows them"
        )
    if args.reference_every < 1:
        raise ValueError(f"--reference-every must be at least 1, got {args.reference_every}")
    print(
        f"wrote {plot_runs(dirs, args.out, references=args.reference, reference_every=args.reference_every, max_episodes=args.max_episodes)}"
    )
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    train = subparsers.add_parser(
        "train",
        help="train A2C agents (FWM / LSTM) on the paper's metro graphs, or on any Gymnasium env (--env)",
        description="Train the runs of a preset on the 600 training graphs, logging train reward and reward on the "
        "600 test graphs; then draw figure5.png and write results.md in the output folder. With --env ID: one agent on "
        "that environment, logging training and evaluation returns; results.json holds the final evaluation.",
    )
    add_train_arguments(train)
    add_trust_option(train)
    train.set_defaults(func=run_train)

    ev = subparsers.add_parser(
        "eval",
        help="evaluate a trained agent on the train and test graphs",
        description="Mean total reward per episode +- standard error of a run's latest checkpoint, on the 600 train and 600 test graphs.",
    )
    ev.add_argument(
        "run_dir",
        type=Path,
        nargs="?",
        default=None,
        metavar="RUN_DIR",
        help="a run folder (or a folder of runs, or a checkpoint.pt)",
    )
    ev.add_argument(
        "--pretrained",
        default=None,
        metavar="NAME",
        help=f"a shipped agent instead: {', '.join(sorted(PRETRAINED)) or 'none yet'}",
    )
    ev.add_argument("--split", choices=SPLITS, default=None, help="only this graph set (default: train and test)")
    ev.add_argument("--episodes-per-graph", type=int, default=10, help="episodes on each graph (default 10)")
    ev.add_argument("--seed", type=int, default=0, help="seed of placements and action sampling (default 0)")
    add_device_option(ev, A2CConfig)
    ev.add_argument(
        "--deterministic",
        action="store_true",
        help="take the most likely action instead of sampling (an --env run evaluates as it was trained to: deterministic unless --stochastic-eval)",
    )
    ev.add_argument(
        "--trials",
        type=int,
        default=None,
        help="play trials of this many episodes per graph, the memory kept across them, and show the reward of each "
        "(default: the trials the agent was trained with, usually 1)",
    )
    add_trust_option(ev)
    ev.set_defaults(func=_eval)

    watch = subparsers.add_parser(
        "watch",
        help="an animated GIF of a trained agent playing one episode",
        description="Play one episode of a run's agent on one graph and write it as a GIF: per step the graph (agent green, "
        "reward yellow), the action and the reward so far; for FWM agents the write strength beta and the read queries below.",
    )
    _add_episode_arguments(watch)
    watch.add_argument("--fps", type=float, default=2.0, help="frames per second (default 2)")
    watch.add_argument("--out", type=Path, default=Path("episode.gif"), help="GIF path (default episode.gif)")
    add_trust_option(watch)
    watch.set_defaults(func=_watch)

    explain = subparsers.add_parser(
        "explain",
        help="what an FWM agent's memory does in one episode (write strength, read-write matches, write keys)",
        description="Play one episode of a run's FWM agent on one graph and plot, per step, the write strength beta, the match of "
        "every read's query with every earlier write key, and the similarity of the write keys (the Figure-3 idea for meta-RL).",
    )
    _add_episode_arguments(explain)
    explain.add_argument("--out", type=Path, default=Path("explain.png"), help="PNG path (default explain.png)")
    add_trust_option(explain)
    explain.set_defaults(func=_explain)

    plot = subparsers.add_parser(
        "plot",
        help="Figure-5-style learning curves of training runs",
        description="Train and test reward against episodes for each run, with the random / explorer / oracle levels.",
    )
    plot.add_argument("run_dirs", type=Path, nargs="+", metavar="RUN_DIR", help="run folders (or folders of runs)")
    plot.add_argument("--out", type=Path, default=Path("figure5.png"), help="PNG path (default figure5.png)")
    plot.add_argument(
        "--reference", type=Path, nargs="+", default=[], metavar="PATH",
        help="published curves to draw beside the runs, one reward per line (e.g. the authors' metaRL/paper_logs/testrewards_*.txt; "
        "trainrewards_* files go to the train panel)",
    )  # fmt: skip
    plot.add_argument(
        "--reference-every",
        type=int,
        default=50,
        help="episodes between two values of a --reference file (default 50, the authors')",
    )
    plot.add_argument("--max-episodes", type=int, metavar="N", help="draw every curve up to N episodes only (default: all)")
    plot.set_defaults(func=_plot)
