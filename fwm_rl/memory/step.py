"""The step form: eqs 1-8 one step at a time on the dense fast weights ``[B, d, d, d]``, with
masks (resets, padding, sparse reads). The exact forms of :mod:`fwm_rl.memory.chunked` and
:mod:`fwm_rl.memory.factored` are tested against it, and it against :mod:`fwm_rl.memory.reference`."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F_

from fwm_rl.memory.common import LN_EPS

if TYPE_CHECKING:
    from fwm_rl.memory.layer import FastWeightMemory


def run_step(mem: FastWeightMemory, F, k1, k2, v, beta, n0, e, resets, keep, read_mask, host_checks=True):
    T, B, _ = k1.shape
    finals, queries = [], []
    for t in range(T):
        if resets is not None and (not host_checks or bool(resets[t].any())):
            F = F * (~resets[t]).to(F.dtype).view(B, *([1] * (F.dim() - 1)))
        key = mem.key(k1[t], k2[t])
        v_old = torch.bmm(key.unsqueeze(1), F.reshape(B, -1, mem.d_fwm)).squeeze(1)  # retrieve v_old
        w = mem.update_scale * beta[t, :, None] * (v[t] - v_old)
        F_new = mem.add_write(F, key, w)  # eq. 3
        cap = torch.linalg.vector_norm(F_new.flatten(1), dim=1).clamp(min=1.0).view(B, *([1] * (F.dim() - 1)))
        F_new = F_new / cap if torch.is_grad_enabled() else F_new.div_(cap)  # eq. 4 (in place without autograd)
        if keep is not None:
            F_new = torch.where(keep[t].view(B, *([1] * (F.dim() - 1))), F_new, F)
        F = F_new
        n, qs = n0[t], []
        if read_mask is None or not host_checks or bool(read_mask[t].any()):
            for i in range(mem.n_reads):
                qs.append(n)
                n = F_.layer_norm(mem.contract(F, n, e[t, :, i]), (mem.d_fwm,), eps=LN_EPS)  # eq. 7
        else:  # nothing reads at this step: its output is masked to 0
            qs = [n] * mem.n_reads
            n = torch.zeros_like(n)
        finals.append(n)
        queries.append(torch.stack(qs, dim=1))
    return torch.stack(finals), F, torch.stack(queries)
