"""The FWM written straight from the paper's equations 1-8: the reference every fast form is tested against.

One step at a time, the fast weights as a plain ``[B, d*d, d]`` tensor, no masks, no in-place
operations and nothing for speed. The layer's options that depart from the paper's equations (the
authors' code) enter where their equation does: ``beta_bias`` in eq. 2, ``update_scale`` in eq. 3,
``tanh_first_query`` / ``tanh_read_keys`` in eqs 5 / 6, ``keys="concat"`` (appendix E) for the key.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F_
from torch import Tensor

from fwm_rl.memory.common import LN_EPS

if TYPE_CHECKING:
    from fwm_rl.memory.layer import FastWeightMemory


def reference_memory(mem: FastWeightMemory, h: Tensor, F: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """``FWM(h_t, F_t)`` for every step of ``h: [T, B, input_size]`` (``[T, B, output_size]``) and the
    final fast weights (in the layer's state shape), from ``F`` (default: the empty memory), computed
    with ``mem``'s weights by eqs 1-8."""
    T, B, _ = h.shape
    d, n_reads = mem.d_fwm, mem.n_reads
    W_write, b_write = mem.W_write.weight, mem.W_write.bias  # rows: k1, k2, v (eq. 1), then beta (eq. 2)
    W_read, b_read = mem.W_read.weight, mem.W_read.bias  # rows: n^(0) (eq. 5), then e^(1..N_r) (eq. 6)

    def key(a: Tensor, b: Tensor) -> Tensor:  # vec(a (x) b), or [a; b] for the appendix E ablation
        return torch.einsum("bi,bj->bij", a, b).reshape(B, d * d) if mem.keys == "tensor" else torch.cat([a, b], dim=1)

    F = h.new_zeros(mem.state_shape(B)) if F is None else F
    F = F.reshape(B, -1, d)  # F maps a key to a value: [B, key, value]
    outputs = []
    for t in range(T):
        h_t = h[t]
        k1, k2, v = torch.tanh(h_t @ W_write[: 3 * d].T + b_write[: 3 * d]).split(d, dim=1)  # eq. 1
        beta = torch.sigmoid(h_t @ W_write[3 * d] + b_write[3 * d] + mem.beta_bias)  # eq. 2
        k = key(k1, k2)
        v_old = torch.einsum("bk,bkv->bv", k, F)
        F_prime = F + mem.update_scale * beta[:, None, None] * torch.einsum("bk,bv->bkv", k, v - v_old)  # eq. 3
        F = F_prime / torch.linalg.vector_norm(F_prime, dim=(1, 2)).clamp(min=1.0)[:, None, None]  # eq. 4
        queries = h_t @ W_read.T + b_read
        n = torch.tanh(queries[:, :d]) if mem.tanh_first_query else queries[:, :d]  # eq. 5
        for i in range(n_reads):
            e = queries[:, d * (i + 1) : d * (i + 2)]
            e = torch.tanh(e) if mem.tanh_read_keys else e  # eq. 6
            n = F_.layer_norm(torch.einsum("bk,bkv->bv", key(n, e), F), (d,), eps=LN_EPS)  # eq. 7
        outputs.append(mem.W_o(n))  # eq. 8
    return torch.stack(outputs), F.reshape(mem.state_shape(B))
