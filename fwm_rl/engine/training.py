"""What every training step needs: the device, seeds, mixed precision and the non-finite loss guard."""

from __future__ import annotations

import math
import random

import numpy as np
import torch

from fwm_rl.checks import check_choice, check_int

__all__ = ["AMP_MODES", "NonFiniteLossError", "autocast", "check_finite", "resolve_device", "set_seed"]


class NonFiniteLossError(RuntimeError):
    """Raised when a training loss becomes NaN or infinite."""


def check_finite(loss: torch.Tensor | float, step: int, hint: str = "") -> None:
    """Raise :class:`NonFiniteLossError` if ``loss`` is NaN or infinite."""
    value = float(loss.detach()) if isinstance(loss, torch.Tensor) else float(loss)
    if not math.isfinite(value):
        msg = f"non-finite loss ({value}) at step {step}; training stopped."
        if hint:
            msg += " " + hint
        raise NonFiniteLossError(msg)


def set_seed(seed: int) -> None:
    """Seed Python, NumPy and torch (all devices)."""
    check_int("seed", seed, 0)
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``"auto"`` picks CUDA when present and the CPU otherwise; anything else is checked."""
    if isinstance(device, torch.device):
        return device
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except RuntimeError as exc:
        raise ValueError(f"unknown device {device!r}: use 'auto', 'cpu' or 'cuda[:N]'") from exc
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} asked for, but CUDA is not available here: use --device cpu or auto")
    return dev


#: Mixed-precision modes of the catbAbI and LM trainers (``--amp``): ``"none"`` (float32 throughout)
#: or ``"bf16"`` (the slow network and the softmax under bfloat16 autocast, the FWM in float32).
AMP_MODES = ("none", "bf16")


def autocast(device: torch.device, amp: str) -> torch.autocast:
    """The autocast context of mixed-precision mode ``amp`` (:data:`AMP_MODES`) on ``device``.

    ``"bf16"`` needs no loss scaling (bfloat16 has float32's exponent range). Inside it the FWM
    turns autocast off for itself: its fast weights, writes and reads stay in float32
    (:meth:`fwm_rl.memory.FastWeightMemory.forward`).
    """
    check_choice("amp", amp, AMP_MODES)
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp == "bf16")
