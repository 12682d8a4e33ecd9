"""The memory on a :class:`~fwm_rl.memory.common.FactoredState` (what an RL rollout carries): the step form's
arithmetic on a dense part plus the list of rank-one writes so far, so a retrieval or read costs
``O(writes x d)`` instead of ``O(d^3)``. :func:`step_factored` is the one step both the layer's one-step
calls and the agents' fused rollout step (:mod:`fwm_rl.agents.rollout_step`) run."""

from __future__ import annotations

import torch
import torch.nn.functional as F_
from torch import Tensor

from fwm_rl.memory.common import LN_EPS, FactoredState, contract, state_shape, sum_writes


def empty_factored(batch_size: int, d: int, device=None, dtype=None) -> FactoredState:
    """The empty memory ``F = 0`` as a :class:`FactoredState`: no dense part, no writes."""
    zeros = torch.zeros(batch_size, 0, d, device=device, dtype=dtype)
    ones = torch.ones(batch_size, device=device, dtype=dtype)
    return FactoredState(None, ones, zeros, zeros, zeros, zeros[..., 0], torch.zeros_like(ones))


def dense(S: FactoredState, tensor_keys: bool = True) -> Tensor:
    """``F = f0_scale F0 + sum_j scale_j key_j (x) w_j`` as a dense tensor (``[B, d, d, d]``, or ``[B, 2d, d]``)."""
    B, d = S.sq.shape[0], S.w.shape[-1]
    F = sum_writes(S.k1, S.k2, S.w * S.scale.unsqueeze(-1), tensor_keys).view(state_shape(B, d, tensor_keys))
    if S.F0 is not None:
        F = F + S.f0_scale.view(-1, *([1] * (F.dim() - 1))) * S.F0
    return F


def fold(S: FactoredState, tensor_keys: bool = True) -> FactoredState:
    """The same memory with its list of writes folded into the dense part (``F0``)."""
    F0 = dense(S, tensor_keys)
    return empty_factored(F0.shape[0], S.w.shape[-1], F0.device, F0.dtype)._replace(F0=F0, sq=F0.flatten(1).pow(2).sum(1))


def write_matches(k1: Tensor, k2: Tensor, q1: Tensor, q2: Tensor, tensor_keys: bool = True) -> Tensor:
    """``<key(q1, q2), key_j>`` for the writes ``k1, k2: [B, n, d]`` and one query ``q: [B, d]``: ``[B, n]``.

    (Products and sums rather than batched matrix products: ``torch.compile`` fuses them into the rollout step.)
    """
    g1, g2 = (k1 * q1.unsqueeze(1)).sum(-1), (k2 * q2.unsqueeze(1)).sum(-1)
    return g1 * g2 if tensor_keys else g1 + g2


def read_factored(S: FactoredState, q1: Tensor, q2: Tensor, tensor_keys: bool = True) -> Tensor:
    """``F vec(q1 (x) q2) = sum_j scale_j <key_j, key(q1, q2)> w_j (+ f0_scale F0 vec(q1 (x) q2))``: ``[B, d]``."""
    match = write_matches(S.k1, S.k2, q1, q2, tensor_keys) * S.scale
    out = (match.unsqueeze(-1) * S.w).sum(1)
    return out if S.F0 is None else torch.addcmul(out, S.f0_scale.unsqueeze(-1), contract(S.F0, q1, q2, tensor_keys))


def step_factored(
    S: FactoredState,
    k1: Tensor,
    k2: Tensor,
    v: Tensor,
    beta: Tensor,
    n0: Tensor,
    e: Tensor,
    *,
    update_scale: float = 1.0,
    tensor_keys: bool = True,
    max_writes: int = 64,
    resets: Tensor | None = None,
    keep: Tensor | None = None,
    want_queries: bool = False,
) -> tuple[Tensor, FactoredState, Tensor | None]:
    """One step of eqs 3-4 and 7 on a :class:`FactoredState`: the step form's arithmetic on the factors.

    Inputs are one step's projections (eqs 1, 2, 5, 6): ``k1, k2, v, n0: [B, d]``, ``beta: [B]``,
    ``e: [B, N_r, d]``; ``resets`` (the row starts from an empty memory) and ``keep`` (``False``: padding, no
    write and no rescale) are ``[B]`` masks or ``None``. A state holding ``max_writes`` writes is first folded
    (:func:`fold`). The retrieval and every read are :func:`read_factored`; the write appends ``(k1, k2, w)``
    with ``w = update_scale * beta * (v - v_old)`` (eq. 3), and
    ``||F'||^2 = sq + 2 v_old.w + ||key||^2 ||w||^2`` gives the cap of eq. 4, which divides every factor.
    Returns ``(n^(N_r) [B, d], the new state, queries n^(0..N_r-1) [B, N_r, d] if want_queries else None)``.
    """
    if S.k1.shape[1] >= max_writes:
        S = fold(S, tensor_keys)
    f0_scale, scale, sq = S.f0_scale, S.scale, S.sq
    if resets is not None:  # those rows start from an empty memory
        live = (~resets).to(sq.dtype)
        f0_scale, scale, sq = f0_scale * live, scale * live.unsqueeze(-1), sq * live
    v_old = read_factored(S._replace(f0_scale=f0_scale, scale=scale), k1, k2, tensor_keys)
    w = update_scale * beta.unsqueeze(-1) * (v - v_old)  # eq. 3's update
    s1, s2 = k1.pow(2).sum(-1), k2.pow(2).sum(-1)
    key_sq = s1 * s2 if tensor_keys else s1 + s2
    sq_new = sq + 2 * (w * (v_old + 0.5 * key_sq.unsqueeze(-1) * w)).sum(-1)
    inv_cap = sq_new.clamp(min=1.0).rsqrt()  # eq. 4
    if keep is not None:  # padding: no write, no rescale
        w, inv_cap, sq_new = w * keep.to(w.dtype).unsqueeze(-1), torch.where(keep, inv_cap, 1.0), torch.where(keep, sq_new, sq)
    new = FactoredState(
        S.F0,
        f0_scale * inv_cap,
        torch.cat([S.k1, k1.unsqueeze(1)], 1),
        torch.cat([S.k2, k2.unsqueeze(1)], 1),
        torch.cat([S.w, w.unsqueeze(1)], 1),
        torch.cat([scale, scale.new_ones(scale.shape[0], 1)], 1) * inv_cap.unsqueeze(-1),
        sq_new * inv_cap.square(),
    )
    n, queries = n0, []
    for i in range(e.shape[1]):  # eq. 7 from the written memory
        queries.append(n)
        n = F_.layer_norm(read_factored(new, n, e[:, i], tensor_keys), (n.shape[-1],), eps=LN_EPS)
    return n, new, torch.stack(queries, 1) if want_queries else None
