"""Bounds and one-line errors, through the command line: sizes that would exhaust memory are refused (and the help
states the bound), absurd coefficients too, an --env budget is rounded to whole rollouts and said, a long story line
is read in bounded memory, a full disk or a read-only folder is one line (the last checkpoint intact), a broken
environment is named as the fault, and options are taken only as spelled."""

from __future__ import annotations

import argparse
import ast
import errno
import json
import pathlib
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch

from fwm_rl.babi import answer as answer_module
from fwm_rl.babi.models import CatbAbIModel
from fwm_rl.checks import upper_bound
from fwm_rl.cli import build_parser, main, run_reporting_errors
from fwm_rl.engine import load_checkpoint

ROOT = Path(__file__).resolve().parents[1]
HUGE = "999999999999"
#: A tiny LSTM run on CartPole (one update: 2 copies x 8 steps).
ENV_RUN = [
    "train",
    "--env",
    "CartPoleNoVel-v1",
    "--memory",
    "lstm",
    "--hidden-size",
    "8",
    "--n-envs",
    "2",
    "--n-steps",
    "8",
    "--eval-episodes",
    "1",
    "--final-eval-episodes",
    "1",
    "--device",
    "cpu",
    "--no-progress",
]


def one_line_error(capsys, argv: list[str], code: int = 2) -> str:
    assert main(argv) == code
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    return err


def subparser(*names: str) -> argparse.ArgumentParser:
    parser = build_parser()
    for name in names:
        action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        parser = action.choices[name]
    return parser


def option_help(parser: argparse.ArgumentParser, option: str) -> str:
    return next(" ".join(a.help.split()) for a in parser._actions if option in a.option_strings)


# ------------------------------------------------------------------------------------ sizes
def test_environment_copies_are_bounded_and_the_help_says_so(capsys):
    err = one_line_error(capsys, ["train", "--env", "CartPoleNoVel-v1", "--n-envs", "999999999", "--print-config"])
    assert "n_envs must be a positive integer at most 4096, got 999999999" in err
    assert "--env runs: 16, at most 4096" in option_help(subparser("train"), "--n-envs")


@pytest.mark.parametrize(
    "command, given, sizes",
    [
        (("train",), ["--preset", "paper-fwm"], ["--hidden-size", "--d-fwm", "--n-reads"]),
        (("train",), ["--env", "CartPoleNoVel-v1"], ["--hidden-size", "--d-fwm", "--n-reads", "--n-steps"]),
        (
            ("babi", "train"),
            [],
            ["--embedding-size", "--hidden-size", "--d-fwm", "--n-reads", "--n-layers", "--batch-size", "--bptt"],
        ),
        (
            ("lm", "train"),
            ["--memory", "fwm"],
            ["--embedding-size", "--hidden-size", "--n-layers", "--d-fwm", "--n-reads", "--batch-size", "--bptt"],
        ),
    ],
    ids=["train", "train-env", "babi-train", "lm-train"],
)
def test_sizes_that_would_exhaust_memory_are_refused_and_bounded_in_the_help(command, given, sizes, capsys):
    parser = subparser(*command)
    for size in sizes:
        err = one_line_error(capsys, [*command, *given, size, HUGE, "--print-config"])
        assert f"{size[2:].replace('-', '_')} must be a positive integer at most " in err and f"got {HUGE}" in err, (size, err)
        assert "at most" in option_help(parser, size), size


def test_every_bounded_field_states_its_bound_in_its_help():
    from fwm_rl.agents.config import A2CConfig, EnvTrainConfig
    from fwm_rl.babi.config import CatbAbIConfig, CatbAbIModelConfig
    from fwm_rl.lm.config import LMConfig, LMModelConfig

    for command, configs in (
        (("train",), (A2CConfig, EnvTrainConfig)),
        (("babi", "train"), (CatbAbIModelConfig, CatbAbIConfig)),
        (("lm", "train"), (LMModelConfig, LMConfig)),
    ):
        parser = subparser(*command)
        for action in parser._actions:
            bounds = {upper_bound(cls, action.dest) for cls in configs if action.dest in cls.__dataclass_fields__} - {None}
            for most in bounds:
                assert f"at most {most:g}" in " ".join(action.help.split()), (command, action.dest)


# ------------------------------------------------------------------------------ coefficients
@pytest.mark.parametrize("run", [["--preset", "paper-fwm"], ["--env", "CartPoleNoVel-v1"]], ids=["graph", "env"])
def test_negative_and_absurd_coefficients_are_refused(run, capsys):
    rule = "must be a non-negative finite number at most"
    for option, value, message in (
        ("--ent-coef", "-1", f"ent_coef {rule} 100, got -1.0"),
        ("--vf-coef", "1e12", f"vf_coef {rule} 100, got 1000000000000.0"),
        ("--gamma", "1.5", f"gamma {rule} 1, got 1.5"),
    ):
        assert message in one_line_error(capsys, ["train", *run, option, value, "--print-config"])
    assert main(["train", *run, "--ent-coef", "0", "--vf-coef", "100", "--gamma", "1", "--print-config"]) == 0
    capsys.readouterr()


# ------------------------------------------------------------------------ whole rollouts, said
def test_an_env_budget_below_one_rollout_is_refused_and_another_is_rounded_up_and_said(tmp_path, capsys):
    err = one_line_error(
        capsys, ["train", "--env", "CartPoleNoVel-v1", "--n-envs", "100", "--total-timesteps", "64", "--print-config"]
    )  # (--total-timesteps: SB3's name of --steps)
    assert "steps 64 is less than one rollout of n_envs 100 x n_steps 32 = 3200 steps" in err
    assert "give --steps 3200 or more" in err
    assert "rounded up to whole rollouts" in option_help(subparser("train"), "--steps")
    assert main([*ENV_RUN, "--steps", "20", "--eval-every", "16", "--out", str(tmp_path / "run")]) == 0
    out = capsys.readouterr().out
    assert "32 environment steps (2 rollouts of 2 copies x 8 steps; --steps 20 rounded up to whole rollouts)" in out
    assert json.loads((tmp_path / "run" / "results.json").read_text())["timesteps"] == 32
    assert main([*ENV_RUN, "--steps", "16", "--eval-every", "16", "--out", str(tmp_path / "exact")]) == 0
    first = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("training"))
    assert "16 environment steps (1 rollout of 2 copies x 8 steps) ->" in first and "rounded" not in first


# ------------------------------------------------------------------------------ missing module
def test_an_env_module_that_cannot_be_imported_is_named(capsys):
    err = one_line_error(capsys, ["train", "--env", "nosuchmodule:Foo-v0", "--print-config"])
    assert "the module 'nosuchmodule' could not be imported (No module named 'nosuchmodule')" in err
    assert "installed and importable" in err and "'Foo-v0'" in err


# ----------------------------------------------------------------------------- a broken env
class NonFiniteEnv(gym.Env):
    """A 1-d observation and a reward of 1 per step; from its third step on, a NaN observation or an infinite reward."""

    observation_space = gym.spaces.Box(-1.0, 1.0, (1,), np.float32)
    action_space = gym.spaces.Discrete(2)
    metadata = {"render_modes": ["rgb_array"]}

    def __init__(self, broken: str = "observation", render_mode=None):
        self.broken, self.render_mode, self.t = broken, render_mode, 0

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        return np.zeros(1, np.float32), {}

    def step(self, action):
        self.t += 1
        bad = self.t >= 3
        obs = np.full(1, np.nan if bad and self.broken == "observation" else 0.0, np.float32)
        return obs, float("inf") if bad and self.broken == "reward" else 1.0, self.t == 6, False, {}


for _what in ("observation", "reward"):
    if f"TestNonFinite{_what.title()}-v0" not in gym.registry:
        gym.register(f"TestNonFinite{_what.title()}-v0", entry_point=NonFiniteEnv, kwargs={"broken": _what})


@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")  # (the infinity in the wrappers' statistics)
@pytest.mark.parametrize("what, value", [("observation", "nan"), ("reward", "inf")])
def test_an_env_that_returns_non_finite_values_is_named_as_the_fault(what, value, tmp_path, capsys):
    argv = [*ENV_RUN, "--steps", "16", "--eval-every", "16", "--out", str(tmp_path / "run")]
    argv[argv.index("CartPoleNoVel-v1")] = f"TestNonFinite{what.title()}-v0"
    err = one_line_error(capsys, argv)
    assert f"the environment returned a non-finite {what} ({value}) in copy 0 after 4 environment steps" in err
    assert "a fault of the environment" in err and "learning rate" not in err


# ------------------------------------------------------------------------ babi answer
def test_a_long_story_line_is_read_in_pieces_and_answered_as_in_one(tmp_path, monkeypatch, capsys):
    story = tmp_path / "story.txt"
    story.write_text("1 " + " ".join(["Mary went to the kitchen ."] * 40)[:-2] + ".\n2 Where is Mary?\tkitchen\n")
    command = ["babi", "answer", str(story), "--pretrained", "fwm-qa", "--device", "cpu"]
    assert main(command) == 0
    whole = capsys.readouterr().out
    lengths = []
    forward = CatbAbIModel.forward

    def recording(self, x, *args, **kwargs):
        lengths.append(x.shape[0])
        return forward(self, x, *args, **kwargs)

    monkeypatch.setattr(CatbAbIModel, "forward", recording)
    monkeypatch.setattr(answer_module, "CHUNK", 16)
    assert main(command) == 0
    assert capsys.readouterr().out == whole and "line 2: Where is Mary? kitchen" in whole
    assert max(lengths) == 16 and sum(lengths) == 1 + 40 * 6 + 4  # <eos>, the sentences' words and the question's


def test_a_folder_given_as_the_story_is_named_as_a_folder(tmp_path, capsys):
    err = one_line_error(capsys, ["babi", "answer", str(tmp_path), "--pretrained", "fwm-qa", "--device", "cpu"])
    assert f"{tmp_path} is a folder; give the story as a bAbI-format text file" in err


# ------------------------------------------------------------------ the disk and the folder
def test_a_full_disk_during_a_save_is_one_line_and_the_last_checkpoint_is_intact(tmp_path, monkeypatch, capsys):
    saves = []
    save = torch.save

    def filling(obj, f, *args, **kwargs):
        saves.append(obj["step"])
        if len(saves) > 1:
            raise OSError(errno.ENOSPC, "No space left on device")
        return save(obj, f, *args, **kwargs)

    monkeypatch.setattr(torch, "save", filling)
    run = tmp_path / "run"
    err = one_line_error(capsys, [*ENV_RUN, "--steps", "32", "--eval-every", "16", "--out", str(run)], code=1)
    assert (
        f"writing {run / 'checkpoint.pt'} failed: No space left on device (errno ENOSPC); the last checkpoint "
        "written is intact"
    ) in err
    assert saves == [16, 32] and load_checkpoint(run / "checkpoint.pt")["step"] == 16
    assert sorted(p.name for p in run.iterdir() if p.name.endswith(".tmp")) == []
    monkeypatch.setattr(torch, "save", save)
    assert main(["train", "--resume", str(run), "--no-progress"]) == 0  # free space again: the run resumes from it
    assert load_checkpoint(run / "checkpoint.pt")["step"] == 32


def test_a_file_over_the_size_limit_and_a_read_only_folder_are_one_line(tmp_path, monkeypatch, capsys):
    def too_big():
        raise OSError(errno.EFBIG, "File too large", str(tmp_path / "checkpoint.pt"))

    assert run_reporting_errors("fwm-rl lm", too_big) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"fwm-rl lm: writing {tmp_path / 'checkpoint.pt'} failed: File too large (errno EFBIG)")
    assert "the last checkpoint written is intact" in err and len(err.splitlines()) == 1
    read_only = tmp_path / "read-only"
    mkdir = pathlib.Path.mkdir

    def refusing(self, *args, **kwargs):
        if str(self).startswith(str(read_only)):
            raise PermissionError(errno.EACCES, "Permission denied", str(self))
        return mkdir(self, *args, **kwargs)

    monkeypatch.setattr(pathlib.Path, "mkdir", refusing)
    err = one_line_error(capsys, [*ENV_RUN, "--steps", "16", "--eval-every", "16", "--out", str(read_only / "run")])
    assert f"error: Permission denied: {read_only / 'run'}; choose a path you may read or write (for outputs, another" in err


def test_memory_the_machine_cannot_give_is_one_line(capsys):
    def allocate():
        torch.empty(10**15, dtype=torch.uint8)

    assert run_reporting_errors("fwm-rl train", allocate) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("fwm-rl train: out of memory (tried to allocate 1000000000000000 bytes): choose smaller sizes")
    assert len(err.splitlines()) == 1


# ------------------------------------------------------------------------------ abbreviations
def test_options_are_taken_only_as_spelled_by_every_parser(capsys):
    with pytest.raises(SystemExit) as stop:
        main(["train", "--gam", "0.5", "--print-config"])
    assert stop.value.code == 2 and "unrecognized arguments: --gam 0.5" in capsys.readouterr().err
    unchecked = []

    def walk(parser, path):
        if parser.allow_abbrev:
            unchecked.append(" ".join(path))
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    walk(sub, [*path, name])

    walk(build_parser(), ["fwm-rl"])
    assert unchecked == []
    for script in sorted((ROOT / "scripts").glob("*.py")):
        calls = [
            node
            for node in ast.walk(ast.parse(script.read_text()))
            if isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", None)) == "ArgumentParser"
        ]
        assert calls, script.name
        for call in calls:
            assert any(k.arg == "allow_abbrev" and k.value.value is False for k in call.keywords), script.name
