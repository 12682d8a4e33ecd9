"""Trained agents shipped inside the package: plain ``state_dict`` weights plus a small JSON record.

Each agent is two files in ``fwm_rl/agents/weights/``: ``NAME.pt``, the policy's ``state_dict``
(tensors only, loaded with ``torch.load(..., weights_only=True)``: no pickled classes), and
``NAME.json``, its record: the training configuration and how it was trained and evaluated.
Nothing is downloaded. :data:`PRETRAINED` maps each name to its :class:`PretrainedRecord`;
:func:`load_pretrained` returns a :class:`~fwm_rl.agents.RecurrentA2C` ready for
``predict(obs, state, episode_start)`` and stable-baselines3's ``evaluate_policy``. A test
evaluates every entry on the test graphs and checks the figure of its record.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

import torch

from fwm_rl.agents.a2c import RecurrentA2C
from fwm_rl.agents.config import MEMORIES, A2CConfig, recipe_of
from fwm_rl.agents.evaluation import evaluate
from fwm_rl.agents.training import load_policy
from fwm_rl.agents.vec_env import FWMGraphVecEnv
from fwm_rl.engine import load_weights, resolve_device

__all__ = ["PRETRAINED", "WEIGHTS", "PretrainedRecord", "export_pretrained", "load_pretrained"]

#: Folder of the shipped weights and records.
WEIGHTS = Path(__file__).parent / "weights"


@dataclass(frozen=True)
class PretrainedRecord:
    """How a shipped agent was trained and what it reached (rewards: mean total reward per 30-step
    episode, ``*_sem`` the standard error, ``eval_episodes_per_graph`` episodes on each of the 600 graphs)."""

    name: str
    label: str  # e.g. FWM-32-16
    semantics: str  # task rules the agent was trained and evaluated under
    episodes: int  # training episodes (A2C updates)
    seed: int
    recipe: str  # learning recipe (fwm_rl.agents.training.RECIPES), or "custom"
    test_reward: float
    test_sem: float
    train_reward: float  # on the 600 training graphs
    train_sem: float
    eval_episodes_per_graph: int
    train_seconds: float
    command: str  # the command that trained it
    machine: str
    config: dict[str, Any] = field(repr=False)  # the A2CConfig

    def train_config(self) -> A2CConfig:
        return A2CConfig.from_dict(self.config)


def _read_records() -> Mapping[str, PretrainedRecord]:
    records = {}
    for path in sorted(WEIGHTS.glob("*.json")):
        record = PretrainedRecord(**json.loads(path.read_text()))
        records[record.name] = record
    return MappingProxyType(records)


#: Name -> record of every shipped agent.
PRETRAINED: Mapping[str, PretrainedRecord] = _read_records()


def load_pretrained(name: str, device: str | torch.device = "cpu") -> RecurrentA2C:
    """The shipped agent ``name`` (see :data:`PRETRAINED`) as a :class:`~fwm_rl.agents.RecurrentA2C`
    on ``device``, with a small environment of the test graphs under its record's task rules."""
    if name not in PRETRAINED:
        raise KeyError(f"no shipped agent named {name!r}; choose one of {sorted(PRETRAINED)}")
    record = PRETRAINED[name]
    cfg = record.train_config()
    device = resolve_device(device)
    env = FWMGraphVecEnv.make(1, split="test", device=device, semantics=cfg.semantics, trials=cfg.trials)
    model = RecurrentA2C(
        MEMORIES[cfg.memory], env, learning_rate=cfg.lr, policy_kwargs=cfg.policy_kwargs, seed=cfg.seed, device=device
    )
    weights = torch.load(WEIGHTS / f"{name}.pt", map_location=device, weights_only=True)
    load_weights(model.policy, weights, WEIGHTS / f"{name}.pt")
    model.policy.set_training_mode(False)
    return model


def export_pretrained(
    run_dir: str | Path,
    name: str,
    command: str,
    machine: str,
    eval_episodes_per_graph: int = 5,
    out: str | Path = WEIGHTS,
    overwrite: bool = False,
) -> PretrainedRecord:
    """Write a run's latest checkpoint as shipped agent ``name`` into ``out``: its weights (as
    float32 tensors) and a record whose rewards come from a fresh evaluation
    (``eval_episodes_per_graph`` episodes on every test and training graph, seeds 10,000 and 20,000
    as in a run's final evaluation)."""
    out = Path(out)
    if not overwrite and ((out / f"{name}.pt").exists() or (out / f"{name}.json").exists()):
        raise FileExistsError(f"{out / name}.pt or .json exists; pass overwrite=True to replace it")
    policy, cfg, ckpt = load_policy(run_dir, "cpu")
    test = evaluate(
        policy, "test", eval_episodes_per_graph, seed=cfg.seed + 10_000, semantics=cfg.semantics, trials=cfg.trials
    )
    train = evaluate(
        policy, "train", eval_episodes_per_graph, seed=cfg.seed + 20_000, semantics=cfg.semantics, trials=cfg.trials
    )
    record = PretrainedRecord(
        name=name, label=cfg.label, semantics=cfg.semantics, episodes=int(ckpt["step"]), seed=cfg.seed, recipe=recipe_of(cfg),
        test_reward=test.mean, test_sem=test.sem, train_reward=train.mean, train_sem=train.sem,
        eval_episodes_per_graph=eval_episodes_per_graph, train_seconds=float(ckpt["train_seconds"]),
        command=command, machine=machine, config=cfg.to_dict(),
    )  # fmt: skip
    out.mkdir(parents=True, exist_ok=True)
    torch.save({k: v.detach().float().cpu().clone() for k, v in policy.state_dict().items()}, out / f"{name}.pt")
    (out / f"{name}.json").write_text(json.dumps(record.__dict__, indent=2) + "\n")
    return record
