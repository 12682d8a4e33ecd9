"""The layers: :class:`FastWeightMemory` (eqs 1-8 over a sequence of slow-net outputs, dispatching
to the exact forms) and :class:`FWMLSTM` (the slow LSTM plus the memory, paper section 3, Figure 1)."""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from fwm_rl.checks import check_choice, check_int, check_real
from fwm_rl.memory.chunked import run_chunked
from fwm_rl.memory.common import IMPLS, KEY_MODES, FactoredState, MemoryTrace, cat_time, check_mask, host_checks, map_state
from fwm_rl.memory.common import state_shape as dense_shape
from fwm_rl.memory.factored import dense, empty_factored, step_factored
from fwm_rl.memory.step import run_step


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
        chunk_size: steps per chunk of the chunked form (``None``: :func:`~fwm_rl.memory.chunked.default_chunk_size`).
        impl: ``"auto"``, ``"step"`` (reference) or ``"chunked"``.
        zero_output: initialise ``W_o`` (eq. 8) at zero (beyond the paper): the memory's output starts at 0, so a
            residual agent (:class:`FWMLSTM` with ``residual=True``) starts as its LSTM alone and learns what to read.
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
        zero_output: bool = False,
    ):
        super().__init__()
        output_size = input_size if output_size is None else output_size
        for name, value in (("input_size", input_size), ("d_fwm", d_fwm), ("n_reads", n_reads), ("output_size", output_size)):
            check_int(name, value)
        check_choice("keys", keys, KEY_MODES)
        check_choice("impl", impl, IMPLS)
        check_int("chunk_size", chunk_size, optional=True)
        check_real("update_scale", update_scale, positive=True)
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
        if zero_output:
            nn.init.zeros_(self.W_o.weight)
            nn.init.zeros_(self.W_o.bias)

    # ------------------------------------------------------------------ state
    def state_shape(self, batch_size: int) -> tuple[int, ...]:
        """The dense fast weights' shape: ``[B, d, d, d]``, or ``[B, 2d, d]`` with ``keys="concat"``."""
        return dense_shape(batch_size, self.d_fwm, self.keys == "tensor")

    #: Writes a :class:`FactoredState` holds before they are folded into its dense part.
    max_writes = 64

    def initial_state(self, batch_size: int, device=None, dtype=None, factored: bool = False) -> Tensor | FactoredState:
        """The empty memory ``F = 0``: a dense tensor, or with ``factored=True`` an empty
        :class:`FactoredState` (the fast form for one-step calls)."""
        p = self.W_o.weight
        device, dtype = device or p.device, dtype or p.dtype
        if factored:
            return empty_factored(batch_size, self.d_fwm, device, dtype)
        return torch.zeros(self.state_shape(batch_size), device=device, dtype=dtype)

    def dense(self, F: Tensor | FactoredState) -> Tensor:
        """``F`` as the dense tensor of :meth:`state_shape` (a tensor is returned as it is)."""
        return F if isinstance(F, Tensor) else dense(F, self.keys == "tensor")

    def _check_state(self, F: Tensor | FactoredState, B: int) -> None:
        if isinstance(F, FactoredState):
            d, n = self.d_fwm, F.k1.shape[1] if F.k1.dim() == 3 else -1
            shapes = [
                (F.f0_scale, (B,)),
                (F.k1, (B, n, d)),
                (F.k2, (B, n, d)),
                (F.w, (B, n, d)),
                (F.scale, (B, n)),
                (F.sq, (B,)),
            ]
            if any(tuple(x.shape) != shape for x, shape in shapes) or (
                F.F0 is not None and tuple(F.F0.shape) != self.state_shape(B)
            ):
                raise ValueError(
                    f"factored fast weight state does not match batch {B}, d_fwm {d}, keys={self.keys!r}; was it made by another configuration?"
                )
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
        return run_memories((self,), (h,), (F,), resets, keep, read_mask, return_trace, impl, need_state)[0]

    def same_form(self, other: FastWeightMemory) -> bool:
        """Whether ``other`` runs the same recurrence on states of the same shape (only its weights and the
        projections' options may differ), so that :func:`run_memories` can run both as one batch."""
        names = ("d_fwm", "n_reads", "keys", "update_scale", "chunk_size", "impl")
        return all(getattr(self, name) == getattr(other, name) for name in names)


def run_memories(
    memories: Sequence[FastWeightMemory],
    hs: Sequence[Tensor],
    Fs: Sequence[Tensor | FactoredState | None],
    resets: Tensor | None = None,
    keep: Tensor | None = None,
    read_mask: Tensor | None = None,
    return_trace: bool = False,
    impl: str | None = None,
    need_state: bool = True,
) -> list[tuple]:
    """:meth:`FastWeightMemory.forward` of each memory on its ``h`` and ``F`` (the same masks for all), the memories'
    rows run as one batch: each projects its own ``h`` (eqs 1, 2, 5, 6) and applies its own ``W_o`` (eq. 8); the
    recurrence of eqs 3, 4, 7 runs once on the rows of all. An actor's and a critic's memory then cost about one
    (the forms' time is in their number of small operations, not in the rows). The memories must have
    :meth:`~FastWeightMemory.same_form`. Returns one ``forward`` result per memory."""
    first = memories[0]
    if not all(first.same_form(m) for m in memories[1:]):
        raise ValueError("run_memories needs memories of one form (d_fwm, n_reads, keys, update_scale, chunk_size, impl)")
    for memory, h in zip(memories, hs):
        if not isinstance(h, Tensor) or h.dim() != 3 or h.shape[-1] != memory.input_size:
            got = list(h.shape) if isinstance(h, Tensor) else type(h).__name__
            raise ValueError(f"h must be [T, B, {memory.input_size}] (time first), got {got}")
    h = hs[0]
    if torch.is_autocast_enabled(h.device.type):
        # Mixed precision (fwm_rl.engine.autocast): the slow net may run in bfloat16, but F sums
        # thousands of small writes (eq. 3), so the memory runs in float32 with autocast off.
        with torch.autocast(h.device.type, enabled=False):
            Fs = [F.float() if isinstance(F, Tensor) else F for F in Fs]
            return run_memories(memories, [x.float() for x in hs], Fs, resets, keep, read_mask, return_trace, impl, need_state)
    T, B, _ = h.shape
    if T == 0:
        raise ValueError("h has no time steps (T = 0)")
    if any(x.shape[:2] != h.shape[:2] for x in hs):
        raise ValueError(f"every h must have the first one's [T, B] = {list(h.shape[:2])}")
    n = len(memories)
    resets = check_mask("resets", resets, T, B)
    checks = host_checks(h.device)
    impl = impl or first.impl
    check_choice("impl", impl, IMPLS)
    for memory, F in zip(memories, Fs):
        if F is not None:
            memory._check_state(F, B)
    # A known-empty start (no state given, or every row reset at step 0, as in an RL
    # episode) lets the chunked form drop all F_0 terms, and a factored state start empty.
    zero_start = all(F is None for F in Fs) or (resets is not None and checks and bool(resets[0].all()))
    keep = check_mask("keep", keep, T, B)
    read_mask = check_mask("read_mask", read_mask, T, B)
    options = {"update_scale": first.update_scale, "tensor_keys": first.keys == "tensor"}
    k1, k2, v, beta, n0, e = (cat_rows(parts) for parts in zip(*(m.project(x) for m, x in zip(memories, hs))))
    resets, keep, read_mask = (None if m is None else cat_rows([m] * n) for m in (resets, keep, read_mask))
    factored = all(isinstance(F, FactoredState) for F in Fs)
    if factored and T == 1 and impl != "step" and (zero_start or _same_structure(Fs)):
        S = first.initial_state(n * B, h.device, h.dtype, factored=True) if zero_start else _cat_factored(Fs)
        n_final, F, queries = step_factored(
            S,
            k1[0],
            k2[0],
            v[0],
            beta[0],
            n0[0],
            e[0],
            **options,
            max_writes=first.max_writes,
            resets=None if resets is None else resets[0],
            keep=None if keep is None else keep[0],
            want_queries=return_trace,
        )
        n_final, queries = n_final[None], None if queries is None else queries[None]
    else:
        if zero_start:
            F = None  # every row starts empty (a reset at step 0 discards the state given)
            if resets is not None and not bool(resets[1:].any()):
                resets = None  # resetting an empty memory at step 0 changes nothing
        else:  # (sequences and the reference step form work on the dense tensor)
            dense_Fs = [m.initial_state(B, h.device, h.dtype) if F is None else m.dense(F) for m, F in zip(memories, Fs)]
            F = dense_Fs[0] if n == 1 else torch.cat(dense_Fs)  # (states are batch-first)
        if impl == "step" or (impl == "auto" and T == 1):
            F = first.initial_state(n * B, device=h.device, dtype=h.dtype) if F is None else F
            n_final, F, queries = run_step(
                F, k1, k2, v, beta, n0, e, **options, resets=resets, keep=keep, read_mask=read_mask, host_checks=checks
            )
        else:
            # Reads only at steps where some row reads (catbAbI's QA mode); the trace wants all.
            read_any = None if read_mask is None or return_trace else read_mask.any(1)
            n_final, F, queries = run_chunked(
                F,
                k1,
                k2,
                v,
                beta,
                n0,
                e,
                **options,
                chunk_size=first.chunk_size,
                resets=resets,
                keep=keep,
                read_any=read_any,
                need_state=need_state,
                trace=return_trace,
            )
    visible = keep if read_mask is None else (read_mask if keep is None else keep & read_mask)
    results = []
    for i, memory in enumerate(memories):
        rows = slice(i * B, (i + 1) * B) if n > 1 else slice(None)
        out = memory.W_o(n_final[:, rows])  # eq. 8
        if visible is not None:
            out = out * visible[:, rows].unsqueeze(-1).to(out.dtype)
        F_i = F if n == 1 or F is None else map_state(F, lambda t: t[rows])  # (states are batch-first)
        F_i = F_i if need_state else None
        if return_trace:
            trace = MemoryTrace(
                *(x[:, rows] for x in (k1, k2, v, beta)), None if queries is None else queries[:, rows], e[:, rows]
            )
            results.append((out, F_i, trace))
        else:
            results.append((out, F_i))
    return results


def cat_rows(parts: Sequence[Tensor]) -> Tensor:
    """``torch.cat`` along the batch of time-major tensors (``[T, B, ...]``), without a copy for a single piece."""
    return parts[0] if len(parts) == 1 else torch.cat(parts, 1)


def _same_structure(Fs: Sequence[FactoredState]) -> bool:
    """Whether factored states can be stacked row-wise: as many writes, and a dense part in all or none."""
    return len({(F.k1.shape[1], F.F0 is None) for F in Fs}) == 1


def _cat_factored(Fs: Sequence[FactoredState]) -> FactoredState:
    if len(Fs) == 1:
        return Fs[0]
    return FactoredState(*(None if parts[0] is None else torch.cat(parts) for parts in zip(*Fs)))


#: The state of an ``nn.LSTM`` (``(h, c)``) or an ``nn.GRU`` (``h``), each ``[1, B, H]``.
RNNState = Tensor | tuple[Tensor, Tensor]


def rnn_with_resets(rnn: nn.LSTM | nn.GRU, x: Tensor, state: RNNState, starts: Tensor | None) -> tuple[Tensor, RNNState]:
    """``rnn`` (an ``nn.LSTM``, state ``(h, c)``, or an ``nn.GRU``, state ``h``; each ``[1, B, H]``) over
    ``x: [T, B, in]`` from ``state``, zeroing row ``b``'s state before step ``t`` where ``starts[t, b]``: one
    ``rnn`` call per stretch without a reset inside (the stretches are found with one look at the host, none for a
    single step). Returns ``(out [T, B, H], state)``."""
    T, B, _ = x.shape
    inner = (torch.nonzero(starts[1:].any(1)).flatten() + 1).tolist() if starts is not None and T > 1 else []
    outs = []
    for a, b in itertools.pairwise([0, *inner, T]):
        if starts is not None:
            live = (~starts[a]).view(1, B, 1)
            state = map_state(state, lambda s: s * live.to(s.dtype))
        o, state = rnn(x[a:b], state)
        outs.append(o)
    return cat_time(outs), state


State = tuple[tuple[Tensor, Tensor], Tensor]


class FWMLSTM(nn.Module):
    """The slow LSTM plus the :class:`FastWeightMemory` (paper section 3, Figure 1).

    Per step the LSTM runs, then the memory is written and read from its output ``h_t``; the layer
    returns the read ``FWM(h_t, F_t)`` or, with ``residual=True``, ``h_t + FWM(h_t, F_t)`` (the
    softmax input of section 3), or with ``cat_h=True`` both side by side, ``[h_t; FWM(h_t, F_t)]``
    (``2 * hidden_size`` features: the next layer weighs the LSTM's state and the memory's reads with
    weights of their own; beyond the paper). Because the LSTM never reads the memory, a whole sequence of
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
        cat_h: bool = False,
        **memory_options,
    ):
        super().__init__()
        check_int("input_size", input_size)
        check_int("hidden_size", hidden_size)
        if residual and cat_h:
            raise ValueError("FWMLSTM: residual (h_t + reads) and cat_h ([h_t; reads]) are two outputs: give one")
        self.input_size, self.hidden_size = input_size, hidden_size
        self.residual, self.batch_first, self.cat_h = residual, batch_first, cat_h
        self.lstm = nn.LSTM(input_size, hidden_size)
        self.memory = FastWeightMemory(hidden_size, d_fwm, n_reads, output_size=hidden_size, **memory_options)

    @property
    def output_size(self) -> int:
        return 2 * self.hidden_size if self.cat_h else self.hidden_size

    def initial_state(self, batch_size: int, device=None, dtype=None, factored: bool = False) -> State:
        """The empty state; ``factored=True`` gives the memory as a :class:`FactoredState` (fast one-step calls)."""
        p = self.memory.W_o.weight
        device, dtype = device or p.device, dtype or p.dtype
        zeros = torch.zeros(1, batch_size, self.hidden_size, device=device, dtype=dtype)
        return (zeros, zeros.clone()), self.memory.initial_state(batch_size, device, dtype, factored=factored)

    @staticmethod
    def state_batch_dims(state: State) -> State:
        """The batch dimension of every tensor of ``state``, in its shape: ``h``, ``c`` are ``[1, B, H]``,
        every tensor of ``F`` is batch-first (for gathering and sharding the rows of a carried state)."""
        _, F = state
        return (1, 1), map_state(F, lambda t: 0)

    @staticmethod
    def state_rows(state: State, rows: Tensor | slice) -> State:
        """The state of batch rows ``rows`` only: ``h``, ``c`` are ``[1, B, H]``, every tensor of ``F``
        (dense or :class:`FactoredState`) is batch-first."""
        (h, c), F = state
        return (h[:, rows], c[:, rows]), map_state(F, lambda t: t[rows])

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
        return rnn_with_resets(self.lstm, x, hc, starts)

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
        skips the memory read (its output is 0, or ``h_t`` with the residual; with ``cat_h`` the reads' half is 0).
        Masks are ``[T, B]`` (``[B, T]`` if ``batch_first``). Returns ``(output, state)``;
        with ``need_state=False`` the state's ``F`` is ``None`` (not formed, see :class:`FastWeightMemory`).
        """
        return run_fwmlstms((self,), x, (state,), episode_starts, keep, read_mask, return_trace, need_state)[0]

    def pairs_with(self, other: nn.Module) -> bool:
        """Whether ``other`` is an :class:`FWMLSTM` that :func:`run_fwmlstms` can run beside this one (an actor's and a
        critic's core): the same sizes, layout and memory form."""
        return (
            isinstance(other, FWMLSTM)
            and (self.input_size, self.hidden_size, self.residual, self.cat_h, self.batch_first)
            == (other.input_size, other.hidden_size, other.residual, other.cat_h, other.batch_first)
            and self.memory.same_form(other.memory)
        )


def run_fwmlstms(
    cores: Sequence[FWMLSTM],
    x: Tensor,
    states: Sequence[State | None],
    episode_starts: Tensor | None = None,
    keep: Tensor | None = None,
    read_mask: Tensor | None = None,
    return_trace: bool = False,
    need_state: bool = True,
) -> list[tuple]:
    """:meth:`FWMLSTM.forward` of each core (cores that :meth:`~FWMLSTM.pairs_with` the first) on the same input and
    masks, each from its own state: each core's LSTM runs on its own, their memories as one batch
    (:func:`run_memories`). Returns one ``forward`` result per core."""
    first = cores[0]
    if not isinstance(x, Tensor) or x.dim() != 3 or x.shape[-1] != first.input_size:
        got = list(x.shape) if isinstance(x, Tensor) else type(x).__name__
        layout = "[B, T, input]" if first.batch_first else "[T, B, input]"
        raise ValueError(f"x must be {layout} with input = {first.input_size}, got {got}")
    if not all(first.pairs_with(core) for core in cores[1:]):
        raise ValueError("run_fwmlstms needs cores of one shape (sizes, output, layout and memory form)")
    if first.batch_first:
        x = x.transpose(0, 1)
        episode_starts, keep, read_mask = (
            None if m is None else torch.as_tensor(m).transpose(0, 1) for m in (episode_starts, keep, read_mask)
        )
    T, B, _ = x.shape
    hcs, Fs = [], []
    for core, state in zip(cores, states):
        if state is None:  # F = None tells the memory that it starts empty (its fastest path)
            zeros = torch.zeros(1, B, core.hidden_size, device=x.device, dtype=x.dtype)
            hc, F = (zeros, zeros.clone()), None
        else:
            core._check_state(state, B)
            hc, F = state
        hcs.append(hc)
        Fs.append(F)
    starts = check_mask("episode_starts", episode_starts, T, B)
    keep = check_mask("keep", keep, T, B)
    read_mask = check_mask("read_mask", read_mask, T, B)
    lstm_runs = [core._run_lstm(x, hc, starts, keep) for core, hc in zip(cores, hcs)]
    h_seqs = [h_seq for h_seq, _ in lstm_runs]
    memories = [core.memory for core in cores]
    results = run_memories(
        memories, h_seqs, Fs, resets=starts, keep=keep, read_mask=read_mask, return_trace=return_trace, need_state=need_state
    )
    outputs = []
    for core, h_seq, (_, hc), result in zip(cores, h_seqs, lstm_runs, results):
        reads, F = result[0], result[1]
        out = h_seq + reads if core.residual else torch.cat([h_seq, reads], -1) if core.cat_h else reads
        if keep is not None:
            out = out * keep.unsqueeze(-1).to(out.dtype)
        if core.batch_first:
            out = out.transpose(0, 1)
        outputs.append((out, (hc, F)) + ((result[2],) if return_trace else ()))
    return outputs
