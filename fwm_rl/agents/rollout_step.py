"""One rollout step of the FWM agent as one function: the LSTM cell, the memory's projections (eqs 1, 2, 5, 6),
its write and reads on a factored fast weight state (eqs 3-4 and 7: :func:`~fwm_rl.memory.factored.step_factored`,
the step the memory's own one-step calls run), eq. 8, both heads and the action draw.

An A2C rollout calls the policy 30 times per episode on small tensors (600 x 32), so its cost is
the number of operations, not their size: the general path (``nn.LSTM``, :class:`~fwm_rl.memory.FastWeightMemory`'s
factored step, SB3's distribution) runs about a hundred of them per step. :func:`fwm_step` writes
the same arithmetic as one function of plain tensors, which ``torch.compile`` fuses into a few
loops around the matrix products (about 2x faster on a 2-core CPU; ``scripts/bench_a2c_speed.py``).

It covers what a rollout or evaluation of :class:`~fwm_rl.agents.policies.FwmPolicy` carries: a
:class:`~fwm_rl.memory.FactoredState` without a dense part, tensor keys, no padding or read masks
(:func:`applies`); the policy takes its general path otherwise. Compilation is on by default
for batches of at least :data:`COMPILE_MIN_BATCH` rows; ``FWM_RL_COMPILE=0`` turns it off, and a
compiler failure falls back to running the same function eagerly (with one warning). The tests
hold this step equal to the general path in float64.

Actions are drawn by inverse transform sampling from one uniform number per row
(:func:`sample_actions`), as the general path does too, so both draw the same actions from the
same generator.
"""

from __future__ import annotations

import os
import warnings
from typing import Any

import torch
from torch import Tensor

from fwm_rl.memory import FactoredState
from fwm_rl.memory.common import host_checks
from fwm_rl.memory.factored import step_factored

__all__ = ["COMPILE_MIN_BATCH", "applies", "fwm_step", "sample_actions"]

#: Smallest batch for which the step is compiled (below it, compiling costs more than it saves).
COMPILE_MIN_BATCH = 64


def sample_actions(log_probs: Tensor, uniform: Tensor) -> Tensor:
    """Actions ``[B]`` drawn from ``exp(log_probs) [B, n]`` by inverse transform sampling with
    ``uniform [B]`` in ``[0, 1)``: the first action whose cumulative probability exceeds it."""
    below = log_probs.exp().cumsum(-1) <= uniform.unsqueeze(-1)
    return below.sum(-1).clamp(max=log_probs.shape[-1] - 1)


def applies(policy: Any, state: Any) -> bool:
    """Whether :func:`fwm_step` computes ``policy``'s step from ``state`` (see the module docstring)."""
    memory = policy.core.memory
    if memory.impl == "step" or memory.keys != "tensor" or policy.core.batch_first:
        return False
    try:
        _, S = state
    except (TypeError, ValueError):
        return False
    return isinstance(S, FactoredState) and S.F0 is None and S.k1.dim() == 3 and S.k1.shape[1] < memory.max_writes


def _step(
    params: tuple[Tensor, ...],
    x: Tensor,
    starts: Tensor,
    h: Tensor,
    c: Tensor,
    f0_scale: Tensor,
    K1: Tensor,
    K2: Tensor,
    Wr: Tensor,
    scale: Tensor,
    sq: Tensor,
    uniform: Tensor,
    d: int,
    n_reads: int,
    max_writes: int,
    beta_bias: float,
    update_scale: float,
    tanh_first_query: bool,
    tanh_read_keys: bool,
    residual: bool,
    cat_h: bool,
    deterministic: bool,
):
    W_ih, W_hh, b_ih, b_hh, W_write, b_write, W_read, b_read, W_o, b_o, W_pi, b_pi, W_v, b_v = params
    live = (~starts).to(x.dtype).unsqueeze(-1)  # rows whose episode starts here begin from an empty state
    h, c = h * live, c * live
    # The slow LSTM (gates i, f, g, o as in nn.LSTM).
    gates = torch.addmm(b_ih + b_hh, x, W_ih.t()).addmm_(h, W_hh.t())
    i, f, g, o = gates.chunk(4, -1)
    c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
    h = torch.sigmoid(o) * torch.tanh(c)
    # Eqs 1, 2, 5, 6 (both projections in one product).
    keys_value, b, n, e = torch.addmm(torch.cat([b_write, b_read]), h, torch.cat([W_write, W_read]).t()).split(
        [3 * d, 1, d, n_reads * d], -1
    )
    k1, k2, v = torch.tanh(keys_value).split(d, -1)
    beta = torch.sigmoid(b.squeeze(-1) + beta_bias)
    n = torch.tanh(n) if tanh_first_query else n
    e = (torch.tanh(e) if tanh_read_keys else e).unflatten(-1, (n_reads, d))
    # Eqs 3-4 and 7: the memory's own factored step (rows whose episode starts here begin empty).
    S = FactoredState(None, f0_scale, K1, K2, Wr, scale, sq)
    n, S, _ = step_factored(S, k1, k2, v, beta, n, e, update_scale=update_scale, max_writes=max_writes, resets=starts)
    out = torch.addmm(b_o, n, W_o.t())  # eq. 8
    if residual:
        out = h + out
    elif cat_h:
        out = torch.cat([h, out], -1)
    logits, values = torch.addmm(torch.cat([b_pi, b_v]), out, torch.cat([W_pi, W_v]).t()).split(
        [W_pi.shape[0], 1], -1
    )  # both heads
    log_probs = torch.log_softmax(logits, -1)
    actions = log_probs.argmax(-1) if deterministic else sample_actions(log_probs, uniform)
    values = values.squeeze(-1)
    return actions, values, log_probs.gather(-1, actions.unsqueeze(-1)).squeeze(-1), h, c, *S[1:]


_compiled: Any = None  # torch.compile(_step), made on first use; False once compiling failed


def _compile_enabled() -> bool:
    return os.environ.get("FWM_RL_COMPILE", "1").strip().lower() not in ("0", "false", "no", "off")


def _run(args: tuple, batch: int) -> tuple:
    global _compiled
    if _compiled is False or batch < COMPILE_MIN_BATCH or not _compile_enabled():
        return _step(*args)
    if _compiled is None:
        _compiled = torch.compile(_step, dynamic=True)
    try:
        return _compiled(*args)
    except Exception as exc:  # a missing or failing compiler: the same function, eagerly
        warnings.warn(
            f"torch.compile of the FWM rollout step failed ({type(exc).__name__}: {exc}); running it eagerly", stacklevel=3
        )
        _compiled = False
        return _step(*args)


def fwm_step(
    policy: Any, obs: Tensor, state: Any, starts: Tensor, deterministic: bool = False, generator: torch.Generator | None = None
):
    """One step of :class:`~fwm_rl.agents.policies.FwmPolicy` from a state :func:`applies` to:
    ``(actions [B], values [B], log_probs [B], new state)``, as ``policy.forward`` returns them."""
    core, memory = policy.core, policy.core.memory
    (h, c), S = state
    lstm = core.lstm
    params = (
        lstm.weight_ih_l0, lstm.weight_hh_l0, lstm.bias_ih_l0, lstm.bias_hh_l0,
        memory.W_write.weight, memory.W_write.bias, memory.W_read.weight, memory.W_read.bias, memory.W_o.weight, memory.W_o.bias,
        policy.action_net.weight, policy.action_net.bias, policy.value_net.weight, policy.value_net.bias,
    )  # fmt: skip
    x = obs.to(policy.dtype)
    B = x.shape[0]
    if host_checks(x.device) and bool(starts.all()):  # every row starts empty: drop the old writes, as the memory does
        S = memory.initial_state(B, x.device, x.dtype, factored=True)
    uniform = x.new_zeros(B) if deterministic else torch.rand(B, generator=generator, device=x.device, dtype=x.dtype)
    args = (
        params, x, starts.bool(), h[0], c[0], S.f0_scale, S.k1, S.k2, S.w, S.scale, S.sq, uniform,
        memory.d_fwm, memory.n_reads, memory.max_writes, memory.beta_bias, memory.update_scale, memory.tanh_first_query, memory.tanh_read_keys,
        core.residual, core.cat_h, deterministic,
    )  # fmt: skip
    actions, values, log_probs, h, c, f0_scale, K1, K2, Wr, scale, sq = _run(args, B)
    return actions, values, log_probs, ((h.unsqueeze(0), c.unsqueeze(0)), FactoredState(None, f0_scale, K1, K2, Wr, scale, sq))
