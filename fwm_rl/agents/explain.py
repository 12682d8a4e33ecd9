"""What the FWM agent's memory does in one episode (the Figure-3 idea of the paper, applied to meta-RL).

Over one episode (:func:`fwm_rl.agents.watch.play_episode`) the picture shows

* the write strength ``beta`` (eq. 2) at every step, each step labelled with what the agent's
  input showed it there: the transition ``from -action-> to`` it has just made (``*``: placed anew
  after reaching the reward, so no transition);
* for each read ``i`` (eq. 7), the match of its query at step ``t`` with the key written at step
  ``j <= t``: ``<k1_j (x) k2_j, n_t^(i-1) (x) e_t^(i)> = (k1_j . n_t^(i-1)) (k2_j . e_t^(i))``
  (rows: reading step, columns: the writes it can see), i.e. which stored associations each read
  looks up;
* the cosine similarity of the write keys ``vec(k1 (x) k2)`` between steps: whether the same
  transition is written under the same key each time it is made.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from fwm_rl.agents.watch import EpisodeRecord
from fwm_rl.engine import save_figure

__all__ = ["explain_figure", "read_matches", "step_labels", "write_key_similarity"]


def step_labels(record: EpisodeRecord) -> list[str]:
    """What step ``t``'s input shows: ``"start 3"`` at the first step, else ``"from-action->to"``
    (``"*to"`` where the agent was placed anew after reaching the reward)."""
    labels = [f"start {record.agent[0]}"]
    for t in range(1, len(record.actions)):
        placed = record.rewards[t - 1] > 0  # reaching the reward places agent and reward anew
        labels.append(f"*{record.agent[t]}" if placed else f"{record.agent[t - 1]}-{record.actions[t - 1]}->{record.agent[t]}")
    return labels


def read_matches(record: EpisodeRecord) -> np.ndarray:
    """``[n_reads, T, T]``: match of read ``i``'s query at step ``t`` with the write key of step ``j``
    (0 where ``j > t``: not written yet)."""
    if record.trace is None:
        raise ValueError("this agent has no fast weight memory (an LSTM or GRU agent); explain needs an FWM agent")
    tr = record.trace
    g1 = np.einsum("jd,tid->itj", tr.k1, tr.n)  # k1_j . n_t^(i-1)
    g2 = np.einsum("jd,tid->itj", tr.k2, tr.e)  # k2_j . e_t^(i)
    return np.tril(g1 * g2)


def write_key_similarity(record: EpisodeRecord) -> np.ndarray:
    """``[T, T]`` cosine similarity of the write keys ``vec(k1 (x) k2)`` of two steps."""
    if record.trace is None:
        raise ValueError("this agent has no fast weight memory (an LSTM or GRU agent); explain needs an FWM agent")
    keys = np.einsum("ta,tb->tab", record.trace.k1, record.trace.k2).reshape(len(record.trace.k1), -1)
    keys = keys / np.maximum(np.linalg.norm(keys, axis=1, keepdims=True), 1e-12)
    return keys @ keys.T


def explain_figure(record: EpisodeRecord, out: str | Path, label: str = "FWM agent") -> Path:
    """Draw :func:`read_matches`, :func:`write_key_similarity` and ``beta`` of one episode into ``out`` (PNG)."""
    matches, similarity, labels = (
        read_matches(record),
        write_key_similarity(record),
        step_labels(record),
    )  # (refuse LSTM agents first)
    n_reads, T = matches.shape[0], matches.shape[1]
    figure = Figure(figsize=(3.7 * (n_reads + 1), 7.0))
    grid = figure.add_gridspec(
        2, n_reads + 1, height_ratios=[1, 3], hspace=0.45, wspace=0.3, left=0.05, right=0.97, top=0.93, bottom=0.1
    )
    ax_beta = figure.add_subplot(grid[0, :])
    ax_beta.bar(np.arange(T), record.beta, color="tab:blue")
    ax_beta.set_xticks(np.arange(T), labels, rotation=90, fontsize=6)
    ax_beta.set_ylim(0, 1)
    ax_beta.set_ylabel("write strength beta")
    total = sum(record.rewards)
    ax_beta.set_title(
        f"{label}: {record.title}, total reward {total:g} (labels: the transition each step's input shows)", fontsize=9
    )
    limit = float(np.abs(matches).max()) or 1.0
    for i in range(n_reads):
        ax = figure.add_subplot(grid[1, i])
        image = ax.imshow(matches[i], cmap="coolwarm", vmin=-limit, vmax=limit, interpolation="nearest", aspect="auto")
        ax.set_title(f"read {i + 1}: query at step t . key written at step j", fontsize=8)
        ax.set_xlabel("write step j", fontsize=8)
        ax.set_ylabel("read step t", fontsize=8)
        ax.set_xticks(np.arange(T), labels, rotation=90, fontsize=5)
        ax.set_yticks(np.arange(T), labels, fontsize=5)
        if i == n_reads - 1:
            figure.colorbar(image, ax=ax, shrink=0.8, label="match")
    ax = figure.add_subplot(grid[1, n_reads])
    image = ax.imshow(similarity, cmap="viridis", vmin=-1, vmax=1, interpolation="nearest", aspect="auto")
    ax.set_title("write keys: cosine similarity", fontsize=8)
    ax.set_xticks(np.arange(T), labels, rotation=90, fontsize=5)
    ax.set_yticks(np.arange(T), labels, fontsize=5)
    figure.colorbar(image, ax=ax, shrink=0.8)
    return save_figure(figure, out, dpi=110)
