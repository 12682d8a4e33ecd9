"""Figure-5-style learning curves: reward per episode on the training and the test graphs.

Left panel: mean training reward against episodes (A2C updates); right panel:
reward on the 600 test graphs. The random, explorer and oracle reference
policies (:func:`fwm_rl.envs.baselines.reference_levels`) are drawn as
horizontal lines: the floor, what a perfect memory can do without knowing the
graph, and the ceiling.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from matplotlib.figure import Figure

from fwm_rl.agents.config import CONFIG, A2CConfig
from fwm_rl.checks import check_int
from fwm_rl.engine import read_metrics, save_figure
from fwm_rl.envs.baselines import reference_levels

__all__ = ["curves_table", "plot_runs", "read_reference_curve", "seeds_table"]

REFERENCE_STYLE = {"random": ("tab:gray", ":"), "explorer": ("tab:green", "--"), "oracle": ("black", "-.")}


def _read_run(run_dir: Path) -> tuple[A2CConfig, tuple[str, int], list[dict[str, float]]]:
    """Config, task (semantics, trials) and logged rows of one run."""
    config_path, csv_path = run_dir / CONFIG, run_dir / "metrics.csv"
    if not config_path.exists():
        raise FileNotFoundError(f"{run_dir} is not a training run (no {CONFIG})")
    if not csv_path.exists():
        raise FileNotFoundError(f"{csv_path} does not exist: the run has not logged yet")
    cfg = A2CConfig.from_dict(json.loads(config_path.read_text()))
    rows = read_metrics(csv_path, "give a run folder written by fwm-rl train")[1]
    return cfg, (cfg.semantics, cfg.trials), rows


def _legend_labels(configs: list[A2CConfig]) -> list[str]:
    """Each run's :attr:`~A2CConfig.label`; where runs share one, with what tells them apart (seed, loss, lr)."""
    labels = [cfg.label for cfg in configs]
    for i, cfg in enumerate(configs):
        twins = [other for other in configs if other.label == cfg.label]
        if len(twins) > 1:
            parts = [
                f"{name} {getattr(cfg, name)}" for name in ("seed", "loss", "lr") if len({getattr(t, name) for t in twins}) > 1
            ]
            labels[i] = f"{cfg.label} ({', '.join(parts) or f'run {i + 1}'})"
    return labels


def read_reference_curve(path: str | Path, every: int = 50) -> tuple[str, str, list[tuple[int, float]]]:
    """A published learning curve: one reward per line, one line per ``every`` episodes (the format of
    the authors' ``metaRL/paper_logs/{train,test}rewards_*.txt``, logged every 50 episodes).

    Returns the panel it belongs to (``"train"`` for a file named ``trainrewards*``, else ``"test"``),
    a legend label (the authors' naming: ``fwm_h32_m16`` -> ``authors' FWM-32-16``) and the points.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"reference curve {path} does not exist (e.g. metaRL/paper_logs/testrewards_*.txt of the authors' code)"
        )
    values = []
    for number, line in enumerate(path.read_text().split("\n"), 1):
        if line.strip():
            try:
                values.append(float(line))
            except ValueError:
                raise ValueError(f"{path}:{number}: expected one reward per line, got {line.strip()[:40]!r}") from None
    if not values:
        raise ValueError(f"reference curve {path} holds no values")
    name = path.stem
    panel = "train" if name.startswith("trainrewards") else "test"
    label = name
    match = re.match(r"(?:train|test)rewards_(fwm|lstm)_h(\d+)_m(\d+)", name)
    if match:
        kind, hidden, d_fwm = match.groups()
        label = f"authors' FWM-{hidden}-{d_fwm}" if kind == "fwm" else f"authors' LSTM-{hidden}"
    return panel, label, [(every * (i + 1), v) for i, v in enumerate(values)]


def plot_runs(
    run_dirs: list[str | Path],
    out: str | Path,
    reference_episodes: int = 6000,
    references: list[str | Path] = (),
    reference_every: int = 50,
    max_episodes: int | None = None,
) -> Path:
    """Draw the train/test curves of ``run_dirs`` (each with ``config.json`` and ``metrics.csv``)
    into ``out`` (PNG), with the reference policies' levels (``reference_episodes`` episodes each)
    and published curves ``references`` (:func:`read_reference_curve`, dashed, in their panel);
    ``max_episodes`` cuts every curve there (e.g. a long published curve beside a short run)."""
    check_int("max_episodes", max_episodes, optional=True)
    runs = [_read_run(Path(d)) for d in run_dirs]
    runs = [(label, task, rows) for label, (_, task, rows) in zip(_legend_labels([cfg for cfg, _, _ in runs]), runs)]
    curves = [read_reference_curve(p, reference_every) for p in references]
    if max_episodes is not None:
        runs = [(label, task, [r for r in rows if r["step"] <= max_episodes]) for label, task, rows in runs]
        curves = [(panel, label, [pt for pt in points if pt[0] <= max_episodes]) for panel, label, points in curves]
    if not runs:
        raise ValueError("no runs to plot")
    tasks = {task for _, task, _ in runs}
    if len(tasks) != 1:
        raise ValueError(f"runs use different tasks (semantics, trials) {sorted(tasks)}; plot them separately")
    semantics_name, trials = tasks.pop()
    fig = Figure(figsize=(12, 4.8))
    axes = fig.subplots(1, 2, sharey=True)
    for ax, split, key in ((axes[0], "train", "train/reward"), (axes[1], "test", "test/reward")):
        for label, _, rows in runs:
            points = [(r["step"], r[key]) for r in rows if key in r]
            ax.plot([p[0] for p in points], [p[1] for p in points], label=label)
        for panel, label, points in curves:
            if panel == split:
                ax.plot([p[0] for p in points], [p[1] for p in points], linestyle="--", linewidth=1, alpha=0.8, label=label)
        for policy, (mean, _) in reference_levels(split, reference_episodes // trials, 0, semantics_name, trials).items():
            color, style = REFERENCE_STYLE[policy]
            ax.axhline(mean, color=color, linestyle=style, linewidth=1, label=f"{policy} policy")
        ax.set_title(f"{split} environments")
        ax.set_xlabel("episodes (one A2C update each)")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("mean total reward per episode")
    axes[1].legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    return save_figure(fig, out, dpi=120)


def curves_table(run_dirs: list[str | Path], key: str = "test/reward") -> str:
    """Markdown table of ``key`` against episodes, one column per run (as logged)."""
    runs = [(Path(d).name, _read_run(Path(d))) for d in run_dirs]
    episodes = sorted({int(r["step"]) for _, (_, _, rows) in runs for r in rows})
    lines = [
        "| episodes | " + " | ".join(f"{cfg.label} ({name})" for name, (cfg, _, _) in runs) + " |",
        "|---" * (len(runs) + 1) + "|",
    ]
    for ep in episodes:
        cells = []
        for _, (_, _, rows) in runs:
            value = next((r[key] for r in rows if int(r["step"]) == ep and key in r), None)
            cells.append("" if value is None else f"{value:.1f}")
        lines.append(f"| {ep} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def seeds_table(
    groups: dict[str, list[str | Path]], at: list[int], keys: tuple[str, ...] = ("valid/reward", "test/reward", "train/reward")
) -> str:
    """Markdown table comparing groups of runs (e.g. one learning recipe over several seeds): at each
    episode count of ``at``, the mean and standard deviation over a group's runs of every ``key``
    as logged there (the mean alone for a single run). A run that has not logged that episode count
    is left out of its group's cell (the number of runs counted is shown)."""
    lines = [
        "| runs | episodes | seeds | " + " | ".join(f"{k} (mean ± sd)" for k in keys) + " |",
        "|---" * (3 + len(keys)) + "|",
    ]
    for name, dirs in groups.items():
        rows_of = [_read_run(Path(d))[2] for d in dirs]
        for ep in at:
            cells, counted = [], 0
            for key in keys:
                values = [r[key] for rows in rows_of for r in rows if int(r["step"]) == ep and key in r]
                counted = max(counted, len(values))
                if not values:
                    cells.append("")
                    continue
                mean = sum(values) / len(values)
                if len(values) == 1:  # no spread from one run
                    cells.append(f"{mean:.1f}")
                    continue
                sd = (sum((v - mean) ** 2 for v in values) / (len(values) - 1)) ** 0.5
                cells.append(f"{mean:.1f} ± {sd:.1f}")
            lines.append(f"| {name} | {ep} | {counted} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
