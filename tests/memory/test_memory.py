"""The FWM cell as a mathematical object (paper section 3, appendix B), its reference from equations 1-8 and its exact forms."""

import math

import pytest
import torch
from torch import nn

from fwm_rl.memory import FWMLSTM, FactoredState, FastWeightMemory, count_parameters, map_state, reference_memory
from fwm_rl.memory.chunked import default_chunk_size, run_chunked
from fwm_rl.memory.common import add_write, contract, key
from fwm_rl.memory.factored import dense, empty_factored, step_factored
from fwm_rl.memory.step import run_step

torch.set_default_dtype(torch.float32)


def _unit(x):
    return x / x.norm()


def _memory(**kw):
    opts = {"d_fwm": 4, "n_reads": 2}
    opts.update(kw)
    return FastWeightMemory(6, **opts).double()


# --------------------------------------------------------------- appendix B
@pytest.mark.parametrize("beta", [0.0, 0.3, 1.0])
def test_appendix_b_write_replaces_value_by_convex_combination(beta):
    """With vec(k1 (x) k2) (x) v_old stored and unit keys, one write leaves
    vec(k1 (x) k2) (x) ((1 - beta) v_old + beta v)."""
    g = torch.Generator().manual_seed(0)
    k1, k2 = _unit(torch.randn(4, generator=g, dtype=torch.float64)), _unit(torch.randn(4, generator=g, dtype=torch.float64))
    v_old, v = torch.randn(4, generator=g, dtype=torch.float64) * 0.3, torch.randn(4, generator=g, dtype=torch.float64) * 0.3
    F = torch.einsum("s,r,v->srv", k1, k2, v_old)[None]
    w = beta * (v - contract(F, k1[None], k2[None])[0])  # eq. 3 with update_scale 1
    F_new = add_write(F, key(k1[None], k2[None]), w[None])
    expected = torch.einsum("s,r,v->srv", k1, k2, (1 - beta) * v_old + beta * v)
    torch.testing.assert_close(F_new[0], expected)
    assert F_new.norm() <= 1  # so eq. 4 leaves it alone


def _hand_set_memory(d=4):
    """A memory whose projections pass hand-set keys straight through (tanh(atanh(x)) = x)."""
    mem = FastWeightMemory(input_size=3 * d, d_fwm=d, n_reads=2, update_scale=1.0, beta_bias=0.0).double()
    with torch.no_grad():
        for lin in (mem.W_write, mem.W_read):
            lin.weight.zero_()
            lin.bias.zero_()
    return mem


def test_transitive_inference_with_orthogonal_keys():
    """Write a->b and b->c under relation key r; two chained reads from a return c (Figure 3).

    The projections are hand-set so that tanh passes the keys through (biases = atanh of them):
    the module's own write path stores both associations, its read path chains them.
    """
    d = 4
    a, b, c, r = torch.eye(d, dtype=torch.float64) * 0.9
    mem = FastWeightMemory(1, d_fwm=d, n_reads=2, update_scale=1.0, beta_bias=0.0).double()
    big = torch.tensor([30.0], dtype=torch.float64)  # beta = sigmoid(30) ~ 1: full replacement
    with torch.no_grad():
        mem.W_write.weight.zero_()
        mem.W_read.weight.zero_()
        mem.W_read.bias.copy_(torch.atanh(torch.cat([a, r, r])))  # n^(0) = a, e^(1) = e^(2) = r
    h = torch.zeros(1, 1, 1, dtype=torch.float64)
    F = None
    for k, value in ((a, b), (b, c)):
        with torch.no_grad():
            mem.W_write.bias.copy_(torch.cat([torch.atanh(k), torch.atanh(r), torch.atanh(value), big]))
        _, F, trace = mem(h, F, return_trace=True)
    out, F, trace = mem(h, F, return_trace=True)  # (rewrites b->c, unchanged) then reads from a
    n1 = trace.n[0, 0, 1]  # the first read's result, the query of the second read
    assert n1.argmax().item() == 1  # a -> b
    n2 = torch.nn.functional.layer_norm(contract(F, n1[None], r[None]), (d,))[0]
    assert n2.argmax().item() == 2  # b -> c
    torch.testing.assert_close(out[0, 0], mem.W_o(n2))  # the module's output is W_o n^(2)


def test_norm_of_fast_weights_never_exceeds_one():
    torch.manual_seed(0)
    mem = FastWeightMemory(8, d_fwm=4, n_reads=1, update_scale=1.0, beta_bias=3.0)
    F = None
    for _ in range(5):
        h = torch.randn(40, 3, 8) * 5
        for impl in ("step", "chunked"):
            _, F_impl = mem(h, F, impl=impl)
            assert (F_impl.flatten(1).norm(dim=1) <= 1 + 1e-5).all()
        F = F_impl
    steps = torch.randn(60, 3, 8) * 5
    F = mem.initial_state(3)
    for t in range(60):
        _, F = mem(steps[t : t + 1], F, impl="step")
        assert (F.flatten(1).norm(dim=1) <= 1 + 1e-5).all()


# ---------------------------------------------------------- exactness of the forms
def _run(mem, h, impl, **kw):
    h = h.clone().requires_grad_()
    out, F = mem(h, impl=impl, **kw)
    (out.pow(2).sum() + F.pow(3).sum()).backward()
    grads = [h.grad] + [p.grad.clone() for p in mem.parameters()]
    mem.zero_grad()
    return [out.detach(), F.detach()] + grads


def _count_capped_chunks(monkeypatch) -> list:
    """Record each chunk that needed the step-wise write recurrence (a cap of eq. 4 engaged)."""
    from fwm_rl.memory import chunked

    calls, apply = [], chunked._WriteRecurrence.apply
    monkeypatch.setattr(chunked._WriteRecurrence, "apply", lambda *a: calls.append(1) or apply(*a))
    return calls


@pytest.mark.parametrize("keys", ["tensor", "concat"])
@pytest.mark.parametrize("start", ["zero", "state"])
@pytest.mark.parametrize("masks", ["none", "resets", "keep", "reads", "all"])
@pytest.mark.parametrize("writes", ["weak", "strong"])
def test_chunked_form_equals_step_by_step_reference(keys, start, masks, writes, monkeypatch):
    """Weak writes never reach the cap of eq. 4 (the triangular solve); strong ones do (the recurrence)."""
    torch.manual_seed(1)
    scale, h_scale, F0_norm = (0.02, 0.5, 0.5) if writes == "weak" else (0.25, 2.0, 0.8)
    mem = _memory(keys=keys, n_reads=3, update_scale=scale, beta_bias=1.0, chunk_size=7)
    T, B = 23, 4
    h = torch.randn(T, B, 6, dtype=torch.float64) * h_scale
    F0 = None
    if start == "state":
        F0 = torch.randn(mem.state_shape(B), dtype=torch.float64)
        F0 = F0 / F0.flatten(1).norm(dim=1).view(B, *[1] * (F0.dim() - 1)) * F0_norm
    resets = (torch.rand(T, B) < 0.15) if masks in ("resets", "all") else None
    keep = (torch.rand(T, B) < 0.8) if masks in ("keep", "all") else None
    read_mask = None
    if masks in ("reads", "all"):  # sparse QA-style reads: most steps have no reader at all
        read_mask = torch.rand(T, B) < 0.1
        read_mask[:8] = False  # a whole chunk without reads
    kw = {"F": F0, "resets": resets, "keep": keep, "read_mask": read_mask}
    capped = _count_capped_chunks(monkeypatch)
    for ref, fast in zip(_run(mem, h, "step", **kw), _run(mem, h, "chunked", **kw)):
        torch.testing.assert_close(fast, ref, rtol=1e-9, atol=1e-11)
    assert (len(capped) == 0) == (writes == "weak"), f"{len(capped)} of 4 chunks capped"


def test_read_mask_zeroes_output_without_changing_state():
    torch.manual_seed(2)
    mem = _memory()
    h = torch.randn(9, 3, 6, dtype=torch.float64)
    mask = torch.rand(9, 3) < 0.4
    for impl in ("step", "chunked"):
        full, F_full = mem(h, impl=impl)
        part, F_part = mem(h, read_mask=mask, impl=impl)
        torch.testing.assert_close(part, full * mask.unsqueeze(-1))
        torch.testing.assert_close(F_part, F_full)


def test_gradcheck_cell_with_masks():
    torch.manual_seed(3)
    mem = FastWeightMemory(3, d_fwm=2, n_reads=2, update_scale=1.0).double()
    h = torch.randn(5, 2, 3, dtype=torch.float64, requires_grad=True)
    F0 = (torch.randn(2, 2, 2, 2, dtype=torch.float64) * 0.3).requires_grad_()
    resets = torch.tensor([[0, 0], [0, 1], [0, 0], [1, 0], [0, 0]], dtype=torch.bool)
    keep = torch.tensor([[1, 1], [1, 1], [0, 1], [1, 1], [1, 0]], dtype=torch.bool)
    reads = torch.tensor([[0, 0], [1, 0], [1, 1], [0, 0], [0, 1]], dtype=torch.bool)
    for impl in ("step", "chunked"):
        for read_mask in (None, reads):

            def cell(x, F, read_mask=read_mask, impl=impl):
                return mem(x, F, resets=resets, keep=keep, read_mask=read_mask, impl=impl)

            assert torch.autograd.gradcheck(cell, (h, F0))


def test_gradcheck_sequence_layer_with_masks():
    torch.manual_seed(4)
    layer = FWMLSTM(3, 4, d_fwm=2, n_reads=2, residual=True).double()
    x = torch.randn(5, 2, 3, dtype=torch.float64, requires_grad=True)
    starts = torch.tensor([[1, 1], [0, 0], [0, 1], [0, 0], [1, 0]], dtype=torch.bool)
    keep = torch.tensor([[1, 1], [1, 1], [1, 1], [1, 0], [1, 0]], dtype=torch.bool)
    assert torch.autograd.gradcheck(lambda x: layer(x, episode_starts=starts, keep=keep)[0], (x,))


# ------------------------------------------------------------- the sequence layer
def _step_loop(layer, x, state, starts=None, keep=None):
    """A plain loop: one step at a time with the reference form."""
    outs = []
    for t in range(x.shape[0]):
        (h, c), F = state
        if starts is not None:
            live = (~starts[t]).double()
            h, c, F = h * live.view(1, -1, 1), c * live.view(1, -1, 1), F * live.view(-1, 1, 1, 1)
        o, new = layer(x[t : t + 1], ((h, c), F), keep=None if keep is None else keep[t : t + 1])
        if keep is not None:
            k = keep[t]
            new = (
                (torch.where(k.view(1, -1, 1), new[0][0], h), torch.where(k.view(1, -1, 1), new[0][1], c)),
                torch.where(k.view(-1, 1, 1, 1), new[1], F),
            )
        outs.append(o)
        state = new
    return torch.cat(outs), state


def test_sequence_layer_equals_plain_step_loop_with_resets_and_padding():
    torch.manual_seed(5)
    layer = FWMLSTM(5, 8, d_fwm=3, n_reads=3, residual=True, update_scale=1 / 3, beta_bias=1.0).double()
    T, B = 12, 4
    x = torch.randn(T, B, 5, dtype=torch.float64)
    starts = torch.rand(T, B) < 0.2
    keep = torch.rand(T, B) < 0.8
    for s, k in ((None, None), (starts, None), (starts, keep)):
        init = layer.initial_state(B)
        init = ((init[0][0] + 0.1, init[0][1] - 0.1), init[1] + 0.01)
        fast, st_fast = layer(x, init, episode_starts=s, keep=k)
        slow, st_slow = _step_loop(layer, x, init, s, k)
        torch.testing.assert_close(fast, slow)
        torch.testing.assert_close(st_fast[1], st_slow[1])
        torch.testing.assert_close(st_fast[0][0], st_slow[0][0])


def test_two_halves_equal_one_call():
    torch.manual_seed(6)
    layer = FWMLSTM(5, 8, d_fwm=3, n_reads=2).double()
    x = torch.randn(20, 3, 5, dtype=torch.float64)
    full, st = layer(x)
    a, st_a = layer(x[:9])
    b, st_b = layer(x[9:], st_a)
    torch.testing.assert_close(torch.cat([a, b]), full)
    torch.testing.assert_close(st_b[1], st[1])


def test_batch_first_matches_time_first():
    torch.manual_seed(7)
    tf = FWMLSTM(5, 8, d_fwm=3)
    bf = FWMLSTM(5, 8, d_fwm=3, batch_first=True)
    bf.load_state_dict(tf.state_dict())
    x = torch.randn(6, 2, 5)
    torch.testing.assert_close(bf(x.transpose(0, 1))[0].transpose(0, 1), tf(x)[0])


# ----------------------------------------------------------------- sizes, errors
def test_meta_rl_agent_parameter_count():
    """The paper's meta-RL agent: 17 inputs, LSTM 32, d_fwm 16, 3 reads, policy and value heads."""
    agent = nn.ModuleList([FWMLSTM(17, 32, d_fwm=16, n_reads=3, residual=True), nn.Linear(32, 3), nn.Linear(32, 1)])
    assert count_parameters(agent) == 10_933
    assert count_parameters(agent[0].lstm) == 6_528


def test_clear_errors():
    layer = FWMLSTM(5, 8, d_fwm=3)
    with pytest.raises(ValueError, match=r"x must be \[T, B, input\]"):
        layer(torch.randn(4, 5))
    with pytest.raises(ValueError, match="input = 5"):
        layer(torch.randn(4, 2, 6))
    with pytest.raises(ValueError, match="episode_starts must have shape"):
        layer(torch.randn(4, 2, 5), episode_starts=torch.zeros(2, 4, dtype=torch.bool))
    other = FWMLSTM(5, 8, d_fwm=4)
    with pytest.raises(ValueError, match="another configuration"):
        layer(torch.randn(4, 2, 5), other.initial_state(2))
    with pytest.raises(ValueError, match="another configuration"):
        layer(torch.randn(4, 2, 5), layer.initial_state(3))
    with pytest.raises(ValueError, match=r"state must be \(\(h, c\), F\)"):
        layer(torch.randn(4, 2, 5), torch.zeros(3))
    for bad in ({"d_fwm": 0}, {"n_reads": 0}, {"keys": "sum"}, {"impl": "fast"}, {"chunk_size": 0}, {"update_scale": -1.0}):
        with pytest.raises(ValueError):
            FWMLSTM(5, 8, **bad)
    with pytest.raises(ValueError, match="hidden_size"):
        FWMLSTM(5, -1)


def test_need_state_false_gives_same_outputs_and_gradients_without_the_state():
    torch.manual_seed(8)
    layer = FWMLSTM(5, 8, d_fwm=3, n_reads=2).double()
    x = torch.randn(40, 3, 5, dtype=torch.float64)
    full, state = layer(x)
    g_full = torch.autograd.grad(full.sum(), layer.memory.W_write.weight)[0]
    lean, lean_state = layer(x, need_state=False)
    g_lean = torch.autograd.grad(lean.sum(), layer.memory.W_write.weight)[0]
    torch.testing.assert_close(lean, full)
    torch.testing.assert_close(g_lean, g_full)
    assert lean_state[1] is None and torch.equal(lean_state[0][0], state[0][0])


def test_episode_starts_at_step_zero_equal_a_fresh_start():
    """An A2C update replays from the rollout's start state with every row starting an episode."""
    torch.manual_seed(9)
    layer = FWMLSTM(5, 8, d_fwm=3, n_reads=2).double()
    x = torch.randn(10, 3, 5, dtype=torch.float64)
    (h, c), F = layer.initial_state(3)
    stale = ((h + 0.3, c - 0.2), F + 0.05)
    starts = torch.zeros(10, 3, dtype=torch.bool)
    starts[0] = True
    fresh, st_fresh = layer(x)
    replay, st_replay = layer(x, stale, episode_starts=starts)
    torch.testing.assert_close(replay, fresh)
    torch.testing.assert_close(st_replay[1], st_fresh[1])


@pytest.mark.parametrize("first, keys", [(True, True), (False, True), (False, False), (True, False)])
def test_query_tanh_options(first, keys):
    """eq. 5/6 tanh on n^(0) and e^(i), each switchable (the authors' meta-RL code has neither)."""
    torch.manual_seed(10)
    mem = _memory(tanh_first_query=first, tanh_read_keys=keys)
    h = torch.randn(6, 2, 6, dtype=torch.float64)
    raw = mem.W_read(h)
    _, _, trace = mem(h, return_trace=True)
    torch.testing.assert_close(trace.n[:, :, 0], torch.tanh(raw[..., :4]) if first else raw[..., :4])
    e = raw[..., 4:].unflatten(-1, (2, 4))
    torch.testing.assert_close(trace.e, torch.tanh(e) if keys else e)
    for ref, fast in zip(_run(mem, h, "step"), _run(mem, h, "chunked")):
        torch.testing.assert_close(fast, ref, rtol=1e-9, atol=1e-11)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_chunked_form_equals_reference_on_cuda():
    torch.manual_seed(11)
    mem = _memory(n_reads=3, update_scale=0.25, beta_bias=1.0, chunk_size=7).cuda()
    T, B = 23, 4
    h = torch.randn(T, B, 6, dtype=torch.float64, device="cuda")
    kw = {
        "resets": torch.rand(T, B, device="cuda") < 0.15,
        "keep": torch.rand(T, B, device="cuda") < 0.8,
        "read_mask": torch.rand(T, B, device="cuda") < 0.3,
    }
    for ref, fast in zip(_run(mem, h, "step", **kw), _run(mem, h, "chunked", **kw)):
        torch.testing.assert_close(fast, ref, rtol=1e-9, atol=1e-11)


def test_default_chunks_over_a_long_carried_sequence_equal_reference():
    """Default chunking (one long chunk here) from a carried state, with strong writes that cap often."""
    torch.manual_seed(12)
    mem = _memory(n_reads=2, update_scale=1.0, beta_bias=2.0)
    T, B = 150, 2
    assert default_chunk_size(T, B, zero_start=False) == T
    h = torch.randn(T, B, 6, dtype=torch.float64) * 3
    F0 = torch.randn(mem.state_shape(B), dtype=torch.float64) * 0.2
    for ref, fast in zip(_run(mem, h, "step", F=F0), _run(mem, h, "auto", F=F0)):
        torch.testing.assert_close(fast, ref, rtol=1e-9, atol=1e-11)


def test_single_step_reset_of_every_row_discards_the_given_state():
    """One-step calls (an RL rollout) with every row starting an episode see an empty memory."""
    torch.manual_seed(9)
    mem = _memory()
    F = torch.randn(mem.state_shape(3), dtype=torch.float64) * 0.2
    h = torch.randn(1, 3, 6, dtype=torch.float64)
    starts = torch.ones(1, 3, dtype=torch.bool)
    for impl in ("step", "chunked"):
        out, F_new = mem(h, F, resets=starts, impl=impl)
        ref, F_ref = mem(h, None, impl=impl)
        torch.testing.assert_close(out, ref)
        torch.testing.assert_close(F_new, F_ref)


def test_without_host_checks_of_the_masks_results_are_the_same(monkeypatch):
    """On an accelerator the masks are applied without looking at them on the host (no sync per
    rollout step); the numbers must not change. Forced here on the CPU."""
    from fwm_rl.memory import layer as layer_module

    torch.manual_seed(13)
    layer = FWMLSTM(5, 8, d_fwm=3, n_reads=2, residual=True).double()
    T, B = 6, 4
    x = torch.randn(T, B, 5, dtype=torch.float64)
    starts = torch.rand(T, B) < 0.3
    starts[0] = True
    read_mask = torch.rand(T, B) < 0.5

    def run():
        seq = layer(x, layer.initial_state(B), episode_starts=starts, read_mask=read_mask)
        results = [seq[0], seq[1][1]]
        for factored in (False, True):
            state, outs = layer.initial_state(B, factored=factored), []
            for t in range(T):  # one step at a time, as in a rollout
                o, state = layer(x[t : t + 1], state, episode_starts=starts[t : t + 1], read_mask=read_mask[t : t + 1])
                outs.append(o)
            results += [torch.cat(outs), layer.memory.dense(state[1])]
        return results

    checked = run()
    monkeypatch.setattr(layer_module, "host_checks", lambda device: False)
    for a, b in zip(checked, run()):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)


# ---------------------------------------------------------- factored state (one-step calls)
@pytest.mark.parametrize("keys", ["tensor", "concat"])
@pytest.mark.parametrize("start", ["empty", "dense"])
@pytest.mark.parametrize("writes", ["weak", "strong"])
def test_factored_one_step_calls_equal_the_step_form(keys, start, writes, monkeypatch):
    """Step-by-step calls on a FactoredState (resets, padding, sparse reads, the list folded into
    its dense part twice) give the reference step form's outputs, state and gradients."""
    torch.manual_seed(14)
    scale, h_scale = (0.05, 0.5) if writes == "weak" else (0.5, 2.0)
    mem = _memory(keys=keys, n_reads=3, update_scale=scale, beta_bias=1.0)
    monkeypatch.setattr(mem, "max_writes", 5)
    T, B = 13, 4
    h = (torch.randn(T, B, 6, dtype=torch.float64) * h_scale).requires_grad_()
    resets, keep, read_mask = torch.rand(T, B) < 0.15, torch.rand(T, B) < 0.85, torch.rand(T, B) < 0.7
    dense0 = mem.initial_state(B)
    if start == "dense":
        dense0 = torch.randn(mem.state_shape(B), dtype=torch.float64) * 0.1
    factored0 = mem.initial_state(B, factored=True)
    if start == "dense":
        factored0 = factored0._replace(F0=dense0, sq=dense0.flatten(1).pow(2).sum(1))

    def run(F):
        outs = []
        for t in range(T):
            masks = {"resets": resets[t : t + 1], "keep": keep[t : t + 1], "read_mask": read_mask[t : t + 1]}
            out, F = mem(h[t : t + 1], F, **masks)
            outs.append(out)
        out = torch.cat(outs)
        F = mem.dense(F)
        grads = torch.autograd.grad(out.pow(2).sum() + F.pow(3).sum(), [h, *mem.parameters()])
        return [out, F, *grads]

    ref = run(dense0)
    fast = run(factored0)
    for a, b in zip(fast, ref):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-11)


def test_factored_state_in_sequences_and_checks():
    """A sequence call takes a FactoredState through its dense tensor; wrong shapes are refused."""
    torch.manual_seed(15)
    layer = FWMLSTM(5, 8, d_fwm=3, n_reads=2).double()
    x = torch.randn(4, 3, 5, dtype=torch.float64)
    state = layer.initial_state(3, factored=True)
    for t in range(2):
        _, state = layer(x[t : t + 1], state)
    assert state[1].k1.shape == (3, 2, 3)
    ref_state = layer.initial_state(3)
    for t in range(2):
        _, ref_state = layer(x[t : t + 1], ref_state)
    out, (_, F) = layer(x[2:], state)
    ref, (_, F_ref) = layer(x[2:], ref_state)
    torch.testing.assert_close(out, ref)
    torch.testing.assert_close(F, F_ref)
    step_trace = layer(x[:1], layer.initial_state(3), return_trace=True)[2]
    factored_trace = layer(x[:1], layer.initial_state(3, factored=True), return_trace=True)[2]
    for a, b in zip(factored_trace, step_trace):
        torch.testing.assert_close(a, b)
    hc = layer.initial_state(3)[0]
    with pytest.raises(ValueError, match="factored fast weight state"):
        layer(x[:1], (hc, layer.initial_state(2, factored=True)[1]))
    with pytest.raises(ValueError, match="factored fast weight state"):
        layer(x[:1], (hc, state[1]._replace(scale=state[1].scale[:, :1])))


def test_map_state_keeps_the_nest():
    """``map_state`` applies to every tensor and keeps tuples, named tuples and ``None`` entries."""
    layer = FWMLSTM(5, 8, d_fwm=3, n_reads=2)
    state = layer.initial_state(2, factored=True)
    shifted = map_state(state, lambda t: t + 1)
    assert isinstance(shifted[1], FactoredState) and shifted[1].F0 is None
    torch.testing.assert_close(shifted[0][0], state[0][0] + 1)
    torch.testing.assert_close(shifted[1].f0_scale, state[1].f0_scale + 1)


# ------------------------------------------------- the reference written from equations 1-8
def _set_bias_only(linear: nn.Linear, values) -> None:
    """``linear`` outputs ``values`` whatever its input (zero weights)."""
    with torch.no_grad():
        linear.weight.zero_()
        linear.bias.copy_(torch.as_tensor(values, dtype=linear.bias.dtype))


def test_equations_1_to_8_on_hand_set_inputs():
    """Two steps of a 2-d memory worked out by hand: eq. 1-2 from the biases, eq. 3's write, eq. 4's
    cap (it engages at both writes), a second write on the same key (v_old retrieved), and one
    read (eqs 5-8). Every form gives these numbers."""
    atanh = torch.atanh
    mem = FastWeightMemory(3, d_fwm=2, n_reads=1, output_size=2, update_scale=10.0).double()
    # eq. 1: k1 = (0.6, 0), k2 = (0, 0.8), v = (0.5, -0.5); eq. 2: beta = sigmoid(log 3) = 0.75
    k1, k2, v = [0.6, 0.0], [0.0, 0.8], [0.5, -0.5]
    _set_bias_only(mem.W_write, [*atanh(torch.tensor(k1 + k2 + v, dtype=torch.float64)).tolist(), math.log(3)])
    # eqs 5-6: n0 = (0.6, 0), e = (0, 0.8): the read key vec(n0 (x) e) is 0.48 at (0, 1), the write key too
    _set_bias_only(mem.W_read, atanh(torch.tensor([0.6, 0.0, 0.0, 0.8], dtype=torch.float64)).tolist())
    with torch.no_grad():  # eq. 8: W_o = identity
        mem.W_o.weight.copy_(torch.eye(2))
        mem.W_o.bias.zero_()
    h = torch.zeros(2, 1, 3, dtype=torch.float64)

    # By hand. Step 1: v_old = 0; F' = 10 * 0.75 * vec(k1 (x) k2) (x) v has one non-zero fibre,
    # F'[0, 1] = 7.5 * 0.48 * (0.5, -0.5) = (1.8, -1.8), norm 1.8 sqrt 2 > 1, so F = F' / (1.8 sqrt 2).
    F1 = (1.8 / (1.8 * math.sqrt(2))) * torch.tensor([1.0, -1.0], dtype=torch.float64)
    # Step 2: v_old = 0.48 F1; F'[0, 1] = F1 + 7.5 * 0.48 * (v - v_old), again capped by its norm.
    v_old = 0.48 * F1
    F2_prime = F1 + 7.5 * 0.48 * (torch.tensor(v, dtype=torch.float64) - v_old)
    F2 = F2_prime / max(1.0, float(F2_prime.norm()))
    # Read after each write: LN(0.48 F[0, 1]) for a fibre (a, -a) is (a, -a) / sqrt(a^2 + eps).
    read = [0.48 * F / torch.sqrt((0.48 * F).pow(2).mean() + 1e-5) for F in (F1, F2)]

    expected_F = torch.zeros(1, 2, 2, 2, dtype=torch.float64)
    expected_F[0, 0, 1] = F2
    out_ref, F_ref = reference_memory(mem, h)
    torch.testing.assert_close(F_ref, expected_F)
    torch.testing.assert_close(out_ref[:, 0], torch.stack(read))
    for impl in ("step", "chunked"):
        out, F = mem(h, impl=impl)
        torch.testing.assert_close(F, expected_F)
        torch.testing.assert_close(out, out_ref)


OPTION_SETS = {
    "paper": {},
    "meta-RL code": {"beta_bias": 1.0, "update_scale": 0.25, "tanh_first_query": False, "tanh_read_keys": False},
    "catbAbI code": {"beta_bias": 1.0, "update_scale": 0.25, "tanh_first_query": False},
    "concat keys": {"keys": "concat", "beta_bias": 1.0},
}


@pytest.mark.parametrize("options", sorted(OPTION_SETS))
@pytest.mark.parametrize("start", ["empty", "carried"])
@pytest.mark.parametrize("writes", ["weak", "strong"])
def test_every_form_equals_the_reference_from_the_equations(options, start, writes):
    """Outputs, final state and every gradient (projections included) of the step, chunked and
    factored forms against reference_memory, float64; strong writes make the cap of eq. 4 engage."""
    torch.manual_seed(23)
    mem = FastWeightMemory(6, d_fwm=4, n_reads=3, chunk_size=5, **OPTION_SETS[options]).double()
    T, B = 11, 3
    h = torch.randn(T, B, 6, dtype=torch.float64) * (0.5 if writes == "weak" else 3.0)
    F0 = None
    if start == "carried":
        F0 = torch.randn(mem.state_shape(B), dtype=torch.float64)
        F0 = 0.6 * F0 / F0.flatten(1).norm(dim=1).view(B, *[1] * (F0.dim() - 1))

    def grads(out, F, x):
        return torch.autograd.grad(out.pow(2).sum() + F.pow(3).sum(), [x, *mem.parameters()])

    x = h.clone().requires_grad_()
    out, F = reference_memory(mem, x, F0)
    reference = [out, F, *grads(out, F, x)]
    for impl in ("step", "chunked"):
        x = h.clone().requires_grad_()
        out, F = mem(x, F0, impl=impl)
        for a, b in zip([out, F, *grads(out, F, x)], reference):
            torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-11)
    # one-step calls on a factored state, as in an RL rollout
    x = h.clone().requires_grad_()
    S = mem.initial_state(B, factored=True)
    if F0 is not None:
        S = S._replace(F0=F0, sq=F0.flatten(1).pow(2).sum(1))
    outs = []
    for t in range(T):
        o, S = mem(x[t : t + 1], S)
        outs.append(o)
    out, F = torch.cat(outs), mem.dense(S)
    for a, b in zip([out, F, *grads(out, F, x)], reference):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-11)


@pytest.mark.parametrize("keys", ["tensor", "concat"])
@pytest.mark.parametrize("start", ["empty", "carried"])
def test_forms_are_functions_of_tensors_equal_to_the_reference(keys, start):
    """Each form called as a plain function on the projections of eqs 1, 2, 5, 6 (no layer passed in): its final reads
    through W_o (eq. 8) and its final state equal reference_memory's, float64, strong writes (the cap engages)."""
    torch.manual_seed(29)
    mem = FastWeightMemory(6, d_fwm=4, n_reads=2, keys=keys, update_scale=0.5, beta_bias=1.0).double()
    T, B = 9, 3
    h = torch.randn(T, B, 6, dtype=torch.float64) * 3.0
    F0 = None if start == "empty" else 0.5 * torch.randn(mem.state_shape(B), dtype=torch.float64).tanh()
    out_ref, F_ref = reference_memory(mem, h, F0)
    k1, k2, v, beta, n0, e = mem.project(h)
    options = {"update_scale": 0.5, "tensor_keys": keys == "tensor"}
    n, F, queries = run_step(mem.initial_state(B) if F0 is None else F0, k1, k2, v, beta, n0, e, **options)
    assert queries.shape == (T, B, 2, 4)
    for impl_n, impl_F in ((n, F), run_chunked(F0, k1, k2, v, beta, n0, e, **options, chunk_size=4)[:2]):
        torch.testing.assert_close(mem.W_o(impl_n), out_ref, rtol=1e-9, atol=1e-11)
        torch.testing.assert_close(impl_F, F_ref, rtol=1e-9, atol=1e-11)
    S, reads = empty_factored(B, 4, dtype=torch.float64), []
    if F0 is not None:
        S = S._replace(F0=F0, sq=F0.flatten(1).pow(2).sum(1))
    for t in range(T):
        n_t, S, _ = step_factored(S, k1[t], k2[t], v[t], beta[t], n0[t], e[t], **options, max_writes=4)
        reads.append(n_t)
    torch.testing.assert_close(mem.W_o(torch.stack(reads)), out_ref, rtol=1e-9, atol=1e-11)
    torch.testing.assert_close(dense(S, keys == "tensor"), F_ref, rtol=1e-9, atol=1e-11)


def test_no_form_imports_the_layer():
    """The forms and their shared algebra are functions of tensors: none imports the layer, even for type checking."""
    import ast
    from pathlib import Path

    import fwm_rl.memory

    folder = Path(fwm_rl.memory.__file__).parent
    for name in ("common", "step", "chunked", "factored"):
        tree = ast.parse((folder / f"{name}.py").read_text())
        imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
        imported |= {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
        assert not {m for m in imported if m and m.endswith("layer")}, f"fwm_rl/memory/{name}.py imports the layer"


def test_zero_output_starts_a_residual_agent_as_its_lstm():
    """zero_output: W_o at zero, every other weight as the default initialisation draws it; the residual layer's output
    is then the LSTM's alone, and the first gradient reaches W_o."""
    torch.manual_seed(0)
    default = FWMLSTM(5, 8, d_fwm=4, residual=True)
    torch.manual_seed(0)
    zero = FWMLSTM(5, 8, d_fwm=4, residual=True, zero_output=True)
    for (name, a), (_, b) in zip(default.named_parameters(), zero.named_parameters()):
        assert torch.equal(a, b) != name.startswith("memory.W_o"), name
    assert not zero.memory.W_o.weight.any() and not zero.memory.W_o.bias.any()
    x = torch.randn(6, 3, 5)
    out, _ = zero(x, zero.initial_state(3))
    h, _ = zero.lstm(x)
    torch.testing.assert_close(out, h)
    out.pow(2).sum().backward()
    assert zero.memory.W_o.weight.grad.abs().sum() > 0


def test_cat_h_gives_the_lstm_state_beside_the_reads():
    """cat_h: the output is [h_t; FWM(h_t, F_t)] (twice the width), the reads' half the non-residual layer's output
    with the same weights; residual and cat_h together are refused."""
    torch.manual_seed(0)
    both = FWMLSTM(5, 8, d_fwm=4, cat_h=True)
    reads = FWMLSTM(5, 8, d_fwm=4)
    reads.load_state_dict(both.state_dict())
    x = torch.randn(6, 3, 5)
    out, _ = both(x)
    assert both.output_size == 16 and out.shape == (6, 3, 16)
    torch.testing.assert_close(out[..., :8], both.lstm(x)[0])
    torch.testing.assert_close(out[..., 8:], reads(x)[0])
    keep, read_mask = torch.ones(6, 3, dtype=torch.bool), torch.ones(6, 3, dtype=torch.bool)
    keep[4:, 0], read_mask[2, 1] = False, False  # padding ends row 0; row 1 skips one read
    masked, _ = both(x, keep=keep, read_mask=read_mask)
    assert not masked[4:, 0].any()  # padding: both halves 0
    assert not masked[2, 1, 8:].any() and masked[2, 1, :8].abs().sum() > 0  # no read: the reads' half 0, h_t kept
    with pytest.raises(ValueError, match="give one"):
        FWMLSTM(5, 8, residual=True, cat_h=True)


@pytest.mark.parametrize("start", ["empty", "dense", "factored"])
@pytest.mark.parametrize("strength", [0.3, 3.0])  # weak writes (the triangular solve) and strong ones (the cap engages)
def test_cores_run_as_one_batch_equal_each_run_alone(start, strength):
    """run_fwmlstms (an actor's and a critic's core: own weights and write bias, one batch for their memories) gives
    each core's outputs, states and gradients as its own forward does; sequences and factored one-step calls."""
    from fwm_rl.memory import run_fwmlstms

    torch.manual_seed(0)
    T, B, n_in, H = 9, 3, 4, 6
    cores = [FWMLSTM(n_in, H, d_fwm=3, residual=True, beta_bias=b, update_scale=0.5).double() for b in (0.0, 1.0)]
    x = (strength * torch.randn(T, B, n_in, dtype=torch.float64)).requires_grad_()
    starts = torch.zeros(T, B, dtype=torch.bool)
    starts[4, 1] = True

    def states():
        if start == "empty":
            return [None, None]
        out = []
        for core in cores:
            (h, c), F = core.initial_state(B, dtype=torch.float64, factored=start == "factored")
            _, state = core(torch.randn(5, B, n_in, dtype=torch.float64), ((h, c), F))
            out.append(map_state(state, lambda t: t.detach()))
        return out

    torch.manual_seed(1)
    first = states()
    torch.manual_seed(1)
    second = states()
    for steps in (T, 1):
        together = run_fwmlstms(cores, x[:steps], first, starts[:steps])
        alone = [core(x[:steps], s, starts[:steps]) for core, s in zip(cores, second)]
        for (out_t, state_t), (out_a, state_a) in zip(together, alone):
            torch.testing.assert_close(out_t, out_a, rtol=1e-12, atol=1e-12)
            leaves_t = [t for t in map_state(state_t, lambda t: t)[0]] + [cores[0].memory.dense(state_t[1])]
            leaves_a = [t for t in map_state(state_a, lambda t: t)[0]] + [cores[0].memory.dense(state_a[1])]
            for a, b in zip(leaves_t, leaves_a):
                torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)
        grads = [torch.autograd.grad(sum(o.square().sum() for o, _ in result), [x, *cores[0].parameters(), *cores[1].parameters()])
                 for result in (together, alone)]  # fmt: skip
        for a, b in zip(*grads):
            torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)
    with pytest.raises(ValueError, match="one shape"):
        run_fwmlstms([cores[0], FWMLSTM(n_in, H, d_fwm=4).double()], x, [None, None])
