"""A memory benchmark: cores x tasks x seeds at equal environment steps, one run at a time.

    python scripts/bench_memory.py                                     # 6 tasks x fwm, lstm, gru x seeds 10 11 12
    python scripts/bench_memory.py --tasks CartPoleNoVel-v1 --memories fwm lstm --steps 20000
    python scripts/bench_memory.py --hyperparams my-recipes.yml --runs runs/mine --out results/mine

Every run is RecurrentPPO (``fwm-rl train --env TASK --algo ppo --memory M``) on the task's recipe: the one fwm-rl
ships (``fwm_rl/agents/recipes/ppo.yml``), or the task's entry in ``--hyperparams`` (RL Zoo format). Every core gets
the same recipe and the same environment steps: the recipe's ``n_timesteps``, or ``--steps``. The default seeds,
10-12, are report seeds: the recipes were chosen on seeds 0-2 and never saw them. A task without a recipe, or not
registered, stops the benchmark before any run, with an error naming it.

Runs go to RUNS/<task>/<memory>/seed<N> (the task without its ``module:``), one at a time, a line printed as each
finishes. A run whose ``results.json`` records the steps asked is read, not rerun; one with a checkpoint and no such
results (interrupted, or asked for more steps) resumes: the same command, given again, goes on where it stopped. A
run folder holding a run of other settings, or of more steps than asked, is refused.

Of each run: the final evaluation (its ``results.json``'s ``eval_return``: deterministic actions), the MMER (POPGym's
metric: the highest mean return of the training episodes over the run's logs) and the environment steps per second of
training. OUT gets ``results.md`` (per task and core: mean ± sd over seeds, and beside it POPGym's published MMER for
its tasks, at another budget), ``results.csv`` (one row per run), ``record.json`` (the command, the date, the machine,
the commit) and ``mmer-<task>.png`` per task (the MMER over training: mean over seeds per core, min-max band).
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import json
import os
import platform
import shlex
import statistics
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch
from matplotlib.figure import Figure

from fwm_rl.agents.config import CONFIG, MEMORIES, EnvTrainConfig
from fwm_rl.agents.env_training import check_env_id
from fwm_rl.agents.hyperparams import Recipe, read_hyperparams, shipped_recipe
from fwm_rl.agents.training import read_run_checkpoint, train_run
from fwm_rl.engine import CHECKPOINT, RESULTS, code_revision, read_curve, recorded_results, save_figure

TASKS = (
    "CartPoleNoVel-v1",
    "PendulumNoVel-v1",
    "popgym:popgym-RepeatPreviousEasy-v0",
    "popgym:popgym-RepeatPreviousMedium-v0",
    "popgym:popgym-AutoencodeEasy-v0",
    "popgym:popgym-NoisyPositionOnlyCartPoleMedium-v0",
)
#: POPGym's published MMER: task -> (the GRU's, the best model's, the best model). Another budget than ours.
POPGYM_MMER: dict[str, tuple[float, float, str]] = {
    "popgym-RepeatPreviousEasy-v0": (1.000, 1.000, "GRU"),
    "popgym-RepeatPreviousMedium-v0": (-0.315, 0.789, "LMU"),
    "popgym-AutoencodeEasy-v0": (-0.283, -0.283, "GRU"),
    "popgym-NoisyPositionOnlyCartPoleMedium-v0": (0.642, 0.659, "IndRNN"),
}
POPGYM_SOURCE = (
    "POPGym's published MMER, another budget: 15M environment steps of RLlib's PPO (Morad et al., ICLR 2023, "
    "appendix table; as transcribed; not re-checked here)"
)
#: What results.csv gives of each run's results.json, and its columns (one row per run).
RESULT_KEYS = ("timesteps", "eval_return", "eval_sem", "mmer", "steps_per_second", "train_seconds")
COLUMNS = ("task", "memory", "seed", *RESULT_KEYS, "recipe")


def task_name(task: str) -> str:
    """``task`` without its ``module:`` (``popgym:popgym-X-v0`` -> ``popgym-X-v0``): its run folders' and figure's name."""
    return task.rpartition(":")[2]


def run_folder(runs: Path, task: str, memory: str, seed: int) -> Path:
    """The folder of one run: ``runs/<task>/<memory>/seed<N>`` (the task without its ``module:``)."""
    return runs / task_name(task) / memory / f"seed{seed}"


def task_recipe(task: str, hyperparams: str | None) -> Recipe:
    """The recipe of ``task``: its entry in the file ``hyperparams``, else the one fwm-rl ships; a ``ValueError`` naming
    the task when there is none."""
    if hyperparams is not None:
        return read_hyperparams(hyperparams, task, "ppo")
    recipe = shipped_recipe("ppo", task)
    if recipe is None:
        raise ValueError(
            f"fwm-rl ships no PPO recipe for {task}: give --hyperparams FILE.yml with an entry for it (RL Zoo format)"
        )
    return recipe


def stored_run(cfg: EnvTrainConfig, run_dir: Path) -> str:
    """What the benchmark does with ``run_dir`` for the run ``cfg``: ``"read"`` its results (they record the steps asked),
    ``"resume"`` its run, or ``"train"`` one anew (nothing there, or a run stopped before its first checkpoint). A
    ``ValueError`` where the folder holds a run of other settings or of more steps."""
    if not (run_dir / CONFIG).is_file():
        return "train"
    stored = EnvTrainConfig.from_dict(json.loads((run_dir / CONFIG).read_text()))
    changed = [
        f.name
        for f in dataclasses.fields(cfg)
        if f.name not in (*cfg.RESUMABLE, "recipe") and getattr(stored, f.name) != getattr(cfg, f.name)
    ]
    if changed:
        raise ValueError(
            f"{run_dir} holds a run of other settings ({', '.join(changed)}): give another --runs, or move the folder away"
        )
    if recorded_results(run_dir, cfg.planned_timesteps, "timesteps") is not None:
        return "read"
    if not (run_dir / CHECKPOINT).is_file():
        return "train"
    done = read_run_checkpoint(run_dir)[0]["step"]
    if done > cfg.planned_timesteps:
        raise ValueError(
            f"{run_dir} holds a run of {done} environment steps, more than the {cfg.planned_timesteps} "
            "asked: give --steps to match, or another --runs"
        )
    return "resume"


def summarize(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per (task, memory), in the order of ``rows`` (one per run): the number of seeds, the mean and sample standard
    deviation over them of ``eval_return`` and ``mmer`` (sd NaN for one seed) and the mean ``steps_per_second``."""
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault((row["task"], row["memory"]), []).append(row)

    def spread(values: list[float]) -> float:
        return statistics.stdev(values) if len(values) > 1 else float("nan")

    summary = []
    for (task, memory), runs in groups.items():
        evals, mmers = [r["eval_return"] for r in runs], [r["mmer"] for r in runs]
        summary.append(
            {
                "task": task,
                "memory": memory,
                "seeds": len(runs),
                "eval_mean": statistics.fmean(evals),
                "eval_sd": spread(evals),
                "mmer_mean": statistics.fmean(mmers),
                "mmer_sd": spread(mmers),
                "steps_per_second": statistics.fmean(r["steps_per_second"] for r in runs),
            }
        )
    return summary


def _mean_sd(mean: float, sd: float) -> str:
    return f"{mean:.3f}" if np.isnan(sd) else f"{mean:.3f} ± {sd:.3f}"


def results_markdown(rows: list[dict[str, Any]]) -> str:
    """The benchmark's tables: each task's budget and recipe, the results per task and core (:func:`summarize`), and
    POPGym's published MMER for the POPGym tasks among them."""
    seeds = ", ".join(map(str, dict.fromkeys(r["seed"] for r in rows)))
    first: dict[str, dict[str, Any]] = {}  # each task's first run
    for row in rows:
        first.setdefault(row["task"], row)
    lines = [
        "## Memory benchmark: RecurrentPPO at equal environment steps",
        "",
        f"Per task and core, mean ± sd over seeds {seeds} (sample sd): the final evaluation (deterministic actions), "
        "the MMER (POPGym's metric: the highest mean return of the training episodes over a run's logs) and the "
        "environment steps per second of training (one run at a time; the machine: record.json).",
        "",
        "| task | env steps per run | recipe |",
        "|---|---|---|",
    ]
    lines += [f"| {task} | {row['timesteps']:,} | {row['recipe']} |" for task, row in first.items()]
    lines += ["", "| task | memory | seeds | final eval | MMER | env steps/s |", "|---|---|---|---|---|---|"]
    lines += [
        f"| {s['task']} | {s['memory']} | {s['seeds']} | {_mean_sd(s['eval_mean'], s['eval_sd'])} | "
        f"{_mean_sd(s['mmer_mean'], s['mmer_sd'])} | {s['steps_per_second']:,.0f} |"
        for s in summarize(rows)
    ]
    published = [(task, POPGYM_MMER[task_name(task)]) for task in first if task_name(task) in POPGYM_MMER]
    if published:
        lines += ["", f"{POPGYM_SOURCE}:", "", "| task | MMER of the GRU | MMER of the best model |", "|---|---|---|"]
        lines += [f"| {task} | {gru:.3f} | {best:.3f} ({model}) |" for task, (gru, best, model) in published]
    return "\n".join(lines) + "\n"


def mmer_curve(run_dir: Path, until: int) -> dict[int, float]:
    """The MMER of the run in ``run_dir`` at each of its logs up to step ``until``: the running maximum of its
    ``train/return`` (NaN before any training episode has ended)."""
    curve = [
        (step, value)
        for step, _, value in read_curve(run_dir, "train/return", "a run folder of fwm-rl train --env")
        if step <= until
    ]
    return dict(zip((step for step, _ in curve), np.fmax.accumulate([value for _, value in curve]).tolist()))


def plot_mmer(task: str, curves: dict[str, list[dict[int, float]]], path: Path) -> Path:
    """Draw the MMER of ``task``'s runs, ``curves`` (memory -> one :func:`mmer_curve` per seed), into ``path``: per memory
    the mean over seeds at the steps every seed logged (where each has an MMER), with the band from their min to max."""
    fig = Figure(figsize=(6.4, 4.2))
    ax = fig.subplots()
    for memory, runs in curves.items():
        steps = sorted(set.intersection(*(set(run) for run in runs)))
        values = np.array([[run[step] for step in steps] for run in runs]).reshape(len(runs), len(steps))
        kept = ~np.isnan(values).any(axis=0)
        x, values = np.array(steps)[kept], values[:, kept]
        (line,) = ax.plot(x, values.mean(axis=0), marker="o", markersize=3, label=f"{memory} ({len(runs)} seeds)")
        ax.fill_between(x, values.min(axis=0), values.max(axis=0), color=line.get_color(), alpha=0.2, linewidth=0)
    ax.set_title(f"{task_name(task)}: MMER\n(mean over seeds, min-max band)", fontsize=10)
    ax.set_xlabel("environment steps")
    ax.set_ylabel("highest mean training return so far")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    return save_figure(fig, path, dpi=120)


def git_commit() -> str | None:
    """The commit checked out where this script lies (``git rev-parse HEAD``), or None outside a git checkout."""
    try:
        done = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=Path(__file__).resolve().parent, capture_output=True, text=True, timeout=10
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def record(argv: list[str]) -> dict[str, Any]:
    """How the results were made: the command line, the date (UTC), the machine and the code."""
    return {
        "command": shlex.join(["python", "scripts/bench_memory.py", *argv]),
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": {
            "platform": platform.platform(),
            "cpu_count": os.cpu_count(),
            "torch": torch.__version__,
            "torch_threads": torch.get_num_threads(),
        },
        "commit": git_commit(),
        "code": code_revision(),
    }


class PlannedRun(NamedTuple):
    """One run of the benchmark: its config, its folder and what to do there (:func:`stored_run`)."""

    cfg: EnvTrainConfig
    run_dir: Path
    todo: str


def plan_runs(
    tasks: list[str],
    memories: list[str],
    seeds: list[int],
    steps: int | None,
    hyperparams: str | None,
    runs: Path,
    device: str,
    final_eval_episodes: int,
) -> list[PlannedRun]:
    """Every run, task by task (each task's recipe and budget printed), every task, recipe and run folder checked
    before the first run trains: a ``ValueError`` names what is wrong."""
    plan = []
    for task in tasks:
        check_env_id(task)
        recipe = task_recipe(task, hyperparams)
        print(f"{task}: recipe {recipe.source}" + "".join(f"\n  {note}" for note in recipe.notes))
        fields = {**recipe.fields, "recipe": recipe.source, "device": device, "final_eval_episodes": final_eval_episodes}
        if steps is not None:
            fields["steps"] = steps
        for memory in memories:
            for seed in seeds:
                cfg = EnvTrainConfig(env_id=task, algo="ppo", **{**fields, "memory": memory, "seed": seed})
                run_dir = run_folder(runs, task, memory, seed)
                plan.append(PlannedRun(cfg, run_dir, stored_run(cfg, run_dir)))
        print(f"  {plan[-1].cfg.budget} per run")
    return plan


def run(planned: PlannedRun) -> dict[str, Any]:
    """Train (or resume) the run ``planned`` unless its results are there, and return its row of results.csv."""
    cfg, run_dir = planned.cfg, planned.run_dir
    if planned.todo != "read":
        train_run(cfg, run_dir, resume=planned.todo == "resume", overwrite=planned.todo == "train")
    results = json.loads((run_dir / RESULTS).read_text())
    return {
        "task": cfg.env_id,
        "memory": cfg.memory,
        "seed": cfg.seed,
        "recipe": cfg.recipe,
        **{key: results[key] for key in RESULT_KEYS},
    }


def write_results(plan: list[PlannedRun], rows: list[dict[str, Any]], out: Path, argv: list[str]) -> str:
    """Write results.md, results.csv, record.json and a figure per task into ``out``; return results.md's text."""
    out.mkdir(parents=True, exist_ok=True)
    table = results_markdown(rows)
    (out / "results.md").write_text(table)
    with open(out / "results.csv", "w", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    (out / "record.json").write_text(json.dumps(record(argv), indent=2) + "\n")
    curves: dict[str, dict[str, list[dict[int, float]]]] = {}  # task -> memory -> a curve per seed
    for planned, row in zip(plan, rows):
        curves.setdefault(row["task"], {}).setdefault(row["memory"], []).append(mmer_curve(planned.run_dir, row["timesteps"]))
    for task, by_memory in curves.items():
        plot_mmer(task, by_memory, out / f"mmer-{task_name(task)}.png")
    return table


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = argparse.ArgumentParser(
        allow_abbrev=False, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--tasks",
        nargs="+",
        default=list(TASKS),
        help=f"environment ids, 'module:Id' importing module (default: {' '.join(TASKS)})",
    )
    parser.add_argument(
        "--memories", nargs="+", choices=list(MEMORIES), default=list(MEMORIES), help="memory cores (default fwm lstm gru)"
    )
    parser.add_argument(
        "--seeds",
        type=int,
        nargs="+",
        default=[10, 11, 12],
        help="seeds (default 10 11 12: report seeds, which no recipe choice saw; recipes are chosen on 0-2)",
    )
    parser.add_argument(
        "--steps", type=int, default=None, help="environment steps of every run (default: each recipe's n_timesteps)"
    )
    parser.add_argument(
        "--hyperparams",
        default=None,
        metavar="FILE",
        help="recipe file in the RL Zoo's format, with an entry per task (default: the recipes fwm-rl ships)",
    )
    parser.add_argument(
        "--runs",
        type=Path,
        default=Path("runs/memory-benchmark"),
        help="folder of the run folders (default runs/memory-benchmark)",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=Path("docs/results/memory-benchmark"),
        help="folder of the results (default docs/results/memory-benchmark)",
    )
    parser.add_argument(
        "--final-eval-episodes",
        type=int,
        default=EnvTrainConfig.final_eval_episodes,
        help=f"episodes of each run's final evaluation (default {EnvTrainConfig.final_eval_episodes}; a run "
        "whose results are there keeps its own)",
    )
    parser.add_argument("--device", default="cpu", help="cpu (default), auto or cuda[:N]")
    args = parser.parse_args(argv)
    if args.steps is not None and args.steps < 1:
        parser.error(f"--steps must be at least 1, got {args.steps}")
    try:
        plan = plan_runs(
            list(dict.fromkeys(args.tasks)),
            list(dict.fromkeys(args.memories)),
            list(dict.fromkeys(args.seeds)),
            args.steps,
            args.hyperparams,
            args.runs,
            args.device,
            args.final_eval_episodes,
        )
    except ValueError as exc:
        parser.error(str(exc))
    rows = []
    for i, planned in enumerate(plan, 1):
        rows.append(run(planned))
        row, how = rows[-1], {"read": " (read from its results.json)", "resume": " (resumed)"}.get(planned.todo, "")
        print(
            f"[{i}/{len(plan)}] {row['task']} {row['memory']} seed {row['seed']}: eval {row['eval_return']:.3f} ± "
            f"{row['eval_sem']:.3f}, MMER {row['mmer']:.3f}, {row['steps_per_second']:,.0f} env steps/s, "
            f"{row['train_seconds']:,.0f} s{how}",
            flush=True,
        )
    print("\n" + write_results(plan, rows, args.out, argv), end="")
    print(f"\nresults, record and figures in {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
