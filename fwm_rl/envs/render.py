"""Drawings of metro graphs in the style of the paper's Figure 4, and a text map.

Nodes are locations (agent green, reward yellow); each directed edge is
labelled with the set of actions that take it. Invalid actions are not drawn.
Figures are made without pyplot's global state (safe in threads and tests).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import Circle, FancyArrowPatch

from fwm_rl.envs.graphs import to_networkx

AGENT_COLOUR = "#6cc24a"
REWARD_COLOUR = "#ffd84d"
NODE_COLOUR = "#f2f2f2"
NODE_RADIUS = 0.16
EDGE_BEND = 0.18  # matplotlib "arc3" bend: the edges i->j and j->i curve to opposite sides


def _check_graph(adjacency: np.ndarray) -> np.ndarray:
    adjacency = np.asarray(adjacency)
    if adjacency.ndim != 3 or adjacency.shape[1] != adjacency.shape[2]:
        raise ValueError(
            f"expected one graph A[action, from, to] of shape [n_actions, n_states, n_states], got {adjacency.shape}"
        )
    return adjacency


def draw_graph(
    adjacency: np.ndarray,
    agent: int | None = None,
    reward: int | None = None,
    title: str | None = None,
    size: float = 4.0,
) -> Figure:
    """A matplotlib ``Figure`` of one graph ``A[action, from, to]`` (Figure 4 style)."""
    adjacency = _check_graph(adjacency)
    n_states = adjacency.shape[1]
    graph = to_networkx(adjacency)
    angles = np.pi / 2 - 2 * np.pi * np.arange(n_states) / n_states
    positions = np.stack([np.cos(angles), np.sin(angles)], axis=1)

    figure = Figure(figsize=(size, size), dpi=100)
    FigureCanvasAgg(figure)
    ax = figure.add_axes((0, 0, 1, 0.92 if title else 1))
    ax.set_xlim(-1.35, 1.35)
    ax.set_ylim(-1.35, 1.35)
    ax.set_aspect("equal")
    ax.axis("off")
    if title:
        figure.suptitle(title, fontsize=11)

    for from_state, to_state, data in graph.edges(data=True):
        start, end = positions[from_state], positions[to_state]
        ax.add_patch(
            FancyArrowPatch(
                start,
                end,
                connectionstyle=f"arc3,rad={EDGE_BEND}",
                arrowstyle="-|>",
                mutation_scale=14,
                shrinkA=NODE_RADIUS * 100 * size / 2.7,
                shrinkB=NODE_RADIUS * 100 * size / 2.7,
                color="#444444",
                linewidth=1.2,
            )
        )
        # Midpoint of the arc3 Bezier curve: the chord's midpoint moved by bend/2 along its normal.
        dx, dy = end - start
        label_at = (start + end) / 2 + EDGE_BEND / 2 * np.array([dy, -dx])
        ax.text(
            *label_at,
            ",".join(map(str, data["actions"])),
            ha="center",
            va="center",
            fontsize=9,
            bbox={"boxstyle": "round,pad=0.15", "facecolor": "white", "edgecolor": "none"},
        )
    for state, (x, y) in enumerate(positions):
        colour = AGENT_COLOUR if state == agent else REWARD_COLOUR if state == reward else NODE_COLOUR
        ax.add_patch(Circle((x, y), NODE_RADIUS, facecolor=colour, edgecolor="black", linewidth=1.2, zorder=3))
        ax.text(x, y, str(state), ha="center", va="center", fontsize=12, zorder=4)
    return figure


def save_graph_png(
    path: str | Path, adjacency: np.ndarray, agent: int | None = None, reward: int | None = None, title: str | None = None
) -> Path:
    """Draw one graph to a PNG file (parent folders are created) and return its path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    draw_graph(adjacency, agent=agent, reward=reward, title=title).savefig(path)
    return path


def render_rgb(
    adjacency: np.ndarray, agent: int | None = None, reward: int | None = None, title: str | None = None
) -> np.ndarray:
    """The drawing as an ``uint8`` RGB image ``[height, width, 3]``."""
    figure = draw_graph(adjacency, agent=agent, reward=reward, title=title)
    figure.canvas.draw()
    return np.asarray(figure.canvas.buffer_rgba())[..., :3].copy()


def ansi_map(
    adjacency: np.ndarray,
    agent: int | None = None,
    reward: int | None = None,
    step: int | None = None,
    horizon: int | None = None,
) -> str:
    """A text map: one line per location with its outgoing ``action->location`` edges,
    the agent marked ``A`` and the reward ``R``."""
    adjacency = _check_graph(adjacency)
    n_actions, n_states, _ = adjacency.shape
    lines = []
    if step is not None:
        lines.append(f"step {step}/{horizon}  agent at {agent}  reward at {reward}")
    for state in range(n_states):
        mark = ("A" if state == agent else " ") + ("R" if state == reward else " ")
        edges = [
            f"{action}->{int(np.argmax(adjacency[action, state]))}"
            for action in range(n_actions)
            if adjacency[action, state].any()
        ]
        lines.append(f"[{mark}] {state}: " + "  ".join(edges))
    return "\n".join(lines) + "\n"
