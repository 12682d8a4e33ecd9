"""What the forms of the memory share: its state types, the key algebra of both key modes (``key``,
``contract``, ``add_write``: pure tensor functions), masks, and the traversal of recurrent states."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, NamedTuple

import torch
from torch import Tensor, nn

LN_EPS = 1e-5  # layer norm epsilon (PyTorch's default, as in the authors' code)
KEY_MODES = ("tensor", "concat")
IMPLS = ("auto", "step", "chunked")


class MemoryTrace(NamedTuple):
    """Per-step internals, each ``[T, B, ...]``, for Figure-3-style visualisation.

    The match of read ``i`` at step ``t`` with the write at step ``j`` is
    ``(k1_j . n_t^i) * (k2_j . e_t^i)`` (``<k1 (x) k2, n (x) e>``).
    """

    k1: Tensor  # [T, B, d] write key 1
    k2: Tensor  # [T, B, d] write key 2
    v: Tensor  # [T, B, d] new value
    beta: Tensor  # [T, B] write strength
    n: Tensor  # [T, B, n_reads, d] query n^(i-1) of read i
    e: Tensor  # [T, B, n_reads, d] query e^(i) of read i


class FactoredState(NamedTuple):
    """The fast weights as a dense part plus a list of rank-one writes, for one-step calls (an RL rollout).

    ``F = f0_scale F0 + sum_j scale_j vec(k1_j (x) k2_j) (x) w_j`` (for ``keys="concat"`` the key is
    ``[k1_j; k2_j]``), with ``sq = ||F||^2``. A step appends its write and rescales the factors
    (the cap of eq. 4 only ever rescales the whole tensor), so a retrieval or read costs
    ``O(writes x d)`` instead of the ``O(d^3)`` passes over a dense ``F``. When the list holds
    :attr:`FastWeightMemory.max_writes` writes it is folded into ``F0``. ``F0`` is ``None`` while
    the dense part is empty (a rollout from an empty memory never forms a ``d^3`` tensor).
    Made by ``initial_state(..., factored=True)``; :meth:`FastWeightMemory.dense` gives the tensor.
    """

    F0: Tensor | None  # [B, ...] (the dense state's shape) or None
    f0_scale: Tensor  # [B]
    k1: Tensor  # [B, n, d]
    k2: Tensor  # [B, n, d]
    w: Tensor  # [B, n, d]
    scale: Tensor  # [B, n]
    sq: Tensor  # [B]


def count_parameters(module: nn.Module, trainable_only: bool = True) -> int:
    """Number of (trainable) parameters of ``module``."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable_only)


def host_checks(device: torch.device) -> bool:
    """Whether masks may be inspected on the host to skip work (``resets[t].any()``, ...).

    On the CPU that is free. On an accelerator every such check waits for the device, once per
    step of an A2C rollout, so there the masks are applied unconditionally instead: the same
    numbers, no synchronisation.
    """
    return device.type == "cpu"


def check_mask(name: str, mask: Tensor | None, T: int, B: int) -> Tensor | None:
    if mask is None:
        return None
    if not isinstance(mask, Tensor):
        mask = torch.as_tensor(mask)
    if mask.shape != (T, B):
        raise ValueError(f"{name} must have shape [T, B] = [{T}, {B}] (time first), got {list(mask.shape)}")
    return mask.bool()


def state_shape(batch_size: int, d: int, tensor_keys: bool = True) -> tuple[int, ...]:
    """The dense fast weights' shape: ``[B, d, d, d]`` (key 1, key 2, value), or ``[B, 2d, d]`` for ``keys="concat"``."""
    return (batch_size, d, d, d) if tensor_keys else (batch_size, 2 * d, d)


def key(q1: Tensor, q2: Tensor, tensor_keys: bool = True) -> Tensor:
    """The key ``vec(q1 (x) q2)`` (``[..., d*d]``), or ``[q1; q2]`` (``[..., 2d]``) for ``keys="concat"``."""
    if tensor_keys:
        return (q1.unsqueeze(-1) * q2.unsqueeze(-2)).flatten(-2)
    return torch.cat([q1, q2], dim=-1)


def contract(F: Tensor, q1: Tensor, q2: Tensor, tensor_keys: bool = True) -> Tensor:
    """``F vec(q1 (x) q2)`` for dense ``F: [B, ...]`` and ``q: [B, d]`` or ``[B, C, d]`` (one batched product):
    the retrieval of eq. 3 and the read of eq. 7 before its layer norm."""
    k = key(q1, q2, tensor_keys)
    F = F.reshape(F.shape[0], -1, q1.shape[-1])
    return torch.bmm(k.unsqueeze(1), F).squeeze(1) if k.dim() == 2 else torch.bmm(k, F)


def add_write(F: Tensor, k: Tensor, w: Tensor) -> Tensor:
    """``F + k (x) w`` for dense ``F: [B, ...]``, a key ``k: [B, d*d]`` (or ``[B, 2d]``) and ``w: [B, d]`` (eq. 3's update)."""
    B = F.shape[0]
    return torch.addcmul(F.reshape(B, -1, w.shape[-1]), k.unsqueeze(-1), w.unsqueeze(1)).view(F.shape)


def sum_writes(k1: Tensor, k2: Tensor, w: Tensor, tensor_keys: bool = True) -> Tensor:
    """``sum_j key_j (x) w_j`` for ``k1, k2, w: [B, n, d]``: ``[B, d*d, d]`` (or ``[B, 2d, d]``), one batched product."""
    if tensor_keys:  # sum_j k1_j (x) (k2_j (x) w_j)
        return k1.transpose(1, 2) @ (k2.unsqueeze(-1) * w.unsqueeze(-2)).flatten(2)
    return torch.cat([k1, k2], dim=2).transpose(1, 2) @ w


def cat_time(xs: list[Tensor]) -> Tensor:
    """``torch.cat`` along time, without a copy for a single piece."""
    return xs[0] if len(xs) == 1 else torch.cat(xs)


# A recurrent state is a nest of tuples, lists and named tuples whose leaves are tensors or ``None``, e.g.
# ``((h, c), F)``, ``((h, c), FactoredState)`` or an ``LMState``; the three functions below are the only code
# that walks one (a nest of the same shape may hold other leaves, e.g. each tensor's batch dimension).
def state_leaves(state: Any) -> list:
    """The leaves of a state nest, depth first (``None`` leaves included)."""
    if isinstance(state, (tuple, list)):
        return [leaf for part in state for leaf in state_leaves(part)]
    return [state]


def rebuild_state(like: Any, leaves: Iterable) -> Any:
    """A nest of the shape and types of ``like`` (named tuples keep their type) holding ``leaves`` in order."""
    leaves = iter(leaves)

    def build(node: Any) -> Any:
        if isinstance(node, (tuple, list)):
            parts = [build(part) for part in node]
            return type(node)(*parts) if hasattr(node, "_fields") else type(node)(parts)
        return next(leaves)

    return build(like)


def map_state(state: Any, fn: Callable[[Tensor], Tensor]) -> Any:
    """``fn`` applied to every tensor of a recurrent state, ``None`` entries kept."""
    return rebuild_state(state, [None if leaf is None else fn(leaf) for leaf in state_leaves(state)])
