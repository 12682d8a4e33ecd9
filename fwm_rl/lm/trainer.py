"""Training and evaluation of the word-level language models (paper appendix H, after AWD-LSTM).

Training follows Merity et al. (2018) as the authors' code does: the training text is cut into
``batch_size`` parallel streams; each step takes a window of variable length (``bptt`` with
probability 0.95, else ``bptt / 2``, then jittered by N(0, 5)) and scales the learning rate by
``seq_len / bptt``; the recurrent state is carried from window to window (truncated BPTT) and reset
at every epoch. The loss adds activation regularisation (AR, ``ar_alpha``) on the dropped last-layer
output and temporal activation regularisation (TAR, ``tar_beta``) on the undropped one. Adam is used
first and may be swapped for averaged SGD (``asgd_after`` validations, or AWD-LSTM's non-monotone
trigger ``nonmono``); under ASGD the averaged weights are the ones validated and saved.

Every token of a split is predicted exactly once: the split is read as ``<eos> w_1 ... w_N`` (the
artificial start token ``x_0`` of the paper is the end-of-sentence token) and the model predicts
``w_1 ... w_N``. Final evaluation uses batch size 1 over the whole split, as the paper's table 5.

Outputs in ``out_dir``: ``checkpoint.pt`` (full training state; ``--resume`` continues from it
exactly), ``best.pt`` (the weights with the best validation loss, plus the softmax temperature
tuned on validation), ``metrics.csv``, TensorBoard events and ``results.json`` (written at the end: the final test of
``best.pt`` where there is one, and the training behind it; it marks a finished run, which ``--resume`` leaves as it is).

Under ``torchrun`` training is data-parallel over the ``batch_size`` streams (:mod:`fwm_rl.engine.distributed`):
each process trains its contiguous share of the streams with its own carried state, every process draws
the same window lengths, and the gradients (each of a mean over equally long rows) are combined with the
process's share of the rows as weight before clipping, so an update equals the single-process one
(without dropout; with dropout each process draws its own masks). Validation splits its streams the same
way. Rank 0 alone logs, tunes the temperature and writes files; the carried state is gathered to the
full batch in ``checkpoint.pt``, which therefore resumes under any number of processes.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from fwm_rl.checks import check_int, check_real
from fwm_rl.engine import (
    BEST,
    CHECKPOINT,
    RESULTS,
    RunClaim,
    RunFinished,
    RunLogger,
    atomic_save,
    autocast,
    capture_rng,
    checkpoint_file,
    finished_run,
    gradient_step,
    load_weights,
    make_checkpoint,
    progress,
    read_checkpoint,
    recorded_results,
    resolve_device,
    restore_rng,
    run_record,
    set_seed,
    train_loop,
)
from fwm_rl.engine.distributed import (
    all_reduce_sum,
    broadcast_object,
    gather_rows,
    hold_run_folder,
    init_distributed,
    row_share,
    seed_other_ranks,
    shard_rows,
)
from fwm_rl.lm.config import LMConfig, LMModelConfig
from fwm_rl.lm.corpus import EOS_INDEX, Corpus, Dictionary, load_data
from fwm_rl.lm.model import AWDLanguageModel, LMState

__all__ = [
    "BEST",
    "CHECKPOINT",
    "LMEvalResult",
    "LMTrainer",
    "TrainSummary",
    "batchify",
    "evaluate",
    "eval_weights",
    "load_model",
    "tune_temperature",
]

#: What a run writes into its folder (what ``overwrite`` replaces).
RUN_OUTPUTS = (CHECKPOINT, BEST, RESULTS, "metrics.csv", "tb", f".{CHECKPOINT}.*.tmp", f".{BEST}.*.tmp")
#: Softmax temperatures tried by :func:`tune_temperature`.
TEMPERATURES = tuple(round(0.7 + 0.02 * i, 2) for i in range(31))


@dataclass
class LMEvalResult:
    """Mean cross-entropy (nats per token) over ``n_tokens`` predicted tokens."""

    loss: float
    n_tokens: int
    #: per-token losses in text order (only when asked for)
    token_losses: Tensor | None = None

    @property
    def perplexity(self) -> float:
        return math.exp(self.loss)

    @property
    def bits_per_word(self) -> float:
        return self.loss / math.log(2)


@dataclass
class TrainSummary:
    step: int
    epoch: int
    best_valid_loss: float
    temperature: float
    tokens_per_second: float
    out_dir: Path
    #: the final test of best.pt (``results.json``): split -> mean loss, at ``test_batch_size``; None when not run
    final: dict[str, float] | None = None

    @property
    def best_valid_perplexity(self) -> float:
        return math.exp(self.best_valid_loss)


def batchify(tokens: Tensor, batch_size: int, pad: bool) -> tuple[Tensor, Tensor]:
    """Inputs and targets, both ``[L, batch_size]``: ``batch_size`` contiguous streams of the split.

    The split ``w_1 .. w_N`` is read as ``<eos> w_1 .. w_N``, so there are exactly ``N``
    (input, target) pairs. With ``pad`` the last stream is padded (target ``-1``, ignored by the
    loss) so that every pair is kept; without it the pairs that do not fill a whole row are dropped
    (training, as AWD-LSTM).
    """
    if tokens.dim() != 1:
        raise ValueError(f"tokens must be a 1-D tensor of word indices, got shape {tuple(tokens.shape)}")
    check_int("batch_size", batch_size)
    stream = torch.cat([tokens.new_full((1,), EOS_INDEX), tokens])
    inputs, targets = stream[:-1], stream[1:]
    n = inputs.numel()
    length = math.ceil(n / batch_size) if pad else n // batch_size
    if length < 1:
        raise ValueError(f"a split of {n} tokens is too short for batch size {batch_size}")
    total = length * batch_size
    if pad:
        inputs = torch.cat([inputs, inputs.new_zeros(total - n)])
        targets = torch.cat([targets, targets.new_full((total - n,), -1)])
    return inputs[:total].view(batch_size, length).t().contiguous(), targets[:total].view(batch_size, length).t().contiguous()


def _windows(length: int, bptt: int) -> Iterator[slice]:
    for start in range(0, length, bptt):
        yield slice(start, min(start + bptt, length))


@torch.no_grad()
def _stream_losses(
    model: AWDLanguageModel,
    tokens: Tensor,
    batch_size: int,
    bptt: int,
    temperature: float = 1.0,
    rows: slice = slice(None),
    show_progress: bool = False,
) -> tuple[Tensor, Tensor]:
    """Per-token losses ``[L, rows]`` of the streams ``rows`` of ``batchify(tokens, batch_size)`` and
    the mask of real (non-padding) targets."""
    check_real("temperature", temperature, positive=True)
    was_training = model.training
    model.eval()
    device = model.embedding.weight.device
    inputs, targets = (t[:, rows].to(device) for t in batchify(tokens, batch_size, pad=True))
    state = model.initial_state(inputs.size(1))
    losses = torch.zeros_like(targets, dtype=torch.float32)
    windows = list(_windows(inputs.size(0), bptt))
    for window in progress(windows, desc="eval", disable=not show_progress):
        out = model(inputs[window], state)
        state = out.state
        logits = out.logits / temperature
        losses[window] = (
            F.cross_entropy(
                logits.reshape(-1, logits.size(-1)), targets[window].reshape(-1), ignore_index=-1, reduction="none"
            )
            .view_as(targets[window])
            .float()
        )
    model.train(was_training)
    return losses, targets >= 0


def evaluate(
    model: AWDLanguageModel,
    tokens: Tensor,
    batch_size: int = 1,
    bptt: int = 70,
    temperature: float = 1.0,
    return_token_losses: bool = False,
    show_progress: bool = False,
) -> LMEvalResult:
    """Mean loss of ``model`` over every token of ``tokens`` (each predicted exactly once).

    The state is carried across windows of ``bptt`` tokens, so in eval mode the result does not
    depend on ``bptt``; ``batch_size > 1`` is faster but each stream starts from a zero state.
    """
    losses, real = _stream_losses(model, tokens, batch_size, bptt, temperature, show_progress=show_progress)
    n_tokens = int(real.sum())
    token_losses = losses.t().reshape(-1)[: tokens.numel()].cpu() if return_token_losses else None
    return LMEvalResult(float(losses.sum()) / n_tokens, n_tokens, token_losses)


@torch.no_grad()
def tune_temperature(
    model: AWDLanguageModel,
    tokens: Tensor,
    batch_size: int = 10,
    bptt: int = 70,
    candidates: Sequence[float] = TEMPERATURES,
) -> tuple[float, float]:
    """The softmax temperature (from ``candidates``) with the lowest loss on ``tokens``, and that loss.

    One pass over the text scores all candidates (appendix H: tuning gives about 1 perplexity).
    """
    was_training = model.training
    model.eval()
    device = model.embedding.weight.device
    inputs, targets = (t.to(device) for t in batchify(tokens, batch_size, pad=True))
    temps = torch.tensor(candidates, device=device, dtype=torch.float32)
    totals = torch.zeros_like(temps, dtype=torch.float64)
    state = model.initial_state(batch_size)
    for window in _windows(inputs.size(0), bptt):
        out = model(inputs[window], state)
        state = out.state
        target = targets[window].reshape(-1)
        keep = target >= 0
        logits = out.logits.reshape(-1, out.logits.size(-1))[keep].float()
        for i, t in enumerate(temps):
            totals[i] += F.cross_entropy(logits / t, target[keep], reduction="sum").double()
    model.train(was_training)
    n_tokens = int((targets >= 0).sum())
    best = int(torch.argmin(totals))
    return float(candidates[best]), float(totals[best]) / n_tokens


def eval_weights(ckpt: dict) -> dict[str, Tensor]:
    """The weights a checkpoint is evaluated with: the ASGD average where the run had switched to ASGD
    (``task["eval_model"]``), else its ``model``."""
    return ckpt["model"] if ckpt["task"]["eval_model"] is None else ckpt["task"]["eval_model"]


def load_model(path: str | os.PathLike, device: str | torch.device = "auto") -> tuple[AWDLanguageModel, dict]:
    """The evaluation model (:func:`eval_weights`) stored in a ``best.pt``/``checkpoint.pt`` (or a run folder's
    ``best.pt``, else its ``checkpoint.pt``) and the checkpoint dict."""
    device = resolve_device(device)
    path = checkpoint_file(path, best=True)
    ckpt = read_checkpoint(path, "lm", map_location=device)
    model = AWDLanguageModel(LMModelConfig.from_dict(ckpt["configs"]["model"])).to(device)
    load_weights(model, eval_weights(ckpt), path)
    model.eval()
    return model, ckpt


def checkpoint_corpus(ckpt: dict, data: str | os.PathLike | None = None) -> Corpus:
    """The corpus a checkpoint was trained on (or ``data`` instead), encoded with its vocabulary."""
    vocab = Dictionary(ckpt["task"]["vocab"][1:])
    return load_data(ckpt["task"]["data"] if data is None else data, vocab=vocab)


def _finished(config: LMConfig, folder: Path, ckpt: dict) -> RunFinished | None:
    """What resuming the run in ``folder`` (at its checkpoint ``ckpt``) under ``config`` raises where it has nothing
    left to do (:func:`~fwm_rl.engine.finished_run`): its epochs, its steps or its time budget spent, its end recorded."""
    step, epoch = ckpt["step"], ckpt["task"]["epoch"]
    spent, flag = None, "--steps"
    if epoch >= config.epochs:
        spent, flag = f"{epoch} of {config.epochs} epochs", "--epochs"
    elif config.steps is not None and step >= config.steps:
        spent = f"{step} of {config.steps} steps"
    return finished_run(
        folder,
        spent=spent,
        flag=flag,
        train_seconds=ckpt["train_seconds"],
        time_budget=config.time_budget,
        results=recorded_results(folder, step, "trained", "steps"),
    )


class LMTrainer:
    """Trains an :class:`AWDLanguageModel` on a :class:`Corpus` into ``out_dir`` (see the module docstring).

    ``data`` is the folder the corpus was read from (``None`` for the generated bAbI default);
    it is stored in the checkpoints so that ``eval``/``compare`` and ``--resume`` find the text again.
    Under ``torchrun`` the process group is joined here; ``ctx`` says where this process stands and
    ``rows`` which of the ``batch_size`` streams it trains.
    """

    def __init__(
        self,
        corpus: Corpus,
        model_config: LMModelConfig,
        config: LMConfig,
        out_dir: str | os.PathLike,
        data: str | os.PathLike | None = None,
    ):
        if model_config.vocab_size != len(corpus.vocab):
            raise ValueError(f"model vocab_size {model_config.vocab_size} != corpus vocabulary {len(corpus.vocab)}")
        self.corpus, self.model_config, self.config = corpus, model_config, config
        self.out_dir = Path(out_dir)
        self.data = None if data is None else str(data)
        self.ctx = init_distributed(config.device)
        self.device = self.ctx.device
        self.rows = row_share(config.batch_size, self.ctx, "--batch-size")
        self._eval_rows = row_share(config.eval_batch_size, self.ctx, "--eval-batch-size")
        set_seed(config.seed)
        self.model = AWDLanguageModel(model_config).to(self.device)  # the same initial weights in every process
        seed_other_ranks(config.seed, self.ctx)  # ... but each process its own dropout masks
        self.train_x, self.train_y = (
            t[:, self.rows].contiguous().to(self.device) for t in batchify(corpus.train, config.batch_size, pad=False)
        )
        if self.train_x.size(0) < 2:
            raise ValueError(
                f"training split of {corpus.train.numel()} tokens is too short for batch size {config.batch_size}"
            )
        self.bptt_rng = np.random.default_rng(config.seed)
        self.optimizer_name = "adam"
        self.optimizer = self._make_optimizer("adam")
        self.step = 0
        self.epoch = 0
        self.position = 0
        self.state = self.model.initial_state(self.train_x.size(1))  # of this process's streams
        self.val_history: list[float] = []
        self.best_valid = math.inf
        self.tokens_seen = 0
        self.train_seconds = 0.0
        self.running = [0.0, 0, 0]  # train loss sum, steps, tokens since the last log row
        self.resumed = False  # set by resume(): continue the logs and checkpoint in out_dir

    # ----------------------------------------------------------------------------------- set-up
    @classmethod
    def resume(
        cls,
        out_dir: str | os.PathLike,
        corpus: Corpus | None = None,
        device: str | None = None,
        data: str | os.PathLike | None = None,
        **budget,
    ) -> LMTrainer:
        """Continue the run in ``out_dir`` from its ``checkpoint.pt``; only the ``device``, the budget
        (``epochs``, ``steps``, ``time_budget``: :attr:`LMConfig.RESUMABLE`) and where the data now lies
        (``data``: the same text, moved) may change; every other setting comes from the checkpoint. The number
        of processes may differ from the run that wrote it (every process reads it). A run with nothing left to do
        (its budget spent, its ``results.json`` written) raises :class:`~fwm_rl.engine.RunFinished`."""
        changes = LMConfig.resume_changes(**budget, device=device)
        path = Path(out_dir) / CHECKPOINT
        ckpt = read_checkpoint(path, "lm")
        if ckpt["optimizer"] is None:
            raise ValueError(f"{path} is not a training checkpoint of fwm-rl lm train; cannot resume from it")
        task = ckpt["task"]
        config = LMConfig.from_dict(ckpt["configs"]["train"]).resumed(**changes)
        finished = _finished(config, Path(out_dir), ckpt)
        if finished is not None:
            raise finished
        if data is not None:
            task["data"] = str(Path(data).resolve())
        elif task["data"] is not None and not Path(task["data"]).exists():
            raise FileNotFoundError(
                f"the run's data {task['data']} is no longer there; pass --data with its new place to resume"
            )
        if corpus is None:
            corpus = checkpoint_corpus(ckpt)
        elif corpus.vocab.idx2word != task["vocab"]:
            raise ValueError("the corpus given for resuming has a different vocabulary from the checkpoint's")
        trainer = cls(corpus, LMModelConfig.from_dict(ckpt["configs"]["model"]), config, out_dir, data=task["data"])
        trainer._load_train_state(ckpt)
        trainer.resumed = True
        return trainer

    def _make_optimizer(self, name: str) -> torch.optim.Optimizer:
        cfg = self.config
        if name == "adam":
            return torch.optim.Adam(self.model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        # averaged SGD as in AWD-LSTM: averaging from the switch on (t0 = 0), no decay of the step size
        return torch.optim.ASGD(self.model.parameters(), lr=cfg.asgd_lr, t0=0, lambd=0.0, weight_decay=cfg.weight_decay)

    # ------------------------------------------------------------------------------- checkpoints
    def _eval_state_dict(self) -> dict:
        """The weights to validate and save: the ASGD average once ASGD is on, else the current ones."""
        state = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
        if self.optimizer_name == "asgd":
            averaged = {
                id(p): self.optimizer.state[p]["ax"]
                for p in self.model.parameters()
                if "ax" in self.optimizer.state.get(p, {})
            }
            for name, param in self.model.named_parameters():
                if id(param) in averaged:
                    state[name] = averaged[id(param)].detach().clone()
            if self.model_config.tie_weights:
                state["decoder.weight"] = state["embedding.weight"]
        return state

    def _best_checkpoint(self, valid_loss: float) -> dict:
        """``best.pt`` (:func:`~fwm_rl.engine.make_checkpoint`, kind ``lm``, no optimizer): the evaluation
        weights as ``model``; ``task`` the vocabulary, where the data is, the validation loss and the softmax
        ``temperature`` (tuned at the end of the run)."""
        return make_checkpoint(
            "lm",
            step=self.step,
            train_seconds=self.train_seconds,
            configs=self._configs(),
            model=self._eval_state_dict(),
            task={**self._task_data(), "valid_loss": valid_loss, "eval_model": None},
        )

    def _checkpoint(self, valid_loss: float) -> dict:
        """``checkpoint.pt``: everything :meth:`resume` needs, with the carried state of the whole batch (collective
        under torchrun: every process must call it). ``model`` is the trained weights; ``task["eval_model"]`` the
        ASGD average once ASGD is on (else ``None``: the same weights); ``task`` also holds the data position, the
        carried state, the validation history and the window-length generator; ``rng`` the global generators (rank 0's)."""
        state = gather_rows(self.state, self.model.state_batch_dims(self.state), self.ctx)
        task = {
            **self._task_data(),
            "valid_loss": valid_loss,
            "eval_model": self._eval_state_dict() if self.optimizer_name == "asgd" else None,
            "optimizer_name": self.optimizer_name,
            "epoch": self.epoch,
            "position": self.position,
            "hidden": [list(layer) for layer in state.layers],
            "fast_weights": state.fast_weights,
            "val_history": list(self.val_history),
            "best_valid": self.best_valid,
            "tokens_seen": self.tokens_seen,
            "running": list(self.running),
            "bptt_rng": self.bptt_rng.bit_generator.state,
        }
        return make_checkpoint(
            "lm",
            step=self.step,
            train_seconds=self.train_seconds,
            configs=self._configs(),
            model=self.model.state_dict(),
            optimizer=self.optimizer.state_dict(),
            task=task,
            rng=capture_rng(),
        )

    def _configs(self) -> dict[str, dict]:
        return {"model": self.model_config.to_dict(), "train": self.config.to_dict()}

    def _task_data(self) -> dict[str, Any]:
        return {
            "vocab": list(self.corpus.vocab.idx2word),
            "data": self.data,
            "data_source": self.corpus.source,
            "temperature": 1.0,
        }

    def _load_train_state(self, ckpt: dict) -> None:
        task = ckpt["task"]
        load_weights(self.model, ckpt["model"], self.out_dir / CHECKPOINT)
        self.optimizer_name = task["optimizer_name"]
        self.optimizer = self._make_optimizer(self.optimizer_name)
        self.optimizer.load_state_dict(ckpt["optimizer"])
        self.step, self.train_seconds = ckpt["step"], ckpt["train_seconds"]
        self.epoch, self.position = task["epoch"], task["position"]
        full = LMState(tuple((h, c) for h, c in task["hidden"]), task["fast_weights"])
        self.state = shard_rows(full, self.model.state_batch_dims(full), self.ctx).to(self.device)
        self.val_history = list(task["val_history"])
        self.best_valid = task["best_valid"]
        self.tokens_seen = task["tokens_seen"]
        self.running = list(task["running"])
        restore_rng(ckpt["rng"])
        self.bptt_rng.bit_generator.state = task["bptt_rng"]
        seed_other_ranks(self.config.seed + self.step, self.ctx)  # the checkpoint holds rank 0's random state

    # ---------------------------------------------------------------------------------- training
    def _seq_len(self) -> int:
        """AWD-LSTM's variable BPTT length: N(bptt, 5) (bptt/2 with probability 0.05), at most bptt + 10."""
        bptt = self.config.bptt
        base = bptt if self.bptt_rng.random() < 0.95 else bptt / 2.0
        seq_len = max(min(5, bptt), int(self.bptt_rng.normal(base, 5)))
        return min(seq_len, bptt + 10)

    def _train_step(self) -> tuple[float, int]:
        cfg = self.config
        seq_len = min(self._seq_len(), self.train_x.size(0) - self.position)
        window = slice(self.position, self.position + seq_len)
        inputs, targets = self.train_x[window], self.train_y[window]
        group = self.optimizer.param_groups[0]
        base_lr = group["lr"]
        group["lr"] = base_lr * seq_len / cfg.bptt  # shorter windows take smaller steps
        self.model.train()
        with autocast(self.device, cfg.amp):
            out = self.model(inputs, self.state.detach())
        # Under autocast the outputs and the LSTM states come out in bfloat16: the loss and the
        # carried state are kept in the parameters' precision.
        dtype = self.model.embedding.weight.dtype
        logits, dropped, hidden = (t.to(dtype) for t in (out.logits, out.dropped, out.hidden))
        raw_loss = F.cross_entropy(logits.reshape(-1, logits.size(-1)), targets.reshape(-1))
        loss = raw_loss
        if cfg.ar_alpha:
            loss = loss + cfg.ar_alpha * dropped.pow(2).mean()
        if cfg.tar_beta and seq_len > 1:
            loss = loss + cfg.tar_beta * (hidden[1:] - hidden[:-1]).pow(2).mean()
        self.optimizer.zero_grad(set_to_none=True)
        # every term is a mean over equally long rows: a process's share of the batch is its share of the rows
        share = inputs.size(1) / cfg.batch_size
        totals = gradient_step(
            self.model,
            self.optimizer,
            loss,
            self.ctx,
            share=share,
            step=self.step,
            clip=cfg.max_grad_norm,
            totals={"raw": float(raw_loss.detach()) * share, "loss": float(loss.detach()) * share},
            hint="try a lower --lr or a smaller --max-grad-norm",
        )
        group["lr"] = base_lr
        self.state = out.state.detach().to(dtype)
        self.position += seq_len
        if self.position >= self.train_x.size(0):  # next epoch: start of the text, fresh state
            self.epoch += 1
            self.position = 0
            self.state = self.model.initial_state(inputs.size(1))
        self.step += 1
        n_tokens = seq_len * cfg.batch_size  # of the whole batch
        self.tokens_seen += n_tokens
        return totals["raw"], n_tokens

    def validate(self) -> float:
        """Validation loss of the evaluation weights (the ASGD average under ASGD); each process scores
        its share of the ``eval_batch_size`` streams and the sums are combined."""
        current = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
        self.model.load_state_dict(self._eval_state_dict())
        losses, real = _stream_losses(
            self.model, self.corpus.valid, self.config.eval_batch_size, self.config.bptt, rows=self._eval_rows
        )
        self.model.load_state_dict(current)
        totals = all_reduce_sum({"loss": float(losses.sum()), "tokens": int(real.sum())}, self.ctx)
        return totals["loss"] / totals["tokens"]

    # ------------------------------------------------------------ the loop (engine.LoopTask)
    def advance(self) -> None:
        """One training step, counted into the log window (``running``)."""
        self._epoch_before = self.epoch
        loss, n_tokens = self._train_step()
        self.running = [self.running[0] + loss, self.running[1] + 1, self.running[2] + n_tokens]

    @property
    def tokens_per_second(self) -> float:
        """Training tokens per second of training so far (``train_seconds``, the clock of the time budget)."""
        return self.tokens_seen / max(self.train_seconds, 1e-9)

    def finished(self) -> bool:
        cfg = self.config
        return self.epoch >= cfg.epochs or (cfg.steps is not None and self.step >= cfg.steps)

    def write_log(self) -> None:
        mean = self.running[0] / self.running[1]
        if self.ctx.is_main:
            self._log.log(
                self.step,
                {
                    "train/loss": mean,
                    "train/ppl": math.exp(mean),
                    "lr": self.optimizer.param_groups[0]["lr"],
                    "tokens_per_s": self.tokens_per_second,
                    "time/train_seconds": self.train_seconds,
                },
            )
        self._bar.set_postfix(loss=f"{mean:.3f}", ppl=f"{math.exp(mean):.1f}")
        self.running = [0.0, 0, 0]

    def validation_due(self) -> bool:
        """Every ``eval_every`` steps, or (``eval_every`` 0) at the end of every epoch."""
        return self.step % self.config.eval_every == 0 if self.config.eval_every else self.epoch != self._epoch_before

    def validate_and_save(self, scheduled: bool) -> None:
        """Validate and go on as :meth:`_after_validation` says (a validation only because the run stops is not an ASGD trigger)."""
        self._after_validation(self.validate(), scheduled=scheduled, log=self._log)

    def _after_validation(self, valid_loss: float, scheduled: bool, log: RunLogger | None) -> None:
        """Log, keep the best weights, maybe switch to ASGD, checkpoint (every process calls it, ``log``
        and the files are rank 0's; the switch is taken everywhere, from the same validation loss)."""
        cfg = self.config
        main = self.ctx.is_main
        if main:
            log.log(
                self.step,
                {
                    "valid/loss": valid_loss,
                    "valid/ppl": math.exp(valid_loss),
                    "epoch": self.epoch,
                    "time/train_seconds": self.train_seconds,
                },
            )
        if valid_loss < self.best_valid:
            self.best_valid = valid_loss
            if main:
                atomic_save(self._best_checkpoint(valid_loss), self.out_dir / BEST)
        if scheduled and self.optimizer_name == "adam":
            history = self.val_history
            switch = (cfg.asgd_after is not None and len(history) + 1 >= cfg.asgd_after) or (
                cfg.nonmono is not None and len(history) > cfg.nonmono and valid_loss > min(history[: -cfg.nonmono])
            )
            if switch:
                self.optimizer_name = "asgd"
                self.optimizer = self._make_optimizer("asgd")
                if main:
                    log.log(self.step, {"asgd_switch": 1.0})
        if scheduled:
            self.val_history.append(valid_loss)
        ckpt = self._checkpoint(valid_loss)
        if main:
            atomic_save(ckpt, self.out_dir / CHECKPOINT)

    def train(self, show_progress: bool = True, overwrite: bool = False) -> TrainSummary:
        """Run until the budget is spent; validate and checkpoint on the way; tune the temperature at the end.

        A new run refuses a folder that holds a run (:class:`~fwm_rl.engine.RunExistsError`) unless
        ``overwrite``, which deletes that run's files first, and only a run's (:func:`~fwm_rl.engine.claimed_run_folder`).
        Under ``torchrun`` every process calls it; rank 0 logs, shows the progress bar and writes the files.
        """
        claims = () if self.resumed else [RunClaim(self.out_dir, "lm", RUN_OUTPUTS)]
        with hold_run_folder(self.out_dir, self.ctx, claims, overwrite, f"--resume {self.out_dir}"):
            return self._train(show_progress)

    def _train(self, show_progress: bool) -> TrainSummary:
        started = datetime.now(timezone.utc)
        cfg = self.config
        main = self.ctx.is_main
        log = (
            RunLogger(self.out_dir, tensorboard=cfg.tensorboard, resume_step=self.step if self.resumed else None)
            if main
            else None
        )
        total = cfg.steps if cfg.steps is not None else cfg.epochs * math.ceil(self.train_x.size(0) / cfg.bptt)
        self._log = log
        self._bar = progress(
            total=total, initial=self.step, desc=f"lm {self.model_config.memory}", disable=not (show_progress and main)
        )
        try:
            train_loop(self, log_every=cfg.log_every, time_budget=cfg.time_budget, bar=self._bar, ctx=self.ctx)
        finally:
            self._bar.close()
        temperature, tested = 1.0, {}
        if main and (self.out_dir / BEST).exists() and (cfg.tune_temperature or cfg.test_batch_size is not None):
            temperature, tested = self._finish_best(log)
        if main:  # results.json last: it marks the run's end (a resumed run that finds it at its step is finished)
            (self.out_dir / RESULTS).write_text(
                json.dumps(
                    {
                        **tested,
                        # the training behind it: where the run stopped, and its speed
                        "trained": {
                            "steps": self.step,
                            "epochs": self.epoch,
                            "train_seconds": self.train_seconds,
                            "tokens": self.tokens_seen,
                            "tokens_per_second": self.tokens_per_second,
                        },
                        "record": run_record(started, self.device),  # (this session of the run, when it was resumed)
                    },
                    indent=2,
                )
                + "\n"
            )
            log.close()
        final = {split: tested[f"{split}_loss"] for split in ("valid", "test")} if tested else None
        temperature, final = broadcast_object((temperature, final), self.ctx)
        return TrainSummary(self.step, self.epoch, self.best_valid, temperature, self.tokens_per_second, self.out_dir, final)

    def _finish_best(self, log: RunLogger) -> tuple[float, dict[str, Any]]:
        """With ``best.pt``'s weights (loaded once, the current ones restored after): tune the softmax
        temperature on validation and store it in ``best.pt``, then the final test, each split read as
        ``test_batch_size`` streams (1: one stream, the paper's table 5). Returns the temperature and what
        ``results.json`` says of the final test (empty without one). Its rows replace those of an end cut short."""
        cfg = self.config
        best = read_checkpoint(self.out_dir / BEST, "lm", map_location=self.device)
        current = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
        self.model.load_state_dict(eval_weights(best))
        try:
            temperature, tested = 1.0, {}
            if cfg.tune_temperature:
                temperature, tuned = tune_temperature(self.model, self.corpus.valid, cfg.eval_batch_size, cfg.bptt)
                best["task"]["temperature"] = temperature
                atomic_save(best, self.out_dir / BEST)
                log.log(self.step, {"valid/ppl_tuned_temperature": math.exp(tuned), "temperature": temperature}, replace=True)
            if cfg.test_batch_size is not None:
                losses = {
                    split: evaluate(self.model, self.corpus.split(split), cfg.test_batch_size, cfg.bptt, temperature).loss
                    for split in ("valid", "test")
                }
                log.log(self.step, {f"final/{split}_ppl": math.exp(loss) for split, loss in losses.items()}, replace=True)
                tested = {
                    "checkpoint": BEST,
                    "step": best["step"],
                    "temperature": temperature,
                    "batch_size": cfg.test_batch_size,
                    **{f"{split}_loss": loss for split, loss in losses.items()},
                    **{f"{split}_ppl": math.exp(loss) for split, loss in losses.items()},
                }
        finally:
            self.model.load_state_dict(current)
        return temperature, tested
