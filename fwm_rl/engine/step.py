"""One optimizer step, the same in every trainer, on one process or many."""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor

from fwm_rl.engine.distributed import DistContext, all_reduce_gradients, all_reduce_sum
from fwm_rl.engine.training import check_finite

__all__ = ["apply_gradients", "gradient_step", "reduce_gradients"]


def reduce_gradients(
    model: torch.nn.Module,
    loss: Tensor | None,
    ctx: DistContext,
    *,
    share: float,
    totals: Mapping[str, float],
    step: int,
    hint: str = "",
) -> dict[str, float]:
    """Steps 1-4 of :func:`gradient_step`: the batch's gradient in every process's ``.grad`` and ``totals``
    summed over the processes; raises :class:`~fwm_rl.engine.NonFiniteLossError` on a non-finite loss."""
    if loss is not None:
        loss.backward()
    all_reduce_gradients(model, ctx, weight=share)
    summed = all_reduce_sum(dict(totals), ctx)
    check_finite(summed["loss"], step, hint)
    return summed


def apply_gradients(model: torch.nn.Module, optimizer: torch.optim.Optimizer, clip: float | None = None) -> None:
    """Steps 5-6 of :func:`gradient_step`: clip the gradient norm at ``clip`` (``None`` or 0: not clipped), then
    ``optimizer.step()``."""
    if clip:
        torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
    optimizer.step()


def gradient_step(
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    loss: Tensor | None,
    ctx: DistContext,
    *,
    share: float,
    totals: Mapping[str, float],
    step: int,
    hint: str = "",
    clip: float | None = None,
) -> dict[str, float]:
    """Backward, combine over processes, check, clip and step; returns ``totals`` summed over the processes.

    1. ``loss.backward()`` (``loss=None``: this process has no loss terms and adds zero gradients);
    2. every process's gradients, weighted by ``share`` (its share of the batch's loss terms), are summed, which
       equals the single-process gradient of the batch's mean loss (:func:`~fwm_rl.engine.distributed.all_reduce_gradients`);
    3. ``totals`` (each already weighted by ``share``) are summed over processes in the same way;
    4. a non-finite ``totals["loss"]`` raises :class:`~fwm_rl.engine.NonFiniteLossError` on every process, before
       the weights change (``hint`` says what to try);
    5. the gradient norm is clipped at ``clip`` (``None`` or 0: not clipped);
    6. ``optimizer.step()``.

    The gradients are zeroed by the caller, before its forward pass. An algorithm that also offers the gradient
    alone (:meth:`~fwm_rl.agents.RecurrentA2C.compute_gradients`) calls the two halves, :func:`reduce_gradients`
    and :func:`apply_gradients`.
    """
    summed = reduce_gradients(model, loss, ctx, share=share, totals=totals, step=step, hint=hint)
    apply_gradients(model, optimizer, clip)
    return summed
