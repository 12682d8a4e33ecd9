"""An agent at work: one episode on one graph as an animated GIF (``fwm-rl watch``).

Each frame is the Figure-4 drawing of the graph with the agent (green) and the reward (yellow)
after a step, titled with the step, the action taken (marked when it is invalid: the agent stays)
and the reward so far. For an FWM agent a strip below shows the memory over the episode so far:
the write strength ``beta`` of eq. 2 at every step, and the read queries ``n^(0)`` of eq. 5 and
``e^(1..N_r)`` of eq. 6 as a heatmap (one column per step). Frames are drawn with matplotlib and
written with Pillow.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from fwm_rl.agents.policies import FwmPolicy, RecurrentActorCriticPolicy
from fwm_rl.checks import check_real
from fwm_rl.envs.graph_env import FWMGraphEnv
from fwm_rl.envs.graphs import N_ACTIONS, N_STATES, graph_at, sample_adjacency_matrix
from fwm_rl.envs.render import draw_graph
from fwm_rl.memory import MemoryTrace

__all__ = ["EpisodeRecord", "check_gif_options", "episode_gif", "play_episode"]


@dataclass
class EpisodeRecord:
    """One episode of a policy on one graph, step by step (``T`` = the horizon)."""

    adjacency: np.ndarray  # [n_actions, n_states, n_states]
    title: str  # where the graph comes from
    agent: list[int]  # [T + 1] agent location at the start and after each step
    reward_location: list[int]  # [T + 1]
    actions: list[int]  # [T]
    valid: list[bool]  # [T]
    rewards: list[float]  # [T]
    trace: MemoryTrace | None  # the memory's internals (FWM agents), numpy arrays [T, ...] of the one row

    @property
    def beta(self) -> np.ndarray | None:
        """Write strength of eq. 2 at every step ``[T]`` (FWM agents)."""
        return None if self.trace is None else self.trace.beta

    @property
    def queries(self) -> np.ndarray | None:
        """Read queries ``[T, (1 + n_reads) d]``: ``n^(0)`` (eq. 5) then ``e^(1..N_r)`` (eq. 6) (FWM agents)."""
        return (
            None
            if self.trace is None
            else np.concatenate([self.trace.n[:, 0], self.trace.e.reshape(len(self.trace.e), -1)], -1)
        )


def _graph(split: str | None, index: int, seed: int | None) -> tuple[np.ndarray, str]:
    if seed is not None:
        if split is not None:
            raise ValueError("give either a graph of a set (--split/--index) or a fresh Listing-1 graph (--seed), not both")
        if seed < 0:
            raise ValueError(f"--seed must be >= 0, got {seed}")
        return sample_adjacency_matrix(N_ACTIONS, N_STATES, np.random.RandomState(seed)), f"Listing 1 graph, seed {seed}"
    split = split or "test"
    return graph_at(split, index), f"{split} graph {index}"


def play_episode(
    policy: RecurrentActorCriticPolicy,
    split: str | None = None,
    index: int = 0,
    seed: int | None = None,
    episode_seed: int = 0,
    deterministic: bool = False,
    semantics: str = "paper",
) -> EpisodeRecord:
    """Play one episode of ``policy`` on graph ``index`` of ``split`` (default ``"test"``) or, with
    ``seed``, on a fresh Listing-1 graph from ``RandomState(seed)``; ``episode_seed`` fixes
    placements and sampling."""
    adjacency, title = _graph(split, index, seed)
    env = FWMGraphEnv(graphs=adjacency[None], semantics=semantics)
    obs, _ = env.reset(seed=episode_seed, options={"graph_index": 0})
    core = env.core
    torch.manual_seed(episode_seed)
    agent, reward_location = [int(core.agent_location[0])], [int(core.reward_location[0])]
    actions, valid, rewards, observations = [], [], [], [obs]
    state, start = None, np.ones(1, dtype=bool)
    for _ in range(env.config.horizon):
        action, state = policy.predict(obs[None], state, start, deterministic=deterministic)
        obs, reward, terminated, truncated, info = env.step(int(action[0]))
        actions.append(int(action[0]))
        valid.append(info["valid_action"])
        rewards.append(reward)
        agent.append(int(core.agent_location[0]))
        reward_location.append(int(core.reward_location[0]))
        observations.append(obs)
        start = np.zeros(1, dtype=bool)
        if terminated or truncated:
            break
    trace = None
    if isinstance(policy, FwmPolicy):  # the memory's internals: the episode replayed in one sequence call
        x = torch.as_tensor(np.stack(observations[: len(actions)]), device=policy.device, dtype=policy.dtype).unsqueeze(1)
        with torch.no_grad():
            _, _, trace = policy.core(x, None, return_trace=True)
        trace = MemoryTrace(*(part[:, 0].cpu().numpy() for part in trace))
    return EpisodeRecord(adjacency, title, agent, reward_location, actions, valid, rewards, trace)


def _frame(record: EpisodeRecord, t: int, label: str) -> np.ndarray:
    """The picture after ``t`` steps (``t = 0``: the start) as an RGB array."""
    total = sum(record.rewards[:t])
    if t == 0:
        caption = f"{label}: {record.title}\nstart, reward so far 0"
    else:
        action = record.actions[t - 1]
        note = "" if record.valid[t - 1] else " (invalid: stays)"
        caption = f"{label}: {record.title}\nstep {t}/{len(record.actions)}, action {action}{note}, reward so far {total:g}"
    graph = draw_graph(record.adjacency, agent=record.agent[t], reward=record.reward_location[t], size=4.0)
    graph.canvas.draw()
    graph_rgb = np.asarray(graph.canvas.buffer_rgba())[..., :3]
    memory = record.beta is not None
    figure = Figure(figsize=(4.4, 5.8 if memory else 4.8), dpi=100)
    FigureCanvasAgg(figure)
    figure.suptitle(caption, fontsize=9)
    rows = figure.add_gridspec(
        3 if memory else 1, 1, height_ratios=[4, 1, 1.4] if memory else [1], top=0.91, bottom=0.07, hspace=0.3
    )
    ax = figure.add_subplot(rows[0])
    ax.imshow(graph_rgb)
    ax.axis("off")
    if memory:
        T = len(record.actions)
        ax_beta = figure.add_subplot(rows[1])
        ax_beta.bar(np.arange(1, t + 1), record.beta[:t], color="tab:blue", width=0.8)
        ax_beta.set_xlim(0.5, T + 0.5)
        ax_beta.set_ylim(0, 1)
        ax_beta.set_ylabel("beta", fontsize=8)
        ax_beta.tick_params(labelsize=7)
        ax_q = figure.add_subplot(rows[2])
        shown = np.full((record.queries.shape[1], T), np.nan)
        shown[:, :t] = record.queries[:t].T
        limit = float(np.abs(record.queries).max()) or 1.0
        ax_q.imshow(
            shown,
            aspect="auto",
            cmap="coolwarm",
            vmin=-limit,
            vmax=limit,
            interpolation="nearest",
            extent=(0.5, T + 0.5, shown.shape[0], 0),
        )
        ax_q.set_ylabel("read queries", fontsize=8)
        ax_q.set_xlabel("step", fontsize=8)
        ax_q.tick_params(labelsize=7)
    figure.canvas.draw()
    return np.asarray(figure.canvas.buffer_rgba())[..., :3].copy()


def check_gif_options(out: str | Path, fps: float) -> Path:
    """``out`` as a path, or a ValueError naming what is wrong with it or with ``fps``."""
    check_real("fps", fps, positive=True)
    out = Path(out)
    if out.suffix.lower() != ".gif":
        raise ValueError(f"the output must be a .gif file, got {out}")
    return out


def episode_gif(record: EpisodeRecord, out: str | Path, fps: float = 2.0, label: str = "agent") -> Path:
    """Write ``record`` as an animated GIF (one frame per step, the start included; parent folders
    are created) and return its path."""
    from PIL import Image

    out = check_gif_options(out, fps)
    frames = [Image.fromarray(_frame(record, t, label)) for t in range(len(record.actions) + 1)]
    out.parent.mkdir(parents=True, exist_ok=True)
    frames[0].save(out, save_all=True, append_images=frames[1:], duration=int(round(1000 / fps)), loop=0)
    return out
