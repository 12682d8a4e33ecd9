"""The exact chunked form of eqs 3-7 for sequences, with hand-written backward passes.

Derivation. Within a chunk of ``C`` steps starting from ``F_0``, let ``w_j = s beta_j (v_j - v_old_j)``
be the update of eq. 3 at step ``j`` (``s`` the update scale) and ``c_j = 1 / max(1, ||F'_j||)`` the
rescale of eq. 4, which multiplies the whole tensor. With ``a_t = c_1 ... c_t``,

    ``F_t = a_t F_0 + sum_{j <= t} (a_t / a_{j-1}) key_j (x) w_j``,   ``key_j = vec(k1_j (x) k2_j)``.

So every contraction with ``F_t`` (the retrieval ``v_old_t = F_{t-1} key_t`` and the reads of eq. 7,
``F_t vec(n (x) e)``) is one contraction with ``F_0`` plus key dot products with the chunk's earlier
writes: ``<key_j, vec(n (x) e)> = (k1_j . n)(k2_j . e)``, the ``[B, C, C]`` match matrices. The norm
that decides each cap follows incrementally from the same products. While no cap engages every
``a_t`` is 1 and the writes solve one unit lower-triangular system,
``(I + diag(s beta) Gram_<) W = diag(s beta) (V - P_0)`` (``P_0`` the retrievals from ``F_0``,
``Gram_<`` the strictly lower key matches); the caps are checked exactly afterwards, and a chunk
where one engages runs the write recurrence step by step on small tensors instead. ``F`` is formed
once per chunk; from an empty memory (an RL episode) the ``F_0`` terms vanish.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

from fwm_rl.memory.common import LN_EPS, cat_time, contract, key, state_shape, sum_writes


def default_chunk_size(T: int, B: int, zero_start: bool) -> int:
    """Chunk length for ``T`` steps of ``B`` rows when none is given (chosen by ``scripts/bench_fwm.py`` timings).

    A short sequence from an empty memory (an RL episode) is one chunk: no ``d^3`` tensor
    at all. Otherwise chunks are as long as the ``[B, C, C]`` match matrices stay within
    about 2M entries (at least 32 steps): longer chunks form ``F`` less often.
    """
    if zero_start and T <= 64:
        return T
    return min(T, max(32, math.isqrt(2**21 // B)))


def run_chunked(
    F: Tensor | None,
    k1: Tensor,
    k2: Tensor,
    v: Tensor,
    beta: Tensor,
    n0: Tensor,
    e: Tensor,
    *,
    update_scale: float = 1.0,
    tensor_keys: bool = True,
    chunk_size: int | None = None,
    resets: Tensor | None = None,
    keep: Tensor | None = None,
    read_any: Tensor | None = None,
    need_state: bool = True,
    trace: bool = False,
) -> tuple[Tensor, Tensor | None, Tensor | None]:
    """The same recurrence as :func:`~fwm_rl.memory.step.run_step` (eqs 3-4 and 7), chunk by chunk.

    ``F`` is the dense start state (``[B, d, d, d]``, or ``[B, 2d, d]`` with ``tensor_keys=False``), or ``None``
    for an empty memory (then no ``F_0`` term is formed). Projections are time first: ``k1, k2, v, n0: [T, B, d]``,
    ``beta: [T, B]``, ``e: [T, B, N_r, d]``; ``resets`` and ``keep`` are ``[T, B]`` masks as in the step form, and
    ``read_any: [T]`` (or ``None``: every step) the steps at which any row reads (the final read of the others is
    0). Chunks have ``chunk_size`` steps (``None``: :func:`default_chunk_size`). Returns
    ``(n^(N_r) [T, B, d], F_T or None if not need_state, queries [T, B, N_r, d] if trace else None)``.
    """
    T = k1.shape[0]
    C = chunk_size or default_chunk_size(T, k1.shape[1], F is None)
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
        n_c, F, q_c = run_chunk(
            F,
            k1_c,
            k2_c,
            v_c,
            beta_c,
            n0_c,
            e_c,
            update_scale=update_scale,
            tensor_keys=tensor_keys,
            resets=resets_c,
            keep=keep_c,
            read_steps=read_steps,
            need_state=need_state or s + C < T,
            trace=trace,
        )
        finals.append(n_c)
        queries.append(q_c)
    return cat_time(finals), F, cat_time(queries) if trace else None


def run_chunk(
    F0: Tensor | None,
    k1: Tensor,
    k2: Tensor,
    v: Tensor,
    beta: Tensor,
    n0: Tensor,
    e: Tensor,
    *,
    update_scale: float,
    tensor_keys: bool,
    resets: Tensor | None = None,
    keep: Tensor | None = None,
    read_steps: Tensor | None = None,
    need_state: bool = True,
    trace: bool = False,
) -> tuple[Tensor, Tensor | None, Tensor | None]:
    """One chunk starting from ``F0`` (``None``: empty), batch-major inside: ``[B, C, ...]``.

    ``read_steps`` (chunk-local step indices) restricts the reads to those steps; the
    final read of every other step is 0.

    With ``w_j`` the update of eq. 3 at step ``j`` and ``c_i = 1 / max(1, ||F'_i||)`` the
    rescale of eq. 4, ``F_t = a_t F0 + sum_{j<=t} (a_t / a_{j-1}) key_j (x) w_j`` where
    ``a_t = c_1 ... c_t``. The factors are kept as logs ``L_t = log a_t``, so every ratio
    ``exp(L_t - L_{j-1})`` is at most 1 and nothing overflows however long the chunk.
    """
    C, B, d = k1.shape
    zero_start = F0 is None
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
    gram, ksq = _KeyGram.apply(k1, k2, tensor_keys)  # <key_t, key_j> and ||key_t||^2
    p0 = None
    if not zero_start:
        p0 = contract(F0, k1, k2, tensor_keys)  # F0's part of every retrieval, one contraction
        if from_F0 is not None:
            p0 = p0 * from_F0.unsqueeze(-1)
    sq = torch.zeros(B, dtype=dt, device=dev) if zero_start else F0.flatten(1).pow(2).sum(1)  # ||F_{t-1}||^2
    keep_t = None if keep is None else keep.t().contiguous()
    reset_t = None if resets is None else resets.t().contiguous()

    # The write recurrence (eqs 3-4). While no cap of eq. 4 engages it is linear in the
    # updates and one triangular solve gives them all; otherwise it runs one step at a time
    # on small tensors only, with a hand-written backward (autograd through 30-200 tiny
    # steps costs more than the maths).
    W, uncapped = _UncappedWrites.apply(gram, ksq, beta, v, p0, sq, from_F0, upto, keep_t, update_scale)
    if not uncapped:
        W, L_prev, L_t = _WriteRecurrence.apply(gram, ksq, beta, v, p0, sq, upto, reset_t, keep_t, update_scale)
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
    n, qs = _ChunkReads.apply(n, e_r, k1, k2, W, L_r, L_prev, decay, F0, a_F0_r, tensor_keys, trace)
    if read_steps is not None:
        n = n.new_zeros(B, C, d).index_copy(1, read_steps, n)
    n_out, q_out = n.transpose(0, 1), qs.transpose(0, 1) if trace else None
    if not need_state:
        return n_out, None, q_out
    # The state at the chunk's end, materialised once.
    Wv = W * _decay_matrix(L_t[:, -1:], L_prev, upto[..., -1:, :]).squeeze(1).unsqueeze(-1)
    S = sum_writes(k1, k2, Wv, tensor_keys).view(state_shape(B, d, tensor_keys))
    F_end = S if a_F0 is None else a_F0[:, -1].view(B, *([1] * (F0.dim() - 1))) * F0 + S
    return n_out, F_end, q_out


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
            p = None if F0_c is None else torch.bmm(key(n, e_i, tensor), F0_c)  # F0's part, centred
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
            g_tot = torch.ops.aten.native_layer_norm_backward(
                g_n, total, (d,), zero_mean, rstd, None, None, [True, False, False]
            )[0]
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
                    g_F0r.baddbmm_(key(n, e_i, tensor).transpose(1, 2), g_p)
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
        # (the loop costs its number of operations on tiny tensors: per-step views are taken once, the
        # resets looked up once on the host, and each step does only what its masks need)
        gram_t, sb_t, sbv_t, ksq_t = gram.unbind(1), sb.unsqueeze(-1).unbind(1), sbv.unbind(1), ksq.unsqueeze(-1).unbind(1)
        p0_t = None if p0 is None else p0.unbind(1)
        keep_t = None if keep is None else keep.unbind(1)
        reset_steps = set() if resets is None else set(resets.any(0).nonzero().flatten().tolist())
        # Rows are kept full width (contiguous products are faster than growing slices); W and
        # the decay are 0 beyond t.
        L = torch.zeros(B, dtype=v.dtype, device=v.device)
        W = torch.zeros_like(v)
        decay = torch.zeros_like(beta)  # decay[:, j] = a_{t-1} / a_{j-1} for the writes j step t sees
        L_ins, v_chunks, sq_news, L_outs = [], [], [], []
        v_chunk = torch.zeros_like(v[:, 0])  # (step 0 sees no earlier write of the chunk)
        for t in range(C):
            if t in reset_steps:
                r = resets[:, t]
                L, sq, decay = L.masked_fill(r, 0.0), sq.masked_fill(r, 0.0), decay.masked_fill(r.unsqueeze(-1), 0.0)
            L_ins.append(L)
            if t > 0:  # the chunk's earlier writes
                v_chunk = torch.bmm((gram_t[t] * decay).unsqueeze(1), W).squeeze(1)
            v_old = v_chunk if p0 is None else torch.addcmul(v_chunk, L.exp().unsqueeze(-1), p0_t[t])  # + F0's part
            w = torch.addcmul(sbv_t[t], sb_t[t], v_old, value=-1.0)
            # ||F'||^2 = ||F||^2 + 2 v_old.w + ||key||^2 ||w||^2 (F's part along the key is v_old)
            sq_new = sq.add(torch.linalg.vecdot(w, torch.addcmul(v_old, ksq_t[t], w, value=0.5)), alpha=2.0)
            cap = sq_new.clamp(min=1.0)
            L_next, sq_next = L - 0.5 * cap.log(), sq_new / cap
            if keep_t is not None:
                k = keep_t[t]
                L_next, sq_next = torch.where(k, L_next, L), torch.where(k, sq_next, sq)
            W[:, t] = w
            v_chunks.append(v_chunk), sq_news.append(sq_new), L_outs.append(L_next)
            decay[:, t] = 1.0
            decay = decay * (L_next - L).exp().unsqueeze(-1)  # the cap of eq. 4 rescales all writes
            L, sq = L_next, sq_next
        V_chunk, SQ_new, L_in = torch.stack(v_chunks, 1), torch.stack(sq_news, 1), torch.stack(L_ins, 1)
        ctx.scale, ctx.reset_steps = scale, reset_steps
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
        # (per-step views taken once; see the forward)
        A_t, Bc_t, W_t, Q_t, W2_t, V_old_t = (x.unbind(1) for x in (A, Bc, W, Q, W2, V_old))
        coef_rows, sb_t = coef_t.split(1, dim=1), sb.unsqueeze(-1).unbind(1)
        gW_t = None if gW_out is None else gW_out.unbind(1)
        gL_out_t = None if gL_out_out is None else gL_out_out.unbind(1)
        gL_in_t = None if gL_in_out is None else gL_in_out.unbind(1)
        keep_t = None if keep is None else keep.unbind(1)
        reset_steps = ctx.reset_steps  # (the forward's host lookup)
        gws, g_sq_news = [], []
        for t in reversed(range(C)):
            if gL_out_t is not None:
                gL = gL + gL_out_t[t]
            g_sq_new = torch.addcmul(g_sq * A_t[t], gL, Bc_t[t], value=-1.0)
            if keep_t is not None:  # padding: L, sq passed through unchanged
                k = keep_t[t]
                g_sq_new = g_sq_new.masked_fill(~k, 0.0)
                g_sq = torch.where(k, g_sq_new, g_sq)
            else:
                g_sq = g_sq_new
            g_retrieved = torch.bmm(coef_rows[t], G_vold).squeeze(1)  # later steps' retrievals of w_t
            g_sq_col = g_sq_new.unsqueeze(-1)
            gw = torch.addcmul(g_retrieved if gW_t is None else gW_t[t] + g_retrieved, g_sq_col, Q_t[t])
            g_vold = torch.addcmul(W2_t[t] * g_sq_col, sb_t[t], gw, value=-1.0)
            G_vold[:, t] = g_vold
            gws.append(gw), g_sq_news.append(g_sq_new)
            # ... through their exp(L_t' - L_t), and this step's retrieval (the chunk's writes and F0's part)
            # through exp(L_t - L_j) and a_{t-1}
            gL = gL + (torch.linalg.vecdot(V_old_t[t], g_vold) - torch.linalg.vecdot(W_t[t], g_retrieved))
            if gL_in_t is not None:
                gL = gL + gL_in_t[t]
            if t in reset_steps:
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
