"""scripts/bench_memory.py: cores x tasks x seeds into results.md / results.csv / record.json and a figure per task;
finished runs read, not retrained; a task without a recipe stops the benchmark before any run (a parser error)."""

from __future__ import annotations

import csv
import importlib.util
import json
import shlex
from pathlib import Path

import pytest

SCRIPT = Path(__file__).parents[2] / "scripts" / "bench_memory.py"
TASK = "popgym:popgym-RepeatPreviousEasy-v0"
# A tiny recipe in the RL Zoo's format: 2 copies x 16 steps, one epoch of one minibatch, an 8-unit core.
RECIPE = """\
popgym-RepeatPreviousEasy-v0:
  n_envs: 2
  n_steps: 16
  n_epochs: 1
  batch_size: 32
  policy_kwargs: "dict(hidden_size=8)"
"""


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_memory", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_benchmark_writes_its_results_and_reads_finished_runs(bench, tmp_path, capsys, monkeypatch):
    pytest.importorskip("popgym")
    recipe = tmp_path / "tiny.yml"
    recipe.write_text(RECIPE)
    runs, out = tmp_path / "runs", tmp_path / "out"
    argv = [
        "--tasks",
        TASK,
        "--memories",
        "lstm",
        "gru",
        "--seeds",
        "0",
        "--steps",
        "256",
        "--hyperparams",
        str(recipe),
        "--final-eval-episodes",
        "4",
        "--runs",
        str(runs),
        "--out",
        str(out),
    ]
    assert bench.main(argv) == 0
    with open(out / "results.csv", newline="") as file:
        rows = list(csv.DictReader(file))
    assert [(r["task"], r["memory"], r["seed"], r["timesteps"]) for r in rows] == [
        (TASK, "lstm", "0", "256"),
        (TASK, "gru", "0", "256"),
    ]
    assert list(rows[0]) == list(bench.COLUMNS)
    assert rows[0]["recipe"] == f"{recipe}: popgym-RepeatPreviousEasy-v0"
    for row in rows:
        results = json.loads((runs / "popgym-RepeatPreviousEasy-v0" / row["memory"] / "seed0" / "results.json").read_text())
        assert float(row["mmer"]) == results["mmer"] and float(row["eval_return"]) == results["eval_return"]
    table = (out / "results.md").read_text()
    assert table in capsys.readouterr().out
    assert f"| {TASK} | lstm | 1 |" in table and f"| {TASK} | gru | 1 |" in table
    assert bench.POPGYM_SOURCE in table and f"| {TASK} | 1.000 | 1.000 (GRU) |" in table
    assert (out / "mmer-popgym-RepeatPreviousEasy-v0.png").read_bytes().startswith(b"\x89PNG")
    record = json.loads((out / "record.json").read_text())
    assert set(record) >= {"command", "date", "machine", "commit"}
    assert set(record["machine"]) >= {"platform", "cpu_count", "torch"}
    assert record["command"] == shlex.join(["python", "scripts/bench_memory.py", *argv])

    # Given again, the finished runs are read, not trained again.
    def refuse(*args, **kwargs):
        raise AssertionError("a finished run was trained again")

    before = (out / "results.csv").read_text()
    monkeypatch.setattr(bench, "train_run", refuse)
    assert bench.main(argv) == 0
    assert (out / "results.csv").read_text() == before
    assert capsys.readouterr().out.count("(read from its results.json)") == 2

    def with_steps(steps: str) -> list[str]:
        at = argv.index("--steps") + 1
        return [*argv[:at], steps, *argv[at + 1 :]]

    with pytest.raises(AssertionError, match="trained again"):  # more steps than its run's: the run resumes
        bench.main(with_steps("288"))
    with pytest.raises(SystemExit):  # fewer: refused before any run
        bench.main(with_steps("224"))
    assert "holds a run of 256 environment steps, more than the 224 asked" in capsys.readouterr().err
    recipe.write_text(RECIPE.replace("n_epochs: 1", "n_epochs: 2"))
    with pytest.raises(SystemExit):  # other settings than its run's: refused
        bench.main(argv)
    assert "holds a run of other settings (n_epochs)" in capsys.readouterr().err


def test_a_task_without_a_recipe_is_a_parser_error_naming_it(bench, tmp_path, capsys):
    with pytest.raises(SystemExit) as stop:
        bench.main(
            ["--tasks", "CartPoleNoVel-v1", "Pendulum-v1", "--runs", str(tmp_path / "runs"), "--out", str(tmp_path / "out")]
        )
    assert stop.value.code == 2
    error = capsys.readouterr().err
    assert "fwm-rl ships no PPO recipe for Pendulum-v1: give --hyperparams" in error
    recipe = tmp_path / "recipes.yml"
    recipe.write_text(RECIPE)
    with pytest.raises(SystemExit):
        bench.main(["--tasks", "CartPoleNoVel-v1", "--hyperparams", str(recipe), "--runs", str(tmp_path / "runs")])
    assert "has no entry for 'CartPoleNoVel-v1'" in capsys.readouterr().err
    assert not (tmp_path / "runs").exists() and not (tmp_path / "out").exists()


def test_summary_is_mean_and_sd_over_seeds_and_popgym_figures_only_for_its_tasks(bench):
    def row(task, memory, seed, eval_return, mmer):
        return {
            "task": task,
            "memory": memory,
            "seed": seed,
            "timesteps": 1000,
            "eval_return": eval_return,
            "eval_sem": 0.0,
            "mmer": mmer,
            "steps_per_second": 100.0 * (seed + 1),
            "train_seconds": 1.0,
            "recipe": "r.yml: X",
        }

    rows = [
        row("CartPoleNoVel-v1", "fwm", 0, 100.0, 120.0),
        row("CartPoleNoVel-v1", "fwm", 1, 200.0, 220.0),
        row("CartPoleNoVel-v1", "gru", 0, 50.0, 60.0),
    ]
    summary = bench.summarize(rows)
    assert [(s["memory"], s["seeds"]) for s in summary] == [("fwm", 2), ("gru", 1)]
    assert summary[0]["eval_mean"] == 150.0 and summary[0]["eval_sd"] == pytest.approx(70.7107, abs=1e-4)
    assert summary[0]["mmer_mean"] == 170.0 and summary[0]["steps_per_second"] == 150.0
    table = bench.results_markdown(rows)
    assert "| CartPoleNoVel-v1 | fwm | 2 | 150.000 ± 70.711 | 170.000 ± 70.711 | 150 |" in table
    assert "| CartPoleNoVel-v1 | gru | 1 | 50.000 | 60.000 | 100 |" in table  # (no spread from one seed)
    assert bench.POPGYM_SOURCE not in table
    assert bench.POPGYM_SOURCE in bench.results_markdown([*rows, row(TASK, "fwm", 0, 0.5, 0.6)])
