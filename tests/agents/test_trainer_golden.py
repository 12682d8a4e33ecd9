"""The one trainer (``fwm_rl.agents.training.train_run``) against the two trainers it replaced: tiny runs of the graph
task and of ``--env`` runs give the metrics and results those trainers gave (``tests/data/golden-runs``, written with
them at c1e8e62), every column but the times.

The files were written on one machine; here they are compared at a float tolerance (``RTOL``, ``ATOL``), so that another
CPU's last bits do not fail the test while any change of the runs' protocol (seeding, order of updates and evaluations,
what is logged) does."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import pytest

from fwm_rl.agents.config import A2CConfig, EnvTrainConfig
from fwm_rl.agents.training import train_run

GOLDEN = Path(__file__).parents[1] / "data" / "golden-runs"
RTOL, ATOL = 1e-4, 1e-5
#: Fields of results.json that measure time or the machine, not the run.
TIMES = ("record", "train_seconds", "agent_steps_per_second", "steps_per_second")


def close(got, want, where: str) -> None:
    """``got`` equals ``want`` (numbers at the tolerance, strings as they are, in nested dicts)."""
    if isinstance(want, dict):
        assert isinstance(got, dict) and set(got) == set(want), f"{where}: keys {sorted(got)} != {sorted(want)}"
        for key in want:
            close(got[key], want[key], f"{where}.{key}")
        return
    try:
        g, w = float(got), float(want)
    except (TypeError, ValueError):
        assert got == want, f"{where}: {got!r} != {want!r}"
        return
    assert (math.isnan(g) and math.isnan(w)) or math.isclose(g, w, rel_tol=RTOL, abs_tol=ATOL), f"{where}: {got} != {want}"


@pytest.mark.parametrize("name", sorted(p.stem for p in GOLDEN.glob("*.json")))
def test_tiny_runs_log_what_the_two_trainers_logged(name, tmp_path):
    golden = json.loads((GOLDEN / f"{name}.json").read_text())
    config = A2CConfig if golden["kind"] == "graph" else EnvTrainConfig
    run = tmp_path / "run"
    train_run(config.from_dict(golden["config"]), run, show_progress=False)  # (old field names read)
    with open(run / "metrics.csv", newline="") as fh:
        rows = [{k: v for k, v in row.items() if not k.startswith("time/")} for row in csv.DictReader(fh)]
    assert len(rows) == len(golden["metrics"])
    for i, (got, want) in enumerate(zip(rows, golden["metrics"])):
        close(got, want, f"{name} metrics row {i}")
    results = {k: v for k, v in json.loads((run / "results.json").read_text()).items() if k not in TIMES}
    close(results, golden["results"], f"{name} results")
