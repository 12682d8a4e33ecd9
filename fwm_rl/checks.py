"""One set of argument checks for every config and constructor of the package.

Each raises ``ValueError`` with a one-line message that names the argument, the rule and the value given,
which the command line prints as ``error: ...`` with exit code 2. The rules are the same everywhere:
an integer is a Python or NumPy integer and never a ``bool`` (``True`` is not a size); a real number is
finite (``inf`` and ``nan`` are not learning rates). A config field declared with :func:`at_most` also has a largest
value (sizes that allocate memory in proportion, coefficients): :func:`check_ints` and :func:`check_reals` enforce it,
and :func:`fwm_rl.engine.add_options` states it in the option's help.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Collection, Mapping
from numbers import Integral, Real
from typing import Any

__all__ = [
    "MAX_D_FWM", "MAX_DEPTH", "MAX_LENGTH", "MAX_STREAMS", "MAX_UNITS", "at_most", "check_choice", "check_int", "check_ints",
    "check_real", "check_reals", "upper_bound",
]  # fmt: skip

#: Largest sizes the configs accept (:func:`at_most`): far above the paper's (LSTM-4096, d_fwm 32, 3 reads, 600 agents,
#: batches of 80, BPTT 70), below the values whose tensors no machine holds (999999999 hidden units fail in the allocator).
MAX_UNITS = 8192  # LSTM units, embedding sizes
MAX_D_FWM = 128  # the FWM's key size (its fast weights hold d_fwm^3 numbers per stream)
MAX_DEPTH = 64  # chained reads, stacked layers
MAX_STREAMS = 4096  # environment copies, batch sizes
MAX_LENGTH = 4096  # rollout and truncated-BPTT lengths

#: The key of a dataclass field's metadata that holds its largest value.
_MOST = "most"


def at_most(default: Any, most: float) -> Any:
    """A dataclass field with ``default`` whose value may be at most ``most`` (:func:`upper_bound`)."""
    return dataclasses.field(default=default, metadata={_MOST: most})


def upper_bound(owner: Any, name: str) -> float | None:
    """The largest value of field ``name`` of the dataclass (or instance) ``owner``: its :func:`at_most`, or ``None``."""
    field = next((f for f in dataclasses.fields(owner) if f.name == name), None)
    return None if field is None else field.metadata.get(_MOST)


def _is_int(value: Any) -> bool:
    return isinstance(value, Integral) and not isinstance(value, bool)


def _at_most(most: float | None) -> str:
    return "" if most is None else f" at most {most:g}"


def check_int(
    name: str, value: Any, least: int | None = 1, *, most: int | None = None, optional: bool = False, why: str = ""
) -> None:
    """Raise ``ValueError`` unless ``value`` is an integer ``>= least`` (any integer for ``least=None``) and ``<= most``
    (when given; ``None`` itself passes when ``optional``); ``why`` is added to the rule in the message."""
    if optional and value is None:
        return
    if not _is_int(value) or (least is not None and value < least) or (most is not None and value > most):
        rule = {None: "an integer", 1: "a positive integer", 0: "a non-negative integer"}.get(least, f"an integer >= {least}")
        none = " or None" if optional else ""
        raise ValueError(f"{name} must be {rule}{_at_most(most)}{none}{why}, got {value!r}")


def check_ints(owner: Any, names: Collection[str] | Mapping[str, int], *, optional: bool = False) -> None:
    """:func:`check_int` on the attributes ``names`` of ``owner`` (a config); a mapping gives each its least value,
    a field's :func:`at_most` its largest."""
    least = names if isinstance(names, Mapping) else dict.fromkeys(names, 1)
    for name, low in least.items():
        check_int(name, getattr(owner, name), low, most=upper_bound(owner, name), optional=optional)


def check_real(
    name: str,
    value: Any,
    *,
    positive: bool = False,
    non_negative: bool = False,
    below: float | None = None,
    most: float | None = None,
    optional: bool = False,
) -> None:
    """Raise ``ValueError`` unless ``value`` is a finite real number (not a ``bool``), ``> 0`` when ``positive``,
    ``>= 0`` when ``non_negative``, ``< below`` and ``<= most`` when given (or ``None`` when ``optional``)."""
    if optional and value is None:
        return
    ok = isinstance(value, Real) and not isinstance(value, bool) and math.isfinite(value)
    ok = (
        ok
        and not (positive and value <= 0)
        and not (non_negative and value < 0)
        and not (below is not None and value >= below)
    )
    if not ok or (most is not None and value > most):
        rule = "a positive" if positive else "a non-negative" if non_negative else "a"
        bound = "" if below is None else f" below {below}"
        none = " or None" if optional else ""
        raise ValueError(f"{name} must be {rule} finite number{bound}{_at_most(most)}{none}, got {value!r}")


def check_reals(owner: Any, names: Collection[str], **rules: Any) -> None:
    """:func:`check_real` with ``rules`` on the attributes ``names`` of ``owner`` (a config), each up to its
    :func:`at_most`."""
    for name in names:
        check_real(name, getattr(owner, name), most=upper_bound(owner, name), **rules)


def check_choice(name: str, value: Any, choices: Collection[Any]) -> None:
    """Raise ``ValueError`` unless ``value`` is one of ``choices``."""
    if value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(map(str, choices))}, got {value!r}")
