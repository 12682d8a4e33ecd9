"""catbAbI: official-format reader, preprocessing, batching, models, training, CLI (fwm_rl.babi)."""

from __future__ import annotations

import argparse
import csv
import json
import tarfile
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
from tiny_data import SHARED_BABI, run_cli, write_variant

from fwm_rl.babi import cli as babi_cli
from fwm_rl.babi.batching import TrainStream, build_rows, eval_segments
from fwm_rl.babi.catbabi import DataSpec, load_catbabi, split_stats, story_tokens
from fwm_rl.babi.config import PRESETS, CatbAbIConfig, CatbAbIModelConfig, preset_configs
from fwm_rl.babi.models import CatbAbIModel, StackedLSTM
from fwm_rl.babi.pretrained import load_model
from fwm_rl.babi.reader import BabiFormatError, Question, open_babi, parse_babi_text
from fwm_rl.babi.trainer import CatbAbITrainer, evaluate
from fwm_rl.cli import main


@pytest.fixture(scope="module")
def variant(tmp_path_factory) -> Path:
    return write_variant(tmp_path_factory.mktemp("babi"))


@pytest.fixture(scope="module")
def data(variant):
    return load_catbabi(DataSpec(path=str(variant)))


# ------------------------------------------------------------------- reader
def test_parse_reads_every_story_and_question():
    text = "1 Mary moved to the hall.\n2 Where is Mary?\thall\t1\n1 Bill went east.\n2 Where is Bill?\tn,w\t1\n3 Is it?\tyes\t1 2\n"
    stories = parse_babi_text(text, task=19, source="qa19_train.txt")
    assert [len(s.lines) for s in stories] == [2, 3]  # the last story counts too
    assert stories[1].lines[2] == Question("Is it?", "yes", (1, 2))
    assert stories[1].source == "qa19_train.txt:3" and stories[0].task == 19
    words, answer = story_tokens(stories[1])
    assert words == ["bill", "went", "east", ".", "where", "is", "bill", "?", "n,w", "is", "it", "?", "yes"]
    assert [w for w, a in zip(words, answer) if a] == ["n,w", "yes"]


@pytest.mark.parametrize(
    "line, problem",
    [
        ("Mary moved to the hall.", "no line index"),
        ("2 Mary moved to the hall.", "does not follow"),
        ("1 Mary moved to the hall", "must end with '.'"),
        ("1 Where is Mary?", "without a tab-separated answer"),
        ("1 Where is Mary\thall\t1", "question line needs"),
        ("1 Where is Mary?\thall\tone", "supporting ids"),
    ],
)
def test_malformed_line_names_file_and_line(tmp_path, line, problem):
    folder = write_variant(tmp_path, n=(2, 1, 1), tasks=(1,))
    path = folder / "qa1_valid.txt"
    path.write_text(path.read_text() + line + "\n")
    bad_line = len(path.read_text().splitlines())
    with pytest.raises(BabiFormatError, match=problem) as info:
        open_babi(folder).read(["valid"])
    assert f"qa1_valid.txt, line {bad_line}" in str(info.value)


def test_locations_archive_tasks_folder_variant_folder(tmp_path, variant):
    counts = {k: len(v) for k, v in open_babi(variant).read().items()}
    assert counts == {"train": 60, "valid": 8, "test": 8}
    archive = tmp_path / "babi.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(variant.parent, arcname="tasks_1-20_v1-2")
    for where in (archive, variant.parent, variant.parent.parent):
        src = open_babi(where, "en-valid")
        assert src.variant == "en-valid" and {k: len(v) for k, v in src.read().items()} == counts
    with pytest.raises(FileNotFoundError, match="en-valid-10k"):
        open_babi(variant.parent)  # default variant is not there
    with pytest.raises(ValueError, match="variant folder"):
        open_babi(variant, "en-10k")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        open_babi(tmp_path / "nothing")


def test_missing_file_is_reported_and_can_be_skipped(tmp_path, capsys):
    folder = write_variant(tmp_path, n=(5, 2, 3), skip={(2, "train")})
    with pytest.raises(FileNotFoundError, match=r"qa2_train\.txt.*--allow-missing"):
        open_babi(folder).read()
    with pytest.warns(UserWarning, match="qa2_train"):
        assert len(open_babi(folder).read(["train"], allow_missing=True)["train"]) == 5
    # stats reads only the splits asked for, so the missing train file does not matter
    assert run_cli(["babi", "stats", "--data", str(folder), "--splits", "valid,test", "--per-task"]) == 0
    out = capsys.readouterr().out
    rows = [line.split() for line in out.splitlines()]
    assert ["valid", "2", "2", "6", "104"] in rows and ["test", "all", "6", "18", "312"] in rows
    assert not any(row and row[0] == "train" for row in rows)
    # an empty task file counts as missing
    (folder / "qa1_test.txt").write_text("")
    with pytest.raises(ValueError, match=r"without a single story: .*qa1_test\.txt.*--allow-missing"):
        open_babi(folder).read(["test"])
    with pytest.warns(UserWarning, match="empty bAbI files"):
        assert len(open_babi(folder).read(["test"], allow_missing=True)["test"]) == 3


def test_variant_without_valid_files_holds_out_the_end_of_train(tmp_path):
    folder = write_variant(tmp_path, n=(20, 0, 3), tasks=(1,), variant="en")
    path = folder / "qa1_some-task_train.txt"
    whole = parse_babi_text(path.read_text(), 1, str(path))
    split = open_babi(folder).read()
    assert len(whole) == 20 and split["valid"] == whole[18:] and split["train"] == whole[:18]


# ------------------------------------------------------------- preprocessing
def test_stats_and_vocabulary(data, variant):
    stories = open_babi(variant).read(["valid"])["valid"]
    st = split_stats(stories)
    assert st["stories"] == 8 and st["questions"] == 24
    assert st["tokens"] == sum(len(story_tokens(s)[0]) for s in stories) + 8
    vocab = data.vocab
    assert vocab.words[:2] == ["<pad>", "<eos>"] and "?" in vocab.index and "kitchen" in vocab.index
    assert all(w == w.lower() for w in vocab.words)
    with pytest.raises(ValueError, match="not in the vocabulary"):
        vocab.encode(["zebra"])


# ------------------------------------------------------------------ batching
def _row_stories(x: np.ndarray, keep: np.ndarray, eos: int) -> list[tuple[int, ...]]:
    tokens = x[keep].tolist()
    starts = [i for i, t in enumerate(tokens) if t == eos] + [len(tokens)]
    assert starts[0] == 0
    return [tuple(tokens[a + 1 : b]) for a, b in zip(starts[:-1], starts[1:])]


def test_every_story_once_per_epoch_and_padding_masked(data):
    split, v = data.splits["train"], data.vocab
    stream = TrainStream(split, batch_size=7, bptt=50, eos=v.eos, pad=v.pad, seed=3)
    expected = Counter(tuple(split.tokens[split.offsets[i] : split.offsets[i + 1]]) for i in range(len(split)))
    for epoch in (0, 1):
        rows = build_rows(split, stream.order(epoch), 7, v.eos, v.pad)
        seen = Counter(s for r in range(7) for s in _row_stories(rows["x"][r], rows["keep"][r], v.eos))
        assert seen == expected  # nothing duplicated, nothing skipped
        assert (rows["y"][~rows["keep"]] == v.pad).all() and (rows["x"][~rows["keep"]] == v.pad).all()
        assert not rows["keep"].all()  # streams of unequal length: the tail is padding
        assert (rows["answer"] == (rows["x"] == v.question_mark)).all()
        real = rows["keep"][:, 1:] & rows["keep"][:, :-1]
        assert (rows["y"][:, :-1][real] == rows["x"][:, 1:][real]).all()  # targets are the next input
    assert not np.array_equal(stream.order(0), stream.order(1))
    segs = stream.epoch_segments(0)
    assert all(s.x.shape == (50, 7) for s in segs[:-1]) and segs[-1].x.shape[0] <= 50
    n = len(segs)
    got = [next(stream) for _ in range(n + 1)]
    assert torch.equal(got[0].x, segs[0].x) and stream.epoch == 1 and torch.equal(got[n].x, stream.epoch_segments(1)[0].x)


def test_eval_stream_is_fixed(data):
    v = data.vocab
    a = eval_segments(data.splits["valid"], 4, 30, v.eos, v.pad)
    torch.manual_seed(123)
    np.random.seed(5)
    b = eval_segments(data.splits["valid"], 4, 30, v.eos, v.pad)
    assert len(a) == len(b) and all(torch.equal(s.x, t.x) and torch.equal(s.keep, t.keep) for s, t in zip(a, b))


def test_qa_loss_only_sees_answers(data):
    v = data.vocab
    segs = eval_segments(data.splits["valid"], 4, 40, v.eos, v.pad)
    noisy = [s._replace(y=torch.where(s.answer, s.y, torch.randint_like(s.y, len(v)))) for s in segs]
    model = CatbAbIModel(preset_configs("small", "fwm")[0], len(v))
    qa = [evaluate(model, ss, "qa", torch.device("cpu")) for ss in (segs, noisy)]
    lm = [evaluate(model, ss, "lm", torch.device("cpu")) for ss in (segs, noisy)]
    assert qa[0].loss == pytest.approx(qa[1].loss) and qa[0].answer_accuracy == qa[1].answer_accuracy
    assert lm[0].loss != pytest.approx(lm[1].loss)
    assert qa[0].answers == 24 and set(qa[0].per_task) == {1, 2}


# -------------------------------------------------------------------- models
@pytest.mark.parametrize("kind", ["fwm", "lstm"])
def test_model_shapes_and_padding_holds_state(kind):
    torch.manual_seed(0)
    model = CatbAbIModel(preset_configs("small", kind, n_layers=2)[0], vocab_size=11)
    x = torch.randint(2, 11, (6, 3))
    keep = torch.ones(6, 3, dtype=torch.bool)
    keep[4:, 1] = False
    logits, state = model(x, keep=keep)
    assert logits.shape == (6, 3, 11)
    _, short = model(x[:4, 1:2])

    def flat(s):
        return [t for t in (s if isinstance(s, list) else [s]) for t in (t if isinstance(t, tuple) else [t])]

    if kind == "fwm":
        (h, c), F = state
        (h1, c1), F1 = short
        pairs = [(h[:, 1:2], h1), (c[:, 1:2], c1), (F[1:2], F1)]
    else:
        pairs = [(a[:, 1:2], b) for a, b in zip(flat(state), flat(short))]
    for a, b in pairs:
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)


def test_stacked_lstm_residual_layers():
    lstm = StackedLSTM(4, 8, n_layers=3, residual=True)
    out, state = lstm(torch.randn(5, 2, 4), lstm.initial_state(2))
    assert out.shape == (5, 2, 8) and len(state) == 3


# ------------------------------------------------------------------ training
SMALL = CatbAbIConfig(
    batch_size=4, bptt=40, steps=6, eval_every=3, eval_batch_size=4, log_every=1, lr=3e-3, device="cpu", tensorboard=False
)


def _trainer(data, variant, out, kind="fwm", **cfg):
    config = CatbAbIConfig(**{**SMALL.to_dict(), **cfg})
    model, _ = preset_configs("small", kind, embedding_size=32, hidden_size=32)
    return CatbAbITrainer(model, config, DataSpec(path=str(variant)), out, data=data)


def test_training_lowers_the_loss(data, variant, tmp_path):
    trainer = _trainer(data, variant, tmp_path / "run", steps=60, eval_every=60, log_every=10)
    trainer.train()
    losses = [r["train/loss"] for r in trainer_log(tmp_path / "run") if not np.isnan(r.get("train/loss", np.nan))]
    assert losses[-1] < 0.8 * losses[0]
    assert (tmp_path / "run" / "results.json").exists() and (tmp_path / "run" / "checkpoint.pt").exists()


def trainer_log(out: Path) -> list[dict]:
    with open(out / "metrics.csv", newline="") as fh:
        return [{k: float(v) if v else float("nan") for k, v in row.items()} for row in csv.DictReader(fh)]


@pytest.mark.parametrize("kind", ["lstm"])  # (the FWM model: tests/engine/test_contract.py)
def test_resume_continues_identically(data, variant, tmp_path, kind):
    straight = _trainer(data, variant, tmp_path / "a", kind)
    straight.train()
    half = _trainer(data, variant, tmp_path / "b", kind, steps=3)
    half.train()
    resumed = CatbAbITrainer.resume(tmp_path / "b", device="cpu", steps=6, data=data, tensorboard=False)
    assert resumed.step == 3
    resumed.train()
    for (name, p), q in zip(straight.model.state_dict().items(), resumed.model.state_dict().values()):
        assert torch.equal(p, q), name
    assert straight.stream.state_dict() == resumed.stream.state_dict()


def test_cli_train_eval_explain(variant, tmp_path, capsys):
    out = tmp_path / "cli"
    common = [
        "--data",
        str(variant),
        "--batch-size",
        "4",
        "--bptt",
        "40",
        "--eval-every",
        "2",
        "--eval-batch-size",
        "4",
        "--embedding-size",
        "16",
        "--hidden-size",
        "16",
        "--device",
        "cpu",
        "--no-tensorboard",
    ]
    assert run_cli(["babi", "train", "--memory", "fwm", "--steps", "2", "--out", str(out), *common]) == 0
    printed = capsys.readouterr().out
    assert "test (final weights, batch size 4): answer accuracy" in printed
    assert "test (best validation loss, step 2, batch size 1): answer accuracy" in printed and "task  2" in printed
    # the paper's protocol (appendix D): the best-validation checkpoint, tested at batch size 1; the final weights too
    results = json.loads((out / "results.json").read_text())
    best = results["test_best_valid"]
    assert (best["checkpoint"], best["step"], best["batch_size"], results["test_batch_size"]) == ("best.pt", 2, 1, 4)
    assert best["answers"] == results["test"]["answers"]  # every test answer once, whatever the batch size
    with pytest.raises(ValueError, match=f"already holds a run .*--resume {out}.*--overwrite"):
        run_cli(["babi", "train", "--steps", "2", "--out", str(out), *common])
    assert run_cli(["babi", "train", "--memory", "fwm", "--steps", "2", "--out", str(out), "--overwrite", *common]) == 0
    with pytest.raises(ValueError, match="cannot be combined with --resume"):
        run_cli(["babi", "train", "--resume", str(out), "--overwrite", "--device", "cpu"])
    with pytest.raises(ValueError, match="checkpoint's settings.*not --lr, --hidden-size"):
        run_cli(
            ["babi", "train", "--resume", str(out), "--lr", "0.1", "--hidden-size", "8", "--steps", "3", "--device", "cpu"]
        )
    may = "only --steps, --time-budget, --device, --tensorboard and --data (the run's data in a new place) may"
    for option, named in (
        (["--memory", "lstm"], "--memory"),
        (["--seq-len", "50"], "--bptt"),
        (["--preset", "small"], "--preset"),
    ):
        assert main(["babi", "train", "--resume", str(out), *option, "--steps", "3", "--device", "cpu"]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and may in err and f", not {named}" in err, err
    assert run_cli(["babi", "eval", str(out / "checkpoint.pt"), "--split", "valid", "--per-task", "--device", "cpu"]) == 0
    printed = capsys.readouterr().out
    assert "valid (batch size 1): answer accuracy" in printed and "task  2" in printed
    png = tmp_path / "explain.png"
    assert run_cli(["babi", "explain", str(out), "--out", str(png), "--task", "2", "--device", "cpu"]) == 0
    assert png.read_bytes()[:4] == b"\x89PNG"
    with pytest.raises(ValueError, match="out of range"):
        run_cli(["babi", "explain", str(out), "--out", str(png), "--index", "999", "--device", "cpu"])
    lstm = tmp_path / "lstm"
    assert run_cli(["babi", "train", "--memory", "lstm", "--mode", "lm", "--steps", "1", "--out", str(lstm), *common]) == 0
    with pytest.raises(ValueError, match="LSTM baseline"):
        run_cli(["babi", "explain", str(lstm), "--out", str(png), "--device", "cpu"])


def test_default_training_data_is_generated(tmp_path, capsys):
    pytest.importorskip("fwm_rl.babi.generator")
    out = tmp_path / "gen"
    assert (
        run_cli(
            [
                "babi",
                "train",
                "--generated",
                "4,2,2",
                "--tasks",
                "1,15",
                "--steps",
                "1",
                "--batch-size",
                "2",
                "--eval-batch-size",
                "2",
                "--out",
                str(out),
                "--device",
                "cpu",
                "--no-tensorboard",
            ]
        )
        == 0
    )
    assert "generated bAbI-style stories" in capsys.readouterr().out


# -------------------------------------------------------------- shared data
@pytest.mark.skipif(not SHARED_BABI.exists(), reason="shared bAbI data not available")
def test_shared_official_data_valid_and_test(capsys):
    src = open_babi(SHARED_BABI)  # en-valid-10k
    assert src.variant == "en-valid-10k" and src.tasks == list(range(1, 21))
    with pytest.raises(FileNotFoundError, match=r"qa3_train\.txt"):
        src.read(["train"])
    assert run_cli(["babi", "stats", "--data", str(SHARED_BABI), "--splits", "valid,test"]) == 0
    rows = [line.split()[:4] for line in capsys.readouterr().out.splitlines()]
    # every story counts: 20 more than the paper's table 3 (the authors' script drops each file's last story)
    assert ["valid", "all", "6,265", "20,002"] in rows and ["test", "all", "6,267", "20,000"] in rows


def test_cli_generate_variant_without_valid_split(tmp_path):
    parser = argparse.ArgumentParser()
    babi_cli.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(
        ["babi", "generate", "--out", str(tmp_path), "--variant", "en", "--stories", "3,2", "--tasks", "1"]
    )
    assert args.func(args) == 0
    names = sorted(p.name for p in (tmp_path / "tasks_1-20_v1-2" / "en").iterdir())
    assert names == ["qa1_single-supporting-fact_test.txt", "qa1_single-supporting-fact_train.txt"]
    bad = parser.parse_args(["babi", "generate", "--out", str(tmp_path), "--variant", "en", "--stories", "3,2,2"])
    with pytest.raises(ValueError, match="needs TRAIN,TEST counts"):
        bad.func(bad)


def test_fill_missing_from_another_variant(tmp_path):
    big = write_variant(tmp_path, n=(6, 2, 2), variant="en-valid-10k", skip={(2, "train")})
    small = write_variant(tmp_path, n=(3, 2, 2), variant="en-valid")
    tasks_folder = big.parent
    with pytest.raises(FileNotFoundError, match="qa2_train"):
        DataSpec(path=str(tasks_folder)).read(["train"])
    for path in (tasks_folder, big):  # the tasks folder, or the variant folder itself
        spec = DataSpec(path=str(path), fill_missing_from="en-valid")
        with pytest.warns(UserWarning, match=r"filled the missing files en-valid/qa2_train\.txt from en-valid"):
            train = spec.read(["train"])["train"]
        assert [s.task for s in train].count(1) == 6 and [s.task for s in train].count(2) == 3  # task 2 from en-valid
        assert all(str(small) in s.source for s in train if s.task == 2) and "filled from en-valid" in spec.describe()
    assert (
        run_cli(
            [
                "babi",
                "stats",
                "--data",
                str(tasks_folder),
                "--variant",
                "en-valid-10k",
                "--fill-missing-from",
                "en-valid",
                "--splits",
                "train",
            ]
        )
        == 0
    )
    with pytest.raises(ValueError, match="another variant"):
        run_cli(["babi", "stats", "--fill-missing-from", "en-valid"])


def test_released_preset_is_the_authors_scripts():
    """fwm_catbabi_ra.sh / fwm_catbabi_lm.sh: embedding 256, hidden 256, d_fwm 32, 3 reads, residual=False
    (the trainer's defaults carry their batch 32, lr 1e-3 and 50k steps); the paper preset keeps the residual."""
    (released, released_train), (paper, paper_train) = preset_configs("released", "fwm"), preset_configs("paper", "fwm")
    assert (released.embedding_size, released.hidden_size, released.d_fwm, released.n_reads, released.residual) == (
        256,
        256,
        32,
        3,
        False,
    )
    assert paper.residual and {k: v for k, v in paper.to_dict().items() if k != "residual"} == {
        k: v for k, v in released.to_dict().items() if k != "residual"
    }
    assert released_train == paper_train == CatbAbIConfig()
    assert (paper_train.batch_size, paper_train.lr, paper_train.steps) == (32, 1e-3, 50_000)


def test_every_preset_run_is_named_by_its_memory():
    for name, preset in PRESETS.items():
        assert set(preset.runs) == {"fwm", "lstm"}, name
        for memory in preset.runs:
            model, _ = preset_configs(name, memory)
            assert model.memory == memory == preset.run(memory)["memory"]
    with pytest.raises(ValueError, match="unknown preset 'huge': choose from paper, released, small"):
        preset_configs("huge", "fwm")


def _print_config(argv: list[str], capsys) -> dict:
    assert main(["babi", "train", *argv, "--print-config"]) == 0
    return json.loads(capsys.readouterr().out)


def test_the_default_steps_are_the_presets(variant, capsys):
    """Generated data trains the small preset, 3,000 steps; --data the paper preset, the config's 50,000."""
    small, paper = _print_config([], capsys), _print_config(["--data", str(variant)], capsys)
    assert small["train"]["steps"] == PRESETS["small"].run("fwm")["steps"] == 3_000
    assert paper["train"] == CatbAbIConfig().to_dict() and paper["model"] == CatbAbIModelConfig().to_dict()
    assert _print_config(["--steps", "7"], capsys)["train"]["steps"] == 7


def test_old_flags_are_aliases_of_the_new_fields(capsys):
    """--model, --layers and --seq-len (before issue 33) set memory, n_layers and bptt."""
    old = _print_config(["--model", "lstm", "--layers", "3", "--seq-len", "50"], capsys)
    new = _print_config(["--memory", "lstm", "--n-layers", "3", "--bptt", "50"], capsys)
    assert old == new and (new["model"]["memory"], new["model"]["n_layers"], new["train"]["bptt"]) == ("lstm", 3, 50)
    assert not _print_config(["--no-tensorboard"], capsys)["train"]["tensorboard"]


def test_a_checkpoint_with_the_old_field_names_loads_and_resumes(data, variant, tmp_path):
    """A checkpoint written before the renames (configs with model, layers, seq_len) evaluates and resumes."""
    trainer = _trainer(data, variant, tmp_path / "run", "lstm", steps=2, eval_every=2)
    trainer.train()
    path = tmp_path / "run" / "checkpoint.pt"
    ckpt = torch.load(path, weights_only=True)
    old = {"memory": "model", "n_layers": "layers", "bptt": "seq_len"}
    for part in ("model", "train"):
        ckpt["configs"][part] = {old.get(k, k): v for k, v in ckpt["configs"][part].items()}
    assert {"model", "layers"} <= set(ckpt["configs"]["model"]) and "seq_len" in ckpt["configs"]["train"]
    torch.save(ckpt, path)
    model, _, config, _ = load_model(path, device="cpu")
    assert (model.config, config) == (trainer.model_config, trainer.config)
    resumed = CatbAbITrainer.resume(path, device="cpu", steps=3, data=data, tensorboard=False)
    assert (resumed.step, resumed.model_config, resumed.config.bptt) == (2, trainer.model_config, trainer.config.bptt)
    resumed.train()
    assert resumed.step == 3
