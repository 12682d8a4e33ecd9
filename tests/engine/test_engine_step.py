"""engine/step.py on its own: gradient_step's backward, check, clip and step, and its two halves."""

from __future__ import annotations

import pytest
import torch

from fwm_rl.engine import NonFiniteLossError, apply_gradients, gradient_step, reduce_gradients
from fwm_rl.engine.distributed import DistContext


def model_and_optimizer(seed: int = 0):
    torch.manual_seed(seed)
    model = torch.nn.Linear(3, 2)
    return model, torch.optim.SGD(model.parameters(), lr=0.1)


def loss_of(model: torch.nn.Module, scale: float = 1.0) -> torch.Tensor:
    x = torch.arange(6.0).view(2, 3)
    return scale * model(x).pow(2).mean()


def test_one_step_is_backward_then_the_optimizer():
    model, opt = model_and_optimizer()
    expected, expected_opt = model_and_optimizer()
    loss = loss_of(model)
    totals = gradient_step(model, opt, loss, DistContext(), share=1.0, totals={"loss": float(loss.detach()), "n": 2}, step=0)
    assert totals == {"loss": float(loss), "n": 2}
    loss_of(expected).backward()
    expected_opt.step()
    for p, q in zip(model.parameters(), expected.parameters()):
        torch.testing.assert_close(p, q, rtol=0, atol=0)


def test_the_gradient_norm_is_clipped():
    model, opt = model_and_optimizer()
    gradient_step(model, opt, loss_of(model, 100.0), DistContext(), share=1.0, totals={"loss": 1.0}, step=0, clip=0.5)
    norm = torch.linalg.vector_norm(torch.cat([p.grad.flatten() for p in model.parameters()]))
    assert float(norm) == pytest.approx(0.5, rel=1e-5)


def test_a_non_finite_loss_stops_before_the_weights_change():
    model, opt = model_and_optimizer()
    before = [p.detach().clone() for p in model.parameters()]
    loss = loss_of(model) * float("nan")
    with pytest.raises(NonFiniteLossError, match="non-finite loss .* at step 7; training stopped. lower the lr"):
        gradient_step(
            model, opt, loss, DistContext(), share=1.0, totals={"loss": float(loss.detach())}, step=7, hint="lower the lr"
        )
    for p, q in zip(model.parameters(), before):
        assert torch.equal(p, q)


def test_the_two_halves_are_the_whole_step():
    model, opt = model_and_optimizer()
    halves, halves_opt = model_and_optimizer()
    gradient_step(model, opt, loss_of(model), DistContext(), share=1.0, totals={"loss": 1.0}, step=0, clip=0.1)
    reduce_gradients(halves, loss_of(halves), DistContext(), share=1.0, totals={"loss": 1.0}, step=0)
    apply_gradients(halves, halves_opt, clip=0.1)
    for p, q in zip(model.parameters(), halves.parameters()):
        torch.testing.assert_close(p, q, rtol=0, atol=0)


def test_no_loss_adds_nothing():
    model, opt = model_and_optimizer()
    for p in model.parameters():
        p.grad = torch.zeros_like(p)
    before = [p.detach().clone() for p in model.parameters()]
    gradient_step(model, opt, None, DistContext(), share=0.0, totals={"loss": 0.0}, step=0)
    for p, q in zip(model.parameters(), before):
        assert torch.equal(p, q)
