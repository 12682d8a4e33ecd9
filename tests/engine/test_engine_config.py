"""The engine's configs: one spelling of the shared knobs, help from the field docstrings, old names still read."""

import argparse
import dataclasses
from dataclasses import dataclass

import pytest

from fwm_rl.agents.config import A2CConfig, EnvTrainConfig
from fwm_rl.babi.config import CatbAbIConfig as BabiConfig
from fwm_rl.cli import build_parser
from fwm_rl.engine import SavedConfig, add_options, field_docs, given
from fwm_rl.lm.config import LMConfig, LMModelConfig

SHARED = ("lr", "steps", "eval_every", "time_budget", "seed")


@dataclass
class Toy(SavedConfig):
    RENAMED = {"rate": "lr"}
    RESUMABLE = ("steps", "fast")

    lr: float = 0.1
    """the learning rate"""
    steps: int | None = None
    """how many steps; 90% of them train"""
    fast: bool = False
    """go fast"""
    tag: str = "a"


def test_shared_knobs_are_spelled_the_same_in_every_trainer():
    for cls in (A2CConfig, BabiConfig, LMConfig):
        assert set(SHARED) <= {f.name for f in dataclasses.fields(cls)}, cls
    assert {"log_every"} <= {f.name for f in dataclasses.fields(BabiConfig)} & {f.name for f in dataclasses.fields(LMConfig)}


def test_every_config_field_has_a_docstring():
    for cls in (A2CConfig, EnvTrainConfig, BabiConfig, LMConfig, LMModelConfig):
        missing = [f.name for f in dataclasses.fields(cls) if not field_docs(cls).get(f.name)]
        assert not missing, f"{cls.__module__}.{cls.__name__}: no docstring under {missing}"


def test_options_come_from_the_fields():
    parser = argparse.ArgumentParser()
    assert add_options(parser, Toy, defaults={"tag": "default: the preset's"}) == ["lr", "steps", "fast", "tag"]
    text = parser.format_help()
    assert "the learning rate (default: 0.1)" in text and "90% of them train (default: none)" in " ".join(text.split())
    assert "--fast, --no-fast" in text and "(default: the preset's)" in text
    args = parser.parse_args(["--rate", "0.5", "--no-fast"])  # the old name of a renamed field is an alias
    assert given(args, ["lr", "steps", "fast", "tag"]) == {"lr": 0.5, "fast": False}
    with pytest.raises(SystemExit):
        parser.parse_args(["--steps", "x"])  # typed from the annotation (int | None -> int)


def test_old_field_names_still_load():
    assert Toy.from_dict({"rate": 0.3}).lr == 0.3
    old_a2c = {**A2CConfig().to_dict(), "learning_rate": 3e-3, "episodes": 7}
    del old_a2c["lr"], old_a2c["steps"]
    assert (A2CConfig.from_dict(old_a2c).lr, A2CConfig.from_dict(old_a2c).steps) == (3e-3, 7)
    old_lm = {**LMConfig().to_dict(), "max_steps": 5, "eval_interval": 2, "log_interval": 1, "clip": 0.0}
    for new in ("steps", "eval_every", "log_every", "max_grad_norm"):
        del old_lm[new]
    assert (LMConfig.from_dict(old_lm).steps, LMConfig.from_dict(old_lm).eval_every) == (5, 2)
    assert LMConfig.from_dict(old_lm).max_grad_norm == 0.0
    old_model = {"vocab_size": 9, "model": "fwm", "d_embed": 12, "d_hidden": 16}
    assert LMModelConfig.from_dict(old_model) == LMModelConfig(9, memory="fwm", embedding_size=12, hidden_size=16)
    with pytest.raises(ValueError, match="newer fwm-rl"):
        Toy.from_dict({"unknown": 1})


@pytest.mark.parametrize(
    "argv, field, value",
    [
        (["train", "--episodes", "9", "--print-config"], "steps", 9),
        (["train", "--steps", "9", "--print-config"], "steps", 9),
        (["lm", "train", "--model", "lstm", "--max-steps", "4", "--print-config"], "steps", 4),
        (["lm", "train", "--model", "lstm", "--eval-interval", "4", "--print-config"], "eval_every", 4),
        (["babi", "train", "--lr", "0.01", "--print-config"], "lr", 0.01),
    ],
)
def test_every_trainer_prints_its_config_and_keeps_its_old_flags(argv, field, value, capsys):
    import json

    from fwm_rl.cli import main

    assert main(argv) == 0
    printed = json.loads(capsys.readouterr().out)
    config = printed["runs"][0] if "runs" in printed else printed["train"]
    assert config[field] == value


def test_every_option_of_the_trainers_has_help():
    parser = build_parser()
    subparsers = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    trainers = [
        subparsers.choices["train"],
        *(
            next(a for a in subparsers.choices[group]._actions if isinstance(a, argparse._SubParsersAction)).choices["train"]
            for group in ("babi", "lm")
        ),
    ]
    for trainer in trainers:
        for action in trainer._actions:
            assert action.help, f"{trainer.prog}: {action.option_strings} has no help"


def test_resume_rules_are_declared_on_the_config():
    assert Toy().resumed(steps=9, fast=None) == Toy(steps=9)
    with pytest.raises(ValueError, match=r"only --steps and --fast may change, not --lr \(--rate\)"):
        Toy().resumed(rate=0.5)
    for cls in (A2CConfig, EnvTrainConfig, BabiConfig, LMConfig):
        assert {"time_budget", "device"} <= set(cls.RESUMABLE) and not {"lr", "seed"} & set(cls.RESUMABLE), cls
