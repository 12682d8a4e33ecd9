"""Bad input gets one line and exit code 2 (a stopped run exit code 1), never a traceback; run folders are
never written by two runs at once and never left half-written."""

from __future__ import annotations

import csv
import json
import tarfile

import pytest
from tiny_data import write_corpus, write_variant

from fwm_rl.agents.training import A2CConfig, train_preset, train_run
from fwm_rl.cli import main, run_reporting_errors
from fwm_rl.engine import NonFiniteLossError, RunExistsError, RunLogger, run_lock


def one_line_error(capsys, argv: list[str], code: int = 2) -> str:
    assert main(argv) == code
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    return err


def tiny(**changes) -> A2CConfig:
    return A2CConfig(
        **{
            "name": "lstm",
            "memory": "lstm",
            "hidden_size": 8,
            "n_envs": 4,
            "steps": 2,
            "eval_every": 1,
            "final_episodes_per_graph": 1,
            "device": "cpu",
            **changes,
        }
    )


# --------------------------------------------------------------------------------- run folders
def test_a_folder_in_use_by_another_run_is_refused(tmp_path):
    with run_lock(tmp_path / "run"):
        with pytest.raises(RunExistsError, match=r"in use by another run \(pid \d+"):
            train_run(tiny(), tmp_path / "run", show_progress=False)
        with pytest.raises(RunExistsError, match="in use by another run"):
            with run_lock(tmp_path / "run"):
                pass
    train_run(tiny(), tmp_path / "run", show_progress=False)  # free again once the first holder is done


def test_the_lock_clears_temporary_files_a_killed_run_left(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / ".checkpoint.pt.x1y2.tmp").write_bytes(b"half a checkpoint")
    (run / "notes.txt").write_text("mine")
    with run_lock(run):
        assert sorted(p.name for p in run.iterdir()) == [".lock", "notes.txt"]


def test_metrics_are_rewritten_atomically(tmp_path, monkeypatch):
    log = RunLogger(tmp_path, tensorboard=False)
    log.log(1, {"a": 1.0})
    before = (tmp_path / "metrics.csv").read_text()

    def fail(*args, **kwargs):
        raise KeyboardInterrupt  # a kill in the middle of the rewrite

    monkeypatch.setattr(csv.DictWriter, "writerows", fail)
    with pytest.raises(KeyboardInterrupt):
        log.log(2, {"a": 2.0, "b": 3.0})  # a new column: the file is rewritten
    assert (tmp_path / "metrics.csv").read_text() == before


def test_resuming_a_preset_folder_takes_each_run_from_its_checkpoint(tmp_path):
    train_preset([tiny(steps=2)], tmp_path, show_progress=False)
    stored = json.loads((tmp_path / "runs.json").read_text())
    stored["configs"][0]["lr"] = 0.5  # runs.json edited (or written by another preset) since
    (tmp_path / "runs.json").write_text(json.dumps(stored))
    assert main(["train", "--resume", str(tmp_path), "--episodes", "3", "--no-progress"]) == 0
    assert json.loads((tmp_path / "lstm" / "config.json").read_text())["lr"] == tiny().lr


# ----------------------------------------------------------------------------------- bad input
def test_a2c_bad_values_and_foreign_folders(tmp_path, capsys, babi_run):
    assert "lr must be a positive finite number, got inf" in one_line_error(
        capsys, ["train", "--lr", "inf", "--out", str(tmp_path / "a")]
    )
    assert (
        "is a checkpoint of a catbAbI run (written by 'fwm-rl babi train'), not of an A2C run on the graph task"
        in one_line_error(capsys, ["train", "--resume", str(babi_run)])
    )
    (tmp_path / "file").write_text("x")
    assert "is a file" in one_line_error(capsys, ["train", "--preset", "paper-fwm", "--out", str(tmp_path / "file")])


@pytest.fixture(scope="module")
def babi_variant(tmp_path_factory):
    return write_variant(tmp_path_factory.mktemp("babi"))


@pytest.fixture(scope="module")
def babi_run(babi_variant, tmp_path_factory):
    out = tmp_path_factory.mktemp("babi_run") / "run"
    assert (
        main(
            [
                "babi",
                "train",
                "--data",
                str(babi_variant),
                "--steps",
                "1",
                "--eval-every",
                "1",
                "--batch-size",
                "2",
                "--eval-batch-size",
                "2",
                "--embedding-size",
                "8",
                "--hidden-size",
                "8",
                "--device",
                "cpu",
                "--no-tensorboard",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    return out


def test_babi_bad_options(babi_variant, tmp_path, capsys):
    common = ["babi", "train", "--data", str(babi_variant), "--out", str(tmp_path / "r"), "--device", "cpu"]
    assert "steps must be a positive integer, got 0" in one_line_error(capsys, [*common, "--steps", "0"])
    assert "--tasks names a task more than once" in one_line_error(
        capsys, ["babi", "train", "--tasks", "1,1", "--out", str(tmp_path / "r")]
    )
    gen = ["babi", "generate", "--out", str(tmp_path / "g"), "--stories", "2,1,1", "--tasks", "1"]
    assert main(gen) == 0
    err = one_line_error(capsys, gen)
    assert "exists" in err and "--overwrite" in err
    assert main([*gen, "--overwrite"]) == 0


def test_undecodable_and_truncated_data_name_the_file(tmp_path, capsys):
    bad = write_variant(tmp_path / "babi")
    (bad / "qa1_train.txt").write_bytes(b"1 Mary went to the \xff\xfe.\n")
    err = one_line_error(capsys, ["babi", "stats", "--data", str(bad)])
    assert "qa1_train.txt is not UTF-8" in err
    archive = tmp_path / "babi.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(write_variant(tmp_path / "good"), arcname="tasks_1-20_v1-2/en-valid")
    archive.write_bytes(archive.read_bytes()[: archive.stat().st_size // 2])
    assert "could not be read" in one_line_error(capsys, ["babi", "stats", "--data", str(archive), "--variant", "en-valid"])
    corpus = write_corpus(tmp_path / "lm")
    (corpus / "valid.txt").write_bytes(b"the \xff cat\n")
    assert "valid.txt is not UTF-8" in one_line_error(
        capsys, ["lm", "train", "--model", "lstm", "--data", str(corpus), "--out", str(tmp_path / "l")]
    )
    gz = write_corpus(tmp_path / "lmgz", layout="wikitext")
    path = gz / "wiki.train.tokens.gz"
    path.write_bytes(path.read_bytes()[:-20])
    assert "could not be read" in one_line_error(
        capsys, ["lm", "train", "--model", "lstm", "--data", str(gz), "--out", str(tmp_path / "l2")]
    )


def test_lm_eval_bad_arguments(tmp_path, capsys):
    corpus = write_corpus(tmp_path / "data")
    out = tmp_path / "run"
    assert (
        main(
            [
                "lm",
                "train",
                "--model",
                "lstm",
                "--data",
                str(corpus),
                "--out",
                str(out),
                "--d-embed",
                "8",
                "--d-hidden",
                "8",
                "--n-layers",
                "1",
                "--max-steps",
                "2",
                "--bptt",
                "5",
                "--device",
                "cpu",
                "--no-tensorboard",
                "--no-progress",
                "--no-tune-temperature",
            ]
        )
        == 0
    )
    (tmp_path / "empty").mkdir()  # a folder without a run: its checkpoint is named as missing
    assert f"{tmp_path / 'empty' / 'checkpoint.pt'} does not exist" in one_line_error(
        capsys, ["lm", "eval", str(tmp_path / "empty"), "--device", "cpu"]
    )
    assert "batch_size must be a positive integer" in one_line_error(
        capsys, ["lm", "eval", str(out / "best.pt"), "--batch-size", "0", "--device", "cpu"]
    )


def test_a_stopped_run_is_one_line_with_exit_code_1(capsys):
    def diverging():
        raise NonFiniteLossError("non-finite loss (nan) at step 7; training stopped.")

    assert run_reporting_errors("fwm-rl lm", diverging) == 1
    err = capsys.readouterr().err.strip()
    assert (
        err.startswith("fwm-rl lm: non-finite loss (nan) at step 7")
        and "last good checkpoint is kept" in err
        and len(err.splitlines()) == 1
    )


def test_every_option_of_every_command_has_help_and_unknown_splits_list_the_choices(capsys):
    import argparse

    from fwm_rl.cli import build_parser

    missing = []

    def walk(parser, path):
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    walk(sub, [*path, name])
            elif action.help is None:
                missing.append((" ".join(path), action.option_strings or action.dest))

    walk(build_parser(), ["fwm-rl"])
    assert missing == []
    with pytest.raises(SystemExit):
        main(["baselines", "--split", "foo"])
    assert "'random'" in capsys.readouterr().err


def test_a_run_resumes_after_its_data_moved(babi_variant, tmp_path, capsys):
    import shutil

    # catbAbI: the data folder is stored resolved; once moved, --resume names --data, and --data relocates it
    data = tmp_path / "babi"
    shutil.copytree(babi_variant.parent.parent, data)
    variant = data / "tasks_1-20_v1-2" / "en-valid"
    common = ["--batch-size", "2", "--eval-batch-size", "2", "--device", "cpu", "--no-tensorboard"]
    assert (
        main(
            [
                "babi",
                "train",
                "--data",
                str(variant),
                "--steps",
                "1",
                "--eval-every",
                "1",
                "--embedding-size",
                "8",
                "--hidden-size",
                "8",
                "--out",
                str(tmp_path / "b"),
                *common,
            ]
        )
        == 0
    )
    data.rename(tmp_path / "moved")
    assert "--data" in one_line_error(
        capsys, ["babi", "train", "--resume", str(tmp_path / "b"), "--steps", "2", "--device", "cpu"]
    )
    assert (
        main(
            [
                "babi",
                "train",
                "--resume",
                str(tmp_path / "b"),
                "--steps",
                "2",
                "--device",
                "cpu",
                "--data",
                str(tmp_path / "moved" / "tasks_1-20_v1-2" / "en-valid"),
            ]
        )
        == 0
    )
    # LM: the same
    corpus = write_corpus(tmp_path / "text")
    assert (
        main(
            [
                "lm",
                "train",
                "--model",
                "lstm",
                "--data",
                str(corpus),
                "--out",
                str(tmp_path / "l"),
                "--d-embed",
                "8",
                "--d-hidden",
                "8",
                "--n-layers",
                "1",
                "--max-steps",
                "2",
                "--bptt",
                "5",
                "--device",
                "cpu",
                "--no-tensorboard",
                "--no-progress",
                "--no-tune-temperature",
            ]
        )
        == 0
    )
    corpus.rename(tmp_path / "text2")
    assert "--data" in one_line_error(
        capsys, ["lm", "train", "--out", str(tmp_path / "l"), "--resume", "--max-steps", "3", "--no-progress"]
    )
    assert (
        main(
            [
                "lm",
                "train",
                "--out",
                str(tmp_path / "l"),
                "--resume",
                "--max-steps",
                "3",
                "--no-progress",
                "--data",
                str(tmp_path / "text2"),
            ]
        )
        == 0
    )


def test_every_trainer_prints_its_resolved_config(capsys, tmp_path):
    assert main(["train", "--preset", "fast-fwm", "--episodes", "7", "--out", str(tmp_path / "a"), "--print-config"]) == 0
    a2c = json.loads(capsys.readouterr().out)
    assert a2c["runs"][0]["steps"] == 7 and a2c["runs"][0]["lr"] == 3e-3 and not (tmp_path / "a").exists()
    assert main(["babi", "train", "--steps", "9", "--amp", "bf16", "--print-config"]) == 0
    babi = json.loads(capsys.readouterr().out)
    assert (babi["train"]["steps"], babi["train"]["amp"], babi["model"]["memory"]) == (9, "bf16", "fwm")
    from fwm_rl.babi.config import CatbAbIConfig  # every default not given is the config's own

    assert babi["train"] == {**CatbAbIConfig().to_dict(), "steps": 9, "amp": "bf16"}
    assert main(["lm", "train", "--model", "lstm", "--max-steps", "5", "--print-config"]) == 0
    lm = json.loads(capsys.readouterr().out)
    assert (lm["train"]["steps"], lm["model"]["memory"], lm["data"]) == (5, "lstm", None)


def test_resuming_a_preset_restarts_a_run_that_never_reached_a_checkpoint(tmp_path):
    train_preset([tiny(name="a", steps=2), tiny(name="b", steps=2)], tmp_path, show_progress=False)
    for name in ("checkpoint.pt", "metrics.csv", "results.json"):  # b was killed before its first log: config.json is left
        (tmp_path / "b" / name).unlink()
    train_preset([tiny(name="a", steps=2), tiny(name="b", steps=2)], tmp_path, resume=True, show_progress=False)
    assert [r["step"] for r in csv.DictReader(open(tmp_path / "b" / "metrics.csv"))] == ["1", "2"]


def test_weights_that_do_not_fit_the_model_are_one_line(tmp_path, capsys):
    """An LSTM run's checkpoint whose config was changed to an FWM: the message names the file and the difference."""
    import torch

    from fwm_rl.engine import atomic_save, load_checkpoint, load_weights

    train_run(tiny(steps=1), tmp_path / "run", show_progress=False)
    ckpt = load_checkpoint(tmp_path / "run" / "checkpoint.pt")
    ckpt["configs"]["train"] = {**ckpt["configs"]["train"], "memory": "fwm"}
    atomic_save(ckpt, tmp_path / "run" / "checkpoint.pt")
    err = one_line_error(capsys, ["eval", str(tmp_path / "run"), "--episodes-per-graph", "1", "--device", "cpu"])
    assert str(tmp_path / "run") in err and "do not fit the model" in err and "missing" in err
    with pytest.raises(ValueError, match=r"weight is \(2, 3\), the model's \(4, 3\)"):
        load_weights(torch.nn.Linear(3, 4, bias=False), {"weight": torch.zeros(2, 3)}, "x.pt")


@pytest.mark.parametrize(
    "garbage",
    [
        b"\x89PNG\r\n\x1a\n\x00\xff\xfe",
        b"date;loss\n2021-01-01;0.5\n",
        b"step,valid/answer_accuracy,valid/ppl,test/reward\r\n2,0.5,abc,1\r\n",
    ],
    ids=["binary", "not-a-log", "not-a-number"],
)
def test_every_reader_of_metrics_names_a_file_it_cannot_read(tmp_path, capsys, garbage):
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text(json.dumps(tiny().to_dict()))  # an A2C run's (fwm-rl plot reads it first)
    (run / "metrics.csv").write_bytes(garbage)
    png = str(tmp_path / "curves.png")
    for command in (["plot"], ["babi", "plot"], ["lm", "plot"]):
        err = one_line_error(capsys, [*command, str(run), "--out", png])
        assert f"{run / 'metrics.csv'} is not a metrics log written by fwm-rl: " in err, err
    assert (run / "metrics.csv").read_bytes() == garbage
