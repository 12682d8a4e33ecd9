"""The step form: eqs 3-4 and 7 one step at a time on the dense fast weights ``[B, d, d, d]``, with
masks (resets, padding, sparse reads). The exact forms of :mod:`fwm_rl.memory.chunked` and
:mod:`fwm_rl.memory.factored` are tested against it, and it against :mod:`fwm_rl.memory.reference`."""

from __future__ import annotations

import torch
import torch.nn.functional as F_
from torch import Tensor

from fwm_rl.memory.common import LN_EPS, add_write, contract, key


def run_step(
    F: Tensor,
    k1: Tensor,
    k2: Tensor,
    v: Tensor,
    beta: Tensor,
    n0: Tensor,
    e: Tensor,
    *,
    update_scale: float = 1.0,
    tensor_keys: bool = True,
    resets: Tensor | None = None,
    keep: Tensor | None = None,
    read_mask: Tensor | None = None,
    host_checks: bool = True,
) -> tuple[Tensor, Tensor, Tensor]:
    """The memory's write and reads, one step at a time, from the dense fast weights ``F`` (``[B, d, d, d]``, or
    ``[B, 2d, d]`` with ``tensor_keys=False``).

    Inputs are the projections of eqs 1, 2, 5, 6, time first: ``k1, k2, v, n0: [T, B, d]``, ``beta: [T, B]``,
    ``e: [T, B, N_r, d]``. At step ``t``: ``v_old = F vec(k1 (x) k2)``,
    ``F' = F + update_scale * beta * vec(k1 (x) k2) (x) (v - v_old)`` (eq. 3), ``F = F' / max(1, ||F'||)`` (eq. 4),
    then ``n^(i) = LN(F vec(n^(i-1) (x) e^(i)))`` for ``i = 1..N_r`` (eq. 7).

    Masks (``[T, B]`` bool or ``None``): ``resets[t]`` zeroes the row's ``F`` before step ``t``; ``keep[t] = False``
    leaves it untouched (padding); where no row of ``read_mask[t]`` reads, the step's reads are skipped (its final
    read is 0). ``host_checks=False`` applies the masks without inspecting them on the host (see
    :func:`~fwm_rl.memory.common.host_checks`). Returns ``(n^(N_r) [T, B, d], F_T, queries [T, B, N_r, d])``, the
    queries being ``n^(0..N_r-1)``.
    """
    T, B, d = k1.shape
    n_reads = e.shape[2]
    ones = [1] * (F.dim() - 1)  # broadcasts a [B] factor over F
    finals, queries = [], []
    for t in range(T):
        if resets is not None and (not host_checks or bool(resets[t].any())):
            F = F * (~resets[t]).to(F.dtype).view(B, *ones)
        k = key(k1[t], k2[t], tensor_keys)
        v_old = torch.bmm(k.unsqueeze(1), F.reshape(B, -1, d)).squeeze(1)  # retrieve v_old
        w = update_scale * beta[t, :, None] * (v[t] - v_old)
        F_new = add_write(F, k, w)  # eq. 3
        cap = torch.linalg.vector_norm(F_new.flatten(1), dim=1).clamp(min=1.0).view(B, *ones)
        F_new = F_new / cap if torch.is_grad_enabled() else F_new.div_(cap)  # eq. 4 (in place without autograd)
        if keep is not None:
            F_new = torch.where(keep[t].view(B, *ones), F_new, F)
        F = F_new
        n, qs = n0[t], []
        if read_mask is None or not host_checks or bool(read_mask[t].any()):
            for i in range(n_reads):
                qs.append(n)
                n = F_.layer_norm(contract(F, n, e[t, :, i], tensor_keys), (d,), eps=LN_EPS)  # eq. 7
        else:  # nothing reads at this step: its output is masked to 0
            qs = [n] * n_reads
            n = torch.zeros_like(n)
        finals.append(n)
        queries.append(torch.stack(qs, dim=1))
    return torch.stack(finals), F, torch.stack(queries)
