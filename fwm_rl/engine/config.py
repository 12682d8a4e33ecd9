"""Configs: stored in checkpoints, documented once, and turned into command-line options.

A config is a dataclass with a docstring under each field (cleanrl's style). That docstring is the
field's documentation and its ``--help`` text: :func:`add_options` builds the options of a command from
the fields, so a default or a help text is written in one place only. The knobs every trainer has are
spelled the same everywhere: ``lr``, ``steps``, ``eval_every``, ``log_every``, ``time_budget``, ``seed``
and ``device``.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import inspect
import textwrap
import types
import typing
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, ClassVar

from fwm_rl.checks import upper_bound

__all__ = [
    "Preset", "SavedConfig", "add_device_option", "add_options", "add_run_options", "add_trust_option", "field_docs", "flag", "given",
    "resumable_flags", "resume_folder", "resume_options",
]  # fmt: skip


@dataclass(frozen=True)
class Preset:
    """A named recipe of one experiment (every experiment's ``PRESETS`` maps names to these): what it is for, and the
    runs it makes, each by the config fields it sets over its experiment's model and training configs (a field left
    out keeps its config's default; an option given on the command line overrides both).

    The graph task's trainer trains every run of a preset (``cpu``: ``fwm`` and ``lstm-512``); catbAbI and the LM name
    their runs by memory (``fwm``, ``lstm``) and train the one ``--memory`` picks.
    """

    description: str
    runs: Mapping[str, Mapping[str, Any]]

    def run(self, name: str) -> dict[str, Any]:
        """The field values of run ``name`` (a ``KeyError`` naming the runs there are, for a name there is not)."""
        if name not in self.runs:
            raise KeyError(f"no run {name!r} in this preset; its runs: {', '.join(self.runs)}")
        return dict(self.runs[name])


class SavedConfig:
    """Mixin for dataclass configs stored in checkpoints: ``to_dict`` and a strict ``from_dict``."""

    #: Fields renamed since checkpoints were first written, old name -> new name: :meth:`from_dict` reads
    #: the old names (old checkpoints and shipped weights keep loading) and :func:`add_options` keeps the old
    #: flags working as aliases.
    RENAMED: ClassVar[Mapping[str, str]] = {}

    #: The fields a resumed run may change (its budget, where it runs); every other setting comes from the checkpoint.
    RESUMABLE: ClassVar[tuple[str, ...]] = ()

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def resume_changes(cls, more: Iterable[str] = (), /, **changes: Any) -> dict[str, Any]:
        """The one resume check: ``changes`` (the options a user gave a resumed run; old names read, ``None`` values
        dropped) if a resumed run may make them. A change of a field outside :attr:`RESUMABLE` (or of any other
        option named) is a ``ValueError`` naming it and the flags that may change; ``more`` names further things
        that may, for that message (e.g. ``"--data (the run's data in a new place)"``)."""
        changes = {cls.RENAMED.get(k, k): v for k, v in changes.items() if v is not None}
        fixed = [name for name in changes if name not in cls.RESUMABLE]
        if fixed:
            raise ValueError(
                f"--resume continues with the checkpoint's settings; only {resumable_flags(cls, *more)} may change, "
                f"not {', '.join(flag(name, cls) for name in fixed)}"
            )
        return changes

    def resumed(self, **changes: Any):
        """This config (a checkpoint's) for the run resumed from it, with ``changes`` (:meth:`resume_changes`)."""
        return dataclasses.replace(self, **self.resume_changes(**changes))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]):
        data = {cls.RENAMED.get(k, k): v for k, v in data.items()}
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(
                f"unknown {cls.__name__} fields {sorted(unknown)} (known: {sorted(known)}); "
                "is this checkpoint from a newer fwm-rl?"
            )
        return cls(**data)


@cache
def field_docs(cls: type) -> dict[str, str]:
    """The docstring under each field of the dataclass ``cls`` (and its bases), one line each; ``{}`` where
    the source cannot be read."""
    docs: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        if not dataclasses.is_dataclass(klass):
            continue
        try:
            tree = ast.parse(textwrap.dedent(inspect.getsource(klass)))
        except (OSError, TypeError, SyntaxError):
            continue
        body = tree.body[0].body
        for node, after in zip(body, body[1:]):
            if (
                isinstance(node, ast.AnnAssign)
                and isinstance(node.target, ast.Name)
                and isinstance(after, ast.Expr)
                and isinstance(after.value, ast.Constant)
                and isinstance(after.value.value, str)
            ):
                docs[node.target.id] = " ".join(after.value.value.split())
    return docs


def flag(name: str, cls: type | None = None) -> str:
    """The command-line flag of field ``name``: ``time_budget`` -> ``--time-budget``; with the config ``cls``, a renamed
    field's old flag follows in brackets (``--steps (--episodes)``)."""
    text = "--" + name.replace("_", "-")
    old = [o for o, n in getattr(cls, "RENAMED", {}).items() if n == name]
    return f"{text} ({', '.join('--' + o.replace('_', '-') for o in old)})" if old else text


def resumable_flags(cls: type, *more: str) -> str:
    """``--steps, --time-budget and --device``: the flags of ``cls.RESUMABLE`` and ``more`` (texts), for messages."""
    names = [flag(name) for name in cls.RESUMABLE] + list(more)
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"


def _parser_type(hint: Any) -> tuple[Any, dict[str, Any]]:
    """``(type, extra add_argument keywords)`` for a field's type hint (``X | None`` reads as ``X``)."""
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        hint = args[0] if len(args) == 1 else str
    if hint is bool:
        return None, {"action": argparse.BooleanOptionalAction}
    return hint if hint in (int, float, str) else str, {}


def add_options(
    parser: argparse.ArgumentParser | argparse._ArgumentGroup,
    cls: type,
    names: Iterable[str] | None = None,
    *,
    defaults: str | Mapping[str, str] | None = None,
    choices: Mapping[str, Iterable[str]] | None = None,
    also: Iterable[type] = (),
) -> list[str]:
    """Add ``--field-name`` for the fields ``names`` of the config dataclass ``cls`` (default: all) and return the names.

    Each option's help is the field's docstring followed by its default (the field's, or the text
    ``defaults`` gives: one text for all, or a text per field) and its largest value (the field's
    :func:`~fwm_rl.checks.at_most`, which the config's checks enforce). An option's default is ``None``, so that
    :func:`given` tells the flags a user typed from the ones left out. ``choices`` restricts a field's values;
    a renamed field (``cls.RENAMED``, and that of the configs ``also`` for options several configs share) also
    answers to its old flags.
    """
    hints = typing.get_type_hints(cls)
    docs = field_docs(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    names = list(fields if names is None else names)
    old: dict[str, list[str]] = {}
    for klass in (cls, *also):
        for was, now in getattr(klass, "RENAMED", {}).items():
            if was not in old.setdefault(now, []):
                old[now].append(was)
    for name in names:
        if name not in fields:
            raise KeyError(f"{cls.__name__} has no field {name!r}")
        kind, extra = _parser_type(hints[name])
        if kind is not None:
            extra["type"] = kind
        if choices and name in choices:
            extra["choices"] = tuple(choices[name])
        default = defaults.get(name) if isinstance(defaults, Mapping) else defaults
        if default is None:
            value = fields[name].default
            default = f"default: {'none' if value is None else value}"
        most = upper_bound(cls, name)
        default += "" if most is None else f"; at most {most:g}"
        text = docs.get(name, "").rstrip(".")
        flags = [flag(name)] + [flag(was) for was in old.get(name, [])]
        text = f"{text} ({default})" if text else f"({default})"
        parser.add_argument(*flags, dest=name, default=None, help=text.replace("%", "%%"), **extra)
    return names


def given(args: argparse.Namespace, names: Iterable[str]) -> dict[str, Any]:
    """The options among ``names`` that were given on the command line (those not ``None``)."""
    return {name: getattr(args, name) for name in names if getattr(args, name, None) is not None}


def add_run_options(
    parser: argparse.ArgumentParser | argparse._ArgumentGroup,
    cls: type,
    *,
    out: str,
    what: str = "the run",
    defaults: Mapping[str, str] | None = None,
) -> list[str]:
    """The options every trainer has, in one place: ``--out DIR``, ``--resume [DIR]``, ``--overwrite``,
    ``--print-config``, ``--no-progress``, and from the fields of the config ``cls`` (where it has them) ``--device`` and
    ``--tensorboard/--no-tensorboard``. ``out`` is the help's default folder (e.g. ``runs/babi-MEMORY-MODE``), ``what``
    what a folder holds (``the run``, ``the runs``), ``defaults`` help texts of the defaults as
    :func:`add_options` takes them. ``--resume`` alone continues ``--out``'s run. Returns the config fields added (for
    :func:`given`)."""
    parser.add_argument("--out", default=None, metavar="DIR", help=f"folder of {what}'s checkpoints and logs (default {out})")
    parser.add_argument(
        "--resume",
        nargs="?",
        const="",
        default=None,
        metavar="DIR",
        help=f"continue {what} in DIR (given alone: in --out) with its stored settings",
    )
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help=f"start again in an --out folder that holds {what}, deleting only the files it wrote"
        " (refused while a run there is live, or where files a new run would replace are not a run's)",
    )
    parser.add_argument(
        "--print-config", action="store_true", help="print the resolved configuration as JSON and exit (nothing is trained)"
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    names = [f.name for f in dataclasses.fields(cls) if f.name in ("device", "tensorboard")]
    return add_options(parser, cls, names, defaults=defaults)


def add_device_option(parser: argparse.ArgumentParser | argparse._ArgumentGroup, cls: type) -> None:
    """``--device`` of a command that is not a trainer but runs a model (evaluation, figures): the ``device`` field of the
    config ``cls``, its help and its default."""
    add_options(parser, cls, ["device"])
    parser.set_defaults(device=next(f.default for f in dataclasses.fields(cls) if f.name == "device"))


def resume_folder(args: argparse.Namespace) -> str:
    """The folder ``--resume`` continues (given as ``args`` by :func:`add_run_options`): ``--resume DIR``'s, or ``--out``'s
    for ``--resume`` alone. A ``ValueError`` for ``--overwrite`` beside it, no folder, or two different folders."""
    if args.overwrite:
        raise ValueError("--overwrite starts a new run; it cannot be combined with --resume")
    folder = args.resume or args.out
    if not folder:
        raise ValueError("--resume needs the run folder: --resume DIR (or --out DIR)")
    if args.resume and args.out and Path(args.resume).resolve() != Path(args.out).resolve():
        raise ValueError(f"--resume {args.resume} and --out {args.out} name two folders: give one")
    return str(folder)


def resume_options(args: argparse.Namespace, cls: type, names: Iterable[str], *more: str) -> tuple[str, dict[str, Any]]:
    """``(folder, changes)`` of a resumed run: :func:`resume_folder` and the options among ``names`` (config fields and
    others: everything a user may give) that were given, checked by ``cls``'s :meth:`SavedConfig.resume_changes`
    (``more``: its message's further things that may change)."""
    return resume_folder(args), cls.resume_changes(more, **given(args, names))


def add_trust_option(parser: argparse.ArgumentParser) -> None:
    """``--trust-checkpoint`` on a command that reads checkpoints (``fwm_rl.cli.main`` runs the command inside
    :func:`~fwm_rl.engine.trusted_checkpoints` when it is given)."""
    parser.add_argument(
        "--trust-checkpoint",
        action="store_true",
        help="also read checkpoints that need unpickling (those of fwm-rl before checkpoint format 3); "
        "unpickling a file can run any code in it, so pass this only for files from a source you trust",
    )
