"""Recipes in the RL Zoo's format: an entry's keys to EnvTrainConfig fields, notes, refusals, safe parsing."""

from __future__ import annotations

import json

import pytest

from fwm_rl.agents import hyperparams
from fwm_rl.agents.config import EnvTrainConfig
from fwm_rl.agents.hyperparams import LSTM_POLICY_DEFAULTS, ZOO_DEFAULTS, Recipe, find_recipe, read_hyperparams, shipped_recipe

# The Zoo's format: an id per entry, "!!float" numbers, policy_kwargs as a Python string over several lines.
ZOO = """\
CartPoleNoVel-v1:
  normalize: True
  n_envs: 8
  n_timesteps: !!float 1e5
  policy: 'MlpLstmPolicy'
  n_steps: 32
  batch_size: 256
  gae_lambda: 0.8
  gamma: 0.98
  n_epochs: 20
  ent_coef: 0.0
  learning_rate: lin_0.001
  clip_range: lin_0.2
  policy_kwargs: "dict(
                    ortho_init=False,
                    activation_fn=nn.ReLU,
                    lstm_hidden_size=64,
                    enable_critic_lstm=True,
                    net_arch=dict(pi=[64], vf=[64])
                  )"

PendulumNoVel-v1:
  normalize: "dict(norm_obs=True, norm_reward=False)"
  n_envs: 4
  policy: 'MlpLstmPolicy'
  n_steps: 1024
  learning_rate: !!float 1e-3
  clip_range: 0.2
  use_sde: True
  sde_sample_freq: 4
  policy_kwargs: "dict(log_std_init=-2, ortho_init=False, enable_critic_lstm=False, net_arch=dict(pi=[64], vf=[64, 64]))"
"""


def zoo_file(tmp_path, text=ZOO):
    path = tmp_path / "ppo_lstm.yml"
    path.write_text(text)
    return path


def test_zoo_entry_maps_to_the_fields(tmp_path):
    """The Zoo's CartPoleNoVel-v1 entry: every key to its field, lin_X to a linear schedule, the one note."""
    path = zoo_file(tmp_path)
    recipe = read_hyperparams(path, "CartPoleNoVel-v1")
    assert recipe == Recipe(
        fields={
            **ZOO_DEFAULTS["ppo"], **LSTM_POLICY_DEFAULTS,  # where the entry is silent: sb3-contrib's, as the Zoo runs it
            "normalize_obs": True, "norm_reward": True, "n_envs": 8, "steps": 100_000, "memory": "lstm",
            "n_steps": 32, "gae_lambda": 0.8, "gamma": 0.98, "n_epochs": 20, "ent_coef": 0.0,
            "lr": 0.001, "lr_schedule": "linear", "clip_range": 0.2, "clip_range_schedule": "linear",
            "ortho_init": False, "activation_fn": "relu", "hidden_size": 64, "net_arch": "64", "shared_core": False,
            "n_minibatches": 1,
        },
        source=f"{path}: CartPoleNoVel-v1",
        notes=("policy MlpLstmPolicy -> memory lstm",
               "batch_size 256 -> n_minibatches 1 (minibatches are whole environments)"),
    )  # fmt: skip
    assert type(recipe.fields["steps"]) is int
    assert find_recipe(path, "CartPoleNoVel-v1") == recipe
    assert read_hyperparams(path, "fwm_rl.envs:CartPoleNoVel-v1").fields == recipe.fields  # "module:Id": by the Id


def test_sde_is_noted_and_the_rest_maps(tmp_path):
    """use_sde is ignored with a note (a Zoo file works as it is); normalize as a dict string, a critic without memory."""
    recipe = read_hyperparams(zoo_file(tmp_path), "PendulumNoVel-v1")
    assert recipe.notes == (
        "policy MlpLstmPolicy -> memory lstm",
        "use_sde ignored: a state-independent Gaussian is used",
        "enable_critic_lstm False -> shared_core True (a critic without memory is not offered: it reads the actor's)",
    )
    fields = recipe.fields
    assert (fields["normalize_obs"], fields["norm_reward"]) == (True, False)
    assert (fields["lr"], fields["lr_schedule"]) == (1e-3, "constant")
    assert (fields["clip_range"], fields["clip_range_schedule"]) == (0.2, "constant")
    assert (fields["log_std_init"], fields["net_arch"], fields["shared_core"]) == (-2, "pi=64;vf=64,64", True)
    assert "use_sde" not in fields and "sde_sample_freq" not in fields


@pytest.mark.parametrize(
    "kwargs",
    [
        "__import__('os').system('touch {marker}')",
        "dict(a=open('{marker}', 'w'))",
        "dict(activation_fn=getattr(nn, 'ReLU'), x=open('{marker}', 'w'))",
    ],
)
def test_unsafe_policy_kwargs_are_refused_unrun(tmp_path, monkeypatch, kwargs):
    """A policy_kwargs string is parsed, never evaluated: a call other than dict(...) is refused and does nothing."""
    monkeypatch.chdir(tmp_path)
    marker = tmp_path / "marker"
    text = f'Env-v0:\n  policy_kwargs: "{kwargs.format(marker=marker)}"\n'
    with pytest.raises(ValueError, match=r"Env-v0: policy_kwargs.*is not allowed \(only dict\(\.\.\.\), literals") as info:
        read_hyperparams(zoo_file(tmp_path, text), "Env-v0")
    assert "\n" not in str(info.value)
    assert not marker.exists()


@pytest.mark.parametrize(("entry", "message"), [
    ("frame_stack: 4\n  env_wrapper: [x]", r"Env-v0: frame_stack, env_wrapper not supported \(supported keys: n_timesteps, "),
    ("policy_kwargs: 'dict(optimizer_class=None)'", r"policy_kwargs optimizer_class not supported \(supported: ortho_init, "),
    ("policy_kwargs: {n_lstm_layers: 2}", r"policy_kwargs n_lstm_layers 2 is not supported: the cores have one layer"),
    ("policy_kwargs: 'dict(activation_fn=nn.Sigmoid)'", r"activation_fn 'nn.Sigmoid' is not supported: give one of nn.Tanh"),
    ("policy: MlpLstmPolicyX", r"policy 'MlpLstmPolicyX' is not supported: give one of MlpPolicy"),
    ("learning_rate: exp_0.1", r"learning_rate 'exp_0.1': give a number or lin_X"),
    ("normalize: '{\"norm_obs\": True, \"clip_obs\": 5.0}'", r"normalize: clip_obs not supported \(only norm_obs, "),
    ("n_envs: 4\n  batch_size: 64", r"batch_size 64: give a positive batch_size with n_envs and n_steps in the same entry"),
])  # fmt: skip
def test_keys_that_cannot_be_honoured_are_refused(tmp_path, entry, message):
    with pytest.raises(ValueError, match=message):
        read_hyperparams(zoo_file(tmp_path, f"Env-v0:\n  {entry}\n"), "Env-v0")


def test_a_missing_id_or_file(tmp_path):
    """The user's file must have the id (the error lists its ids); find_recipe says None; a missing file is an error."""
    path = zoo_file(tmp_path)
    with pytest.raises(ValueError, match=r"no entry for 'Acrobot-v1'; its ids: CartPoleNoVel-v1, PendulumNoVel-v1$"):
        read_hyperparams(path, "Acrobot-v1")
    assert find_recipe(path, "Acrobot-v1") is None
    with pytest.raises(ValueError, match=r"hyperparameter file '.*nothere.yml' could not be read"):
        find_recipe(tmp_path / "nothere.yml", "CartPoleNoVel-v1")
    with pytest.raises(ValueError, match=r"is not a mapping of environment ids"):
        find_recipe(zoo_file(tmp_path, "- a\n- b\n"), "a")


@pytest.mark.parametrize(("n_envs", "n_steps", "batch_size", "minibatches", "note"), [
    (8, 32, 64, 4, ")"),
    (8, 32, 100, 3, ": 3 of about 85 steps)"),  # 256 / 100 rounds to 3, which does not divide 8 environments
    (4, 512, 64, 4, ": 4 of 512 steps)"),  # 32 minibatches of 64 steps: at most one per environment
])  # fmt: skip
def test_batch_size_to_minibatches_of_environments(tmp_path, n_envs, n_steps, batch_size, minibatches, note):
    text = f"Env-v0:\n  n_envs: {n_envs}\n  n_steps: {n_steps}\n  batch_size: {batch_size}\n"
    recipe = read_hyperparams(zoo_file(tmp_path, text), "Env-v0")
    assert recipe.fields["n_minibatches"] == minibatches
    expected = f"batch_size {batch_size} -> n_minibatches {minibatches} (minibatches are whole environments{note}"
    assert recipe.notes == (expected,)


def test_our_policies_and_a_mapping_of_policy_kwargs(tmp_path):
    """fwm-rl's policy names set the memory without a note; policy_kwargs may be a YAML mapping with fwm-rl's keys."""
    text = (
        "Env-v0:\n  policy: GruPolicy\n  n_timesteps: 1e5\n  policy_kwargs:\n    hidden_size: 16\n    shared_lstm: true\n"
        "    activation_fn: th.nn.SiLU\n    net_arch: [32, 32]\n    features_net_arch: [64]\n"
    )
    recipe = read_hyperparams(zoo_file(tmp_path, text), "Env-v0")
    assert recipe.fields == {
        **ZOO_DEFAULTS["ppo"],
        "memory": "gru",
        "steps": 100_000,
        "hidden_size": 16,
        "activation_fn": "silu",
        "net_arch": "32,32",
        "features_net_arch": "64",
        "shared_core": True,
    }
    assert recipe.notes == (
        "shared_lstm True -> shared_core True (the value loss trains the shared core too; sb3-contrib stops its gradient)",
    )


def test_silent_keys_take_the_algorithms_defaults(tmp_path):
    """Keys an entry does not give are SB3's for the algorithm (A2C's or RecurrentPPO's), as the Zoo runs them; the
    Zoo's LSTM policies bring sb3-contrib's policy defaults (256 units, a critic LSTM, 64,64 heads, orthogonal init)."""
    path = zoo_file(tmp_path, "Env-v0:\n  n_steps: 8\n  policy: MlpLstmPolicy\nOther-v0:\n  policy: GruPolicy\n")
    a2c, ppo = (read_hyperparams(path, "Env-v0", algo) for algo in ("a2c", "ppo"))
    assert (a2c.fields["n_steps"], a2c.fields["lr"], a2c.fields["normalize_advantage"], a2c.fields["n_envs"]) == (
        8,
        7e-4,
        False,
        1,
    )
    assert (ppo.fields["n_steps"], ppo.fields["lr"], ppo.fields["normalize_advantage"], ppo.fields["n_epochs"]) == (
        8,
        3e-4,
        True,
        10,
    )
    assert (ppo.fields["hidden_size"], ppo.fields["shared_core"], ppo.fields["net_arch"], ppo.fields["ortho_init"]) == (
        256,
        False,
        "64,64",
        True,
    )
    assert "n_epochs" not in a2c.fields and not ppo.fields["normalize_obs"]
    assert "hidden_size" not in read_hyperparams(path, "Other-v0").fields  # fwm-rl's own policy names: the run's sizes


def test_shipped_recipe(tmp_path, monkeypatch):
    """shipped_recipe reads SHIPPED/{algo}.yml, None when the file or the id is not there."""
    monkeypatch.setattr(hyperparams, "SHIPPED", tmp_path)
    assert shipped_recipe("ppo", "CartPoleNoVel-v1") is None
    (tmp_path / "ppo.yml").write_text(ZOO)
    assert shipped_recipe("ppo", "CartPoleNoVel-v1").fields["n_envs"] == 8
    assert shipped_recipe("ppo", "Acrobot-v1") is None
    assert shipped_recipe("a2c", "CartPoleNoVel-v1") is None


def test_the_fields_make_a_config(tmp_path):
    """Every field a recipe sets is an EnvTrainConfig field, with a value it takes (the Zoo's entries, as PPO runs)."""
    path = zoo_file(tmp_path)
    for env_id in ("CartPoleNoVel-v1", "PendulumNoVel-v1"):
        fields = read_hyperparams(path, env_id).fields
        config = EnvTrainConfig(algo="ppo", env_id=env_id, **fields)
        assert {name: getattr(config, name) for name in fields} == fields


def test_the_command_line_takes_the_shipped_recipe_a_users_file_or_none(tmp_path, capsys):
    """fwm-rl train --env: the shipped recipe for --algo and --env by default, a flag overriding one of its keys; a
    user's Zoo file (--hyperparams FILE); none (--hyperparams none); every choice kept in the config."""
    from fwm_rl.cli import main

    def config(*flags: str) -> dict:
        assert main(["train", "--env", "CartPoleNoVel-v1", *flags, "--print-config"]) == 0
        return json.loads(capsys.readouterr().out)["config"]

    shipped = config("--algo", "ppo")
    assert shipped["recipe"] == "fwm_rl/agents/recipes/ppo.yml: CartPoleNoVel-v1"
    assert (shipped["n_envs"], shipped["n_epochs"], shipped["lr_schedule"], shipped["shared_core"]) == (8, 20, "linear", False)
    assert (shipped["fwm_zero_output"], shipped["fwm_memory_lr_scale"]) == (True, 0.1)
    assert config("--algo", "ppo", "--n-epochs", "3")["n_epochs"] == 3  # a flag overrides the recipe
    flags = config("--algo", "ppo", "--fwm-output", "both", "--fwm-read-tanh", "--fwm-memory-lr-scale", "0.5")
    assert (flags["fwm_output"], flags["fwm_read_tanh"], shipped["fwm_output"], shipped["fwm_read_tanh"]) == (
        "both",
        True,
        "sum",
        False,
    )
    assert flags["fwm_memory_lr_scale"] == 0.5
    assert config("--algo", "ppo", "--hyperparams", "none")["recipe"] == ""
    assert config()["recipe"] == ""  # no a2c recipe is shipped
    users = config("--algo", "ppo", "--hyperparams", str(zoo_file(tmp_path)))
    assert users["recipe"].endswith("ppo_lstm.yml: CartPoleNoVel-v1") and users["memory"] == "lstm" and users["norm_reward"]
    assert main(["train", "--env", "CartPoleNoVel-v1", "--hyperparams", str(tmp_path / "missing.yml"), "--print-config"]) == 2
    assert "could not be read" in capsys.readouterr().err


def test_the_fwm_cells_options_in_policy_kwargs(tmp_path):
    text = (
        "Env-v0:\n  policy: FwmPolicy\n  policy_kwargs: dict(beta_bias=0, update_scale=1.0, zero_output=True, "
        "read_tanh=True, output='both', memory_lr_scale=0.1)\n"
    )
    fields = read_hyperparams(zoo_file(tmp_path, text), "Env-v0").fields
    assert (fields["fwm_beta_bias"], fields["fwm_update_scale"], fields["fwm_zero_output"]) == (0, 1.0, True)
    assert (fields["fwm_read_tanh"], fields["fwm_output"], fields["fwm_memory_lr_scale"]) == (True, "both", 0.1)
    bad = "Env-v0:\n  policy: FwmPolicy\n  policy_kwargs: dict(output='h')\n"
    with pytest.raises(ValueError, match="output 'h' is not supported"):
        read_hyperparams(zoo_file(tmp_path, bad), "Env-v0")
