"""Per-token loss of two language models over a stretch of text (the paper's Figure 6).

Figure 6 colours, word by word over a piece of the PTB test set, the cross-entropy of the LSTM and
of the FWM model and, in a second row, their difference, to show where the memory helps (e.g. on
a company name once it has been introduced). :func:`compare_checkpoints` computes both models'
losses with batch size 1 from the start of the split (so both see the same full left context)
and :func:`plot_loss_comparison` draws them in bits: one row per model, then "A - B".
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from fwm_rl.checks import check_int
from fwm_rl.engine import save_figure
from fwm_rl.lm.trainer import checkpoint_corpus, evaluate, load_model

__all__ = ["Comparison", "compare_checkpoints", "plot_loss_comparison"]


@dataclass
class Comparison:
    """Losses (bits) of two models on the same words."""

    words: list[str]
    bits_a: np.ndarray
    bits_b: np.ndarray
    labels: tuple[str, str]
    figure: Path

    @property
    def mean_difference(self) -> float:
        """Mean of ``bits_a - bits_b`` over the stretch (positive: B is better)."""
        return float(np.mean(self.bits_a - self.bits_b))


def plot_loss_comparison(
    words: Sequence[str],
    bits_a: Sequence[float],
    bits_b: Sequence[float],
    out_path: str | os.PathLike,
    labels: tuple[str, str] = ("LSTM", "FWM"),
    words_per_row: int = 20,
) -> Path:
    """Draw the Figure-6 grid: per word, the loss of A, of B (bits) and ``A - B``; write a PNG."""
    from matplotlib.figure import Figure

    bits_a, bits_b = np.asarray(bits_a, dtype=float), np.asarray(bits_b, dtype=float)
    if not len(words) == len(bits_a) == len(bits_b) or len(words) == 0:
        raise ValueError(
            f"need one loss per word from each model, got {len(words)} words, {len(bits_a)} and {len(bits_b)} losses"
        )
    check_int("words_per_row", words_per_row)
    n_lines = math.ceil(len(words) / words_per_row)
    width = min(words_per_row, len(words))
    vmax = float(max(bits_a.max(), bits_b.max()))
    dmax = float(np.abs(bits_a - bits_b).max()) or 1.0
    fig = Figure(figsize=(0.62 * width + 1.5, 2.8 * n_lines))
    # per line of words: the two models' losses, their difference, room for the word labels
    grid = fig.add_gridspec(
        3 * n_lines, 2, height_ratios=[2, 1, 1.1] * n_lines, width_ratios=[1, 0.015], hspace=0.1, wspace=0.02
    )
    for line in range(n_lines):
        span = slice(line * words_per_row, (line + 1) * words_per_row)
        a, b, w = bits_a[span], bits_b[span], list(words[span])
        pad = np.full(width - len(w), np.nan)  # a short last line keeps the cell width
        top, bottom = fig.add_subplot(grid[3 * line, 0]), fig.add_subplot(grid[3 * line + 1, 0])
        losses = top.imshow(
            np.stack([np.concatenate([a, pad]), np.concatenate([b, pad])]), cmap="Reds", vmin=0.0, vmax=vmax, aspect="auto"
        )
        diff = bottom.imshow(np.concatenate([a - b, pad])[None], cmap="RdBu", vmin=-dmax, vmax=dmax, aspect="auto")
        for row, values in enumerate((a, b)):
            for col, value in enumerate(values):
                top.text(
                    col,
                    row,
                    f"{value:.1f}",
                    ha="center",
                    va="center",
                    fontsize=7,
                    color="white" if value > 0.6 * vmax else "black",
                )
        for col, value in enumerate(a - b):
            bottom.text(col, 0, f"{value:+.1f}", ha="center", va="center", fontsize=7)
        top.set_yticks([0, 1], labels=list(labels))
        top.set_xticks([])
        bottom.set_yticks([0], labels=[f"{labels[0]} - {labels[1]}"])
        bottom.set_xticks(range(len(w)), labels=w, rotation=60, ha="right", fontsize=8)
    # colour bars beside the first line's rows
    fig.colorbar(losses, cax=fig.add_subplot(grid[0, 1]), label="bits")
    fig.colorbar(diff, cax=fig.add_subplot(grid[1, 1]), label="bits")
    fig.suptitle(f"per-word loss (bits): {labels[0]} vs {labels[1]}; blue = {labels[1]} better")
    return save_figure(fig, out_path, dpi=120, bbox_inches="tight")


def compare_checkpoints(
    checkpoint_a: str | os.PathLike,
    checkpoint_b: str | os.PathLike,
    out_path: str | os.PathLike = "lm-compare.png",
    split: str = "test",
    start: int = 0,
    length: int = 60,
    data: str | os.PathLike | None = None,
    labels: tuple[str, str] | None = None,
    device: str | torch.device = "auto",
) -> Comparison:
    """Per-token losses of two checkpoints on ``length`` words of ``split`` from word ``start``.

    Both models must share a vocabulary (trained on the same corpus). Each model reads the split
    from its beginning with batch size 1 and its tuned softmax temperature. The rows are named by the models' memories
    unless ``labels`` names them.
    """
    model_a, ckpt_a = load_model(checkpoint_a, device)
    model_b, ckpt_b = load_model(checkpoint_b, device)
    if ckpt_a["task"]["vocab"] != ckpt_b["task"]["vocab"]:
        raise ValueError(
            f"{checkpoint_a} and {checkpoint_b} have different vocabularies; compare models trained on the same corpus"
        )
    tokens = checkpoint_corpus(ckpt_a, data).split(split)
    if start < 0 or length < 1 or start + length > tokens.numel():
        raise ValueError(f"--start {start} --length {length} does not fit the {split} split of {tokens.numel()} words")
    prefix = tokens[: start + length]
    bits = []
    for model, ckpt in ((model_a, ckpt_a), (model_b, ckpt_b)):
        result = evaluate(model, prefix, batch_size=1, temperature=ckpt["task"]["temperature"], return_token_losses=True)
        bits.append(result.token_losses[start:].numpy() / math.log(2))
    if labels is None:
        labels = (model_a.config.memory.upper(), model_b.config.memory.upper())  # (load_model read the configs, old names too)
        if labels[0] == labels[1]:
            labels = (f"{labels[0]} (A)", f"{labels[1]} (B)")
    words = [ckpt_a["task"]["vocab"][int(i)] for i in tokens[start : start + length]]
    figure = plot_loss_comparison(words, bits[0], bits[1], out_path, labels=labels)
    return Comparison(words, bits[0], bits[1], labels, figure)
