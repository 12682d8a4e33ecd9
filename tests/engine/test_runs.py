import math
from types import SimpleNamespace

import pytest
import torch

from fwm_rl.engine import (
    NonFiniteLossError,
    RunLogger,
    apply_gradients,
    atomic_save,
    check_finite,
    checkpoint_file,
    gradient_step,
    load_checkpoint,
    machine_description,
    reduce_gradients,
    resolve_device,
    run_record,
)


def test_atomic_save_roundtrip_and_no_temp_left(tmp_path):
    path = atomic_save({"a": torch.arange(3)}, tmp_path / "ck" / "checkpoint.pt")
    assert torch.equal(load_checkpoint(path)["a"], torch.arange(3))
    assert [p.name for p in path.parent.iterdir()] == ["checkpoint.pt"]


def test_atomic_save_keeps_old_file_when_write_fails(tmp_path):
    path = atomic_save({"v": 1}, tmp_path / "c.pt")

    class Unpicklable:
        def __reduce__(self):
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        atomic_save({"v": Unpicklable()}, path)
    assert load_checkpoint(path)["v"] == 1
    assert len(list(tmp_path.iterdir())) == 1


def test_load_checkpoint_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_checkpoint(tmp_path / "nope.pt")
    with pytest.raises(IsADirectoryError, match="checkpoint file inside"):
        load_checkpoint(tmp_path)
    (tmp_path / "bad.pt").write_text("not a checkpoint")
    with pytest.raises(ValueError, match="could not be read"):
        load_checkpoint(tmp_path / "bad.pt")


def test_check_finite():
    check_finite(torch.tensor(1.0), step=3)
    with pytest.raises(NonFiniteLossError, match="step 7"):
        check_finite(torch.tensor(float("nan")), step=7)
    with pytest.raises(NonFiniteLossError):
        check_finite(math.inf, step=1)


def test_gradient_step_is_backward_check_clip_step():
    from fwm_rl.engine.distributed import DistContext

    torch.manual_seed(0)
    x, ctx = torch.randn(5, 3), DistContext()

    def model_and_optimizer():
        torch.manual_seed(1)
        model = torch.nn.Linear(3, 2)
        return model, torch.optim.SGD(model.parameters(), lr=0.1)

    model, opt = model_and_optimizer()
    loss = model(x).pow(2).mean() * 100
    totals = gradient_step(model, opt, loss, ctx, share=1.0, totals={"loss": float(loss), "n": 5}, step=0, clip=0.5)
    assert totals == {"loss": pytest.approx(float(loss)), "n": 5}
    by_hand, opt2 = model_and_optimizer()  # the same by hand: backward, clip at 0.5, SGD step
    by_hand(x).pow(2).mean().mul(100).backward()
    assert torch.nn.utils.clip_grad_norm_(by_hand.parameters(), 0.5) > 0.5  # (the clip was engaged)
    opt2.step()
    for a, b in zip(model.parameters(), by_hand.parameters()):
        torch.testing.assert_close(a, b)
    before = [p.detach().clone() for p in model.parameters()]
    opt.zero_grad()
    loss = model(x).sum() * float("nan")
    with pytest.raises(NonFiniteLossError, match="step 4.*lower the lr"):
        gradient_step(model, opt, loss, ctx, share=1.0, totals={"loss": float(loss)}, step=4, hint="lower the lr")
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))  # checked before the weights change
    opt.zero_grad()  # the halves, as an algorithm that also offers the gradient alone calls them
    reduce_gradients(model, model(x).sum(), ctx, share=1.0, totals={"loss": 1.0}, step=5)
    assert all(p.grad is not None for p in model.parameters())
    apply_gradients(model, opt)
    assert not all(torch.equal(a, b) for a, b in zip(before, model.parameters()))


def test_resolve_device():
    assert resolve_device("cpu").type == "cpu"
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(ValueError, match="unknown device"):
        resolve_device("tpu-ish")


def test_run_logger_grows_header_and_truncates_on_resume(tmp_path):
    log = RunLogger(tmp_path, tensorboard=False)
    log.log(1, {"loss": 2.0})
    log.log(2, {"loss": 1.5, "acc": 0.5})
    log.log(3, {"loss": 1.0, "acc": 0.7})
    rows = log.read()
    assert [r["step"] for r in rows] == [1, 2, 3]
    assert math.isnan(rows[0]["acc"]) and rows[2]["acc"] == 0.7
    log.close()
    resumed = RunLogger(tmp_path, tensorboard=False, resume_step=2)
    assert [r["step"] for r in resumed.read()] == [1, 2]
    resumed.log(3, {"loss": 0.9})
    assert [r["loss"] for r in resumed.read()] == [2.0, 1.5, 0.9]


def test_run_logger_tensorboard(tmp_path):
    log = RunLogger(tmp_path)
    log.log(1, {"loss": 1.0})
    log.close()
    assert any((tmp_path / "tb").iterdir())


def test_saved_config_round_trip_and_unknown_fields():
    from dataclasses import dataclass

    from fwm_rl.engine import SavedConfig

    @dataclass
    class Cfg(SavedConfig):
        a: int = 1
        b: str = "x"

    assert Cfg.from_dict(Cfg(a=3).to_dict()) == Cfg(a=3)
    with pytest.raises(ValueError, match=r"unknown Cfg fields \['c'\]"):
        Cfg.from_dict({"a": 1, "c": 2})


def test_run_record_names_command_machine_and_times(monkeypatch):
    from datetime import datetime, timedelta, timezone

    monkeypatch.setattr("sys.argv", ["/usr/bin/fwm-rl", "train", "--out", "my runs/a"])
    record = run_record(datetime.now(timezone.utc) - timedelta(seconds=90))
    assert record["command"] == "fwm-rl train --out 'my runs/a'"
    assert record["machine"] == machine_description() and "torch " + torch.__version__ in record["machine"]
    assert 89 < record["wall_seconds"] < 120 and record["started"] < record["finished"]


def test_checkpoint_file_of_a_file_or_a_run_folder(tmp_path):
    (tmp_path / "run").mkdir()
    assert checkpoint_file(tmp_path / "run") == tmp_path / "run" / "checkpoint.pt"  # a folder: its latest checkpoint
    assert checkpoint_file(str(tmp_path / "run" / "best.pt")) == tmp_path / "run" / "best.pt"  # a file, as given
    assert checkpoint_file(tmp_path / "gone") == tmp_path / "gone"  # (so a missing path is named as typed)
    run = tmp_path / "run"
    assert checkpoint_file(run, best=True) == run / "checkpoint.pt"  # no best.pt yet: the latest
    (run / "best.pt").write_bytes(b"")
    assert checkpoint_file(run, best=True) == run / "best.pt" and checkpoint_file(run) == run / "checkpoint.pt"


def test_checkpoint_kinds_name_what_a_checkpoint_is(tmp_path):
    from fwm_rl.engine import CHECKPOINT_FORMAT, check_checkpoint, checkpoint_kind

    assert checkpoint_kind({"kind": "catbabi"}) == "catbabi"
    assert checkpoint_kind({"kind": "fwm-rl lm"}) == "lm"  # written before the kinds were unified
    assert checkpoint_kind({"config": {}, "policy": {}, "episodes": 3}) == "a2c"  # A2C checkpoints before `kind`
    assert checkpoint_kind({"config": {}, "policy": {}, "timesteps": 3}) == "a2c-env"
    assert checkpoint_kind({"weights": 1}) is None and checkpoint_kind([1]) is None
    ckpt = {"kind": "lm", "format": CHECKPOINT_FORMAT}
    assert check_checkpoint(ckpt, "lm", "x.pt") is ckpt  # the current format: as it is
    with pytest.raises(
        ValueError,
        match=r"x.pt is a checkpoint of a language-model run \(written by 'fwm-rl lm train'\), not of a catbAbI run",
    ):
        check_checkpoint(ckpt, "catbabi", "x.pt")
    with pytest.raises(
        ValueError, match=r"x.pt is not a checkpoint of an A2C run on the graph task \(written by 'fwm-rl train'\)"
    ):
        check_checkpoint({"weights": 1}, "a2c", "x.pt")
    with pytest.raises(ValueError, match="written by a newer fwm-rl .* upgrade"):
        check_checkpoint({"kind": "lm", "format": CHECKPOINT_FORMAT + 1}, "lm", "x.pt")


def test_one_checkpoint_schema_and_its_random_state(tmp_path):
    import random

    import numpy as np

    from fwm_rl.engine import CHECKPOINT_FORMAT, capture_rng, make_checkpoint, read_checkpoint, restore_rng

    ckpt = make_checkpoint(
        "catbabi",
        step=7,
        train_seconds=1.5,
        configs={"train": {"lr": 0.1}},
        model={"w": torch.ones(2)},
        optimizer={"state": {}},
        task={"best_step": 4},
        rng=capture_rng(),
    )
    assert set(ckpt) == {"kind", "format", "step", "train_seconds", "configs", "model", "optimizer", "task", "rng"}
    assert (ckpt["kind"], ckpt["format"], ckpt["step"]) == ("catbabi", CHECKPOINT_FORMAT, 7)
    atomic_save(ckpt, tmp_path / "c.pt")
    back = read_checkpoint(tmp_path / "c.pt", "catbabi")
    assert back["task"] == {"best_step": 4} and torch.equal(back["model"]["w"], torch.ones(2))
    with pytest.raises(ValueError, match="not of a language-model run"):
        read_checkpoint(tmp_path / "c.pt", "lm")
    with pytest.raises(ValueError, match="unknown checkpoint kind 'ppo'"):
        make_checkpoint("ppo", step=0, configs={}, model={})
    # the random generators come back as they were
    draws = lambda: (random.random(), float(np.random.rand()), float(torch.rand(1)))  # noqa: E731
    draws()
    expected = draws()
    restore_rng(back["rng"])
    assert draws() != expected  # (the state is that of before the first draws)
    restore_rng(back["rng"])
    draws()
    assert draws() == expected


class _CountingTask:
    """A LoopTask that records what the loop asked of it; a step takes ``seconds`` of (fake) training time."""

    def __init__(self, steps: int, eval_every: int, seconds: float = 0.0, units: int = 1):
        self.step, self.train_seconds, self.steps, self.eval_every, self.seconds = 0, 0.0, steps, eval_every, seconds
        self.units = units  # what one step counts
        self.calls: list[tuple] = []

    def advance(self):
        self.step += self.units
        self.train_seconds += self.seconds

    def finished(self):
        return self.step >= self.steps

    def write_log(self):
        self.calls.append(("log", self.step))

    def validation_due(self):
        return self.step % self.eval_every == 0

    def validate_and_save(self, scheduled):
        self.calls.append(("valid", self.step, scheduled))


def test_train_loop_cadence_and_time_budget():
    from fwm_rl.engine import progress, train_loop
    from fwm_rl.engine.distributed import DistContext

    ctx = DistContext(device=torch.device("cpu"))
    task = _CountingTask(steps=7, eval_every=3)
    assert train_loop(task, log_every=2, time_budget=None, bar=progress(total=7, disable=True), ctx=ctx) is False
    assert task.calls == [
        ("log", 2),
        ("valid", 3, True),
        ("log", 4),
        ("log", 6),
        ("valid", 6, True),
        ("log", 7),
        ("valid", 7, False),
    ]  # the last step is always logged and validated, unscheduled
    # the time budget stops it after the step that spends it (the loop adds the step's real time too)
    task = _CountingTask(steps=100, eval_every=3, seconds=1.0)
    assert train_loop(task, log_every=10, time_budget=4.5, bar=progress(total=100, disable=True), ctx=ctx) is True
    assert task.step == 5 and task.calls == [("valid", 3, True), ("log", 5), ("valid", 5, False)]
    # nothing left to do: no step, no log, no validation
    assert train_loop(task, log_every=10, time_budget=4.5, bar=progress(total=100, disable=True), ctx=ctx) is True
    assert task.step == 5 and len(task.calls) == 3
    # a step of several units (an --env update counts environment steps): the log comes at the first step that
    # reaches or passes each multiple of log_every, and the bar counts units
    task, bar = _CountingTask(steps=40, eval_every=100, units=6), SimpleNamespace(n=0)
    bar.update = lambda k: setattr(bar, "n", bar.n + k)
    assert train_loop(task, log_every=10, time_budget=None, bar=bar, ctx=ctx) is False
    assert task.calls == [("log", 12), ("log", 24), ("log", 30), ("log", 42), ("valid", 42, False)] and bar.n == 42
