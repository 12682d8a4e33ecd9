"""Training and evaluation on catbAbI (paper section 4.1, appendices D and F).

One step trains on one truncated-BPTT segment (200 tokens x ``batch_size`` streams) with Adam; the
recurrent state (``((h, c), F)`` for the FWM, the layers' ``(h, c)`` for the LSTM) is carried to the
next segment and detached. The two training modes differ only in the loss:

* **QA mode**: cross-entropy on the answer positions only (where the input is ``?``); the FWM then
  reads only at those steps (``read_mask``), as in the authors' code.
* **LM mode**: cross-entropy on every (non-padding) token, reads at every step.

Both are measured the same way: answer accuracy and answer perplexity, overall and per task, on the
fixed validation/test streams (:func:`fwm_rl.babi.batching.eval_segments`), each row starting from a
zero state.

A run folder holds ``checkpoint.pt`` (full training state, written atomically at every validation and
at the end; ``--resume`` continues from it exactly), ``metrics.csv``, TensorBoard events and
``results.json`` (the final test evaluation of the final weights).

Under ``torchrun`` training is data-parallel over the ``batch_size`` streams (:mod:`fwm_rl.engine.distributed`):
every process builds the same global segments and runs its contiguous share of the rows, with its own
carried state for them; the gradients of the mean loss are combined with each process's share of the
loss tokens as weight, so an update equals the single-process update on the same segment. Evaluation
rows are split the same way and the tallies summed. Rank 0 alone logs and writes files; the carried
state is gathered to the full batch in checkpoints, which therefore resume under any number of processes.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from fwm_rl.babi.batching import Segment, TrainStream, eval_segments
from fwm_rl.babi.catbabi import CatbAbI, DataSpec, Vocabulary, load_catbabi
from fwm_rl.babi.config import CatbAbIConfig, CatbAbIModelConfig
from fwm_rl.babi.models import CatbAbIModel
from fwm_rl.engine import (
    BEST,
    CHECKPOINT,
    RESULTS,
    RunClaim,
    RunLogger,
    atomic_save,
    autocast,
    checkpoint_file,
    finished_run,
    gradient_step,
    load_weights,
    make_checkpoint,
    progress,
    read_checkpoint,
    recorded_results,
    resolve_device,
    run_record,
    set_seed,
    train_loop,
)
from fwm_rl.engine.distributed import (
    DistContext,
    all_reduce_tensor,
    broadcast_object,
    gather_rows,
    hold_run_folder,
    init_distributed,
    row_share,
    shard_rows,
)
from fwm_rl.memory import map_state

__all__ = ["CHECKPOINT", "CatbAbIEvalResult", "CatbAbITrainer", "evaluate"]

#: What a run writes into its folder (what ``--overwrite`` replaces).
RUN_OUTPUTS = (CHECKPOINT, BEST, RESULTS, "metrics.csv", "tb", f".{CHECKPOINT}.*.tmp", f".{BEST}.*.tmp")
#: The bAbI tasks, numbered 1..N_TASKS.
N_TASKS = 20


@dataclass
class CatbAbIEvalResult:
    """Answer accuracy / perplexity overall and per task, and the mode's mean loss."""

    loss: float
    answer_accuracy: float
    answer_perplexity: float
    answers: int
    tokens: int
    per_task: dict[int, dict[str, float]] = field(default_factory=dict)  # task -> accuracy, perplexity, answers

    def metrics(self, prefix: str) -> dict[str, float]:
        out = {
            f"{prefix}/loss": self.loss,
            f"{prefix}/answer_accuracy": self.answer_accuracy,
            f"{prefix}/answer_perplexity": self.answer_perplexity,
        }
        for t, r in self.per_task.items():
            out[f"{prefix}/accuracy_task_{t}"], out[f"{prefix}/perplexity_task_{t}"] = r["accuracy"], r["perplexity"]
        return out

    def to_dict(self) -> dict:
        return asdict(self)


class _Tally:
    """Running sums of answer hits, answer log-loss and the mode's loss, per task."""

    def __init__(self, device):
        self.n = torch.zeros(N_TASKS + 1, dtype=torch.long, device=device)
        self.correct = torch.zeros_like(self.n)
        self.nll = torch.zeros(N_TASKS + 1, dtype=torch.float64, device=device)
        self.loss_sum = torch.zeros((), dtype=torch.float64, device=device)
        self.loss_n, self.tokens = 0, 0

    def add(self, nll: Tensor, logits: Tensor, seg: Segment, loss_mask: Tensor) -> None:
        answer = seg.answer & seg.keep
        task = seg.task[answer].clamp(0, N_TASKS)
        hit = (logits[answer].argmax(-1) == seg.y[answer]).long()
        self.n.index_add_(0, task, torch.ones_like(hit))
        self.correct.index_add_(0, task, hit)
        self.nll.index_add_(0, task, nll[answer].double())
        self.loss_sum += nll[loss_mask].double().sum()
        self.loss_n += int(loss_mask.sum())
        self.tokens += int(seg.keep.sum())

    def all_reduce(self, ctx: DistContext) -> _Tally:
        """Sum the tallies of every process (each tallied its own rows); returns ``self``."""
        counts = torch.tensor([self.loss_n, self.tokens], dtype=torch.float64, device=self.nll.device)
        flat = all_reduce_tensor(
            torch.cat([self.n.double(), self.correct.double(), self.nll, self.loss_sum.view(1), counts]), ctx
        )
        k = N_TASKS + 1
        self.n, self.correct, self.nll = flat[:k].round().long(), flat[k : 2 * k].round().long(), flat[2 * k : 3 * k]
        self.loss_sum, self.loss_n, self.tokens = flat[3 * k], int(flat[3 * k + 1]), int(flat[3 * k + 2])
        return self

    def result(self) -> CatbAbIEvalResult:
        n, correct, nll = self.n.cpu(), self.correct.cpu(), self.nll.cpu()
        total = int(n.sum())
        per_task = {
            t: {
                "accuracy": float(correct[t]) / int(n[t]),
                "perplexity": math.exp(float(nll[t]) / int(n[t])),
                "answers": int(n[t]),
            }
            for t in range(1, N_TASKS + 1)
            if n[t] > 0
        }
        return CatbAbIEvalResult(
            loss=float(self.loss_sum) / max(self.loss_n, 1),
            answer_accuracy=float(correct.sum()) / total if total else float("nan"),
            answer_perplexity=math.exp(float(nll.sum()) / total) if total else float("nan"),
            answers=total,
            tokens=self.tokens,
            per_task=per_task,
        )


def _loss_mask(seg: Segment, mode: str) -> Tensor:
    return (seg.answer & seg.keep) if mode == "qa" else seg.keep


def _read_mask(seg: Segment, mode: str) -> Tensor | None:
    return seg.answer if mode == "qa" else None


def _rows(seg: Segment, rows: slice) -> Segment:
    """The streams ``rows`` of a ``[T, B]`` segment."""
    return Segment(*(t[:, rows] for t in seg))


@torch.no_grad()
def _tally(model: CatbAbIModel, segs: Sequence[Segment], mode: str, device: torch.device, rows: slice = slice(None)) -> _Tally:
    was_training = model.training
    model.eval()
    tally, state = _Tally(device), None
    for seg in segs:
        seg = _rows(seg, rows).to(device)
        logits, state = model(seg.x, state, keep=seg.keep, read_mask=_read_mask(seg, mode))
        nll = F.cross_entropy(logits.flatten(0, 1), seg.y.flatten(), reduction="none").view_as(seg.y)
        tally.add(nll, logits, seg, _loss_mask(seg, mode))
    model.train(was_training)
    return tally


def evaluate(
    model: CatbAbIModel, segs: Sequence[Segment], mode: str, device: torch.device, max_segments: int | None = None
) -> CatbAbIEvalResult:
    """Run ``model`` over the fixed stream ``segs`` from a zero state and tally the answers."""
    return _tally(model, segs[:max_segments], mode, device).result()


class _Window:
    """The training metrics of the steps since the last log row."""

    def __init__(self):
        self.loss, self.n, self.correct, self.answers, self.tokens = 0.0, 0, 0, 0, 0
        self.start = time.perf_counter()

    def add(self, loss: float, correct: int, answers: int, tokens: int) -> None:
        if not math.isnan(loss):  # (a segment without a loss-bearing token)
            self.loss += loss
            self.n += 1
        self.correct += correct
        self.answers += answers
        self.tokens += tokens

    def metrics(self) -> dict[str, float]:
        return {
            "train/loss": self.loss / max(self.n, 1),
            "train/answer_accuracy": self.correct / max(self.answers, 1),
            "train/tokens_per_s": self.tokens / max(time.perf_counter() - self.start, 1e-9),
        }


class CatbAbITrainer:
    """Trains a :class:`CatbAbIModel` on catbAbI; see the module documentation.

    ``data`` may be passed to skip reading (it must come from ``data_spec``). Under ``torchrun`` the
    process group is joined here (``config.device="auto"``: this process's GPU, else the CPU); ``ctx`` says
    where this process stands and ``rows`` which streams of the batch it trains.
    """

    def __init__(
        self,
        model_config: CatbAbIModelConfig,
        config: CatbAbIConfig,
        data_spec: DataSpec,
        out_dir: str | Path | None = None,
        data: CatbAbI | None = None,
    ):
        self.model_config, self.config, self.data_spec = model_config, config, data_spec
        self.ctx = init_distributed(config.device)
        self.device = self.ctx.device
        self.rows = row_share(config.batch_size, self.ctx, "--batch-size")
        self._eval_rows = row_share(config.eval_batch_size, self.ctx, "--eval-batch-size")
        self.out_dir = Path(out_dir) if out_dir is not None else None
        self.data = data if data is not None else load_catbabi(data_spec)
        for split in ("train", "valid", "test"):
            if split not in self.data.splits:
                raise ValueError(f"catbAbI data lacks the {split} split")
        set_seed(config.seed)
        vocab = self.data.vocab
        self.model = CatbAbIModel(model_config, len(vocab)).to(self.device)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=config.lr)
        self.stream = TrainStream(self.data.splits["train"], config.batch_size, config.bptt, vocab.eos, vocab.pad, config.seed)
        self.state = None  # carried recurrent state of this process's rows
        self.step = 0
        self.best_valid_accuracy = -1.0
        self.best_valid_loss = math.inf
        self.best_step: int | None = None  # step of best.pt
        self.train_seconds = 0.0  # time spent in training steps (rank 0's clock under torchrun)
        self._eval_cache: dict[str, list[Segment]] = {}
        self._logger: RunLogger | None = None
        self.test_best: CatbAbIEvalResult | None = None  # set by train(): the best checkpoint's test result
        self.resumed = False  # set by resume(): continue the logs and checkpoint in out_dir

    # ------------------------------------------------------------------ data
    def eval_stream(self, split: str) -> list[Segment]:
        if split not in self._eval_cache:
            v = self.data.vocab
            self._eval_cache[split] = eval_segments(
                self.data.splits[split], self.config.eval_batch_size, self.config.bptt, v.eos, v.pad
            )
        return self._eval_cache[split]

    def evaluate(self, split: str = "valid", max_segments: int | None = None) -> CatbAbIEvalResult:
        """Evaluate on ``split`` (each process its rows of the stream, the tallies summed over processes)."""
        segs = self.eval_stream(split)[:max_segments]
        return _tally(self.model, segs, self.config.mode, self.device, self._eval_rows).all_reduce(self.ctx).result()

    # ---------------------------------------------------------------- training
    def train_step(self, seg: Segment) -> tuple[float, int, int]:
        """One Adam step on the whole-batch segment ``seg``; returns (loss, answers right, answers) of the
        whole batch and carries the state.

        This process runs its rows ``self.rows`` only. The loss is the mean over the batch's loss tokens,
        so each process's gradient of its own mean is weighted by its share of those tokens before the
        sum over processes: the update is the single-process one.
        """
        mode = self.config.mode
        n_loss = int(_loss_mask(seg, mode).sum())  # loss tokens of the whole batch
        seg = _rows(seg, self.rows).to(self.device)
        with autocast(self.device, self.config.amp):
            logits, state = self.model(seg.x, self.state, keep=seg.keep, read_mask=_read_mask(seg, mode))
        # Under autocast the LSTM's state and the logits come out in bfloat16: the carried state and
        # the loss are kept in the parameters' precision.
        dtype = self.model.embedding.weight.dtype
        logits = logits.to(dtype)
        self.state = map_state(state, lambda t: t.detach().to(dtype))
        self.optimizer.zero_grad(set_to_none=True)
        if n_loss == 0:  # e.g. an all-padding tail segment: nothing to learn from
            return float("nan"), 0, 0
        mask = _loss_mask(seg, mode)
        share = int(mask.sum()) / n_loss
        # a process whose rows have no loss tokens adds zero gradients
        loss = F.cross_entropy(logits[mask], seg.y[mask]) if share > 0 else None
        answer = seg.answer & seg.keep
        totals = gradient_step(
            self.model,
            self.optimizer,
            loss,
            self.ctx,
            share=share,
            step=self.step,
            totals={
                "loss": 0.0 if loss is None else float(loss.detach()) * share,
                "answers": int(answer.sum()),
                "correct": int((logits[answer].argmax(-1) == seg.y[answer]).sum()),
            },
            hint="lower the learning rate (--lr) or check the data",
        )
        return totals["loss"], int(totals["correct"]), int(totals["answers"])

    # ------------------------------------------------- the loop (engine.LoopTask)
    def advance(self) -> None:
        """One training step on the next segment of the stream, counted into the log window."""
        seg = next(self.stream)
        loss, correct, answers = self.train_step(seg)
        self.step += 1
        self._window.add(loss, correct, answers, int(seg.keep.sum()))

    def finished(self) -> bool:
        return self.step >= self._steps

    def write_log(self) -> None:
        metrics = {**self._window.metrics(), "train/epoch": self.stream.epoch, "time/train_seconds": self.train_seconds}
        self._record(metrics)
        self._bar.set_postfix(loss=f"{metrics['train/loss']:.3f}", acc=f"{metrics['train/answer_accuracy']:.3f}")
        self._window = _Window()

    def validation_due(self) -> bool:
        return self.step % self.config.eval_every == 0

    def validate_and_save(self, scheduled: bool) -> None:
        """Validate (``eval_segments`` of the stream), keep the lowest-loss weights as ``best.pt``, write the checkpoint."""
        valid = self.evaluate("valid", self.config.eval_segments)
        self.best_valid_accuracy = max(self.best_valid_accuracy, valid.answer_accuracy)
        if valid.loss < self.best_valid_loss:
            self.best_valid_loss, self.best_step = valid.loss, self.step
            if self.out_dir is not None:
                self.save(self.out_dir / BEST)
        self._record({**valid.metrics("valid"), "time/train_seconds": self.train_seconds})
        if self.ctx.is_main:
            self._bar.write(
                f"step {self.step}: valid answer accuracy {valid.answer_accuracy:.4f}, "
                f"answer perplexity {valid.answer_perplexity:.3f}"
            )
        self.save()

    def throughput(self, steps: int, warmup: int = 2) -> float:
        """Training tokens per second over ``steps`` timed steps after ``warmup`` untimed ones (this trains the model)."""
        for _ in range(warmup):
            self.train_step(next(self.stream))
        sync = torch.cuda.synchronize if self.device.type == "cuda" else (lambda: None)
        sync()
        tokens, start = 0, time.perf_counter()
        for _ in range(steps):
            seg = next(self.stream)
            self.train_step(seg)
            tokens += int(seg.keep.sum())
        sync()
        return tokens / (time.perf_counter() - start)

    def train(self, steps: int | None = None, overwrite: bool = False, show_progress: bool = True) -> CatbAbIEvalResult:
        """Train until ``steps`` (default ``config.steps``) in total, validating every ``eval_every``
        steps; then evaluate on test, write ``results.json`` and return the test result. ``show_progress``:
        a progress bar on a terminal (rank 0's).

        The run holds its folder meanwhile (:func:`~fwm_rl.engine.run_lock`). A new run refuses a folder
        that holds a run (:class:`~fwm_rl.engine.RunExistsError`) unless ``overwrite``, which deletes that
        run's files first, and only a run's (:func:`~fwm_rl.engine.claimed_run_folder`).
        """
        claims = () if self.resumed else [RunClaim(self.out_dir, "catbabi", RUN_OUTPUTS)]
        with hold_run_folder(self.out_dir, self.ctx, claims, overwrite, f"--resume {self.out_dir}"):
            return self._train(steps, show_progress)

    def _train(self, steps: int | None, show_progress: bool) -> CatbAbIEvalResult:
        started = datetime.now(timezone.utc)
        self._steps = self.config.steps if steps is None else steps
        main = self.ctx.is_main
        if main and self.out_dir is not None and self._logger is None:
            self._logger = RunLogger(self.out_dir, tensorboard=self.config.tensorboard, resume_step=self.step)
        self.model.train()
        self._bar = progress(
            total=self._steps,
            initial=self.step,
            desc=f"catbAbI {self.model_config.memory}/{self.config.mode}",
            disable=None if main and show_progress else True,
        )
        self._window = _Window()
        try:
            train_loop(self, log_every=self.config.log_every, time_budget=self.config.time_budget, bar=self._bar, ctx=self.ctx)
        finally:
            self._bar.close()
        test = self.evaluate("test")
        self._record(test.metrics("test"), final=True)
        self.test_best = self.test_best_checkpoint()
        if self.test_best is not None:
            self._record(self.test_best.metrics("test_best"), final=True)
        if main and self.out_dir is not None:
            best = (
                None
                if self.test_best is None
                else {
                    **self.test_best.to_dict(),
                    "checkpoint": BEST,
                    "step": self.best_step,
                    "batch_size": self.config.test_batch_size,
                }
            )
            (self.out_dir / RESULTS).write_text(
                json.dumps(
                    {
                        "step": self.step,
                        "train_seconds": self.train_seconds,
                        "test": test.to_dict(),  # the final weights, at eval_batch_size
                        "test_batch_size": self.config.eval_batch_size,
                        "test_best_valid": best,  # the paper's protocol: the lowest-validation-loss checkpoint, at test_batch_size
                        "model": self.model_config.to_dict(),
                        "train": self.config.to_dict(),
                        "data": self.data_spec.describe(),
                        "record": run_record(started, self.device),  # (this session of the run, when it was resumed)
                    },
                    indent=2,
                )
            )
        if self._logger is not None:
            self._logger.close()
            self._logger = None
        return test

    def test_best_checkpoint(self) -> CatbAbIEvalResult | None:
        """The test result of ``best.pt`` (lowest validation loss) at ``test_batch_size`` streams, each
        from a zero state (appendix D: batch size one reads the whole test split as one stream).
        Rank 0 evaluates, every process gets the result; ``None`` without a ``best.pt``."""
        path = None if self.out_dir is None else self.out_dir / BEST

        def run() -> CatbAbIEvalResult | None:
            if path is None or not path.exists():
                return None
            model = CatbAbIModel(self.model_config, len(self.data.vocab)).to(self.device)
            load_weights(model, read_checkpoint(path, "catbabi")["model"], path)
            v = self.data.vocab
            segs = eval_segments(self.data.splits["test"], self.config.test_batch_size, self.config.bptt, v.eos, v.pad)
            return _tally(model, segs, self.config.mode, self.device).result()

        return broadcast_object(run() if self.ctx.is_main else None, self.ctx)

    def _record(self, metrics: dict[str, float], final: bool = False) -> None:
        """Log ``metrics`` at this step (rank 0); a ``final`` row (a test at the end) replaces one an end cut short logged."""
        if self._logger is not None:
            self._logger.log(self.step, metrics, replace=final)

    # -------------------------------------------------------------- checkpoints
    def checkpoint(self) -> dict[str, Any]:
        """The full training state (:func:`~fwm_rl.engine.make_checkpoint`, kind ``catbabi``), with the carried
        state of the whole batch (collective under torchrun: every process must call it).

        ``configs`` holds ``model``, ``train`` and ``data``; ``task`` the vocabulary, the position in the training
        stream, the carried recurrent ``state`` and the best validation so far; no ``rng``: training draws no
        random numbers beyond the stream's own seeded order."""
        state = None if self.state is None else gather_rows(self.state, self.model.state_batch_dims(self.state), self.ctx)
        task = {
            "vocab": self.data.vocab.words,
            "stream": self.stream.state_dict(),
            "state": state,
            "best_valid_accuracy": self.best_valid_accuracy,
            "best_valid_loss": self.best_valid_loss,
            "best_step": self.best_step,
        }
        configs = {"model": self.model_config.to_dict(), "train": self.config.to_dict(), "data": self.data_spec.to_dict()}
        return make_checkpoint(
            "catbabi",
            step=self.step,
            train_seconds=self.train_seconds,
            configs=configs,
            model=self.model.state_dict(),
            optimizer=self.optimizer.state_dict(),
            task=task,
        )

    def save(self, path: str | Path | None = None) -> Path | None:
        """Write :meth:`checkpoint` atomically (default ``out_dir/checkpoint.pt``); rank 0 writes, every
        process must call it. Returns the path (``None`` without one, and on other ranks)."""
        if path is None:
            if self.out_dir is None:
                return None
            path = self.out_dir / CHECKPOINT
        ckpt = self.checkpoint()
        return atomic_save(ckpt, path) if self.ctx.is_main else None

    @classmethod
    def resume(
        cls,
        path: str | Path,
        device: str | None = None,
        steps: int | None = None,
        data: CatbAbI | None = None,
        tensorboard: bool | None = None,
        data_path: str | None = None,
        time_budget: float | None = None,
    ) -> CatbAbITrainer:
        """Continue the run whose checkpoint (or run folder) is ``path``; ``steps`` and ``time_budget`` may
        change the budget (the training seconds already spent count towards it), ``device`` and ``tensorboard``
        where and how it goes on (``None``: as the checkpoint says).

        The number of processes may differ from the run that wrote the checkpoint (every process reads it). A run
        with nothing left to do (its budget spent, its ``results.json`` written) raises :class:`~fwm_rl.engine.RunFinished`.
        """
        ckpt_path = checkpoint_file(path)
        ckpt = read_checkpoint(ckpt_path, "catbabi")
        task = ckpt["task"]
        config = CatbAbIConfig.from_dict(ckpt["configs"]["train"])
        config = config.resumed(steps=steps, time_budget=time_budget, device=device, tensorboard=tensorboard)
        step, folder = ckpt["step"], ckpt_path.parent
        finished = finished_run(
            folder,
            spent=f"{step} of {config.steps} steps" if step >= config.steps else None,
            flag="--steps",
            train_seconds=ckpt["train_seconds"],
            time_budget=config.time_budget,
            results=recorded_results(folder, step, "step"),
        )
        if finished is not None:
            raise finished
        spec = _data_spec(ckpt["configs"]["data"])
        if data_path is not None:  # the data moved: read it from there (it must give the same vocabulary)
            spec = replace(spec, path=str(Path(data_path).resolve()))
        elif spec.path is not None and not Path(spec.path).exists():
            raise FileNotFoundError(f"the run's data {spec.path} is no longer there; pass --data with its new place to resume")
        trainer = cls(CatbAbIModelConfig.from_dict(ckpt["configs"]["model"]), config, spec, ckpt_path.parent, data)
        if trainer.data.vocab.words != list(task["vocab"]):
            raise ValueError(
                f"the data of {spec.describe()} no longer gives the checkpoint's vocabulary; was the data changed?"
            )
        load_weights(trainer.model, ckpt["model"], ckpt_path)
        trainer.optimizer.load_state_dict(ckpt["optimizer"])
        trainer.stream.load_state_dict(task["stream"])
        if task["state"] is not None:
            rows = shard_rows(task["state"], trainer.model.state_batch_dims(task["state"]), trainer.ctx)
            trainer.state = map_state(rows, lambda t: t.to(trainer.device))
        trainer.step, trainer.train_seconds = ckpt["step"], ckpt["train_seconds"]
        trainer.best_valid_accuracy, trainer.best_valid_loss = (
            float(task["best_valid_accuracy"]),
            float(task["best_valid_loss"]),
        )
        trainer.best_step = task["best_step"]
        trainer.resumed = True
        return trainer


def _data_spec(d: dict) -> DataSpec:
    d = dict(d)
    d["generated"] = tuple(d["generated"])
    d["tasks"] = None if d["tasks"] is None else tuple(d["tasks"])
    return DataSpec(**d)


def _load_run_model(
    path: str | Path, device: str | torch.device = "auto"
) -> tuple[CatbAbIModel, Vocabulary, CatbAbIConfig, DataSpec]:
    """The model (on ``device``, eval mode), vocabulary, training config and data spec of a checkpoint (a run
    folder: its ``best.pt``, what its results report, else its ``checkpoint.pt``)."""
    ckpt = read_checkpoint(checkpoint_file(path, best=True), "catbabi")
    vocab = Vocabulary(ckpt["task"]["vocab"])
    if vocab.words != list(ckpt["task"]["vocab"]):
        raise ValueError(f"{path}: vocabulary is corrupt")
    configs = ckpt["configs"]
    model = CatbAbIModel(CatbAbIModelConfig.from_dict(configs["model"]), len(vocab))
    load_weights(model, ckpt["model"], path)
    dev = resolve_device(device)
    return model.to(dev).eval(), vocab, CatbAbIConfig.from_dict(configs["train"]), _data_spec(configs["data"])
