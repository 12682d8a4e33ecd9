"""fwm_rl.lm: corpora, the AWD-LSTM / FWM language models, training, evaluation and resuming."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import pytest
import torch
from tiny_data import SHARED, WORDS, tiny_config, tiny_train, write_corpus

from fwm_rl.engine import load_checkpoint
from fwm_rl.lm.config import LMConfig, LMModelConfig
from fwm_rl.lm.corpus import EOS, Dictionary, babi_story_lines, find_split_files, load_corpus, tokenize_lines
from fwm_rl.lm.model import AWDLanguageModel, WeightDropLSTM, locked_dropout
from fwm_rl.lm.trainer import BEST, CHECKPOINT, LMTrainer, batchify, evaluate, load_model, tune_temperature


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    return write_corpus(tmp_path_factory.mktemp("tiny"))


# ------------------------------------------------------------------------------------------ corpus
def test_ptb_layout_counts_one_eos_per_line(tiny):
    corpus = load_corpus(tiny)
    for split in ("train", "valid", "test"):
        lines = (tiny / f"{split}.txt").read_text().splitlines()
        assert corpus.split(split).numel() == sum(len(line.split()) + 1 for line in lines)
        assert (corpus.split(split) == 0).sum() == len(lines)  # <eos> is index 0, once per line
    assert corpus.vocab.idx2word[0] == EOS
    assert set(corpus.vocab.idx2word) == set(WORDS) | {EOS}
    first = (tiny / "train.txt").read_text().split()[:3]
    assert corpus.vocab.decode(corpus.train[:3]) == first


def test_wikitext_gz_layout_reads_like_plain(tmp_path):
    plain = load_corpus(write_corpus(tmp_path / "p", seed=5))
    gz = load_corpus(write_corpus(tmp_path / "w", seed=5, layout="wikitext"))
    assert gz.vocab == plain.vocab
    for split in ("train", "valid", "test"):
        assert torch.equal(gz.split(split), plain.split(split))
    assert find_split_files(tmp_path / "w")["train"].name == "wiki.train.tokens.gz"


def test_missing_files_and_folders_are_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_corpus(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="train.txt"):
        load_corpus(tmp_path / "empty")
    folder = write_corpus(tmp_path / "c")
    (folder / "test.txt").unlink()
    with pytest.raises(FileNotFoundError, match="missing test.txt"):
        load_corpus(folder)


def test_out_of_vocabulary_word_is_an_error(tmp_path):
    folder = write_corpus(tmp_path / "c")
    with open(folder / "valid.txt", "a") as fh:
        fh.write(" the zebra sat\n")
    with pytest.raises(KeyError, match=r"'zebra'.*valid\.txt.*<unk>"):
        load_corpus(folder)
    with pytest.raises(KeyError, match="'zebra'"):
        Dictionary(["the"]).encode(["the", "zebra"])


def test_babi_lines_drop_numbers_and_supporting_ids():
    text = "1 Mary moved to the bathroom.\n2 John went to the hallway.\n3 Where is Mary?\tbathroom\t1\n1 Sandra left.\n"
    assert babi_story_lines(text) == [
        "mary moved to the bathroom .",
        "john went to the hallway .",
        "where is mary ? bathroom",
        "sandra left .",
    ]
    assert tokenize_lines(["a b", ""]) == ["a", "b", EOS, EOS]
    with pytest.raises(ValueError, match="malformed bAbI line"):
        babi_story_lines("Mary moved.\n")


def test_generated_babi_default_corpus():
    pytest.importorskip("fwm_rl.babi.generator")
    from fwm_rl.lm.corpus import babi_corpus

    corpus = babi_corpus(tasks=(1, 2), stories={"train": 30, "valid": 5, "test": 5})
    again = babi_corpus(tasks=(1, 2), stories={"train": 30, "valid": 5, "test": 5})
    assert torch.equal(corpus.train, again.train) and corpus.vocab == again.vocab  # deterministic
    assert corpus.valid.numel() > 0 and "?" in corpus.vocab and "." in corpus.vocab
    assert not torch.equal(corpus.valid[:50], corpus.test[:50])  # splits use different seeds


# ------------------------------------------------------------------------------------------- model
def test_locked_dropout_uses_one_mask_per_sequence():
    x = torch.ones(7, 3, 5)
    y = locked_dropout(x, 0.5, training=True)
    assert torch.equal(y, y[:1].expand_as(y)) and set(y.unique().tolist()) <= {0.0, 2.0}
    assert torch.equal(locked_dropout(x, 0.5, training=False), x)


def test_weight_drop_masks_only_hidden_to_hidden_weights():
    torch.manual_seed(0)
    layer = WeightDropLSTM(3, 5, weight_dropout=0.5)
    x, state = torch.randn(4, 2, 3), (torch.zeros(1, 2, 5), torch.zeros(1, 2, 5))
    reference = layer.lstm(x, state)[0]
    layer.train()
    dropped = layer(x, state)[0]
    assert torch.allclose(dropped[0], reference[0])  # step 0 does not use W_hh (zero state)
    assert not torch.allclose(dropped[1:], reference[1:])
    dropped.sum().backward()
    grad = layer.lstm.weight_hh_l0.grad
    assert grad is not None and (grad == 0).float().mean() > 0.3  # dropped entries get no gradient
    # the standard LSTM parameters stay in place (no "_raw" copies)
    assert [n for n, _ in layer.named_parameters()] == ["lstm." + n for n, _ in torch.nn.LSTM(3, 5).named_parameters()]
    layer.eval()
    assert torch.allclose(layer(x, state)[0], reference)


def test_tied_and_untied_embeddings():
    tied = AWDLanguageModel(tiny_config(20))
    assert tied.decoder.weight is tied.embedding.weight and tied.rnns[-1].lstm.hidden_size == 12
    untied = AWDLanguageModel(tiny_config(20, tie_weights=False))
    assert untied.decoder.weight is not untied.embedding.weight and untied.rnns[-1].lstm.hidden_size == 16


def test_fwm_model_adds_memory_reads_to_lstm_output():
    torch.manual_seed(0)
    fwm = AWDLanguageModel(tiny_config(20, "fwm")).eval()
    lstm = AWDLanguageModel(tiny_config(20)).eval()
    lstm.load_state_dict({k: v for k, v in fwm.state_dict().items() if not k.startswith("fwm.")})
    tokens = torch.randint(0, 20, (9, 2))
    out = fwm(tokens)
    assert out.state.fast_weights is not None and out.state.fast_weights.abs().sum() > 0
    assert not torch.allclose(out.logits, lstm(tokens).logits)
    # with the memory's reads silenced the model is exactly the LSTM: the residual is h + reads
    fwm.fwm.forward = lambda h, F=None: (torch.zeros_like(h), F)
    assert torch.allclose(fwm(tokens).logits, lstm(tokens).logits, atol=1e-6)
    with pytest.raises(ValueError, match=r"\[T, B\]"):
        lstm(torch.zeros(3, dtype=torch.long))


def test_config_checks():
    with pytest.raises(ValueError, match="memory must be one of fwm, lstm, got 'gru'"):
        LMModelConfig(10, memory="gru")
    with pytest.raises(ValueError, match="wdrop"):
        LMModelConfig(10, wdrop=1.0)
    with pytest.raises(ValueError, match="batch_size"):
        LMConfig(batch_size=0)
    with pytest.raises(ValueError, match="max_grad_norm"):
        LMConfig(max_grad_norm=-1.0)


# -------------------------------------------------------------------------------------- evaluation
def test_batchify_keeps_every_token_once():
    tokens = torch.arange(1, 12)
    inputs, targets = batchify(tokens, 3, pad=True)
    assert inputs.shape == (4, 3)
    assert sorted(t for t in targets.t().reshape(-1).tolist() if t >= 0) == tokens.tolist()
    assert inputs[0, 0] == 0  # the split is read after an <eos> start token
    real = targets[1:] >= 0  # within a stream, each target is the next input
    assert (inputs[1:][real] == targets[:-1][real]).all()
    _, trimmed = batchify(tokens, 3, pad=False)
    assert trimmed.numel() == 9 and (trimmed >= 0).all()


@pytest.mark.parametrize("kind", ["lstm", "fwm"])
def test_evaluation_scores_every_token_exactly_once(tiny, kind):
    corpus = load_corpus(tiny)
    torch.manual_seed(1)
    model = AWDLanguageModel(tiny_config(len(corpus.vocab), kind)).eval()
    tokens = corpus.test
    # independent computation: one forward pass over "<eos> w_1 .. w_N", cross-entropy of every w_i
    stream = torch.cat([torch.zeros(1, dtype=torch.long), tokens])
    with torch.no_grad():
        logits = model(stream[:-1, None]).logits[:, 0]
    manual = -logits.log_softmax(-1).gather(1, tokens[:, None])[:, 0]
    n_words = sum(len(line.split()) + 1 for line in (tiny / "test.txt").read_text().splitlines())
    results = [evaluate(model, tokens, batch_size=1, bptt=bptt, return_token_losses=True) for bptt in (1, 5, 70, 10_000)]
    for result in results:  # the state is carried across windows: identical for every BPTT length
        assert result.n_tokens == n_words == tokens.numel()
        assert result.loss == pytest.approx(manual.mean().item(), rel=1e-5)
        assert torch.allclose(result.token_losses, manual, atol=1e-5)
    batched = evaluate(model, tokens, batch_size=4, bptt=5)
    assert batched.n_tokens == tokens.numel()  # padding is not counted
    assert math.isclose(results[0].perplexity, math.exp(results[0].loss))


def test_temperature_tuning_picks_the_best_candidate(tiny):
    corpus = load_corpus(tiny)
    torch.manual_seed(2)
    model = AWDLanguageModel(tiny_config(len(corpus.vocab))).eval()
    candidates = (0.5, 1.0, 2.0)
    best, loss = tune_temperature(model, corpus.valid, batch_size=3, bptt=5, candidates=candidates)
    direct = {t: evaluate(model, corpus.valid, batch_size=3, bptt=5, temperature=t).loss for t in candidates}
    assert best == min(direct, key=direct.get)
    assert loss == pytest.approx(direct[best], rel=1e-5)


# -------------------------------------------------------------------------------------------- training
@pytest.mark.parametrize("kind", ["lstm"])  # (the FWM model: tests/engine/test_contract.py)
def test_resume_continues_identically(tiny, tmp_path, kind):
    corpus = load_corpus(tiny)
    cfg = tiny_config(len(corpus.vocab), kind)
    # ASGD after the first validation, so resuming also covers the averaged-SGD state
    straight = LMTrainer(corpus, cfg, tiny_train(steps=8, asgd_after=1), tmp_path / "a", data=str(tiny))
    straight.train(show_progress=False)
    first = LMTrainer(corpus, cfg, tiny_train(steps=6, asgd_after=1), tmp_path / "b", data=str(tiny))
    first.train(show_progress=False)
    resumed = LMTrainer.resume(tmp_path / "b", steps=8)
    assert resumed.step == 6 and resumed.optimizer_name == "asgd"
    resumed.train(show_progress=False)
    assert straight.optimizer_name == "asgd" and straight.step == resumed.step == 8
    for (name, p), q in zip(straight.model.named_parameters(), resumed.model.parameters()):
        assert torch.equal(p, q), name
    assert torch.equal(straight.state.layers[0][0], resumed.state.layers[0][0])
    # the training-loss log continues too (the interrupted run adds one validation row at step 6)
    logs = [
        [(r["step"], r["train/loss"]) for r in csv.DictReader(open(tmp_path / run / "metrics.csv")) if r["train/loss"]]
        for run in ("a", "b")
    ]
    assert logs[0] == logs[1] and len(logs[0]) == 4


def test_training_lowers_validation_loss_and_saves_averaged_weights(tiny, tmp_path):
    corpus = load_corpus(tiny)
    cfg = tiny_config(len(corpus.vocab), dropout=0.1, dropout_h=0.1, dropout_i=0.1, dropout_e=0.0, wdrop=0.1)
    trainer = LMTrainer(
        corpus,
        cfg,
        tiny_train(steps=60, eval_every=20, lr=1e-2, asgd_after=2, asgd_lr=1.0, tune_temperature=True),
        tmp_path / "run",
    )
    untrained = trainer.validate()
    summary = trainer.train(show_progress=False)
    assert summary.best_valid_loss < untrained - 0.2
    model, ckpt = load_model(tmp_path / "run" / BEST, "cpu")
    assert ckpt["task"]["temperature"] == summary.temperature
    assert evaluate(model, corpus.valid, 10, 6).loss == pytest.approx(summary.best_valid_loss, rel=1e-5)
    # under ASGD the saved weights are the average, not the last iterate
    last = load_checkpoint(tmp_path / "run" / CHECKPOINT)
    assert not torch.equal(last["task"]["eval_model"]["rnns.0.lstm.weight_hh_l0"], last["model"]["rnns.0.lstm.weight_hh_l0"])
    with pytest.raises(ValueError, match="--resume"):
        LMTrainer(corpus, cfg, tiny_train(), tmp_path / "run").train(show_progress=False)


def test_resume_refuses_setting_changes(tiny, tmp_path):
    with pytest.raises(FileNotFoundError):
        LMTrainer.resume(tmp_path / "none")
    with pytest.raises(ValueError, match="lr"):
        LMTrainer.resume(tmp_path / "none", lr=0.1)


# --------------------------------------------------------------------------------------- shared data
@pytest.mark.skipif(not (SHARED / "ptb" / "train.txt").exists(), reason="shared PTB data absent")
def test_shared_ptb_has_standard_counts():
    corpus = load_corpus(SHARED / "ptb")
    assert (corpus.train.numel(), corpus.valid.numel(), corpus.test.numel()) == (929_589, 73_760, 82_430)
    assert len(corpus.vocab) == 10_000


@pytest.mark.skipif(not (SHARED / "wikitext-2" / "wiki.train.tokens.gz").exists(), reason="shared WikiText-2 data absent")
def test_shared_wikitext2_gz_has_standard_counts():
    corpus = load_corpus(SHARED / "wikitext-2")
    assert (corpus.train.numel(), corpus.valid.numel(), corpus.test.numel()) == (2_088_628, 217_646, 245_569)
    assert len(corpus.vocab) == 33_278
