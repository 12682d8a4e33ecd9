"""Training speed of the meta-RL agents in agent-steps/s (forward + backward), paper size (600 agents x 30 steps).

    python scripts/bench_a2c_speed.py                         # ours: FWM (fast and step form) and LSTM-512
    python scripts/bench_a2c_speed.py --authors-repo PATH     # + the authors' loop, from a checkout of
                                                              #   ischlag/Fast-Weight-Memory-public
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

from fwm_rl.agents.training import TrainConfig, make_model
from fwm_rl.runs import resolve_device

AGENT_STEPS = 600 * 30  # one training episode of the paper's batch


def _best(fn, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def ours(cfg: TrainConfig, device: torch.device, repeats: int) -> tuple[float, float]:
    """Seconds per training episode and per update of this project's RecurrentA2C."""
    model = make_model(cfg, device)
    model.learn(AGENT_STEPS)  # fills the buffer once

    def episode():
        model.learn(AGENT_STEPS, reset_num_timesteps=False)
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    def update():
        model.policy.set_training_mode(True)
        model.compute_gradients()
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    return _best(episode, repeats), _best(update, repeats)


def authors(repo: Path, model: str, hidden: int, device: torch.device, repeats: int) -> float:
    """Seconds per training episode (rollout with autograd + backward) of the authors' loop."""
    sys.path.insert(0, str(repo / "metaRL"))
    torch.Tensor.cuda = lambda self, *args, **kwargs: self.to(device)  # their code calls .cuda() everywhere
    agent = importlib.import_module("train_agent")
    p = {"batch_size": 600, "n_actions": 3, "n_islands": 5, "periods": 1, "n_steps": 30, "in_size": 17, "penalty": 0.05,
         "reward": 10.0, "gamma": 0.9, "entropy_coef": 0.03, "value_coef": 0.1, "hidden": hidden, "s_size": 16}
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
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    return _best(episode, repeats)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu", help="cpu | cuda | auto")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    parser.add_argument("--authors-repo", type=Path, default=None, help="checkout of ischlag/Fast-Weight-Memory-public")
    parser.add_argument("--lstm-size", type=int, default=512)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    print(f"device {device}, torch {torch.__version__}, threads {torch.get_num_threads()}, 600 agents x 30 steps\n")
    print("| agent | loop | s / episode | agent-steps/s (episode) | s / update | agent-steps/s (update) |")
    print("|---|---|---|---|---|---|")
    runs = [
        ("FWM-32-16", "ours (fast: factored rollout, chunked update)", TrainConfig(device=str(device))),
        ("FWM-32-16", "ours (step form in rollout and update)", TrainConfig(fwm_impl="step", device=str(device))),
        (f"LSTM-{args.lstm_size}", "ours", TrainConfig(memory="lstm", hidden_size=args.lstm_size, device=str(device))),
    ]
    for label, loop, cfg in runs:
        episode, update = ours(cfg, device, args.repeats)
        print(f"| {label} | {loop} | {episode:.3f} | {AGENT_STEPS / episode:,.0f} | {update:.3f} | {AGENT_STEPS / update:,.0f} |")
    if args.authors_repo is not None:
        for model, hidden, label in (("fwm", 32, "FWM-32-16"), ("lstm", args.lstm_size, f"LSTM-{args.lstm_size}")):
            episode = authors(args.authors_repo, model, hidden, device, args.repeats)
            print(f"| {label} | authors' train_agent.py | {episode:.3f} | {AGENT_STEPS / episode:,.0f} | | |")


if __name__ == "__main__":
    main()
