"""Training speed of the meta-RL agents in agent-steps/s (forward + backward), paper size (600 agents x 30 steps).

    python scripts/bench_a2c_speed.py                         # ours: FWM (fast and step form) and LSTM-512
    python scripts/bench_a2c_speed.py --authors-repo PATH     # + the authors' loop, from a checkout of
                                                              #   ischlag/Fast-Weight-Memory-public
    python scripts/bench_a2c_speed.py --threads 2 --authors-repo PATH --no-step-form   # the README's ratio
    python scripts/bench_a2c_speed.py --device cuda

For this project's ``RecurrentA2C`` it times whole training episodes (rollout of 30 steps on the
native batched env + one update) and the update alone (replay forward + backward). The authors'
``metaRL/train_agent.py`` steps its 600 environments in a Python loop and backpropagates through the
rollout; it is imported from the given checkout and run as released, except that its ``.cuda()``
calls leave tensors on ``--device``. Nothing of it is copied into this project.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import time
from pathlib import Path

import numpy as np
import torch

from fwm_rl.agents.training import A2CConfig, make_model
from fwm_rl.engine import resolve_device

AGENT_STEPS = 600 * 30  # one training episode of the paper's batch


def _timer(fn, repeats: int):
    """A callable that runs ``fn`` ``repeats`` times and returns the fastest run's seconds (``fn`` warmed up once)."""
    fn()  # warm-up (and, for the fused rollout step, compilation)

    def best() -> float:
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            fn()
            times.append(time.perf_counter() - start)
        return min(times)

    return best


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def ours(cfg: A2CConfig, device: torch.device, repeats: int):
    """Timers of one training episode and of one update (replay forward + backward) of this project's RecurrentA2C."""
    model = make_model(cfg, device)
    model.learn(AGENT_STEPS)  # fills the buffer once

    def episode():
        model.learn(AGENT_STEPS, reset_num_timesteps=False)
        _sync(device)

    def update():
        model.policy.set_training_mode(True)
        model.compute_gradients()
        _sync(device)

    return _timer(episode, repeats), _timer(update, repeats)


def authors(repo: Path, model: str, hidden: int, device: torch.device, repeats: int):
    """Timer of one training episode (rollout with autograd + backward + Adam) of the authors' loop."""
    sys.path.insert(0, str(repo / "metaRL"))
    torch.Tensor.cuda = lambda self, *args, **kwargs: self.to(device)  # their code calls .cuda() everywhere
    agent = importlib.import_module("train_agent")
    p = {
        "batch_size": 600,
        "n_actions": 3,
        "n_islands": 5,
        "periods": 1,
        "n_steps": 30,
        "in_size": 17,
        "penalty": 0.05,
        "reward": 10.0,
        "gamma": 0.9,
        "entropy_coef": 0.03,
        "value_coef": 0.1,
        "hidden": hidden,
        "s_size": 16,
    }
    net = (agent.AgentFWM(p) if model == "fwm" else agent.AgentLSTM(p)).to(device)
    rng = np.random.RandomState(666)
    graphs = agent.generate_graphs(600, 1, 3, 5, None, rng)
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-3, eps=1e-4)

    def episode():
        optimizer.zero_grad()
        net.reset()
        loss, _ = agent.run_episode(p, graphs, net)
        loss.backward()
        optimizer.step()
        _sync(device)

    return _timer(episode, repeats)


def main() -> None:
    parser = argparse.ArgumentParser(
        allow_abbrev=False, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--device", default="cpu", help="cpu | cuda | auto")
    parser.add_argument("--repeats", type=int, default=3, help="episodes timed per variant and round; the fastest counts")
    parser.add_argument("--rounds", type=int, default=3, help="rounds; each times every variant in turn (default 3)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    parser.add_argument("--authors-repo", type=Path, default=None, help="checkout of ischlag/Fast-Weight-Memory-public")
    parser.add_argument("--lstm-size", type=int, default=512)
    parser.add_argument("--no-step-form", action="store_true", help="leave out the (slow) step-form row")
    args = parser.parse_args()
    for name in ("repeats", "rounds"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be at least 1, got {getattr(args, name)}")
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    print(
        f"device {device}, torch {torch.__version__}, threads {torch.get_num_threads()}, 600 agents x 30 steps, "
        f"{args.rounds} rounds of {args.repeats} episodes per variant\n"
    )
    variants = [("FWM-32-16", "ours (fast: fused compiled rollout step, chunked update)", A2CConfig(device=str(device)))]
    if not args.no_step_form:
        variants.append(
            ("FWM-32-16", "ours (step form in rollout and update)", A2CConfig(fwm_impl="step", device=str(device)))
        )
    variants.append(
        (f"LSTM-{args.lstm_size}", "ours", A2CConfig(memory="lstm", hidden_size=args.lstm_size, device=str(device)))
    )
    rows = []  # (label, loop, episode timer, update timer or None)
    for label, loop, cfg in variants:
        rows.append((label, loop, *ours(cfg, device, args.repeats)))
    if args.authors_repo is not None:
        for model, hidden, label in (("fwm", 32, "FWM-32-16"), ("lstm", args.lstm_size, f"LSTM-{args.lstm_size}")):
            rows.append(
                (label, "authors' train_agent.py", authors(args.authors_repo, model, hidden, device, args.repeats), None)
            )
    times = [[[], []] for _ in rows]
    for r in range(args.rounds):  # every variant in turn, so that the machine's drift hits all alike
        for i, (_, _, episode, update) in enumerate(rows):
            times[i][0].append(episode())
            if update is not None:
                times[i][1].append(update())
    print("| agent | loop | s / episode (best) | agent-steps/s (episode) | s / update | agent-steps/s (update) |")
    print("|---|---|---|---|---|---|")
    for (label, loop, _, _), (episodes, updates) in zip(rows, times):
        e = min(episodes)
        u = f"{min(updates):.3f} | {AGENT_STEPS / min(updates):,.0f}" if updates else " | "
        print(f"| {label} | {loop} | {e:.3f} | {AGENT_STEPS / e:,.0f} | {u} |")
    if args.authors_repo is not None:
        for label in ("FWM-32-16", f"LSTM-{args.lstm_size}"):
            mine = next(
                t[0]
                for row, t in zip(rows, times)
                if row[0] == label and row[1].startswith("ours") and "step form" not in row[1]
            )
            theirs = next(t[0] for row, t in zip(rows, times) if row[0] == label and row[1].startswith("authors"))
            per_round = ", ".join(f"{a / b:.1f}x" for a, b in zip(theirs, mine))
            print(f"\n{label}: ours vs the authors' loop, per round: {per_round}; best vs best {min(theirs) / min(mine):.1f}x")


if __name__ == "__main__":
    main()
