"""Configs stored in checkpoints."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

__all__ = ["SavedConfig"]


class SavedConfig:
    """Mixin for dataclass configs stored in checkpoints: ``to_dict`` and a strict ``from_dict``."""

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]):
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(
                f"unknown {cls.__name__} fields {sorted(unknown)} (known: {sorted(known)}); "
                "is this checkpoint from a newer fwm-rl?"
            )
        return cls(**data)
