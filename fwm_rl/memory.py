"""The Fast Weight Memory (paper section 3, equations 1-8), shared by RL, catbAbI and LM.

A slow LSTM produces ``h_t``; at every step the memory

* **writes** (section 3.1.1): ``[k1, k2, v] = tanh(W_write h_t)`` (eq. 1), ``beta = sigmoid(W_beta h_t)``
  (eq. 2), retrieves ``v_old = F(k1 (x) k2)``, and updates
  ``F' = F + beta * vec(k1 (x) k2) (x) (v - v_old)`` (eq. 3), ``F = F' / max(1, ||F'||)`` (eq. 4);
* **reads** (section 3.1.2): ``n^(0) = tanh(W_n h_t)`` (eq. 5), ``e^(i) = tanh(W_e^(i) h_t)`` (eq. 6),
  ``n^(i) = LN(F vec(n^(i-1) (x) e^(i)))`` (eq. 7) for ``i = 1..N_r``, output ``W_o n^(N_r)`` (eq. 8).

``F`` is stored as ``[B, d_fwm, d_fwm, d_fwm]`` (key 1, key 2, value); with the appendix E ablation
(``keys="concat"``) the key is ``[k1; k2]`` and ``F`` is ``[B, 2 d_fwm, d_fwm]``.

Exact implementations of the same recurrence:

* ``impl="step"``: the reference, one full ``F`` update and ``N_r`` contractions per step.
* ``impl="chunked"``: within a chunk of ``C`` steps starting from ``F_0``, ``F_t`` is ``F_0`` plus the
  chunk's rank-one writes ``key_j (x) w_j``, each scaled by the product of the later caps of eq. 4
  (the cap only ever rescales the whole tensor).
  Retrievals and reads become key dot products against the chunk's earlier writes plus one batched
  contraction with ``F_0``; ``||F'||^2`` is updated incrementally, so no ``d^3`` tensor is formed per step.
  Starting from a zero state (an RL episode) the ``F_0`` terms vanish altogether. While no cap
  engages (checked exactly afterwards), the writes of eq. 3 solve one unit lower-triangular
  system; otherwise a step loop on small tensors computes them.
* one-step calls on a :class:`FactoredState` (``initial_state(..., factored=True)``, what an RL
  rollout carries): the step form's arithmetic on a dense part plus the list of writes so far.

``impl="auto"`` (default) uses the chunked form for sequences and the step form (or the factored
state's step) for single steps.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F_
from torch import Tensor, nn
from torch.autograd.function import once_differentiable

__all__ = ["FWMLSTM", "FactoredState", "FastWeightMemory", "MemoryTrace", "count_parameters", "lstm_with_resets", "map_state"]

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


def _host_checks(device: torch.device) -> bool:
    """Whether masks may be inspected on the host to skip work (``resets[t].any()``, ...).

    On the CPU that is free. On an accelerator every such check waits for the device, once per
    step of an A2C rollout, so there the masks are applied unconditionally instead: the same
    numbers, no synchronisation.
    """
    return device.type == "cpu"


def _check_mask(name: str, mask: Tensor | None, T: int, B: int) -> Tensor | None:
    if mask is None:
        return None
    if not isinstance(mask, Tensor):
        mask = torch.as_tensor(mask)
    if mask.shape != (T, B):
        raise ValueError(f"{name} must have shape [T, B] = [{T}, {B}] (time first), got {list(mask.shape)}")
    return mask.bool()


class FastWeightMemory(nn.Module):
    """Write (eqs 1-4) and ``n_reads`` chained reads (eqs 5-8) on a fast weight tensor.

    Args:
        input_size: size of the slow net's output ``h_t`` (``d_LSTM``).
        d_fwm: size of keys, values and queries (``d_FWM``).
        n_reads: number of chained reads ``N_r``.
        output_size: rows of ``W_o`` (default ``input_size``).
        keys: ``"tensor"`` (the paper) or ``"concat"`` (appendix E ablation: ``[k1; k2]``).
        beta_bias: constant added before the sigmoid of eq. 2. The paper's eq. 2 has none; the
            authors' code uses ``+1`` ("bias to writing") in all experiments.
        update_scale: factor on the update term of eq. 3. The paper's eq. 3 is ``1``; the authors'
            code scales by ``1/d_fwm`` in all experiments.
        tanh_first_query: apply ``tanh`` to ``n^(0)`` as eq. 5 says; the authors' meta-RL and
            catbAbI code does not.
        tanh_read_keys: apply ``tanh`` to ``e^(i)`` as eq. 6 says; the authors' meta-RL code does not.
        chunk_size: steps per chunk of the chunked form (``None``: :meth:`default_chunk_size`).
        impl: ``"auto"``, ``"step"`` (reference) or ``"chunked"``.
    """

    def __init__(
        self,
        input_size: int,
        d_fwm: int = 16,
        n_reads: int = 3,
        output_size: int | None = None,
        keys: str = "tensor",
        beta_bias: float = 0.0,
        update_scale: float = 1.0,
        tanh_first_query: bool = True,
        tanh_read_keys: bool = True,
        chunk_size: int | None = None,
        impl: str = "auto",
    ):
        super().__init__()
        output_size = input_size if output_size is None else output_size
        for name, value in (("input_size", input_size), ("d_fwm", d_fwm), ("n_reads", n_reads), ("output_size", output_size)):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if keys not in KEY_MODES:
            raise ValueError(f"keys must be one of {KEY_MODES}, got {keys!r}")
        if impl not in IMPLS:
            raise ValueError(f"impl must be one of {IMPLS}, got {impl!r}")
        if chunk_size is not None and (not isinstance(chunk_size, int) or chunk_size < 1):
            raise ValueError(f"chunk_size must be a positive integer or None, got {chunk_size!r}")
        if not update_scale > 0:
            raise ValueError(f"update_scale must be positive, got {update_scale!r}")
        self.input_size, self.d_fwm, self.n_reads, self.output_size = input_size, d_fwm, n_reads, output_size
        self.keys, self.beta_bias, self.update_scale = keys, float(beta_bias), float(update_scale)
        self.tanh_first_query, self.tanh_read_keys = tanh_first_query, tanh_read_keys
        self.chunk_size, self.impl = chunk_size, impl
        d = d_fwm
        self.W_write = nn.Linear(input_size, 3 * d + 1)  # [k1, k2, v] (eq. 1) and beta (eq. 2)
        self.W_read = nn.Linear(input_size, d + n_reads * d)  # n^(0) (eq. 5) and e^(1..N_r) (eq. 6)
        self.W_o = nn.Linear(d, output_size)  # eq. 8
        bound = (6.0 / (input_size + d)) ** 0.5  # the authors' uniform init of the projections
        nn.init.uniform_(self.W_write.weight, -bound, bound)
        nn.init.uniform_(self.W_read.weight, -bound, bound)

    # ------------------------------------------------------------------ state
    def state_shape(self, batch_size: int) -> tuple[int, ...]:
        d = self.d_fwm
        return (batch_size, d, d, d) if self.keys == "tensor" else (batch_size, 2 * d, d)

    #: Writes a :class:`FactoredState` holds before they are folded into its dense part.
    max_writes = 64

    def initial_state(self, batch_size: int, device=None, dtype=None, factored: bool = False) -> Tensor | FactoredState:
        """The empty memory ``F = 0``: a dense tensor, or with ``factored=True`` an empty
        :class:`FactoredState` (the fast form for one-step calls)."""
        p = self.W_o.weight
        device, dtype = device or p.device, dtype or p.dtype
        if factored:
            zeros = torch.zeros(batch_size, 0, self.d_fwm, device=device, dtype=dtype)
            ones = torch.ones(batch_size, device=device, dtype=dtype)
            return FactoredState(None, ones, zeros, zeros, zeros, zeros[..., 0], torch.zeros_like(ones))
        return torch.zeros(self.state_shape(batch_size), device=device, dtype=dtype)

    def dense(self, F: Tensor | FactoredState) -> Tensor:
        """``F`` as the dense tensor of :meth:`state_shape` (a tensor is returned as it is)."""
        if isinstance(F, Tensor):
            return F
        S = _sum_writes(F.k1, F.k2, F.w * F.scale.unsqueeze(-1), self.keys == "tensor").view(self.state_shape(F.sq.shape[0]))
        if F.F0 is not None:
            S = S + F.f0_scale.view(-1, *([1] * (S.dim() - 1))) * F.F0
        return S

    def _check_state(self, F: Tensor | FactoredState, B: int) -> None:
        if isinstance(F, FactoredState):
            d, n = self.d_fwm, F.k1.shape[1] if F.k1.dim() == 3 else -1
            shapes = [(F.f0_scale, (B,)), (F.k1, (B, n, d)), (F.k2, (B, n, d)), (F.w, (B, n, d)), (F.scale, (B, n)), (F.sq, (B,))]
            if any(tuple(x.shape) != shape for x, shape in shapes) or (F.F0 is not None and tuple(F.F0.shape) != self.state_shape(B)):
                raise ValueError(f"factored fast weight state does not match batch {B}, d_fwm {d}, keys={self.keys!r}; was it made by another configuration?")
            return
        if not isinstance(F, Tensor) or tuple(F.shape) != self.state_shape(B):
            got = list(F.shape) if isinstance(F, Tensor) else type(F).__name__
            raise ValueError(
                f"fast weight state has shape {got}, expected {list(self.state_shape(B))} "
                f"(batch {B}, d_fwm {self.d_fwm}, keys={self.keys!r}); was it made by another configuration?"
            )

    # ------------------------------------------------------------ projections
    def project(self, h: Tensor):
        """Eqs 1, 2, 5, 6 for all steps at once: ``k1, k2, v [T,B,d]``, ``beta [T,B]``, ``n0 [T,B,d]``, ``e [T,B,N_r,d]``.

        They are computed batch-major and returned as time-major views: the chunked form works
        batch-major, and gradients arriving in the storage's own layout make the backward of the
        splits and products contiguous copies rather than strided gathers.
        """
        return tuple(x.transpose(0, 1) for x in self._project(h.transpose(0, 1)))

    def _project(self, h: Tensor):
        d = self.d_fwm
        keys_value, b = self.W_write(h).split([3 * d, 1], dim=-1)
        k1, k2, v = torch.tanh(keys_value).split(d, dim=-1)  # eq. 1
        beta = torch.sigmoid(b.squeeze(-1) + self.beta_bias)  # eq. 2
        queries = self.W_read(h)
        if self.tanh_first_query and self.tanh_read_keys:
            queries = torch.tanh(queries)  # eqs 5 and 6 in one call
        n0, e = queries.split([d, self.n_reads * d], dim=-1)
        if self.tanh_first_query != self.tanh_read_keys:
            n0, e = (torch.tanh(n0), e) if self.tanh_first_query else (n0, torch.tanh(e))  # eq. 5 or 6
        e = e.unflatten(-1, (self.n_reads, d))
        return k1, k2, v, beta, n0, e

    # -------------------------------------------------- key algebra (both modes)
    def _key(self, q1: Tensor, q2: Tensor) -> Tensor:
        return _key_vec(q1, q2, self.keys == "tensor")

    def _contract(self, F: Tensor, q1: Tensor, q2: Tensor) -> Tensor:
        """``F vec(q1 (x) q2)`` for ``F: [B, ...]`` and ``q: [B, d]`` or ``[B, C, d]`` (one batched product)."""
        key = self._key(q1, q2)
        F = F.reshape(F.shape[0], -1, self.d_fwm)
        return torch.bmm(key.unsqueeze(1), F).squeeze(1) if key.dim() == 2 else torch.bmm(key, F)

    def _write(self, F: Tensor, key: Tensor, w: Tensor) -> Tensor:
        """``F + key (x) w`` for ``key: [B, d*d]`` (or ``[B, 2d]``), ``w: [B, d]`` (eq. 3's update)."""
        B = F.shape[0]
        return torch.addcmul(F.reshape(B, -1, self.d_fwm), key.unsqueeze(-1), w.unsqueeze(1)).view(F.shape)

    # ----------------------------------------------------------------- forward
    def forward(
        self,
        h: Tensor,
        F: Tensor | None = None,
        resets: Tensor | None = None,
        keep: Tensor | None = None,
        read_mask: Tensor | None = None,
        return_trace: bool = False,
        impl: str | None = None,
        need_state: bool = True,
    ):
        """Run the memory over ``h: [T, B, input_size]``.

        ``resets[t, b]`` zeroes ``F`` of row ``b`` before step ``t``; ``keep[t, b] = False`` marks
        padding (``F`` untouched, output 0); ``read_mask[t, b] = False`` skips the read (output 0).
        Returns ``(reads [T, B, output_size], F_T)`` (plus a :class:`MemoryTrace` if asked).
        ``need_state=False`` returns ``None`` for ``F_T`` and lets the chunked form skip forming it
        (an A2C update replaying whole episodes has no use for the state after them).
        """
        if not isinstance(h, Tensor) or h.dim() != 3 or h.shape[-1] != self.input_size:
            got = list(h.shape) if isinstance(h, Tensor) else type(h).__name__
            raise ValueError(f"h must be [T, B, {self.input_size}] (time first), got {got}")
        if torch.is_autocast_enabled(h.device.type):
            # Mixed precision (fwm_rl.runs.autocast): the slow net may run in bfloat16, but F sums
            # thousands of small writes (eq. 3), so the memory runs in float32 with autocast off.
            with torch.autocast(h.device.type, enabled=False):
                F = F.float() if isinstance(F, Tensor) else F
                return self.forward(h.float(), F, resets, keep, read_mask, return_trace, impl, need_state)
        T, B, _ = h.shape
        if T == 0:
            raise ValueError("h has no time steps (T = 0)")
        resets = _check_mask("resets", resets, T, B)
        host_checks = _host_checks(h.device)
        impl = impl or self.impl
        if impl not in IMPLS:
            raise ValueError(f"impl must be one of {IMPLS}, got {impl!r}")
        if F is not None:
            self._check_state(F, B)
        # A known-empty start (no state given, or every row reset at step 0, as in an RL
        # episode) lets the chunked form drop all F_0 terms, and a factored state start empty.
        zero_start = F is None or (resets is not None and host_checks and bool(resets[0].all()))
        if isinstance(F, FactoredState):
            if zero_start:
                F = self.initial_state(B, h.device, h.dtype, factored=True)
            if T == 1 and impl != "step":
                keep, read_mask = _check_mask("keep", keep, T, B), _check_mask("read_mask", read_mask, T, B)
                return self._step_factored(F, h, resets, keep, read_mask, return_trace, need_state)
        if isinstance(F, FactoredState) and not zero_start:
            F = self.dense(F)  # (sequences and the reference step form work on the dense tensor)
        if zero_start:
            F = None  # every row starts empty (a reset at step 0 discards the state given)
            if resets is not None and not bool(resets[1:].any()):
                resets = None  # resetting an empty memory at step 0 changes nothing
        keep = _check_mask("keep", keep, T, B)
        read_mask = _check_mask("read_mask", read_mask, T, B)
        if impl == "auto":
            impl = "step" if T == 1 else "chunked"
        if F is None and impl == "step":  # (the chunked form never forms an empty F)
            F = self.initial_state(B, device=h.device, dtype=h.dtype)

        k1, k2, v, beta, n0, e = self.project(h)
        if impl == "step":
            n_final, F, queries = self._run_step(F, k1, k2, v, beta, n0, e, resets, keep, read_mask, host_checks)
        else:
            # Reads only at steps where some row reads (catbAbI's QA mode); the trace wants all.
            read_any = None if read_mask is None or return_trace else read_mask.any(1)
            n_final, F, queries = self._run_chunked(F, zero_start, k1, k2, v, beta, n0, e, resets, keep, read_any, need_state, return_trace)
        out = self.W_o(n_final)  # eq. 8
        visible = keep if read_mask is None else (read_mask if keep is None else keep & read_mask)
        if visible is not None:
            out = out * visible.unsqueeze(-1).to(out.dtype)
        F = F if need_state else None
        if return_trace:
            return out, F, MemoryTrace(k1, k2, v, beta, queries, e)
        return out, F

    @staticmethod
    def default_chunk_size(T: int, B: int, zero_start: bool) -> int:
        """Chunk length when ``chunk_size`` is None (chosen by ``scripts/bench_fwm.py`` timings).

        A short sequence from an empty memory (an RL episode) is one chunk: no ``d^3`` tensor
        at all. Otherwise chunks are as long as the ``[B, C, C]`` match matrices stay within
        about 2M entries (at least 32 steps): longer chunks form ``F`` less often.
        """
        if zero_start and T <= 64:
            return T
        return min(T, max(32, math.isqrt(2**21 // B)))

    # ------------------------------------------------ one step, factored state
    def _step_factored(self, S: FactoredState, h, resets, keep, read_mask, trace: bool, need_state: bool):
        """One step (eqs 1-8) on a :class:`FactoredState`: the step form's arithmetic on the factors.

        The retrieval and every read are ``sum_j scale_j <key_j, q> w_j`` (plus ``f0_scale F0 q``),
        the write appends ``(k1, k2, w)``, and ``||F'||^2 = sq + 2 v_old.w + ||key||^2 ||w||^2``
        gives the cap of eq. 4, which divides every factor.
        """
        tensor = self.keys == "tensor"
        if S.k1.shape[1] >= self.max_writes:  # fold the list into the dense part
            F0 = self.dense(S)
            S = self.initial_state(F0.shape[0], F0.device, F0.dtype, factored=True)._replace(F0=F0, sq=F0.flatten(1).pow(2).sum(1))
        k1, k2, v, beta, n0, e = (x[0] for x in self.project(h))
        f0_scale, scale, sq = S.f0_scale, S.scale, S.sq
        if resets is not None:  # those rows start from an empty memory
            live = (~resets[0]).to(sq.dtype)
            f0_scale, scale, sq = f0_scale * live, scale * live.unsqueeze(-1), sq * live

        def contract(k1s, k2s, ws, scales, f0s, q1, q2):  # F vec(q1 (x) q2)
            out = ((_write_matches(k1s, k2s, q1, q2, tensor) * scales).unsqueeze(1) @ ws).squeeze(1)
            return out if S.F0 is None else torch.addcmul(out, f0s.unsqueeze(-1), self._contract(S.F0, q1, q2))

        v_old = contract(S.k1, S.k2, S.w, scale, f0_scale, k1, k2)
        w = self.update_scale * beta.unsqueeze(-1) * (v - v_old)  # eq. 3's update
        s1, s2 = k1.pow(2).sum(-1), k2.pow(2).sum(-1)
        sq_new = sq + 2 * (w * torch.addcmul(v_old, (s1 * s2 if tensor else s1 + s2).unsqueeze(-1), w, value=0.5)).sum(-1)
        inv_cap = sq_new.clamp(min=1.0).rsqrt()  # eq. 4
        if keep is not None:  # padding: no write, no rescale
            k = keep[0]
            w, inv_cap, sq_new = w * k.to(w.dtype).unsqueeze(-1), torch.where(k, inv_cap, 1.0), torch.where(k, sq_new, sq)
        new = FactoredState(
            S.F0, f0_scale * inv_cap,
            torch.cat([S.k1, k1.unsqueeze(1)], 1), torch.cat([S.k2, k2.unsqueeze(1)], 1), torch.cat([S.w, w.unsqueeze(1)], 1),
            torch.cat([scale, scale.new_ones(scale.shape[0], 1)], 1) * inv_cap.unsqueeze(-1), sq_new * inv_cap.square(),
        )
        n, queries = n0, []
        for i in range(self.n_reads):  # eq. 7 from the written memory
            queries.append(n)
            n = F_.layer_norm(contract(new.k1, new.k2, new.w, new.scale, new.f0_scale, n, e[:, i]), (self.d_fwm,), eps=LN_EPS)
        out = self.W_o(n).unsqueeze(0)  # eq. 8
        visible = keep if read_mask is None else (read_mask if keep is None else keep & read_mask)
        if visible is not None:
            out = out * visible.unsqueeze(-1).to(out.dtype)
        result = (out, new if need_state else None)
        if trace:
            return (*result, MemoryTrace(k1[None], k2[None], v[None], beta[None], torch.stack(queries, 1)[None], e[None]))
        return result

    # ------------------------------------------------- reference: step by step
    def _run_step(self, F, k1, k2, v, beta, n0, e, resets, keep, read_mask, host_checks=True):
        T, B, _ = k1.shape
        finals, queries = [], []
        for t in range(T):
            if resets is not None and (not host_checks or bool(resets[t].any())):
                F = F * (~resets[t]).to(F.dtype).view(B, *([1] * (F.dim() - 1)))
            key = self._key(k1[t], k2[t])
            v_old = torch.bmm(key.unsqueeze(1), F.reshape(B, -1, self.d_fwm)).squeeze(1)  # retrieve v_old
            w = self.update_scale * beta[t, :, None] * (v[t] - v_old)
            F_new = self._write(F, key, w)  # eq. 3
            cap = torch.linalg.vector_norm(F_new.flatten(1), dim=1).clamp(min=1.0).view(B, *([1] * (F.dim() - 1)))
            F_new = F_new / cap if torch.is_grad_enabled() else F_new.div_(cap)  # eq. 4 (in place without autograd)
            if keep is not None:
                F_new = torch.where(keep[t].view(B, *([1] * (F.dim() - 1))), F_new, F)
            F = F_new
            n, qs = n0[t], []
            if read_mask is None or not host_checks or bool(read_mask[t].any()):
                for i in range(self.n_reads):
                    qs.append(n)
                    n = F_.layer_norm(self._contract(F, n, e[t, :, i]), (self.d_fwm,), eps=LN_EPS)  # eq. 7
            else:  # nothing reads at this step: its output is masked to 0
                qs = [n] * self.n_reads
                n = torch.zeros_like(n)
            finals.append(n)
            queries.append(torch.stack(qs, dim=1))
        return torch.stack(finals), F, torch.stack(queries)

    # ------------------------------------------------------ exact chunked form
    def _run_chunked(self, F, zero_start, k1, k2, v, beta, n0, e, resets, keep, read_any, need_state, trace):
        T = k1.shape[0]
        C = self.chunk_size or self.default_chunk_size(T, k1.shape[1], zero_start)
        finals, queries = [], []
        for s in range(0, T, C):
            sl = slice(s, min(s + C, T))
            # (one chunk takes the tensors whole: the backward of a slice allocates and copies)
            k1_c, k2_c, v_c, beta_c, n0_c, e_c, resets_c, keep_c, read_c = (
                x if C >= T or x is None else x[sl] for x in (k1, k2, v, beta, n0, e, resets, keep, read_any)
            )
            read_steps = None
            if read_c is not None and not bool(read_c.all()):
                read_steps = read_c.nonzero().squeeze(1)
            n_c, F, q_c = self._chunk(
                F, zero_start and s == 0, k1_c, k2_c, v_c, beta_c, n0_c, e_c, resets_c, keep_c, read_steps, need_state or s + C < T, trace
            )
            finals.append(n_c)
            queries.append(q_c)
        return _cat(finals), F, _cat(queries) if trace else None

    def _chunk(self, F0, zero_start, k1, k2, v, beta, n0, e, resets, keep, read_steps=None, need_state=True, trace=False):
        """One chunk starting from ``F0`` (batch-major inside: ``[B, C, ...]``).

        ``read_steps`` (chunk-local step indices) restricts the reads to those steps; the
        final read of every other step is 0.

        With ``w_j`` the update of eq. 3 at step ``j`` and ``c_i = 1 / max(1, ||F'_i||)`` the
        rescale of eq. 4, ``F_t = a_t F0 + sum_{j<=t} (a_t / a_{j-1}) key_j (x) w_j`` where
        ``a_t = c_1 ... c_t``. The factors are kept as logs ``L_t = log a_t``, so every ratio
        ``exp(L_t - L_{j-1})`` is at most 1 and nothing overflows however long the chunk.
        """
        C, B, d = k1.shape
        k1, k2, v, n0, e = (x.transpose(0, 1) for x in (k1, k2, v, n0, e))  # [B, C, ...]
        beta = beta.t()
        dt, dev = k1.dtype, k1.device
        # A write j is visible at step t iff it is not later and no reset falls between them
        # (same segment; seg counts a row's resets up to t); F0 is visible while seg == 0.
        upto = torch.tril(torch.ones(C, C, dtype=torch.bool, device=dev))  # j <= t (broadcast over rows)
        from_F0 = None
        if resets is not None:
            seg = resets.t().long().cumsum(1)
            upto = upto & (seg[:, :, None] == seg[:, None, :])
            from_F0 = (seg == 0).to(dt)
        gram, ksq = _KeyGram.apply(k1, k2, self.keys == "tensor")  # <key_t, key_j> and ||key_t||^2
        p0 = None
        if not zero_start:
            p0 = self._contract(F0, k1, k2)  # F0's part of every retrieval, one contraction
            if from_F0 is not None:
                p0 = p0 * from_F0.unsqueeze(-1)
        sq = torch.zeros(B, dtype=dt, device=dev) if zero_start else F0.flatten(1).pow(2).sum(1)  # ||F_{t-1}||^2
        keep_t = None if keep is None else keep.t().contiguous()
        reset_t = None if resets is None else resets.t().contiguous()

        # The write recurrence (eqs 3-4). While no cap of eq. 4 engages it is linear in the
        # updates and one triangular solve gives them all; otherwise it runs one step at a time
        # on small tensors only, with a hand-written backward (autograd through 30-200 tiny
        # steps costs more than the maths).
        W, uncapped = _UncappedWrites.apply(gram, ksq, beta, v, p0, sq, from_F0, upto, keep_t, self.update_scale)
        if not uncapped:
            W, L_prev, L_t = _WriteRecurrence.apply(gram, ksq, beta, v, p0, sq, upto, reset_t, keep_t, self.update_scale)
        else:  # no cap: every a_t is 1
            L_prev = L_t = torch.zeros_like(beta)
        a_F0 = None
        if not zero_start:
            a_F0 = torch.exp(L_t) if from_F0 is None else torch.exp(L_t) * from_F0

        # Reads (eq. 7) for all (read) steps of the chunk at once, one chained read at a time.
        n, e_r, L_r, upto_r, a_F0_r = n0, e, L_t, upto, a_F0
        if read_steps is not None:
            n, e_r, L_r, upto_r = n0[:, read_steps], e[:, read_steps], L_t[:, read_steps], upto[..., read_steps, :]
            a_F0_r = None if a_F0 is None else a_F0[:, read_steps]
        with torch.no_grad():  # (its gradient comes from _ChunkReads, which needs no [B, C, C] for it)
            decay = upto_r.to(dt) if uncapped else _decay_matrix(L_r, L_prev, upto_r)
        n, qs = _ChunkReads.apply(n, e_r, k1, k2, W, L_r, L_prev, decay, F0, a_F0_r, self.keys == "tensor", trace)
        if read_steps is not None:
            n = n.new_zeros(B, C, d).index_copy(1, read_steps, n)
        n_out, q_out = n.transpose(0, 1), qs.transpose(0, 1) if trace else None
        if not need_state:
            return n_out, None, q_out
        # The state at the chunk's end, materialised once.
        Wv = W * _decay_matrix(L_t[:, -1:], L_prev, upto[..., -1:, :]).squeeze(1).unsqueeze(-1)
        S = _sum_writes(k1, k2, Wv, self.keys == "tensor").view(self.state_shape(B))
        F_end = S if a_F0 is None else a_F0[:, -1].view(B, *([1] * (F0.dim() - 1))) * F0 + S
        return n_out, F_end, q_out


def _key_vec(q1: Tensor, q2: Tensor, tensor: bool) -> Tensor:
    """The key ``vec(q1 (x) q2)`` (``[..., d*d]``), or ``[q1; q2]`` (``[..., 2d]``) for ``keys="concat"``."""
    if tensor:
        return (q1.unsqueeze(-1) * q2.unsqueeze(-2)).flatten(-2)
    return torch.cat([q1, q2], dim=-1)


def _sum_writes(k1: Tensor, k2: Tensor, w: Tensor, tensor: bool) -> Tensor:
    """``sum_j key_j (x) w_j`` for ``k1, k2, w: [B, n, d]``: ``[B, d*d, d]`` (or ``[B, 2d, d]``), one batched product."""
    if tensor:  # sum_j k1_j (x) (k2_j (x) w_j)
        return k1.transpose(1, 2) @ (k2.unsqueeze(-1) * w.unsqueeze(-2)).flatten(2)
    return torch.cat([k1, k2], dim=2).transpose(1, 2) @ w


def _write_matches(k1: Tensor, k2: Tensor, q1: Tensor, q2: Tensor, tensor: bool) -> Tensor:
    """``<key(q1, q2), key_j>`` for the writes ``k1, k2: [B, n, d]`` and one query ``q: [B, d]``: ``[B, n]``."""
    g1, g2 = (k1 @ q1.unsqueeze(-1)).squeeze(-1), (k2 @ q2.unsqueeze(-1)).squeeze(-1)
    return g1 * g2 if tensor else g1 + g2


def _cat(xs: list[Tensor]) -> Tensor:
    """``torch.cat`` along time, without a copy for a single piece."""
    return xs[0] if len(xs) == 1 else torch.cat(xs)


def _decay_matrix(L_t: Tensor, L_prev: Tensor, visible: Tensor) -> Tensor:
    """``D[b, t, j] = a_t / a_{j-1} = exp(L_t - L_prev_j)`` where ``visible[.., t, j]``, else 0.

    (Masked before and after the exp: ``exp(-inf)`` is a slow path on CPU, and hidden pairs
    may have ``L_t > L_prev_j``.)
    """
    hidden = ~visible
    return (L_t.unsqueeze(-1) - L_prev.unsqueeze(1)).masked_fill(hidden, 0.0).exp().masked_fill(hidden, 0.0)


class _KeyGram(torch.autograd.Function):
    """The chunk's key matches ``gram[b, t, j] = <key_t, key_j>`` (``[B, C, C]``) and their diagonal ``||key_t||^2``.

    ``<k1_t (x) k2_t, k1_j (x) k2_j> = (k1_t . k1_j)(k2_t . k2_j)``, or ``k1_t . k1_j + k2_t . k2_j`` for
    concatenated keys. Both factors are symmetric, so each key's gradient is one product,
    ``(g + g^T) k``, and the diagonal's gradient is added without a ``[B, C, C]`` tensor.
    """

    @staticmethod
    def forward(ctx, k1, k2, tensor: bool):
        G1, G2 = torch.bmm(k1, k1.transpose(1, 2)), torch.bmm(k2, k2.transpose(1, 2))
        s1, s2 = G1.diagonal(dim1=1, dim2=2), G2.diagonal(dim1=1, dim2=2)
        ctx.tensor = tensor
        ctx.save_for_backward(k1, k2, G1, G2)
        return (G1 * G2, s1 * s2) if tensor else (G1 + G2, s1 + s2)

    @staticmethod
    @once_differentiable
    def backward(ctx, g_gram, g_ksq):
        k1, k2, G1, G2 = ctx.saved_tensors
        s1, s2 = G1.diagonal(dim1=1, dim2=2), G2.diagonal(dim1=1, dim2=2)
        if ctx.tensor:
            g_G1, g_G2, g_s1, g_s2 = g_gram * G2, g_gram * G1, g_ksq * s2, g_ksq * s1
        else:
            g_G1, g_G2, g_s1, g_s2 = g_gram, g_gram, g_ksq, g_ksq
        g_k1 = torch.bmm(g_G1 + g_G1.transpose(1, 2), k1).addcmul_(k1, g_s1.unsqueeze(-1), value=2.0)
        g_k2 = torch.bmm(g_G2 + g_G2.transpose(1, 2), k2).addcmul_(k2, g_s2.unsqueeze(-1), value=2.0)
        return g_k1, g_k2, None


class _UncappedWrites(torch.autograd.Function):
    """The chunk's updates ``W [B, C, d]`` of eq. 3 by one triangular solve, valid while no cap engages.

    While every ``||F'_t|| < 1`` each cap of eq. 4 is 1, so the retrieval is
    ``v_old_t = sum_{j<t visible} <key_t, key_j> w_j + p0_t`` and ``w = s beta (v - v_old)`` reads
    ``(I + diag(s beta) Gram_<) W = diag(s beta) (V - P0)``: unit lower triangular in the steps.
    Returns ``(W, ok)``; ``ok`` (no gradient) says that every norm stayed below 1, checked
    afterwards from ``||F'_t||^2 = ||F_{t-1}||^2 + 2 v_old_t.w_t + ||key_t||^2 ||w_t||^2`` summed
    over the segment (below 1 the cap has no gradient either). Where it is False the caller runs
    :class:`_WriteRecurrence` instead. Padding steps have ``s beta = 0``, hence ``w = 0`` and an
    unchanged norm, as in the step form.

    Backward: with ``Y = A^{-T} g_W`` (one more solve), ``g_rhs = Y`` and
    ``g_A = -Y W^T`` on the visible strictly lower part; ``d/d(s beta_t) = Y_t . (v_t - v_old_t)``.
    """

    @staticmethod
    def forward(ctx, gram, ksq, beta, v, p0, sq0, from_F0, visible, keep, scale):
        C = beta.shape[1]
        sb = scale * beta if keep is None else scale * beta * keep.to(beta.dtype)
        if visible.dim() == 2:  # no resets: every earlier step of the chunk is visible
            strict, gram_s = None, torch.tril(gram, -1)
        else:
            strict = visible & ~torch.eye(C, dtype=torch.bool, device=beta.device)  # j < t, same segment
            gram_s = gram.masked_fill(~strict, 0.0)
        lower = gram_s * sb.unsqueeze(-1)  # (its unit diagonal is implicit)
        target = v if p0 is None else v - p0
        W = torch.linalg.solve_triangular(lower, sb.unsqueeze(-1) * target, upper=False, unitriangular=True)
        v_old = torch.bmm(gram_s, W)  # the chunk's part of each retrieval
        if p0 is not None:
            v_old += p0
        inc = (W * torch.addcmul(v_old, ksq.unsqueeze(-1), W, value=0.5)).sum(-1).mul_(2)
        norms = inc.cumsum(1) if strict is None else (visible.to(inc.dtype) @ inc.unsqueeze(-1)).squeeze(-1)
        if p0 is not None:
            norms += sq0.unsqueeze(-1) if from_F0 is None else sq0.unsqueeze(-1) * from_F0
        ok = torch.tensor(not bool((norms >= 1.0).any()))
        ctx.mark_non_differentiable(ok)
        ctx.scale, ctx.has_p0 = scale, p0 is not None
        ctx.save_for_backward(lower, sb, W, v - v_old, keep, strict)
        return W, ok

    @staticmethod
    @once_differentiable
    def backward(ctx, g_W, _):
        lower, sb, W, v_minus_vold, keep, strict = ctx.saved_tensors
        Y = torch.linalg.solve_triangular(lower.transpose(1, 2), g_W, upper=True, unitriangular=True)
        g_lower = torch.bmm(Y, W.transpose(1, 2)).neg_()
        g_lower = torch.tril(g_lower, -1) if strict is None else g_lower.masked_fill_(~strict, 0.0)
        g_sb = (Y * v_minus_vold).sum(-1)
        g_beta = ctx.scale * g_sb if keep is None else ctx.scale * g_sb * keep.to(g_sb.dtype)
        g_target = sb.unsqueeze(-1) * Y
        g_p0 = -g_target if ctx.has_p0 else None
        return g_lower.mul_(sb.unsqueeze(-1)), None, g_beta, g_target, g_p0, None, None, None, None, None


class _ChunkReads(torch.autograd.Function):
    """All ``N_r`` chained reads of eq. 7 for the (read) steps of a chunk, with their backward written out.

    Read ``i`` is ``n^(i) = LN(r)`` with ``r = ((n^(i-1) k1^T) * (e^(i) k2^T) * D) W + a_F0 F0 vec(n^(i-1) (x) e^(i))``:
    the chunk's writes seen through the decay ``D = _decay_matrix(L_t, L_prev)`` (passed in without
    gradient) plus the chunk's start state ``F0`` (``None`` from an empty memory). ``D``'s part of the
    backward needs no ``[B, C, C]`` tensor: ``dr_t / dL_t = r_t`` and ``dr / dL_prev_j = -(X^T g)_j . w_j``.
    ``tensor=False`` is the concatenated-keys ablation, ``(n k1^T + e k2^T) * D`` and ``F0 [n; e]``.
    Returns ``n^(N_r) [B, R, d]`` and, if ``want_queries``, the queries ``n^(0..N_r-1)`` as ``[B, R, N_r, d]``.

    The layer norm's centring is linear, so it is applied to the values once (``W`` and ``F0``
    minus their means over ``d``) and every read comes out centred. The adjoints of the centred
    reads are centred too, so the backward formulas keep the uncentred ``W`` and ``F0``.
    """

    @staticmethod
    def forward(ctx, n0, e, k1, k2, W, L_t, L_prev, D, F0, a_F0, tensor: bool, want_queries: bool):
        B, R, N, d = e.shape
        k1T, k2T = k1.transpose(1, 2), k2.transpose(1, 2)
        W_c = W - W.mean(-1, keepdim=True)
        F0_c = None if F0 is None else F0.reshape(B, -1, d)
        if F0_c is not None:
            F0_c = F0_c - F0_c.mean(-1, keepdim=True)
        zero_mean = W.new_zeros(B, R, 1)  # (the layer norm's input is centred already)
        n, saved = n0, []
        queries = [] if want_queries else None
        for i in range(N):
            e_i = e[:, :, i]
            G1, G2 = torch.bmm(n, k1T), torch.bmm(e_i, k2T)
            X = (G1 * G2 if tensor else G1 + G2).mul_(D)
            r = torch.bmm(X, W_c)  # the chunk's writes' part, centred
            p = None if F0_c is None else torch.bmm(_key_vec(n, e_i, tensor), F0_c)  # F0's part, centred
            total = r if p is None else torch.addcmul(r, a_F0.unsqueeze(-1), p)
            rstd = total.pow(2).mean(-1, keepdim=True).add_(LN_EPS).rsqrt_()
            if queries is not None:
                queries.append(n)
            saved.append((n, G1, G2, X, r, p, total, rstd))
            n = total * rstd  # eq. 7
        ctx.tensor, ctx.N = tensor, N
        ctx.save_for_backward(e, k1, k2, W, D, F0, a_F0, zero_mean, *(x for step in saved for x in step))
        return n, None if queries is None else torch.stack(queries, 2)

    @staticmethod
    @once_differentiable
    def backward(ctx, g_n, g_queries):
        e, k1, k2, W, D, F0, a_F0, zero_mean, *flat = ctx.saved_tensors
        tensor, N = ctx.tensor, ctx.N
        saved = [flat[8 * i : 8 * i + 8] for i in range(N)]
        B, R, _, d = e.shape
        F0r = None if F0 is None else F0.reshape(B, -1, d)
        need_L_t, need_L_prev, need_F0, need_a = (ctx.needs_input_grad[j] for j in (5, 6, 8, 9))
        g_k1, g_k2, g_W = k1.new_zeros(k1.shape), k2.new_zeros(k2.shape), W.new_zeros(W.shape)  # (contiguous)
        g_e = e.new_empty(N, B, R, d)  # read-major, so that each read's product writes a contiguous block
        g_P, g_G1 = D.new_empty(B, R, k1.shape[1]), D.new_empty(B, R, k1.shape[1])  # reused by every read
        g_L_t = e.new_zeros(B, R) if need_L_t else None
        g_a = torch.zeros_like(a_F0) if need_a else None
        g_F0r = torch.zeros_like(F0r) if need_F0 else None
        if g_n is None:
            g_n = e.new_zeros(B, R, d)
        for i in reversed(range(N)):
            n, G1, G2, X, r, p, total, rstd = saved[i]
            e_i = e[:, :, i]
            g_tot = torch.ops.aten.native_layer_norm_backward(g_n, total, (d,), zero_mean, rstd, None, None, [True, False, False])[0]
            g_W.baddbmm_(X.transpose(1, 2), g_tot)
            torch.bmm(g_tot, W.transpose(1, 2), out=g_P).mul_(D)  # adjoint of the key match before the decay
            if tensor:
                torch.mul(g_P, G2, out=g_G1)
                g_G2 = g_P.mul_(G1)
            else:
                g_G1, g_G2 = g_P, g_P
            g_prev = torch.bmm(g_G1, k1)
            torch.bmm(g_G2, k2, out=g_e[i])
            g_k1.baddbmm_(g_G1.transpose(1, 2), n)
            g_k2.baddbmm_(g_G2.transpose(1, 2), e_i)
            if need_L_t:
                g_L_t += (g_tot * r).sum(-1)
            if F0r is not None:
                g_p = g_tot * a_F0.unsqueeze(-1)
                g_key = torch.bmm(g_p, F0r.transpose(1, 2))
                if tensor:  # key = n (x) e
                    g_key = g_key.view(B, R, d, d)
                    g_prev += (g_key @ e_i.unsqueeze(-1)).squeeze(-1)
                    g_e[i] += (n.unsqueeze(-2) @ g_key).squeeze(-2)
                else:  # key = [n; e]
                    g_prev += g_key[..., :d]
                    g_e[i] += g_key[..., d:]
                if need_F0:
                    g_F0r.baddbmm_(_key_vec(n, e_i, tensor).transpose(1, 2), g_p)
                if need_a:
                    g_a += (g_tot * p).sum(-1)
            if g_queries is not None:
                g_prev += g_queries[:, :, i]
            g_n = g_prev
        g_L_prev = -(g_W * W).sum(-1) if need_L_prev else None
        g_F0 = None if g_F0r is None else g_F0r.view(F0.shape)
        return g_n, g_e.permute(1, 2, 0, 3), g_k1, g_k2, g_W, g_L_t, g_L_prev, None, g_F0, g_a, None, None


class _WriteRecurrence(torch.autograd.Function):
    """The chunked form's write loop (eqs 3-4) with its backward written out.

    Forward, per step ``t`` of the chunk (rows reset first where ``resets``, which zeroes
    ``log a`` and ``sq``): the retrieval from ``F_{t-1}`` is
    ``v_old = sum_{j<t visible} <key_t, key_j> (a_{t-1} / a_{j-1}) w_j + a_{t-1} p0_t``, the update
    ``w = s beta (v - v_old)`` (zero on padding), ``||F'||^2 = sq + 2 v_old.w + ||key_t||^2 ||w||^2``,
    ``cap = max(1, ||F'||^2)``, ``log a_t = log a_{t-1} - log(cap) / 2`` and ``sq = ||F'||^2 / cap``
    (both unchanged on padding). ``visible[b, t, j]`` (used for ``j < t``) says that write ``j``
    is in the same segment as step ``t``. Returns ``W [B,C,d]``, ``log a_{t-1}`` and ``log a_t``
    (each ``[B, C]``). The factors ``a_{t-1} / a_{j-1}`` are carried as one row per step,
    rescaled by each step's ``1 / sqrt(cap)``, so a step forms only ``[B, C]`` rows and one
    ``[B, 1, C] x [B, C, d]`` product. The backward runs the steps in reverse; tests hold it
    equal to autograd through the step form.
    """

    @staticmethod
    def forward(ctx, gram, ksq, beta, v, p0, sq, visible, resets, keep, scale):
        B, C, _ = v.shape
        # w = s beta (v - v_old) = sbv - sb v_old, with padding steps' sb and sbv zero (so w = 0)
        sb = scale * beta if keep is None else scale * beta * keep.to(beta.dtype)
        sbv = sb.unsqueeze(-1) * v
        # Rows are kept full width (contiguous products are faster than growing slices); W and
        # the decay are 0 beyond t.
        L = torch.zeros(B, dtype=v.dtype, device=v.device)
        W, L_in = torch.zeros_like(v), torch.zeros_like(beta)
        decay = torch.zeros_like(beta)  # decay[:, j] = a_{t-1} / a_{j-1} for the writes j step t sees
        v_chunks, sq_news, L_outs = [], [], []
        for t in range(C):
            if resets is not None:
                r = resets[:, t]
                L, sq, decay = L.masked_fill(r, 0.0), sq.masked_fill(r, 0.0), decay.masked_fill(r.unsqueeze(-1), 0.0)
            L_in[:, t] = L
            if t > 0:  # the chunk's earlier writes
                v_chunk = torch.bmm((gram[:, t] * decay).unsqueeze(1), W).squeeze(1)
            else:
                v_chunk = torch.zeros_like(v[:, 0])
            v_old = v_chunk if p0 is None else torch.addcmul(v_chunk, L.exp().unsqueeze(-1), p0[:, t])  # + F0's part
            w = torch.addcmul(sbv[:, t], sb[:, t, None], v_old, value=-1.0)
            # ||F'||^2 = ||F||^2 + 2 v_old.w + ||key||^2 ||w||^2 (F's part along the key is v_old)
            sq_new = sq + 2 * (w * torch.addcmul(v_old, ksq[:, t, None], w, value=0.5)).sum(-1)
            cap = sq_new.clamp(min=1.0)
            L_next, sq_next = L - 0.5 * cap.log(), sq_new / cap
            if keep is not None:
                k = keep[:, t]
                L_next, sq_next = torch.where(k, L_next, L), torch.where(k, sq_next, sq)
            W[:, t] = w
            v_chunks.append(v_chunk), sq_news.append(sq_new), L_outs.append(L_next)
            decay[:, t] = 1.0
            decay = decay * (L_next - L).exp().unsqueeze(-1)  # the cap of eq. 4 rescales all writes
            L, sq = L_next, sq_next
        V_chunk, SQ_new = torch.stack(v_chunks, 1), torch.stack(sq_news, 1)
        ctx.scale = scale
        ctx.save_for_backward(gram, ksq, beta, v, p0, visible, resets, keep, sb, W, V_chunk, SQ_new, L_in)
        return W, L_in, torch.stack(L_outs, 1)

    @staticmethod
    def backward(ctx, gW_out, gL_in_out, gL_out_out):
        """Reverse steps; the retrieval's adjoints need no per-step ``[B, C, C]`` work.

        With ``coef[t, j] = <key_t, key_j> exp(L_t - L_j)``, the retrieval's adjoint reaches
        ``w_j`` as ``sum_{t>j} coef[t, j] g_vold_t`` (one row of ``coef^T`` times the adjoints
        so far), ``L_t`` as ``g_vold_t . v_chunk_t`` and ``L_j`` as ``-w_j . (that sum)``;
        ``<key_t, key_j>`` gets ``(g_vold_t . w_j) exp(L_t - L_j)`` in one product at the end.
        """
        gram, ksq, beta, v, p0, visible, resets, keep, sb, W, V_chunk, SQ_new, L_in = ctx.saved_tensors
        B, C, _ = v.shape
        hidden = ~(visible & torch.ones(C, C, dtype=torch.bool, device=v.device).tril(-1))  # j < t, same segment
        decay = (L_in.unsqueeze(-1) - L_in.unsqueeze(1)).masked_fill_(hidden, 0.0).exp_().masked_fill_(hidden, 0.0)
        coef_t = (gram * decay).transpose(1, 2).contiguous()  # coef_t[b, j, t] = coef[b, t, j]
        a_in = L_in.exp()  # a_{t-1}, the weight of F0's part
        V_old = V_chunk if p0 is None else torch.addcmul(V_chunk, a_in.unsqueeze(-1), p0)
        G_vold = torch.zeros_like(v)  # adjoints of v_old, filled from the end
        gL = torch.zeros(B, dtype=v.dtype, device=v.device)  # adjoint of log a_t (carried)
        g_sq = torch.zeros(B, dtype=v.dtype, device=v.device)  # adjoint of sq_t (carried)
        # L_next = L - log(cap) / 2 and sq_next = sq_new / cap with cap = max(1, sq_new) give
        # g_sq_new = A g_sq - Bc gL; where sq_new >= 1, A = 0 (sq_next = 1).
        cap = SQ_new.clamp(min=1.0)
        above = (SQ_new >= 1.0).to(cap.dtype)
        A, Bc = (1 - above * SQ_new / cap) / cap, 0.5 * above / cap
        Q = 2 * torch.addcmul(V_old, ksq.unsqueeze(-1), W)  # d ||F'||^2 / d w
        W2 = 2 * W  # d ||F'||^2 / d v_old
        gws, g_sq_news = [], []
        for t in reversed(range(C)):
            if gL_out_out is not None:
                gL = gL + gL_out_out[:, t]
            g_sq_new = torch.addcmul(g_sq * A[:, t], gL, Bc[:, t], value=-1.0)
            if keep is not None:  # padding: L, sq passed through unchanged
                k = keep[:, t]
                g_sq_new = g_sq_new.masked_fill(~k, 0.0)
                g_sq = torch.where(k, g_sq_new, g_sq)
            else:
                g_sq = g_sq_new
            g_retrieved = torch.bmm(coef_t[:, t : t + 1], G_vold).squeeze(1)  # later steps' retrievals of w_t
            gL = gL - (W[:, t] * g_retrieved).sum(-1)  # ... through their exp(L_t' - L_t)
            gw = torch.addcmul(g_retrieved if gW_out is None else gW_out[:, t] + g_retrieved, g_sq_new.unsqueeze(-1), Q[:, t])
            g_vold = torch.addcmul(W2[:, t] * g_sq_new.unsqueeze(-1), sb[:, t, None], gw, value=-1.0)
            G_vold[:, t] = g_vold
            gws.append(gw), g_sq_news.append(g_sq_new)
            gL = gL + (V_chunk[:, t] * g_vold).sum(-1)  # this step's retrieval through exp(L_t - L_j)
            if p0 is not None:
                gL = gL + a_in[:, t] * (p0[:, t] * g_vold).sum(-1)
            if gL_in_out is not None:
                gL = gL + gL_in_out[:, t]
            if resets is not None:
                r = resets[:, t]
                gL, g_sq = gL.masked_fill(r, 0.0), g_sq.masked_fill(r, 0.0)
        GW, G_sq_new = torch.stack(gws[::-1], 1), torch.stack(g_sq_news[::-1], 1)
        g_gram = torch.bmm(G_vold, W.transpose(1, 2)).mul_(decay)
        g_ksq = G_sq_new * W.pow(2).sum(-1)
        g_v = sb.unsqueeze(-1) * GW
        g_beta = ctx.scale * ((v - V_old) * GW).sum(-1)
        if keep is not None:
            g_beta = g_beta * keep.to(beta.dtype)
        g_p0 = None if p0 is None else a_in.unsqueeze(-1) * G_vold
        return g_gram, g_ksq, g_beta, g_v, g_p0, g_sq, None, None, None, None


def map_state(state: Any, fn: Callable[[Tensor], Tensor]) -> Any:
    """``fn`` applied to every tensor of a recurrent state: a nest of tuples and named tuples (which keep
    their type) with ``None`` entries kept, e.g. ``((h, c), F)`` or ``((h, c), FactoredState)``."""
    if state is None or isinstance(state, Tensor):
        return None if state is None else fn(state)
    parts = [map_state(s, fn) for s in state]
    return type(state)(*parts) if hasattr(state, "_fields") else type(state)(parts)


def lstm_with_resets(lstm: nn.LSTM, x: Tensor, hc: tuple[Tensor, Tensor], starts: Tensor | None) -> tuple[Tensor, tuple[Tensor, Tensor]]:
    """``lstm`` over ``x: [T, B, in]`` from ``hc``, zeroing row ``b``'s state before step ``t`` where
    ``starts[t, b]``: one ``nn.LSTM`` call per stretch without a reset inside (the stretches are found
    with one look at the host, none for a single step). Returns ``(out [T, B, H], (h, c))``."""
    T, B, _ = x.shape
    inner = (torch.nonzero(starts[1:].any(1)).flatten() + 1).tolist() if starts is not None and T > 1 else []
    h, c = hc
    outs = []
    for a, b in itertools.pairwise([0, *inner, T]):
        if starts is not None:
            live = (~starts[a]).to(h.dtype).view(1, B, 1)
            h, c = h * live, c * live
        o, (h, c) = lstm(x[a:b], (h, c))
        outs.append(o)
    return _cat(outs), (h, c)


State = tuple[tuple[Tensor, Tensor], Tensor]


class FWMLSTM(nn.Module):
    """The slow LSTM plus the :class:`FastWeightMemory` (paper section 3, Figure 1).

    Per step the LSTM runs, then the memory is written and read from its output ``h_t``; the layer
    returns the read ``FWM(h_t, F_t)`` or, with ``residual=True``, ``h_t + FWM(h_t, F_t)`` (the
    softmax input of section 3). Because the LSTM never reads the memory, a whole sequence of
    ``h_t`` is computed by one ``nn.LSTM`` call wherever no reset or padding falls inside it.

    State: ``((h, c), F)`` with ``h, c: [1, B, hidden_size]`` and ``F`` as in :class:`FastWeightMemory`.
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        d_fwm: int = 16,
        n_reads: int = 3,
        residual: bool = False,
        batch_first: bool = False,
        **memory_options,
    ):
        super().__init__()
        for name, value in (("input_size", input_size), ("hidden_size", hidden_size)):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        self.input_size, self.hidden_size = input_size, hidden_size
        self.residual, self.batch_first = residual, batch_first
        self.lstm = nn.LSTM(input_size, hidden_size)
        self.memory = FastWeightMemory(hidden_size, d_fwm, n_reads, output_size=hidden_size, **memory_options)

    @property
    def output_size(self) -> int:
        return self.hidden_size

    def initial_state(self, batch_size: int, device=None, dtype=None, factored: bool = False) -> State:
        """The empty state; ``factored=True`` gives the memory as a :class:`FactoredState` (fast one-step calls)."""
        p = self.memory.W_o.weight
        device, dtype = device or p.device, dtype or p.dtype
        zeros = torch.zeros(1, batch_size, self.hidden_size, device=device, dtype=dtype)
        return (zeros, zeros.clone()), self.memory.initial_state(batch_size, device, dtype, factored=factored)

    def _check_state(self, state, B: int) -> None:
        try:
            (h, c), F = state
        except (TypeError, ValueError):
            raise ValueError("state must be ((h, c), F) as returned by FWMLSTM") from None
        for name, x in (("h", h), ("c", c)):
            if tuple(x.shape) != (1, B, self.hidden_size):
                raise ValueError(
                    f"state {name} has shape {list(x.shape)}, expected [1, {B}, {self.hidden_size}]; "
                    "was it made by another configuration or batch size?"
                )
        self.memory._check_state(F, B)

    def _run_lstm(self, x: Tensor, hc, starts: Tensor | None, keep: Tensor | None):
        """LSTM outputs ``[T, B, H]`` and final ``(h, c)``, resetting and skipping rows as masked."""
        T, B, _ = x.shape
        if keep is not None and not bool(keep.all()):  # padding: step by step, state held
            h, c = hc
            outs = []
            for t in range(T):
                if starts is not None:
                    live = (~starts[t]).to(h.dtype).view(1, B, 1)
                    h, c = h * live, c * live
                o, (h2, c2) = self.lstm(x[t : t + 1], (h, c))
                k = keep[t].view(1, B, 1)
                h, c = torch.where(k, h2, h), torch.where(k, c2, c)
                outs.append(o)
            return torch.cat(outs), (h, c)
        return lstm_with_resets(self.lstm, x, hc, starts)

    def forward(
        self,
        x: Tensor,
        state: State | None = None,
        episode_starts: Tensor | None = None,
        keep: Tensor | None = None,
        read_mask: Tensor | None = None,
        return_trace: bool = False,
        need_state: bool = True,
    ):
        """Run over ``x: [T, B, input_size]`` (``[B, T, input_size]`` if ``batch_first``).

        ``episode_starts[t, b]`` zeroes the whole state of row ``b`` before step ``t``;
        ``keep[t, b] = False`` marks padding (state untouched, output 0); ``read_mask[t, b] = False``
        skips the memory read (its output is 0, or ``h_t`` with the residual).
        Masks are ``[T, B]`` (``[B, T]`` if ``batch_first``). Returns ``(output, state)``;
        with ``need_state=False`` the state's ``F`` is ``None`` (not formed, see :class:`FastWeightMemory`).
        """
        if not isinstance(x, Tensor) or x.dim() != 3 or x.shape[-1] != self.input_size:
            got = list(x.shape) if isinstance(x, Tensor) else type(x).__name__
            layout = "[B, T, input]" if self.batch_first else "[T, B, input]"
            raise ValueError(f"x must be {layout} with input = {self.input_size}, got {got}")
        if self.batch_first:
            x = x.transpose(0, 1)
            episode_starts, keep, read_mask = (None if m is None else torch.as_tensor(m).transpose(0, 1) for m in (episode_starts, keep, read_mask))
        T, B, _ = x.shape
        if state is None:  # F = None tells the memory that it starts empty (its fastest path)
            zeros = torch.zeros(1, B, self.hidden_size, device=x.device, dtype=x.dtype)
            hc, F = (zeros, zeros.clone()), None
        else:
            self._check_state(state, B)
            hc, F = state
        starts = _check_mask("episode_starts", episode_starts, T, B)
        keep = _check_mask("keep", keep, T, B)
        read_mask = _check_mask("read_mask", read_mask, T, B)
        h_seq, hc = self._run_lstm(x, hc, starts, keep)
        result = self.memory(h_seq, F, resets=starts, keep=keep, read_mask=read_mask, return_trace=return_trace, need_state=need_state)
        reads, F = result[0], result[1]
        out = h_seq + reads if self.residual else reads
        if keep is not None:
            out = out * keep.unsqueeze(-1).to(out.dtype)
        if self.batch_first:
            out = out.transpose(0, 1)
        return (out, (hc, F)) + ((result[2],) if return_trace else ())
