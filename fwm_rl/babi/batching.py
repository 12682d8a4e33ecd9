"""catbAbI streams and truncated-BPTT segments (paper appendix D).

During training, stories are drawn uniformly without replacement and appended, each after an
end-of-story token, to one of ``batch_size`` parallel streams (always the currently shortest one, as
the authors' batcher does). The input at step ``t`` is ``x_t`` and the target ``x_{t+1}``: a story
contributes inputs ``<eos> w_1 ... w_n`` and targets ``w_1 ... w_n <eos>``. The streams are cut into
segments of ``bptt`` (200) steps; the model's state is carried from one segment to the next. At
the end of an epoch the shorter streams are padded; padding has ``keep = False`` (state untouched,
no loss) and the next epoch continues every stream with the carried state.

Validation and test streams are built the same way from one fixed shuffle of the split
(:data:`EVAL_ORDER_SEED`), so every model is evaluated on the identical sequence.
"""

from __future__ import annotations

import heapq
from typing import NamedTuple

import numpy as np
import torch
from torch import Tensor

from fwm_rl.babi.catbabi import EncodedSplit
from fwm_rl.checks import check_int

__all__ = ["EVAL_ORDER_SEED", "Segment", "TrainStream", "build_rows", "eval_segments", "segments"]

#: Seed of the one-time shuffle of the validation and test stories (the same for every model and run).
EVAL_ORDER_SEED = 20210503
BPTT = 200  # truncated BPTT length of the paper (appendix F)


class Segment(NamedTuple):
    """One truncated-BPTT segment, all ``[T, B]`` (time first)."""

    x: Tensor  # long: input tokens (pad at padding)
    y: Tensor  # long: target tokens, the next input (pad at padding)
    task: Tensor  # long: task id of the target's story (0 at padding)
    answer: Tensor  # bool: the target is an answer (the input is '?')
    keep: Tensor  # bool: False at padding

    def to(self, device) -> Segment:
        return Segment(*(t.to(device, non_blocking=True) for t in self))


def build_rows(split: EncodedSplit, order: np.ndarray, batch_size: int, eos: int, pad: int) -> dict[str, np.ndarray]:
    """Concatenate the stories ``order`` into ``batch_size`` streams, each story to the shortest stream.

    Returns ``[B, L]`` arrays ``x, y, task, answer, keep`` (``L`` the longest stream, the others padded).
    """
    check_int("batch_size", batch_size)
    lengths = split.lengths + 1  # each story plus its end-of-story token
    heap = [(0, row) for row in range(batch_size)]
    assigned: list[list[int]] = [[] for _ in range(batch_size)]
    for story in order:
        total, row = heapq.heappop(heap)
        assigned[row].append(int(story))
        heapq.heappush(heap, (total + int(lengths[story]), row))
    L = max(total for total, _ in heap)
    out = {
        "x": np.full((batch_size, L), pad, np.int64),
        "y": np.full((batch_size, L), pad, np.int64),
        "task": np.zeros((batch_size, L), np.int64),
        "answer": np.zeros((batch_size, L), bool),
        "keep": np.zeros((batch_size, L), bool),
    }
    for row, stories in enumerate(assigned):
        if not stories:
            continue
        idx = np.concatenate([np.arange(split.offsets[s], split.offsets[s + 1]) for s in stories])
        words, is_answer = split.tokens[idx], split.answer[idx]
        starts = np.cumsum([0] + [int(lengths[s]) for s in stories[:-1]])  # where each <eos> goes in x
        n = len(idx) + len(stories)
        x = np.empty(n, np.int64)
        mask = np.ones(n, bool)
        mask[starts] = False
        x[starts], x[mask] = eos, words
        y = np.empty(n, np.int64)
        y[:-1], y[-1] = x[1:], eos
        answer = np.zeros(n, bool)
        answer[np.flatnonzero(mask) - 1] = is_answer  # word i of a story is the target one step earlier
        out["x"][row, :n], out["y"][row, :n], out["answer"][row, :n] = x, y, answer
        out["task"][row, :n] = np.repeat(split.tasks[stories].astype(np.int64), lengths[stories])
        out["keep"][row, :n] = True
    return out


def segments(rows: dict[str, np.ndarray], bptt: int = BPTT) -> list[Segment]:
    """Cut ``[B, L]`` streams into time-first segments of ``bptt`` steps (the last may be shorter)."""
    check_int("bptt", bptt)
    L = rows["x"].shape[1]
    tensors = {k: torch.from_numpy(np.ascontiguousarray(v.T)) for k, v in rows.items()}
    return [Segment(*(tensors[k][s : s + bptt] for k in Segment._fields)) for s in range(0, L, bptt)]


def eval_segments(split: EncodedSplit, batch_size: int, bptt: int, eos: int, pad: int) -> list[Segment]:
    """The fixed validation/test stream: one shuffle with :data:`EVAL_ORDER_SEED`, whatever the run."""
    order = np.random.default_rng(EVAL_ORDER_SEED).permutation(len(split))
    return segments(build_rows(split, order, batch_size, eos, pad), bptt)


class TrainStream:
    """Endless training segments: epoch ``e`` draws the stories in the order ``permutation(seed, e)``.

    The position ``(epoch, index)`` is all that is needed to continue identically after a restart.
    """

    def __init__(self, split: EncodedSplit, batch_size: int, bptt: int, eos: int, pad: int, seed: int = 0):
        if len(split) == 0:
            raise ValueError("the training split has no stories")
        self.split, self.batch_size, self.bptt, self.eos, self.pad, self.seed = split, batch_size, bptt, eos, pad, seed
        self.epoch, self.index = 0, 0
        self._cache: tuple[int, list[Segment]] | None = None

    def order(self, epoch: int) -> np.ndarray:
        """The story order of ``epoch`` (uniform, without replacement)."""
        return np.random.default_rng([self.seed, epoch]).permutation(len(self.split))

    def epoch_segments(self, epoch: int) -> list[Segment]:
        if self._cache is None or self._cache[0] != epoch:
            rows = build_rows(self.split, self.order(epoch), self.batch_size, self.eos, self.pad)
            self._cache = (epoch, segments(rows, self.bptt))
        return self._cache[1]

    def __iter__(self):
        return self

    def __next__(self) -> Segment:
        segs = self.epoch_segments(self.epoch)
        if self.index >= len(segs):
            self.epoch, self.index = self.epoch + 1, 0
            segs = self.epoch_segments(self.epoch)
        seg = segs[self.index]
        self.index += 1
        return seg

    def state_dict(self) -> dict:
        return {"epoch": self.epoch, "index": self.index}

    def load_state_dict(self, state: dict) -> None:
        self.epoch, self.index = int(state["epoch"]), int(state["index"])
