"""engine/loop.py on its own: the order of steps, logs and validations of train_loop, the time budget, and finished_run."""

from __future__ import annotations

import json

import pytest
from tqdm.auto import tqdm

from fwm_rl.engine import RunFinished, finished_run, train_loop
from fwm_rl.engine.distributed import DistContext


class Task:
    """A LoopTask that records what the loop asks of it; a step counts ``units`` and takes ``seconds`` of its clock."""

    def __init__(self, total: int, units: int = 1, seconds: float = 0.0, validate_every: int | None = None):
        self.step, self.train_seconds = 0, 0.0
        self.total, self.units, self.seconds, self.validate_every = total, units, seconds, validate_every
        self.events: list[tuple[str, int]] = []

    def advance(self) -> None:
        self.step += self.units
        self.train_seconds += self.seconds  # (the loop adds its own wall time on top: tiny here)

    def finished(self) -> bool:
        return self.step >= self.total

    def write_log(self) -> None:
        self.events.append(("log", self.step))

    def validation_due(self) -> bool:
        return self.validate_every is not None and self.step % self.validate_every == 0

    def validate_and_save(self, scheduled: bool) -> None:
        self.events.append(("validate" if scheduled else "validate at the stop", self.step))


def run(task: Task, log_every: int, time_budget: float | None = None) -> bool:
    with tqdm(total=task.total, disable=True) as bar:
        return train_loop(task, log_every=log_every, time_budget=time_budget, bar=bar, ctx=DistContext())


def test_logs_on_their_cadence_and_the_last_step_is_always_logged_and_validated():
    task = Task(total=7, validate_every=4)
    assert run(task, log_every=3) is False
    assert task.step == 7
    assert task.events == [("log", 3), ("validate", 4), ("log", 6), ("log", 7), ("validate at the stop", 7)]


def test_a_step_of_several_units_logs_at_the_first_step_that_reaches_each_multiple():
    task = Task(total=20, units=6)
    run(task, log_every=10)
    assert [s for e, s in task.events if e == "log"] == [12, 24]  # 12 passes 10, 24 passes 20 (and is the last)
    assert task.step == 24


def test_the_time_budget_stops_after_the_first_step_past_it():
    task = Task(total=100, seconds=1.0)
    assert run(task, log_every=50, time_budget=2.5) is True
    assert task.step == 3 and task.events == [("log", 3), ("validate at the stop", 3)]
    done = Task(total=3, seconds=1.0)
    assert (
        run(done, log_every=50, time_budget=2.5) is False
    )  # finished by its own budget at the same step: not the clock's stop


def test_a_run_with_nothing_left_takes_no_step():
    task = Task(total=5)
    task.step = 5
    assert run(task, log_every=2) is False and task.events == []


def test_finished_run_says_why_only_where_the_end_is_recorded(tmp_path):
    results = {"steps": 40}
    (tmp_path / "results.json").write_text(json.dumps(results))
    kwargs = dict(flag="--steps", train_seconds=10.0, time_budget=None)
    assert finished_run(tmp_path, spent=None, results=results, **kwargs) is None  # budget not spent
    assert finished_run(tmp_path, spent="40 of 40 episodes", results=None, **kwargs) is None  # end not recorded: finish it
    stop = finished_run(tmp_path, spent="40 of 40 episodes", results=results, **kwargs)
    assert isinstance(stop, RunFinished) and stop.results == results
    assert "40 of 40 episodes done" in str(stop) and "--steps" in str(stop)
    clock = finished_run(tmp_path, spent=None, results=results, flag="--steps", train_seconds=10.0, time_budget=5.0)
    assert "time budget of 5 s is spent" in str(clock) and "--time-budget" in str(clock)


@pytest.mark.parametrize("log_every", [1, 4])
def test_every_step_is_counted_once(log_every):
    task = Task(total=9)
    run(task, log_every=log_every)
    logs = [s for e, s in task.events if e == "log"]
    assert logs == sorted(set(logs)) and logs[-1] == 9
