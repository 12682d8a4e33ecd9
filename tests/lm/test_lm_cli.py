"""The ``fwm-rl lm`` commands, called through the package's own ``register`` on a fresh parser."""

from __future__ import annotations

import argparse
import json
import shutil
from dataclasses import fields

import pytest
from tiny_data import write_corpus

from fwm_rl.engine import atomic_save, load_checkpoint
from fwm_rl.lm.cli import register
from fwm_rl.lm.config import MEMORIES, PRESETS, LMConfig, LMModelConfig

SMALL = [
    "--embedding-size",
    "12",
    "--hidden-size",
    "16",
    "--n-layers",
    "2",
    "--d-fwm",
    "4",
    "--n-reads",
    "2",
    "--batch-size",
    "4",
    "--bptt",
    "6",
    "--eval-every",
    "3",
    "--log-every",
    "1",
    "--no-tensorboard",
    "--no-progress",
    "--device",
    "cpu",
]


def run(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="fwm-rl")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.func(args)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """An LSTM and an FWM model trained for a few steps on a tiny corpus."""
    root = tmp_path_factory.mktemp("lm_cli")
    data = write_corpus(root / "data")
    for memory in ("lstm", "fwm"):
        assert (
            run(["lm", "train", "--memory", memory, "--data", str(data), "--out", str(root / memory), "--steps", "3", *SMALL])
            == 0
        )
    return root, data


def test_train_eval_and_resume(runs, capsys):
    root, data = runs
    assert (root / "fwm" / "best.pt").exists() and (root / "fwm" / "metrics.csv").exists()
    capsys.readouterr()
    assert run(["lm", "eval", str(root / "fwm" / "best.pt"), "--split", "test", "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    n_tokens = sum(len(line.split()) + 1 for line in (data / "test.txt").read_text().splitlines())
    assert "perplexity" in out and f"over {n_tokens:,} tokens" in out and "batch size 1" in out
    assert run(["lm", "eval", str(root / "fwm"), "--split", "test", "--device", "cpu"]) == 0  # a run folder: its best.pt
    assert capsys.readouterr().out == out
    (root / "best-only").mkdir()  # (a folder whose only checkpoint is a best.pt: read, so best.pt is what a folder gives)
    shutil.copy(root / "fwm" / "best.pt", root / "best-only" / "best.pt")
    assert run(["lm", "eval", str(root / "best-only"), "--split", "test", "--device", "cpu"]) == 0
    assert capsys.readouterr().out == out
    assert (
        run(["lm", "train", "--out", str(root / "lstm"), "--resume", "--steps", "5", "--no-progress", "--device", "cpu"]) == 0
    )
    assert "stopped at step 5" in capsys.readouterr().out
    assert run(["lm", "train", "--resume", str(root / "lstm"), "--steps", "6", "--no-progress"]) == 0  # --resume DIR
    assert f"resuming {root / 'lstm'} at step 5" in capsys.readouterr().out
    with pytest.raises(ValueError, match="cannot be combined with --resume"):
        run(["lm", "train", "--out", str(root / "lstm"), "--resume", "--overwrite"])
    with pytest.raises(ValueError, match="name two folders: give one"):
        run(["lm", "train", "--resume", str(root / "lstm"), "--out", str(root / "fwm")])


def test_a_run_folder_is_never_silently_replaced(tmp_path):
    data = write_corpus(tmp_path / "data")
    out = tmp_path / "run"
    assert run(["lm", "train", "--memory", "lstm", "--data", str(data), "--out", str(out), "--steps", "3", *SMALL]) == 0
    before = (out / "metrics.csv").read_text()
    with pytest.raises(ValueError, match=f"{out} already holds a run .*--overwrite"):
        run(["lm", "train", "--memory", "lstm", "--data", str(data), "--out", str(out), "--steps", "2", *SMALL])
    assert (out / "metrics.csv").read_text() == before
    assert (
        run(
            [
                "lm",
                "train",
                "--memory",
                "lstm",
                "--data",
                str(data),
                "--out",
                str(out),
                "--steps",
                "2",
                "--overwrite",
                *SMALL,
            ]
        )
        == 0
    )
    assert (out / "metrics.csv").read_text() != before


def test_compare_writes_a_png(runs, tmp_path, capsys):
    root, _ = runs
    out = tmp_path / "fig" / "compare.png"
    assert (
        run(
            [
                "lm",
                "compare",
                str(root / "lstm" / "best.pt"),
                str(root / "fwm" / "best.pt"),
                "--start",
                "5",
                "--length",
                "30",
                "--out",
                str(out),
                "--device",
                "cpu",
            ]
        )
        == 0
    )
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and out.stat().st_size > 5000
    assert "LSTM:" in capsys.readouterr().out
    with pytest.raises(ValueError, match="does not fit"):
        run(
            [
                "lm",
                "compare",
                str(root / "lstm" / "best.pt"),
                str(root / "fwm" / "best.pt"),
                "--start",
                "100000",
                "--device",
                "cpu",
            ]
        )


def test_plot_draws_validation_perplexity_by_steps_and_hours(runs, tmp_path, capsys):
    from fwm_rl.engine import read_curve

    root, data = runs
    curve = read_curve(root / "fwm", "valid/ppl", "an LM run")
    assert [c[0] for c in curve] == [3] and curve[0][1] > 0 and curve[0][2] > 1  # (step, training seconds, perplexity)
    untimed = tmp_path / "old"  # a run logged before time/train_seconds: only the panel by steps
    untimed.mkdir()
    (untimed / "metrics.csv").write_text("step,train/loss,valid/ppl\n2,5.0,\n3,,120.5\n")
    assert read_curve(untimed, "valid/ppl", "an LM run") == [(3, None, 120.5)]
    for dirs, labels in (([root / "lstm", root / "fwm"], ["LSTM", "FWM"]), ([untimed], ["old"])):
        out = tmp_path / f"{labels[0]}.png"
        assert run(["lm", "plot", *map(str, dirs), "--labels", *labels, "--out", str(out)]) == 0
        assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and f"wrote {out}" in capsys.readouterr().out
    with pytest.raises(ValueError, match="one label per run"):
        run(["lm", "plot", str(root / "fwm"), "--labels", "a", "b"])
    with pytest.raises(FileNotFoundError, match="give an LM run folder"):
        run(["lm", "plot", str(data)])


def test_bad_invocations_are_clear_errors(runs, tmp_path):
    root, data = runs
    with pytest.raises(ValueError, match="--memory is required"):
        run(["lm", "train", "--data", str(data)])
    with pytest.raises(ValueError, match="already holds a run"):
        run(["lm", "train", "--memory", "lstm", "--data", str(data), "--out", str(root / "lstm"), *SMALL])
    with pytest.raises(FileNotFoundError, match="does not exist"):
        run(["lm", "eval", str(tmp_path / "missing.pt")])
    with pytest.raises(FileNotFoundError, match="does not exist"):
        run(["lm", "train", "--memory", "fwm", "--data", str(tmp_path / "nodata"), "--out", str(tmp_path / "x"), *SMALL])


def test_default_corpus_is_generated_babi_text(tmp_path, capsys):
    pytest.importorskip("fwm_rl.babi.generator")
    assert run(["lm", "train", "--memory", "lstm", "--out", str(tmp_path / "babi"), "--steps", "2", *SMALL]) == 0
    out = capsys.readouterr().out
    assert "bAbI story generator" in out and "generated bAbI stories" in out and "recipe --preset small: a small model" in out
    assert (
        run(["lm", "eval", str(tmp_path / "babi" / "best.pt"), "--split", "valid", "--batch-size", "10", "--device", "cpu"])
        == 0
    )
    assert "perplexity" in capsys.readouterr().out


def test_presets_are_table_4_and_the_default_without_data_is_small(capsys):
    table_4 = {  # dataset: dropout, dropoute, dropouth, dropouti, wdrop, batch size, Adam lr, ASGD lr (paper appendix H)
        "ptb": (0.4, 0.1, 0.3, 0.5, 0.66, 20, 0.001, 2.0),
        "wt2": (0.4, 0.1, 0.25, 0.7, 0.61, 80, 0.001, 0.5),
    }
    names = ("dropout", "dropout_e", "dropout_h", "dropout_i", "wdrop", "batch_size", "lr", "asgd_lr")
    for name, row in table_4.items():
        assert tuple(PRESETS[name].run("fwm")[field] for field in names) == row
    # "1000 epochs on PTB and 1600 epochs on WT2 ... switched to ASGD after 916 epochs and 1372 epochs"
    assert [(PRESETS[n].run("lstm")["epochs"], PRESETS[n].run("lstm")["asgd_after"]) for n in ("ptb", "wt2")] == [
        (1000, 916),
        (1600, 1372),
    ]
    model_fields, train_fields = ({f.name for f in fields(cls)} for cls in (LMModelConfig, LMConfig))
    assert not model_fields & train_fields  # (a preset's run is one flat dict over both configs)
    for preset in PRESETS.values():  # a run per memory, the same but for it; every value a field of one config
        assert tuple(preset.runs) == MEMORIES
        fwm, lstm = preset.run("fwm"), preset.run("lstm")
        assert (fwm.pop("memory"), lstm.pop("memory")) == ("fwm", "lstm") and fwm == lstm
        assert set(fwm) <= model_fields | train_fields
    assert run(["lm", "train", "--memory", "fwm", "--print-config"]) == 0
    config = json.loads(capsys.readouterr().out)
    assert config["preset"] == "small" and config["train"]["epochs"] == 3
    assert run(["lm", "train", "--memory", "fwm", "--preset", "ptb", "--epochs", "7", "--print-config"]) == 0
    config = json.loads(capsys.readouterr().out)
    assert (config["train"]["epochs"], config["train"]["asgd_after"], config["model"]["hidden_size"]) == (7, 916, 1150)


def test_old_flags_are_aliases_of_the_renamed_fields(capsys):
    old = ["--model", "fwm", "--d-embed", "9", "--d-hidden", "7", "--clip", "0", "--max-steps", "3", "--eval-interval", "2"]
    assert (
        run(["lm", "train", *old, "--log-interval", "4", "--no-tie-weights", "--no-tune-temperature", "--print-config"]) == 0
    )
    config = json.loads(capsys.readouterr().out)
    model, train = config["model"], config["train"]
    assert (model["memory"], model["embedding_size"], model["hidden_size"], model["tie_weights"]) == ("fwm", 9, 7, False)
    assert (train["max_grad_norm"], train["steps"], train["eval_every"], train["log_every"]) == (0.0, 3, 2, 4)
    assert not train["tune_temperature"] and not {"model", "d_embed", "d_hidden", "clip", "max_steps"} & {*model, *train}
    assert run(["lm", "train", "--memory", "fwm", "--max-grad-norm", "0.5", "--print-config"]) == 0
    assert json.loads(capsys.readouterr().out)["train"]["max_grad_norm"] == 0.5


def test_a_resumed_run_refuses_other_settings_in_one_line(runs):
    root, _ = runs
    for option in (["--hidden-size", "32"], ["--d-hidden", "32"], ["--lr", "0.1"], ["--memory", "fwm"], ["--preset", "ptb"]):
        with pytest.raises(ValueError) as error:
            run(["lm", "train", "--resume", str(root / "fwm"), *option])
        message = str(error.value)
        assert "\n" not in message and message.startswith("--resume continues with the checkpoint's settings; only ")
        flag = {"--d-hidden": "--hidden-size"}.get(option[0], option[0])
        assert message.endswith(f"not {flag}") and "--steps" in message and "--data" in message, message


def test_checkpoints_with_the_old_field_names_evaluate_compare_and_resume(runs, tmp_path, capsys):
    """A run written before the renames (model, d_embed, d_hidden; clip, max_steps): read through the RENAMED maps."""
    root, _ = runs
    old = tmp_path / "old"
    shutil.copytree(root / "fwm", old)
    renamed = dict(memory="model", embedding_size="d_embed", hidden_size="d_hidden", max_grad_norm="clip", steps="max_steps")
    for name in ("checkpoint.pt", "best.pt"):
        ckpt = load_checkpoint(old / name)
        ckpt["configs"] = {part: {renamed.get(k, k): v for k, v in c.items()} for part, c in ckpt["configs"].items()}
        atomic_save(ckpt, old / name)
    configs = load_checkpoint(old / "best.pt")["configs"]
    assert (configs["model"]["model"], configs["model"]["d_hidden"], configs["train"]["clip"]) == ("fwm", 16, 0.25)
    capsys.readouterr()
    for folder in (root / "fwm", old):
        assert run(["lm", "eval", str(folder), "--split", "valid", "--device", "cpu"]) == 0
    new, was = capsys.readouterr().out.splitlines()
    assert new == was and was.startswith("fwm valid: loss ")
    figure = str(tmp_path / "compare.png")
    assert run(["lm", "compare", str(root / "lstm"), str(old), "--length", "10", "--out", figure, "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("LSTM: ") and " bits/word, FWM: " in out
    assert run(["lm", "train", "--resume", str(old), "--steps", "4", "--no-progress", "--device", "cpu"]) == 0
    assert "stopped at step 4" in capsys.readouterr().out
    configs = load_checkpoint(old / "checkpoint.pt")["configs"]  # written again, with the new names
    model, train = configs["model"], configs["train"]
    assert (model["memory"], model["hidden_size"], train["max_grad_norm"], train["steps"]) == ("fwm", 16, 0.25, 4)


def test_final_test_of_the_best_weights_at_batch_size_1(tmp_path, capsys):
    import math

    data = write_corpus(tmp_path / "data")
    out = tmp_path / "run"
    assert run(["lm", "train", "--memory", "fwm", "--data", str(data), "--out", str(out), "--steps", "4", *SMALL]) == 0
    results = json.loads((out / "results.json").read_text())
    assert (results["checkpoint"], results["batch_size"]) == ("best.pt", 1)
    assert results["trained"]["steps"] == 4 and results["trained"]["tokens"] > 0 and results["trained"]["train_seconds"] > 0
    assert f"test perplexity {results['test_ppl']:.2f}" in capsys.readouterr().out
    capsys.readouterr()
    assert run(["lm", "eval", str(out / "best.pt"), "--split", "test", "--device", "cpu"]) == 0
    printed = capsys.readouterr().out
    assert f"perplexity {results['test_ppl']:.2f}" in printed and math.isclose(
        math.exp(results["test_loss"]), results["test_ppl"]
    )
