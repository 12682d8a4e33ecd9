"""Training runs of fwm_rl.agents: resume, the non-finite guard, the CLI and a short learning run."""

from __future__ import annotations

import argparse
import csv
import json

import pytest

from fwm_rl.agents import cli as agents_cli
from fwm_rl.agents.plotting import read_reference_curve
from fwm_rl.agents.training import (
    PRESETS,
    RECIPE_FIELDS,
    RECIPES,
    A2CConfig,
    preset_configs,
    recipe_of,
    train_run,
    with_recipe,
)

TINY = {"n_envs": 4, "eval_every": 2, "final_episodes_per_graph": 1, "device": "cpu"}


def tiny_lstm(**changes) -> A2CConfig:
    return A2CConfig(**{"name": "lstm", "memory": "lstm", "hidden_size": 8, "steps": 4, **TINY, **changes})


def metrics(run_dir) -> list[dict]:
    with open(run_dir / "metrics.csv", newline="") as fh:
        return list(csv.DictReader(fh))


def test_presets_and_config_checks():
    assert set(PRESETS) == {
        "cpu",
        "fast-fwm",
        "paper-fwm",
        "paper-lstm-512",
        "paper-lstm-1024",
        "paper-lstm-2048",
        "paper-lstm-4096",
    }
    (fwm,) = preset_configs("paper-fwm")
    assert (fwm.name, fwm.memory, fwm.hidden_size, fwm.d_fwm, fwm.n_reads, fwm.n_envs) == ("fwm", "fwm", 32, 16, 3, 600)
    assert (fwm.lr, fwm.adam_eps, fwm.gamma, fwm.gae_lambda, fwm.vf_coef, fwm.ent_coef) == (1e-3, 1e-4, 0.9, 1.0, 0.1, 0.03)
    assert fwm.max_grad_norm is None and not fwm.normalize_advantage
    cpu = preset_configs("cpu")
    assert [(c.name, c.memory, c.hidden_size) for c in cpu] == [("fwm", "fwm", 32), ("lstm-512", "lstm", 512)]
    # The CPU default: one recipe for both agents (a fair comparison), the same training time each.
    assert [recipe_of(c) for c in cpu] == ["lr3e-3", "lr3e-3"] and {c.time_budget for c in cpu} == {780.0}
    (fast,) = preset_configs("fast-fwm")
    assert recipe_of(fast) == "lr3e-3" and with_recipe(fast, "paper") == fwm
    paper = [c for name in PRESETS if name.startswith("paper-") for c in preset_configs(name)]
    assert all(recipe_of(c) == "paper" for c in paper)
    assert [(c.name, c.steps) for c in paper[1:]] == [
        ("lstm-512", 278_000), ("lstm-1024", 232_000), ("lstm-2048", 200_000), ("lstm-4096", 114_000)
    ]  # fmt: skip
    assert all(PRESETS[name].description for name in PRESETS)
    assert [c.seed for c in preset_configs("cpu", seed=3, steps=None)] == [3, 3]
    with pytest.raises(ValueError, match="unknown preset"):
        preset_configs("paper-gru")
    with pytest.raises(ValueError, match="n_envs"):
        A2CConfig(n_envs=601)
    with pytest.raises(ValueError, match="memory"):
        A2CConfig(memory="transformer")


def test_cli_train_eval_plot_resume(tmp_path, capsys, monkeypatch):
    parser = argparse.ArgumentParser()
    agents_cli.register(parser.add_subparsers(dest="command"))

    def run(*argv):
        args = parser.parse_args(list(argv))
        return args.func(args)

    out = tmp_path / "runs"
    common = [
        "--episodes",
        "2",
        "--eval-every",
        "1",
        "--n-envs",
        "3",
        "--device",
        "cpu",
        "--final-episodes-per-graph",
        "1",
        "--no-progress",
    ]
    assert run("train", "--out", str(out), *common) == 0
    text = capsys.readouterr().out
    # The same command again: refused, the first runs untouched; --overwrite starts again.
    before = (out / "fwm" / "metrics.csv").read_text()
    with pytest.raises(ValueError, match=f"{out} already holds a run .*--resume {out}.*--overwrite"):
        run("train", "--out", str(out), *common)
    assert (out / "fwm" / "metrics.csv").read_text() == before
    assert run("train", "--out", str(out), "--overwrite", *common) == 0
    assert [r["step"] for r in metrics(out / "fwm")] == ["1", "2"]
    text = capsys.readouterr().out
    assert "| FWM-32-16 | 2 |" in text and "| LSTM-512 | 2 |" in text and "random policy" in text
    assert (out / "figure5.png").stat().st_size > 0 and (out / "results.md").exists()
    assert [r["step"] for r in metrics(out / "fwm")] == ["1", "2"]
    assert run("train", "--resume", str(out), "--episodes", "3", "--final-episodes-per-graph", "1", "--no-progress") == 0
    assert [r["step"] for r in metrics(out / "lstm-512")] == ["1", "2", "3"]
    capsys.readouterr()
    assert run("eval", str(out / "fwm"), "--episodes-per-graph", "1", "--device", "cpu") == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 3 and "FWM-32-16 @ 3" in lines[1] and " train " in lines[1] and " test " in lines[2]
    assert run("plot", str(out), "--out", str(tmp_path / "fig.png")) == 0
    assert (tmp_path / "fig.png").stat().st_size > 0
    # Published curves beside ours: the authors' log format, one value per 50 episodes.
    ref = tmp_path / "testrewards_fwm_h32_m16_graph5,3_r10.0.txt"
    ref.write_text("45.7\n46.1\n\n47.0\n")
    panel, label, points = read_reference_curve(ref)
    assert (panel, label, points) == ("test", "authors' FWM-32-16", [(50, 45.7), (100, 46.1), (150, 47.0)])
    (tmp_path / "trainrewards_lstm_h512_m16.txt").write_text("44\n")
    assert read_reference_curve(tmp_path / "trainrewards_lstm_h512_m16.txt", 10) == (
        "train",
        "authors' LSTM-512",
        [(10, 44.0)],
    )
    assert (
        run(
            "plot",
            str(out),
            "--reference",
            str(ref),
            str(tmp_path / "trainrewards_lstm_h512_m16.txt"),
            "--out",
            str(tmp_path / "ref.png"),
        )
        == 0
    )
    assert (tmp_path / "ref.png").stat().st_size > (tmp_path / "fig.png").stat().st_size // 2
    # --max-episodes cuts every curve there, ours and the published ones
    import fwm_rl.agents.plotting as plotting

    drawn = []
    monkeypatch.setattr(plotting, "save_figure", lambda fig, path, **kw: drawn.append(fig) or path)
    assert run("plot", str(out), "--reference", str(ref), "--max-episodes", "100", "--out", str(tmp_path / "cut.png")) == 0
    xs = [
        x
        for ax in drawn[0].axes
        for line in ax.get_lines()
        if len(line.get_xdata()) > 2 or line.get_label().startswith("authors")
        for x in line.get_xdata()
    ]
    assert xs and max(xs) <= 100
    monkeypatch.undo()
    with pytest.raises(ValueError, match="max_episodes must be a positive integer"):
        run("plot", str(out), "--max-episodes", "0")
    (tmp_path / "bad.txt").write_text("45.7\nnan?\n")
    with pytest.raises(ValueError, match="bad.txt:2: expected one reward per line"):
        run("plot", str(out), "--reference", str(tmp_path / "bad.txt"))
    with pytest.raises(FileNotFoundError, match="reference curve"):
        run("plot", str(out), "--reference", str(tmp_path / "none.txt"))
    # An episode of the FWM agent as a GIF: 31 frames (the start and 30 steps), from a run folder or a checkpoint.
    from PIL import Image

    assert run("watch", str(out / "fwm"), "--split", "test", "--index", "2", "--out", str(tmp_path / "w.gif")) == 0
    assert "test graph 2: total reward" in capsys.readouterr().out
    with Image.open(tmp_path / "w.gif") as gif:
        assert gif.n_frames == 31
    assert (
        run(
            "watch",
            str(out / "lstm-512" / "checkpoint.pt"),
            "--seed",
            "3",
            "--deterministic",
            "--fps",
            "4",
            "--out",
            str(tmp_path / "l.gif"),
        )
        == 0
    )
    assert run("explain", str(out / "fwm"), "--index", "1", "--out", str(tmp_path / "e.png")) == 0
    assert (tmp_path / "e.png").read_bytes()[:4] == b"\x89PNG"
    with pytest.raises(ValueError, match="no fast weight memory"):
        run("explain", str(out / "lstm-512"), "--out", str(tmp_path / "e.png"))
    with pytest.raises(ValueError, match=".gif"):
        run("watch", str(out / "fwm"), "--out", str(tmp_path / "w.png"))
    with pytest.raises(ValueError, match="out of range"):
        run("watch", str(out / "fwm"), "--index", "600", "--out", str(tmp_path / "w.gif"))
    with pytest.raises(FileNotFoundError, match="neither a run folder"):
        run("watch", str(tmp_path / "missing"), "--out", str(tmp_path / "w.gif"))
    with pytest.raises(ValueError, match="may change, not --seed"):
        run("train", "--resume", str(out), "--seed", "1")
    with pytest.raises(ValueError, match="--overwrite starts a new run"):
        run("train", "--resume", str(out), "--overwrite")
    with pytest.raises(FileNotFoundError):
        run("eval", str(tmp_path / "missing"))


@pytest.mark.slow
def test_short_cpu_training_beats_the_random_policy(tmp_path):
    """The paper's FWM agent and settings, 1,200 episodes (about 4 minutes on one CPU core).

    The authors' log reaches a training reward of about 51 after 1,000 episodes from the
    random policy's 45; this project's run (README) reaches 49 on the test graphs at 1,200.
    """
    cfg = A2CConfig(name="fwm", steps=1200, eval_every=100, device="cpu")
    summary = train_run(cfg, tmp_path / "run", show_progress=False)
    random_level = 44.87  # README: random policy on the test graphs, 44.87 +- 0.27
    assert summary.test.mean > random_level + 5 * summary.test.sem
    assert summary.train.mean > random_level + 5 * summary.train.sem


def test_recipes_change_only_the_learning_settings():
    base = A2CConfig(name="x", steps=7, seed=3)
    assert recipe_of(base) == "paper" and RECIPES["paper"] == {}
    for name, fields in RECIPES.items():
        cfg = with_recipe(base, name)
        assert recipe_of(cfg) == name and set(fields) <= set(RECIPE_FIELDS)
        assert all(getattr(cfg, k) == v for k, v in fields.items())
        assert (cfg.name, cfg.steps, cfg.seed) == ("x", 7, 3)
        assert with_recipe(cfg, "paper") == base  # back to the paper's settings
    assert recipe_of(A2CConfig(lr=5e-3)) == "custom"
    with pytest.raises(ValueError, match="unknown recipe"):
        with_recipe(base, "fast")


def test_bench_learning_compares_recipes_over_seeds(tmp_path, capsys):
    import importlib.util
    from pathlib import Path

    spec = importlib.util.spec_from_file_location(
        "bench_learning", Path(__file__).parents[2] / "scripts" / "bench_learning.py"
    )
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    out = tmp_path / "b"
    argv = [
        "--recipes",
        "paper",
        "lr3e-3",
        "--seeds",
        "0",
        "1",
        "--episodes",
        "2",
        "--eval-every",
        "1",
        "--n-envs",
        "3",
        "--device",
        "cpu",
        "--out",
        str(out),
    ]
    assert bench.main(argv) == 0
    table = (out / "recipes.md").read_text()
    assert table in capsys.readouterr().out
    rows = [line.split(" | ") for line in table.splitlines()[2:]]
    assert [(r[0].strip("| "), r[1], r[2]) for r in rows] == [
        ("paper", "1", "2"),
        ("paper", "2", "2"),
        ("lr3e-3", "1", "2"),
        ("lr3e-3", "2", "2"),
    ]
    assert json.loads((out / "lr3e-3-seed1" / "config.json").read_text())["lr"] == 3e-3
    assert "valid/reward" in metrics(out / "paper-seed0")[0]
    with pytest.raises(SystemExit):  # the folder exists now: refused
        bench.main(argv)
    longer = [*argv[: argv.index("--episodes") + 1], "3", *argv[argv.index("--episodes") + 2 :], "--resume", "--at", "3"]
    assert bench.main(longer) == 0  # continues every run to 3 episodes
    assert [r["step"] for r in metrics(out / "lr3e-3-seed0")] == ["1", "2", "3"]
    capsys.readouterr()
    assert bench.main(longer) == 0  # every run finished: said, and the table read as it is
    assert f"{out}: every run is finished" in capsys.readouterr().out
    assert [r["step"] for r in metrics(out / "lr3e-3-seed0")] == ["1", "2", "3"]


def test_resuming_a_preset_keeps_its_finished_runs(tmp_path, capsys):
    from fwm_rl.agents.training import train_preset
    from fwm_rl.cli import main

    out = tmp_path / "runs"
    train_preset([tiny_lstm(name="a", steps=2), tiny_lstm(name="b", steps=2)], out, show_progress=False)
    files = {path: path.read_bytes() for path in out.rglob("*") if path.is_file() and not path.name.startswith(".")}
    capsys.readouterr()
    assert main(["train", "--resume", str(out), "--no-progress"]) == 0  # every run finished: one line, nothing written
    assert capsys.readouterr().out.splitlines() == [
        f"fwm-rl train: {out}: every run is finished (a, b: see their results.json); "
        "resume with a larger --steps or --time-budget to train them further"
    ]
    assert {path: path.read_bytes() for path in files} == files
    (out / "b" / "results.json").unlink()  # b was killed in its final evaluation: it finishes it, a is kept
    assert main(["train", "--resume", str(out), "--no-progress"]) == 0
    said = capsys.readouterr().out
    assert said.startswith(f"{out / 'a'}: the run is finished (2 of 2 episodes done") and said.count("| LSTM-8 | 2 |") == 2, (
        said
    )
    assert (out / "a" / "results.json").read_bytes() == files[out / "a" / "results.json"] and (
        out / "b" / "results.json"
    ).exists()
    assert all((out / name / "metrics.csv").read_bytes() == files[out / name / "metrics.csv"] for name in "ab")


def test_runs_that_share_a_label_are_told_apart_in_the_legend():
    from fwm_rl.agents.plotting import _legend_labels

    a, b, c = A2CConfig(seed=0), A2CConfig(seed=1, loss="released_code"), A2CConfig(memory="lstm", hidden_size=512)
    assert _legend_labels([a, b, c]) == [
        "FWM-32-16 (seed 0, loss paper)",
        "FWM-32-16 (seed 1, loss released_code)",
        "LSTM-512",
    ]
    assert _legend_labels([a, a]) == ["FWM-32-16 (run 1)", "FWM-32-16 (run 2)"]
