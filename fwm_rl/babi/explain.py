"""Figure-3-style view of the FWM's chained reads on one catbAbI question (paper section 4.1).

At the ``?`` of a question, read ``i`` queries the memory with ``n^(i-1) (x) e^(i)``; its match with the
write made at an earlier step ``j`` is ``<k1_j (x) k2_j, n^(i-1)_t (x) e^(i)_t> = (k1_j . n) (k2_j . e)``.
:func:`explain_question` runs a trained FWM model over the fixed validation (or test) stream up to the
chosen question and draws these matches, one row per read, with the input words on the x axis.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from fwm_rl.babi.batching import EVAL_ORDER_SEED, build_rows
from fwm_rl.babi.catbabi import DataSpec, Vocabulary, load_catbabi
from fwm_rl.babi.config import CatbAbIConfig
from fwm_rl.babi.models import CatbAbIModel
from fwm_rl.babi.pretrained import load_model
from fwm_rl.engine import save_figure

__all__ = ["Explanation", "explain_model", "explain_question", "plot_explanation"]


@dataclass
class Explanation:
    """Matches of each read with the writes before one question."""

    words: list[str]  # input words of the window, the last one is the question's '?'
    match: np.ndarray  # [n_reads, len(words)]
    answer: str
    predicted: str
    task: int


def explain_question(
    checkpoint: str | Path | None = None,
    split: str = "valid",
    task: int | None = None,
    index: int = 0,
    window: int = 60,
    device: str = "auto",
    pretrained: str | None = None,
) -> Explanation:
    """:func:`explain_model` for a run's ``checkpoint`` or the shipped model ``pretrained``, on the data it was trained on."""
    return explain_model(
        *load_model(checkpoint, pretrained, device),
        split=split,
        task=task,
        index=index,
        window=window,
        source=str(checkpoint or pretrained),
    )


@torch.no_grad()
def explain_model(
    model: CatbAbIModel,
    vocab: Vocabulary,
    config: CatbAbIConfig,
    spec: DataSpec,
    split: str = "valid",
    task: int | None = None,
    index: int = 0,
    window: int = 60,
    source: str = "the model",
) -> Explanation:
    """Matches for the ``index``-th question (of ``task``, if given) in row 0 of the fixed ``split`` stream of the
    stories ``spec`` (read at the evaluation batch size of ``config``), as ``model`` reads it.

    The window runs back to the start of the question's story, at most ``window`` words; ``source`` names the
    model in errors.
    """
    if not model.uses_memory:
        raise ValueError(f"{source} holds an LSTM baseline; explain needs an FWM model (--model fwm)")
    data = load_catbabi(spec, splits=(split,), vocab=vocab).splits[split]
    order = np.random.default_rng(EVAL_ORDER_SEED).permutation(len(data))
    rows = build_rows(data, order, config.eval_batch_size, vocab.eos, vocab.pad)
    x, y, answer, tasks = rows["x"][0], rows["y"][0], rows["answer"][0], rows["task"][0]
    candidates = np.flatnonzero(answer & ((tasks == task) if task is not None else True))
    if index < 0 or index >= len(candidates):
        which = f"of task {task} " if task is not None else ""
        raise ValueError(
            f"there are {len(candidates)} questions {which}in row 0 of the {split} stream; --index {index} is out of range"
        )
    t = int(candidates[index])
    story_start = int(np.flatnonzero(x[: t + 1] == vocab.eos)[-1])
    start = max(story_start, t - window + 1)
    dev = next(model.parameters()).device
    inputs = torch.as_tensor(x[: t + 1], device=dev).view(-1, 1)
    logits, _, trace = model(inputs, return_trace=True)
    k1, k2 = trace.k1[start : t + 1, 0], trace.k2[start : t + 1, 0]  # [W, d]
    n, e = trace.n[t, 0], trace.e[t, 0]  # [n_reads, d]
    match = (n @ k1.T) * (e @ k2.T)  # [n_reads, W]
    return Explanation(
        words=vocab.decode(x[start : t + 1]),
        match=match.cpu().numpy(),
        answer=vocab.words[int(y[t])],
        predicted=vocab.words[int(logits[t, 0].argmax())],
        task=int(tasks[t]),
    )


def plot_explanation(ex: Explanation, out: str | Path) -> Path:
    """Draw ``ex`` as a heatmap (reads x words) into the PNG ``out``."""
    from matplotlib.figure import Figure

    n_reads, width = ex.match.shape
    fig = Figure(figsize=(max(6.0, 0.22 * width + 1.5), 1.2 + 0.5 * n_reads))
    ax = fig.subplots()
    image = ax.imshow(ex.match, aspect="auto", cmap="viridis")
    ax.set_xticks(range(width))
    ax.set_xticklabels(ex.words, rotation=90, fontsize=7)
    ax.set_yticks(range(n_reads))
    ax.set_yticklabels([f"read {i + 1}" for i in range(n_reads)])
    ax.set_title(f"task {ex.task}: answer '{ex.answer}', predicted '{ex.predicted}'", fontsize=9)
    fig.colorbar(image, ax=ax, fraction=0.02, pad=0.01, label=r"$\langle k_1 \otimes k_2, n \otimes e\rangle$")
    fig.tight_layout()
    return save_figure(fig, out, dpi=120)
