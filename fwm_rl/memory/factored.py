"""One-step calls on a :class:`~fwm_rl.memory.common.FactoredState` (what an RL rollout carries):
the step form's arithmetic on a dense part plus the list of rank-one writes so far, so a retrieval
or read costs ``O(writes x d)`` instead of ``O(d^3)``."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F_

from fwm_rl.memory.common import LN_EPS, FactoredState, MemoryTrace, write_matches

if TYPE_CHECKING:
    from fwm_rl.memory.layer import FastWeightMemory


def step_factored(mem: FastWeightMemory, S: FactoredState, h, resets, keep, read_mask, trace: bool, need_state: bool):
    """One step (eqs 1-8) on a :class:`FactoredState`: the step form's arithmetic on the factors.

    The retrieval and every read are ``sum_j scale_j <key_j, q> w_j`` (plus ``f0_scale F0 q``),
    the write appends ``(k1, k2, w)``, and ``||F'||^2 = sq + 2 v_old.w + ||key||^2 ||w||^2``
    gives the cap of eq. 4, which divides every factor.
    """
    tensor = mem.keys == "tensor"
    if S.k1.shape[1] >= mem.max_writes:  # fold the list into the dense part
        F0 = mem.dense(S)
        S = mem.initial_state(F0.shape[0], F0.device, F0.dtype, factored=True)._replace(F0=F0, sq=F0.flatten(1).pow(2).sum(1))
    k1, k2, v, beta, n0, e = (x[0] for x in mem.project(h))
    f0_scale, scale, sq = S.f0_scale, S.scale, S.sq
    if resets is not None:  # those rows start from an empty memory
        live = (~resets[0]).to(sq.dtype)
        f0_scale, scale, sq = f0_scale * live, scale * live.unsqueeze(-1), sq * live

    def contract(k1s, k2s, ws, scales, f0s, q1, q2):  # F vec(q1 (x) q2)
        out = ((write_matches(k1s, k2s, q1, q2, tensor) * scales).unsqueeze(1) @ ws).squeeze(1)
        return out if S.F0 is None else torch.addcmul(out, f0s.unsqueeze(-1), mem.contract(S.F0, q1, q2))

    v_old = contract(S.k1, S.k2, S.w, scale, f0_scale, k1, k2)
    w = mem.update_scale * beta.unsqueeze(-1) * (v - v_old)  # eq. 3's update
    s1, s2 = k1.pow(2).sum(-1), k2.pow(2).sum(-1)
    sq_new = sq + 2 * (w * torch.addcmul(v_old, (s1 * s2 if tensor else s1 + s2).unsqueeze(-1), w, value=0.5)).sum(-1)
    inv_cap = sq_new.clamp(min=1.0).rsqrt()  # eq. 4
    if keep is not None:  # padding: no write, no rescale
        k = keep[0]
        w, inv_cap, sq_new = w * k.to(w.dtype).unsqueeze(-1), torch.where(k, inv_cap, 1.0), torch.where(k, sq_new, sq)
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
    for i in range(mem.n_reads):  # eq. 7 from the written memory
        queries.append(n)
        n = F_.layer_norm(contract(new.k1, new.k2, new.w, new.scale, new.f0_scale, n, e[:, i]), (mem.d_fwm,), eps=LN_EPS)
    out = mem.W_o(n).unsqueeze(0)  # eq. 8
    visible = keep if read_mask is None else (read_mask if keep is None else keep & read_mask)
    if visible is not None:
        out = out * visible.unsqueeze(-1).to(out.dtype)
    result = (out, new if need_state else None)
    if trace:
        return (*result, MemoryTrace(k1[None], k2[None], v[None], beta[None], torch.stack(queries, 1)[None], e[None]))
    return result
