"""Hyperparameter recipes in the RL Zoo's format, for ``fwm-rl train --env ID``.

A recipe file is a YAML mapping of environment ids to mappings of hyperparameters, as the files of
rl-baselines3-zoo's ``hyperparams`` folder (``ppo_lstm.yml``, ``a2c.yml``, ...), so that a user's Zoo file works as
it is. :func:`read_hyperparams` translates one entry into :class:`~fwm_rl.agents.config.EnvTrainConfig`
field values (a :class:`Recipe`). An entry is read as the Zoo reads it: the keys it does not give take
stable-baselines3's defaults for the algorithm (:data:`ZOO_DEFAULTS`: SB3's ``A2C``, sb3-contrib's ``RecurrentPPO``;
one environment, no ``VecNormalize``), and for the Zoo's LSTM policies sb3-contrib's policy defaults
(:data:`LSTM_POLICY_DEFAULTS`); the command line's flags override the recipe.

The keys and their fields:

- ``n_timesteps`` -> ``steps``; ``n_envs``, ``n_steps``, ``n_epochs``, ``gamma``, ``gae_lambda``,
  ``ent_coef``, ``vf_coef``, ``max_grad_norm``, ``clip_range_vf``, ``target_kl``, ``normalize_advantage`` as named
- ``learning_rate`` -> ``lr``, ``clip_range``: a number, or ``lin_X`` (decays linearly from X to 0 over the run:
  ``lr_schedule`` / ``clip_range_schedule`` ``linear``)
- ``batch_size`` -> ``n_minibatches``: minibatches are whole environments, so the nearest whole number of them
  (from 1 to ``n_envs``; the entry must give ``n_envs`` and ``n_steps``)
- ``normalize``: ``True`` normalises observations and rewards (``normalize_obs``, ``norm_reward``: the Zoo's
  ``VecNormalize`` default), ``False`` neither, ``dict(norm_obs=.., norm_reward=..)`` each as it says
- ``policy``: the Zoo's LSTM policies (``MlpLstmPolicy``, ``CnnLstmPolicy``, ``MultiInputLstmPolicy``) set
  ``memory`` lstm; fwm-rl's ``FwmPolicy``, ``LstmPolicy``, ``GruPolicy`` set fwm, lstm, gru; the Zoo's
  feed-forward policies (``MlpPolicy``, ``CnnPolicy``, ``MultiInputPolicy``) leave the run's memory as it is
- ``policy_kwargs`` (see :data:`POLICY_KWARGS`): ``ortho_init``, ``activation_fn`` (``nn.ReLU``, ...),
  ``lstm_hidden_size`` -> ``hidden_size``, ``zero_output`` -> ``fwm_zero_output``, ``beta_bias`` / ``update_scale`` / ``read_tanh`` / ``output`` / ``memory_lr_scale`` -> ``fwm_beta_bias`` /
  ``fwm_update_scale`` / ``fwm_read_tanh`` / ``fwm_output`` / ``fwm_memory_lr_scale``, ``net_arch`` (``[64, 64]`` and ``dict(pi=[64, 64], vf=[64, 64])`` ->
  ``"64,64"``, ``dict(pi=[64], vf=[64, 64])`` -> ``"pi=64;vf=64,64"``), ``log_std_init``, ``n_lstm_layers`` (1 only);
  ``enable_critic_lstm`` True -> ``shared_core`` False (a critic core of its own), ``shared_lstm`` True or both False
  -> ``shared_core`` True (a key not given: sb3-contrib's default, ``shared_lstm`` False, ``enable_critic_lstm`` True
  unless ``shared_lstm`` is); fwm-rl's ``hidden_size``, ``d_fwm``, ``n_reads`` and ``features_net_arch`` as named
- ``use_sde``, ``sde_sample_freq``, ``use_rms_prop``: not supported, ignored with a note

Any other key (``frame_stack``, ``env_wrapper``, ``vec_env_wrapper``, ``callback``, ``env_kwargs``, ...) changes
what the agent sees or does in ways this library cannot reproduce: the entry is refused. The Zoo evaluates its
``policy_kwargs`` and ``normalize`` strings as Python; here they are parsed (:mod:`ast`), never run: only
``dict(...)`` calls, ``{...}`` mappings, literals and ``nn.X`` activation classes are allowed.
"""

from __future__ import annotations

import ast
import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from fwm_rl.agents.policies import ACTIVATIONS as POLICY_ACTIVATIONS
from fwm_rl.agents.policies import FWM_OUTPUTS

__all__ = [
    "ACTIVATIONS", "KEYS", "LSTM_POLICY_DEFAULTS", "ZOO_DEFAULTS", "POLICIES", "POLICY_KWARGS", "SHIPPED", "Recipe", "find_recipe", "read_hyperparams",
    "shipped_recipe",
]  # fmt: skip

#: What the RL Zoo runs where an entry is silent, per algorithm: SB3's ``A2C`` and sb3-contrib's ``RecurrentPPO``
#: defaults, one environment, no normalisation (as :class:`~fwm_rl.agents.config.EnvTrainConfig` fields).
ZOO_DEFAULTS: dict[str, dict[str, Any]] = {
    "a2c": {"n_envs": 1, "n_steps": 5, "lr": 7e-4, "lr_schedule": "constant", "gamma": 0.99, "gae_lambda": 1.0, "ent_coef": 0.0,
            "vf_coef": 0.5, "max_grad_norm": 0.5, "normalize_advantage": False, "normalize_obs": False, "norm_reward": False},
    "ppo": {"n_envs": 1, "n_steps": 128, "lr": 3e-4, "lr_schedule": "constant", "n_epochs": 10, "n_minibatches": 1,
            "gamma": 0.99, "gae_lambda": 0.95, "clip_range": 0.2, "clip_range_schedule": "constant", "clip_range_vf": None,
            "ent_coef": 0.0, "vf_coef": 0.5, "max_grad_norm": 0.5, "target_kl": None, "normalize_advantage": True,
            "normalize_obs": False, "norm_reward": False},
}  # fmt: skip
#: sb3-contrib's ``MlpLstmPolicy`` defaults where a Zoo LSTM policy's ``policy_kwargs`` are silent.
LSTM_POLICY_DEFAULTS: dict[str, Any] = {
    "hidden_size": 256,
    "ortho_init": True,
    "net_arch": "64,64",
    "activation_fn": "tanh",
    "shared_core": False,
}
#: The folder of the recipe files fwm-rl ships, ``{algo}.yml``.
SHIPPED = Path(__file__).with_name("recipes")
#: ``policy`` -> the memory core it sets (None: the run's own).
POLICIES: dict[str, str | None] = {
    "MlpPolicy": None, "CnnPolicy": None, "MultiInputPolicy": None,
    "MlpLstmPolicy": "lstm", "CnnLstmPolicy": "lstm", "MultiInputLstmPolicy": "lstm",
    "FwmPolicy": "fwm", "LstmPolicy": "lstm", "GruPolicy": "gru",
}  # fmt: skip
#: torch's activation class names -> ``activation_fn``'s names (the inverse of the policies' table, so the two cannot drift).
ACTIVATIONS = {cls.__name__: name for name, cls in POLICY_ACTIVATIONS.items()}
#: The modules an activation class may be named from in a ``policy_kwargs`` string.
_NN = ("nn", "th.nn", "torch.nn")
#: The ``normalize`` keys (the Zoo's ``VecNormalize`` arguments) and their fields.
_NORMALIZE = {"norm_obs": "normalize_obs", "norm_reward": "norm_reward"}
#: Keys that set what fwm-rl does not offer: ignored, with a note when set.
_IGNORED = {"use_sde": "use_sde ignored: a state-independent Gaussian is used", "sde_sample_freq": None,
            "use_rms_prop": "use_rms_prop ignored: Adam is used"}  # fmt: skip


@dataclass(frozen=True)
class Recipe:
    """One entry of a recipe file, translated.

    :param fields: :class:`~fwm_rl.agents.config.EnvTrainConfig` field -> value
    :param source: where it comes from, e.g. ``"hyperparams/ppo_lstm.yml: CartPoleNoVel-v1"``
    :param notes: the translations that are not one to one, for the run to print, e.g.
        ``"batch_size 256 -> n_minibatches 1 (minibatches are whole environments)"``
    """

    fields: dict[str, Any]
    source: str
    notes: tuple[str, ...] = ()


# ------------------------------------------------------------------------ values
def _number(key: str, value: Any) -> float:
    """``value`` as a float; a string that reads as one too (YAML 1.1 reads ``1e5``, without a dot, as a string)."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            pass
    raise ValueError(f"{key} {value!r} is not a number")


def _optional_number(key: str, value: Any) -> float | None:
    return None if value is None else _number(key, value)


def _integer(key: str, value: Any) -> int:
    """``value`` as an int (``1e5`` too)."""
    number = _number(key, value)
    if not number.is_integer():
        raise ValueError(f"{key} {value!r} is not a whole number")
    return int(number)


def _flag(key: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"{key} {value!r} is not true or false")
    return value


def _fwm_output(key: str, value: Any) -> str:
    if value not in FWM_OUTPUTS:
        raise ValueError(f"{key} {value!r} is not supported: give one of {', '.join(map(repr, FWM_OUTPUTS))}")
    return value


def _schedule(key: str, value: Any) -> tuple[float, str]:
    """A number (constant) or ``lin_X`` (linear from X to 0) -> (initial value, schedule name)."""
    if isinstance(value, str) and value.startswith("lin_"):
        return _number(key, value[len("lin_") :]), "linear"
    try:
        return _number(key, value), "constant"
    except ValueError:
        raise ValueError(f"{key} {value!r}: give a number or lin_X (a linear decay from X to 0 over the run)") from None


def _layers(key: str, value: Any) -> str:
    """A list of layer widths -> ``"64,64"`` (``[]``: ``""``)."""
    if not isinstance(value, list) or not all(isinstance(u, int) and not isinstance(u, bool) and u > 0 for u in value):
        raise ValueError(f"{key} {value!r}: give a list of layer widths, e.g. [64, 64], or dict(pi=[64], vf=[64])")
    return ",".join(map(str, value))


def _net_arch(key: str, value: Any) -> str:
    """SB3's ``net_arch`` as a string: a list (both heads) ``"64,64"``, ``dict(pi=[..], vf=[..])`` (a missing head:
    no layers) ``"pi=64;vf=64,64"``, or as a list when both heads are the same."""
    if not isinstance(value, Mapping):
        return _layers(key, value)
    if set(value) - {"pi", "vf"}:
        raise ValueError(f"{key} {value!r}: a mapping has only the keys pi and vf")
    pi, vf = (_layers(f"{key} {head}", value.get(head, [])) for head in ("pi", "vf"))
    return pi if pi == vf else f"pi={pi};vf={vf}"


def _activation(key: str, value: Any) -> str:
    """``nn.ReLU`` (``th.nn.``, ``torch.nn.``) or ``"relu"`` -> ``"relu"``."""
    module, _, name = str(value).rpartition(".")
    if module in _NN and name in ACTIVATIONS:
        return ACTIVATIONS[name]
    if value in ACTIVATIONS.values():
        return value
    raise ValueError(f"{key} {value!r} is not supported: give one of {', '.join(f'nn.{n}' for n in ACTIVATIONS)}")


# ------------------------------------------------------------------------ Python strings, parsed
def _parse(node: ast.expr, key: str) -> Any:
    """The value of an expression made only of ``dict(...)`` calls, ``{...}`` mappings, lists, tuples (as lists),
    numbers, strings, True/False/None and ``nn.X`` names (as the string ``"nn.X"``); anything else is refused."""
    if isinstance(node, ast.Constant) and (node.value is None or isinstance(node.value, (bool, int, float, str))):
        return node.value
    if (
        isinstance(node, ast.UnaryOp)
        and isinstance(node.op, (ast.USub, ast.UAdd))
        and isinstance(node.operand, ast.Constant)
        and isinstance(node.operand.value, (int, float))
        and not isinstance(node.operand.value, bool)
    ):
        return -node.operand.value if isinstance(node.op, ast.USub) else node.operand.value
    if isinstance(node, (ast.List, ast.Tuple)):
        return [_parse(item, key) for item in node.elts]
    if isinstance(node, ast.Dict) and all(isinstance(k, ast.Constant) and isinstance(k.value, str) for k in node.keys):
        return {k.value: _parse(v, f"{key} {k.value}") for k, v in zip(node.keys, node.values)}  # type: ignore[union-attr]
    if (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id == "dict"
        and not node.args
        and all(k.arg is not None for k in node.keywords)
    ):
        return {k.arg: _parse(k.value, f"{key} {k.arg}") for k in node.keywords}
    if isinstance(node, ast.Attribute) and _dotted(node.value) in _NN:
        return f"{_dotted(node.value)}.{node.attr}"
    raise ValueError(f"{key}: {ast.unparse(node)!r} is not allowed (only dict(...), literals and nn.X activation classes)")


def _dotted(node: ast.expr) -> str | None:
    """``a.b.c`` for a chain of names, else None."""
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        head = _dotted(node.value)
        return None if head is None else f"{head}.{node.attr}"
    return None


def _mapping(key: str, value: Any) -> dict[str, Any]:
    """A YAML mapping, or a string ``dict(...)`` / ``{...}`` parsed by :func:`_parse` (never evaluated)."""
    if isinstance(value, str):
        try:
            value = _parse(ast.parse(value.strip(), mode="eval").body, key)
        except SyntaxError as exc:
            raise ValueError(f"{key} {value!r} is not a Python expression ({exc.msg})") from None
    if not isinstance(value, Mapping) or not all(isinstance(k, str) for k in value):
        raise ValueError(f"{key} {value!r}: give dict(...) or a mapping")
    return dict(value)


# ------------------------------------------------------------------------ keys
def _normalize(key: str, value: Any, fields: dict[str, Any], notes: list[str]) -> None:
    settings = {name: value for name in _NORMALIZE} if isinstance(value, bool) else _mapping(key, value)
    unknown = set(settings) - set(_NORMALIZE)
    if unknown:
        raise ValueError(f"{key}: {', '.join(sorted(unknown))} not supported (only {', '.join(_NORMALIZE)})")
    for name, field in _NORMALIZE.items():
        fields[field] = _flag(f"{key} {name}", settings.get(name, True))  # VecNormalize's defaults


def _policy(key: str, value: Any, fields: dict[str, Any], notes: list[str]) -> None:
    if not isinstance(value, str) or value not in POLICIES:
        raise ValueError(f"{key} {value!r} is not supported: give one of {', '.join(POLICIES)}")
    memory = POLICIES[value]
    if memory is None:
        notes.append(f"policy {value}: the memory core is the run's (--memory)")
    else:
        fields["memory"] = memory
        if value != f"{memory.capitalize()}Policy":  # the Zoo's LSTM policies
            notes.append(f"policy {value} -> memory {memory}")


def _set(field: str, convert: Callable[[str, Any], Any]) -> Callable[[str, Any, dict[str, Any]], None]:
    """A ``policy_kwargs`` key that sets ``field`` to ``convert(key, value)``."""

    def apply(key: str, value: Any, fields: dict[str, Any]) -> None:
        fields[field] = convert(key, value)

    return apply


def _n_lstm_layers(key: str, value: Any, fields: dict[str, Any]) -> None:
    if _integer(key, value) != 1:
        raise ValueError(f"{key} {value!r} is not supported: the cores have one layer (give 1)")


#: ``policy_kwargs`` key -> how it sets the fields (``enable_critic_lstm`` and ``shared_lstm``: together, below).
POLICY_KWARGS: dict[str, Callable[[str, Any, dict[str, Any]], None]] = {
    "ortho_init": _set("ortho_init", _flag),
    "activation_fn": _set("activation_fn", _activation),
    "lstm_hidden_size": _set("hidden_size", _integer),
    "hidden_size": _set("hidden_size", _integer),
    "d_fwm": _set("d_fwm", _integer),
    "n_reads": _set("n_reads", _integer),
    "net_arch": _set("net_arch", _net_arch),
    "features_net_arch": _set("features_net_arch", _layers),
    "zero_output": _set("fwm_zero_output", _flag),
    "beta_bias": _set("fwm_beta_bias", _number),
    "update_scale": _set("fwm_update_scale", _number),
    "read_tanh": _set("fwm_read_tanh", _flag),
    "memory_lr_scale": _set("fwm_memory_lr_scale", _number),
    "output": _set("fwm_output", _fwm_output),
    "log_std_init": _set("log_std_init", _number),
    "n_lstm_layers": _n_lstm_layers,
    "enable_critic_lstm": _set("enable_critic_lstm", _flag),
    "shared_lstm": _set("shared_lstm", _flag),
}


def _policy_kwargs(key: str, value: Any, fields: dict[str, Any], notes: list[str]) -> None:
    kwargs = _mapping(key, value)
    unknown = [k for k in kwargs if k not in POLICY_KWARGS]
    if unknown:
        raise ValueError(f"{key} {', '.join(unknown)} not supported (supported: {', '.join(POLICY_KWARGS)})")
    if "lstm_hidden_size" in kwargs and "hidden_size" in kwargs:
        raise ValueError(f"{key}: lstm_hidden_size and hidden_size are the same size: give one")
    critic: dict[str, Any] = {}
    for name, setting in kwargs.items():
        POLICY_KWARGS[name](f"{key} {name}", setting, critic if name in ("enable_critic_lstm", "shared_lstm") else fields)
    if critic:  # sb3-contrib's defaults: shared_lstm False, enable_critic_lstm True
        shared = critic.get("shared_lstm", False)
        own = critic.get("enable_critic_lstm", not shared)
        if shared and own:
            raise ValueError(f"{key}: shared_lstm and enable_critic_lstm both true: give one")
        fields["shared_core"] = not own
        if shared:
            notes.append(
                "shared_lstm True -> shared_core True (the value loss trains the shared core too; sb3-contrib stops "
                "its gradient)"
            )
        elif not own:
            notes.append(
                "enable_critic_lstm False -> shared_core True (a critic without memory is not offered: it reads the actor's)"
            )


#: Entry key -> how it sets the fields and notes: ``(key, value, fields, notes)``.
_KEYS: dict[str, Callable[[str, Any, dict[str, Any], list[str]], None]] = {
    "normalize": _normalize,
    "policy": _policy,
    "policy_kwargs": _policy_kwargs,
}
#: Entry keys that set one field each: key -> (field, conversion).
_SCALARS: dict[str, tuple[str, Callable[[str, Any], Any]]] = {
    "n_timesteps": ("steps", _integer),
    "n_envs": ("n_envs", _integer),
    "n_steps": ("n_steps", _integer),
    "n_epochs": ("n_epochs", _integer),
    "gamma": ("gamma", _number),
    "gae_lambda": ("gae_lambda", _number),
    "ent_coef": ("ent_coef", _number),
    "vf_coef": ("vf_coef", _number),
    "max_grad_norm": ("max_grad_norm", _optional_number),
    "clip_range_vf": ("clip_range_vf", _optional_number),
    "target_kl": ("target_kl", _optional_number),
    "normalize_advantage": ("normalize_advantage", _flag),
}
#: Entry keys with a schedule: key -> (field, schedule field).
_SCHEDULES = {"learning_rate": ("lr", "lr_schedule"), "clip_range": ("clip_range", "clip_range_schedule")}
#: Every key an entry may have.
KEYS = (*_SCALARS, *_SCHEDULES, "batch_size", *_KEYS, *_IGNORED)


def _batch_size(value: Any, fields: dict[str, Any], notes: list[str]) -> None:
    """``batch_size`` -> ``n_minibatches``: the nearest whole number of minibatches of whole environments."""
    batch = _integer("batch_size", value)
    if batch < 1 or "n_envs" not in fields or "n_steps" not in fields:
        raise ValueError(
            f"batch_size {value!r}: give a positive batch_size with n_envs and n_steps in the same entry "
            "(minibatches are whole environments)"
        )
    n_envs, steps = fields["n_envs"], fields["n_envs"] * fields["n_steps"]
    fields["n_minibatches"] = minibatches = min(max(1, round(steps / batch)), n_envs)
    about = "about " if n_envs % minibatches else ""
    size = "" if not about and steps // minibatches == batch else f": {minibatches} of {about}{steps // minibatches} steps"
    notes.append(f"batch_size {batch} -> n_minibatches {minibatches} (minibatches are whole environments{size})")


def _translate(entry: Mapping[str, Any], algo: str) -> tuple[dict[str, Any], tuple[str, ...]]:
    """The fields and notes of one entry of a recipe file for ``algo`` (its defaults: :data:`ZOO_DEFAULTS`)."""
    unknown = [key for key in entry if key not in KEYS]
    if unknown:
        raise ValueError(f"{', '.join(map(str, unknown))} not supported (supported keys: {', '.join(KEYS)})")
    fields: dict[str, Any] = {}
    notes: list[str] = []
    for key, value in entry.items():
        if key in _SCALARS:
            field, convert = _SCALARS[key]
            fields[field] = convert(key, value)
        elif key in _SCHEDULES:
            field, schedule = _SCHEDULES[key]
            fields[field], fields[schedule] = _schedule(key, value)
        elif key in _KEYS:
            _KEYS[key](key, value, fields, notes)
        elif key in _IGNORED and value not in (False, None) and _IGNORED[key]:
            notes.append(_IGNORED[key])
    if "batch_size" in entry:
        _batch_size(entry["batch_size"], fields, notes)
    defaults = dict(ZOO_DEFAULTS[algo])
    if POLICIES.get(entry.get("policy")) == "lstm" and entry["policy"] != "LstmPolicy":  # the Zoo's LSTM policies
        defaults.update(LSTM_POLICY_DEFAULTS)
    return {**defaults, **fields}, tuple(notes)


# ------------------------------------------------------------------------ files
def _load(path: str | Path) -> dict[str, Any]:
    """The mapping of environment ids to entries in the YAML file ``path``."""
    try:
        with open(path, encoding="utf-8") as file:
            recipes = yaml.load(file, Loader=yaml.SafeLoader)  # SafeLoader reads the Zoo's "!!float 1e5"
    except OSError as exc:
        raise ValueError(
            f"hyperparameter file {str(path)!r} could not be read ({exc.strerror}): give the path of a YAML file "
            "in the RL Zoo's format"
        ) from None
    except yaml.YAMLError as exc:
        raise ValueError(f"hyperparameter file {str(path)!r} is not valid YAML ({' '.join(str(exc).split())})") from None
    if not isinstance(recipes, dict):
        raise ValueError(
            f"hyperparameter file {str(path)!r} is not a mapping of environment ids to hyperparameters (the RL Zoo's format)"
        )
    return recipes


def find_recipe(path: str | Path, env_id: str, algo: str = "ppo") -> Recipe | None:
    """The recipe for ``env_id`` in the recipe file ``path``, or None when the file has no entry for it.

    :param path: a YAML file in the RL Zoo's format (environment id -> hyperparameters)
    :param env_id: the environment id; for ``"module:Id"`` the entry ``"module:Id"``, else ``"Id"`` (the Zoo's
        fallback entries, ``default`` and ``atari``, are not used for other ids)
    :param algo: ``"a2c"`` or ``"ppo"``: whose defaults fill the keys the entry does not give (:data:`ZOO_DEFAULTS`)
    :return: the entry translated, or None
    :raises ValueError: the file cannot be read, or its entry cannot be honoured (the message says why)
    """
    return _recipe(path, _load(path), env_id, algo)


def _recipe(path: str | Path, recipes: dict[str, Any], env_id: str, algo: str) -> Recipe | None:
    """:func:`find_recipe` in the file ``path``, read: ``recipes``."""
    name = next((key for key in (env_id, env_id.rpartition(":")[2]) if key in recipes), None)
    if name is None:
        return None
    source = f"{path}: {name}"
    entry = recipes[name]
    if not isinstance(entry, dict):
        raise ValueError(f"{source}: the entry is not a mapping of hyperparameters")
    try:
        fields, notes = _translate(entry, algo)
    except ValueError as exc:
        raise ValueError(f"{source}: {exc}") from None
    return Recipe(fields, source, notes)


def read_hyperparams(path: str | Path, env_id: str, algo: str = "ppo") -> Recipe:
    """The recipe for ``env_id`` in the recipe file ``path``, the user's (:func:`find_recipe`, which see).

    :raises ValueError: as :func:`find_recipe`, and when the file has no entry for ``env_id`` (the message lists its ids)
    """
    recipes = _load(path)
    recipe = _recipe(path, recipes, env_id, algo)
    if recipe is None:
        ids = list(map(str, recipes))
        raise ValueError(f"hyperparameter file {str(path)!r} has no entry for {env_id!r}; its ids: {', '.join(ids) or 'none'}")
    return recipe


def shipped_recipe(algo: str, env_id: str) -> Recipe | None:
    """The recipe fwm-rl ships for ``algo`` (``"a2c"``, ``"ppo"``) on ``env_id``, or None when there is none; its source
    reads ``fwm_rl/agents/recipes/{algo}.yml: ID``."""
    path = SHIPPED / f"{algo}.yml"
    recipe = find_recipe(path, env_id, algo) if path.is_file() else None
    if recipe is None:
        return None  # (the source names the file inside the package, wherever it is installed)
    return dataclasses.replace(recipe, source=recipe.source.replace(str(path), f"fwm_rl/agents/{SHIPPED.name}/{algo}.yml", 1))
