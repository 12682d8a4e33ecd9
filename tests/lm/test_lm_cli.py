"""The ``fwm-rl lm`` commands, called through the package's own ``register`` on a fresh parser."""

from __future__ import annotations

import argparse
import shutil

import pytest
from tiny_data import write_corpus

from fwm_rl.lm.cli import register

SMALL = [
    "--d-embed",
    "12",
    "--d-hidden",
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
    "--eval-interval",
    "3",
    "--log-interval",
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
    for model in ("lstm", "fwm"):
        assert (
            run(["lm", "train", "--model", model, "--data", str(data), "--out", str(root / model), "--max-steps", "3", *SMALL])
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
        run(["lm", "train", "--out", str(root / "lstm"), "--resume", "--max-steps", "5", "--no-progress", "--device", "cpu"])
        == 0
    )
    assert "stopped at step 5" in capsys.readouterr().out
    with pytest.raises(ValueError, match="cannot be combined with --resume"):
        run(["lm", "train", "--out", str(root / "lstm"), "--resume", "--overwrite"])


def test_a_run_folder_is_never_silently_replaced(tmp_path):
    data = write_corpus(tmp_path / "data")
    out = tmp_path / "run"
    assert run(["lm", "train", "--model", "lstm", "--data", str(data), "--out", str(out), "--max-steps", "3", *SMALL]) == 0
    before = (out / "metrics.csv").read_text()
    with pytest.raises(ValueError, match=f"{out} already holds a run .*--overwrite"):
        run(["lm", "train", "--model", "lstm", "--data", str(data), "--out", str(out), "--max-steps", "2", *SMALL])
    assert (out / "metrics.csv").read_text() == before
    assert (
        run(
            [
                "lm",
                "train",
                "--model",
                "lstm",
                "--data",
                str(data),
                "--out",
                str(out),
                "--max-steps",
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
    with pytest.raises(ValueError, match="--model is required"):
        run(["lm", "train", "--data", str(data)])
    with pytest.raises(ValueError, match="--d-hidden"):
        run(["lm", "train", "--out", str(root / "lstm"), "--resume", "--d-hidden", "32"])
    with pytest.raises(ValueError, match="already holds a run"):
        run(["lm", "train", "--model", "lstm", "--data", str(data), "--out", str(root / "lstm"), *SMALL])
    with pytest.raises(FileNotFoundError, match="does not exist"):
        run(["lm", "eval", str(tmp_path / "missing.pt")])
    with pytest.raises(FileNotFoundError, match="does not exist"):
        run(["lm", "train", "--model", "fwm", "--data", str(tmp_path / "nodata"), "--out", str(tmp_path / "x"), *SMALL])


def test_default_corpus_is_generated_babi_text(tmp_path, capsys):
    pytest.importorskip("fwm_rl.babi.generator")
    assert run(["lm", "train", "--model", "lstm", "--out", str(tmp_path / "babi"), "--max-steps", "2", *SMALL]) == 0
    out = capsys.readouterr().out
    assert "bAbI story generator" in out and "generated bAbI stories" in out and "recipe --preset small: a small model" in out
    assert (
        run(["lm", "eval", str(tmp_path / "babi" / "best.pt"), "--split", "valid", "--batch-size", "10", "--device", "cpu"])
        == 0
    )
    assert "perplexity" in capsys.readouterr().out


def test_presets_are_table_4_and_the_default_without_data_is_small(capsys):
    from fwm_rl.lm.presets import PRESETS

    table_4 = {  # dataset: dropout, dropoute, dropouth, dropouti, wdrop, batch size, Adam lr, ASGD lr (paper appendix H)
        "ptb": (0.4, 0.1, 0.3, 0.5, 0.66, 20, 0.001, 2.0),
        "wt2": (0.4, 0.1, 0.25, 0.7, 0.61, 80, 0.001, 0.5),
    }
    for name, row in table_4.items():
        m, t = PRESETS[name].model, PRESETS[name].train
        assert (
            m["dropout"],
            m["dropout_e"],
            m["dropout_h"],
            m["dropout_i"],
            m["wdrop"],
            t["batch_size"],
            t["lr"],
            t["asgd_lr"],
        ) == row
    # "1000 epochs on PTB and 1600 epochs on WT2 ... switched to ASGD after 916 epochs and 1372 epochs"
    assert [(PRESETS[n].train["epochs"], PRESETS[n].train["asgd_after"]) for n in ("ptb", "wt2")] == [
        (1000, 916),
        (1600, 1372),
    ]
    import json

    assert run(["lm", "train", "--model", "fwm", "--print-config"]) == 0
    config = json.loads(capsys.readouterr().out)
    assert config["preset"] == "small" and config["train"]["epochs"] == 3
    assert run(["lm", "train", "--model", "fwm", "--preset", "ptb", "--epochs", "7", "--print-config"]) == 0
    config = json.loads(capsys.readouterr().out)
    assert (config["train"]["epochs"], config["train"]["asgd_after"], config["model"]["d_hidden"]) == (7, 916, 1150)


def test_final_test_of_the_best_weights_at_batch_size_1(tmp_path, capsys):
    import json
    import math

    data = write_corpus(tmp_path / "data")
    out = tmp_path / "run"
    assert run(["lm", "train", "--model", "fwm", "--data", str(data), "--out", str(out), "--max-steps", "4", *SMALL]) == 0
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
