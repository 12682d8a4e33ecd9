"""One optimizer step, the same in every trainer, on one process or many."""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor

from fwm_rl.distributed import DistContext, all_reduce_gradients, all_reduce_sum
from fwm_rl.engine.training import check_finite

__all__ = ["gradient_step"]


def gradient_step(model: torch.nn.Module, optimizer: torch.optim.Optimizer, loss: Tensor | None, ctx: DistContext, *,
                  share: float, totals: Mapping[str, float], step: int, hint: str = "", clip: float | None = None) -> dict[str, float]:
    """Backward, combine over processes, check, clip and step; returns ``totals`` summed over the processes.

    1. ``loss.backward()`` (``loss=None``: this process has no loss terms and adds zero gradients);
    2. every process's gradients, weighted by ``share`` (its share of the batch's loss terms), are summed, which
       equals the single-process gradient of the batch's mean loss (:func:`~fwm_rl.distributed.all_reduce_gradients`);
    3. ``totals`` (each already weighted by ``share``) are summed over processes in the same way;
    4. a non-finite ``totals["loss"]`` raises :class:`~fwm_rl.engine.NonFiniteLossError` on every process, before
       the weights change (``hint`` says what to try);
    5. the gradient norm is clipped at ``clip`` (``None`` or 0: not clipped);
    6. ``optimizer.step()``.

    The gradients are zeroed by the caller, before its forward pass.
    """
    if loss is not None:
        loss.backward()
    all_reduce_gradients(model, ctx, weight=share)
    summed = all_reduce_sum(dict(totals), ctx)
    check_finite(summed["loss"], step, hint)
    if clip:
        torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
    optimizer.step()
    return summed
