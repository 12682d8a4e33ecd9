"""One set of argument checks for every config and constructor of the package.

Each raises ``ValueError`` with a one-line message that names the argument, the rule and the value given,
which the command line prints as ``error: ...`` with exit code 2. The rules are the same everywhere:
an integer is a Python or NumPy integer and never a ``bool`` (``True`` is not a size); a real number is
finite (``inf`` and ``nan`` are not learning rates).
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping
from numbers import Integral, Real
from typing import Any

__all__ = ["check_choice", "check_int", "check_ints", "check_real"]


def _is_int(value: Any) -> bool:
    return isinstance(value, Integral) and not isinstance(value, bool)


def check_int(name: str, value: Any, least: int | None = 1, *, optional: bool = False, why: str = "") -> None:
    """Raise ``ValueError`` unless ``value`` is an integer ``>= least`` (any integer for ``least=None``; ``None``
    itself when ``optional``); ``why`` is added to the rule in the message."""
    if optional and value is None:
        return
    if not _is_int(value) or (least is not None and value < least):
        rule = {None: "an integer", 1: "a positive integer", 0: "a non-negative integer"}.get(least, f"an integer >= {least}")
        none = " or None" if optional else ""
        raise ValueError(f"{name} must be {rule}{none}{why}, got {value!r}")


def check_ints(owner: Any, names: Collection[str] | Mapping[str, int], *, optional: bool = False) -> None:
    """:func:`check_int` on the attributes ``names`` of ``owner`` (a config); a mapping gives each its least value."""
    least = names if isinstance(names, Mapping) else dict.fromkeys(names, 1)
    for name, low in least.items():
        check_int(name, getattr(owner, name), low, optional=optional)


def check_real(name: str, value: Any, *, positive: bool = False, non_negative: bool = False, below: float | None = None,
               optional: bool = False) -> None:
    """Raise ``ValueError`` unless ``value`` is a finite real number (not a ``bool``), ``> 0`` when ``positive``,
    ``>= 0`` when ``non_negative`` and ``< below`` when given (or ``None`` when ``optional``)."""
    if optional and value is None:
        return
    ok = isinstance(value, Real) and not isinstance(value, bool) and math.isfinite(value)
    ok = ok and not (positive and value <= 0) and not (non_negative and value < 0) and not (below is not None and value >= below)
    if not ok:
        rule = "a positive" if positive else "a non-negative" if non_negative else "a"
        bound = "" if below is None else f" below {below}"
        none = " or None" if optional else ""
        raise ValueError(f"{name} must be {rule} finite number{bound}{none}, got {value!r}")


def check_choice(name: str, value: Any, choices: Collection[Any]) -> None:
    """Raise ``ValueError`` unless ``value`` is one of ``choices``."""
    if value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(map(str, choices))}, got {value!r}")
