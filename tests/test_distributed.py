import json

import pytest
import torch

from dist_launch import spawn_gloo
from fwm_rl.distributed import all_reduce_gradients, all_reduce_sum, broadcast_object, init_distributed, rank_seed, shard_bounds


def test_single_process_context_is_a_no_op(monkeypatch):
    for var in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(var, raising=False)
    ctx = init_distributed("cpu")
    assert (ctx.rank, ctx.world_size, ctx.is_main, ctx.distributed) == (0, 1, True, False)
    assert all_reduce_sum({"a": 2.0}, ctx) == {"a": 2.0}
    assert broadcast_object([1, 2], ctx) == [1, 2]


def test_inconsistent_environment_is_rejected(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "5")
    with pytest.raises(ValueError, match="inconsistent torchrun environment"):
        init_distributed("cpu")


@pytest.mark.parametrize("n,world", [(600, 1), (600, 2), (601, 2), (10, 3), (7, 7)])
def test_shard_bounds_cover_every_item_once(n, world):
    shares = [shard_bounds(n, r, world) for r in range(world)]
    covered = [i for a, b in shares for i in range(a, b)]
    assert covered == list(range(n))
    assert max(b - a for a, b in shares) - min(b - a for a, b in shares) <= 1


def test_shard_bounds_rejects_too_many_processes():
    with pytest.raises(ValueError, match="at most 3 processes"):
        shard_bounds(3, 0, 4)


def test_rank_seed_keeps_rank0_and_separates_ranks():
    assert rank_seed(7, 0) == 7
    assert len({rank_seed(7, r) for r in range(8)}) == 8


def _grad_worker(rank, world_size, out_path):
    ctx = init_distributed("cpu")
    torch.manual_seed(0)
    model = torch.nn.Linear(4, 2)
    x = torch.randn(10, 4, generator=torch.Generator().manual_seed(1))
    start, stop = shard_bounds(len(x), ctx.rank, ctx.world_size)
    model(x[start:stop]).pow(2).mean().backward()
    all_reduce_gradients(model, ctx, weight=(stop - start) / len(x))
    sums = all_reduce_sum({"n": stop - start}, ctx)
    token = broadcast_object({"from": ctx.rank}, ctx)
    if ctx.is_main:
        with open(out_path, "w") as fh:
            json.dump({"grad": model.weight.grad.tolist(), "n": sums["n"], "token": token}, fh)


def test_two_gloo_processes_reproduce_the_single_process_gradient(tmp_path):
    out = tmp_path / "result.json"
    spawn_gloo(_grad_worker, 2, str(out))
    got = json.loads(out.read_text())
    torch.manual_seed(0)
    model = torch.nn.Linear(4, 2)
    x = torch.randn(10, 4, generator=torch.Generator().manual_seed(1))
    model(x).pow(2).mean().backward()
    torch.testing.assert_close(torch.tensor(got["grad"]), model.weight.grad)
    assert got["n"] == 10 and got["token"] == {"from": 0}
