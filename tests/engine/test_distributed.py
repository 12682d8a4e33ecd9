import json

import pytest
import torch
from dist_launch import spawn_gloo

from fwm_rl.engine.distributed import (
    DistContext,
    all_reduce_gradients,
    all_reduce_sum,
    all_reduce_tensor,
    broadcast_object,
    gather_rows,
    init_distributed,
    main_print,
    rank_seed,
    row_share,
    shard_bounds,
    shard_rows,
)


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


def test_row_share_names_the_option_when_processes_outnumber_rows():
    assert row_share(5, DistContext()) == slice(0, 5)
    assert [row_share(5, DistContext(rank=r, world_size=2)) for r in range(2)] == [slice(0, 3), slice(3, 5)]
    with pytest.raises(ValueError, match="--eval-batch-size 3 .* 4 processes"):
        row_share(3, DistContext(rank=1, world_size=4), "--eval-batch-size")


def test_shard_rows_takes_this_ranks_rows_along_each_batch_dim():
    full = (((torch.arange(10.0).view(1, 5, 2), torch.zeros(1, 5, 2)),), torch.arange(5.0).view(5, 1), None)
    dims = (((1, 1),), 0, None)
    assert shard_rows(full, dims, DistContext()) is full
    (((h, c),), f, none) = shard_rows(full, dims, DistContext(rank=1, world_size=2))
    assert torch.equal(h, full[0][0][0][:, 3:]) and c.shape == (1, 2, 2) and torch.equal(f, full[1][3:]) and none is None
    with pytest.raises(ValueError, match="one batch dimension per tensor"):
        shard_rows(full, (1, 0), DistContext())


def test_main_print_is_silent_off_rank_0(capsys):
    main_print(DistContext())("shown")
    main_print(DistContext(rank=1, world_size=2))("hidden")
    assert capsys.readouterr().out == "shown\n"


def _state_and_sparse_grad_worker(rank, world_size, out_path):
    ctx = init_distributed("cpu")
    full = ((torch.arange(15.0).view(1, 5, 3), -torch.arange(15.0).view(1, 5, 3)), torch.arange(20.0).view(5, 2, 2))
    dims = ((1, 1), 0)
    mine = shard_rows(full, dims, ctx)
    gathered = gather_rows(mine, dims, ctx)
    torch.manual_seed(0)
    first, second, unused = torch.nn.Linear(2, 2), torch.nn.Linear(2, 1), torch.nn.Linear(1, 1)
    model = torch.nn.ModuleList([first, second, unused])
    x = torch.ones(1, 2)
    # rank 0's loss reaches both layers, rank 1's only the first: rank 1 has no gradient for the second
    (second(first(x)).sum() if ctx.rank == 0 else first(x).sum()).backward()
    all_reduce_gradients(model, ctx, weight=0.5)
    counts = all_reduce_tensor(torch.tensor([1.0, ctx.rank]), ctx)
    if ctx.is_main:
        torch.save(
            {
                "gathered": gathered,
                "mine": mine,
                "grads": [None if p.grad is None else p.grad.clone() for p in model.parameters()],
                "counts": counts,
            },
            out_path,
        )


def test_gather_rows_and_gradients_some_ranks_lack(tmp_path):
    out = tmp_path / "result.pt"
    spawn_gloo(_state_and_sparse_grad_worker, 2, str(out))
    got = torch.load(out, weights_only=True)
    full = ((torch.arange(15.0).view(1, 5, 3), -torch.arange(15.0).view(1, 5, 3)), torch.arange(20.0).view(5, 2, 2))
    (h, c), f = got["gathered"]
    assert torch.equal(h, full[0][0]) and torch.equal(c, full[0][1]) and torch.equal(f, full[1])
    assert got["mine"][1].shape == (3, 2, 2)  # rank 0's share of 5 rows
    torch.manual_seed(0)
    first, second, unused = torch.nn.Linear(2, 2), torch.nn.Linear(2, 1), torch.nn.Linear(1, 1)
    x = torch.ones(1, 2)
    (0.5 * second(first(x)).sum() + 0.5 * first(x).sum()).backward()
    expected = [p.grad for p in (*first.parameters(), *second.parameters(), *unused.parameters())]
    assert expected[-1] is None and got["grads"][-2] is None and got["grads"][-1] is None  # no rank had one: still None
    for g, e in zip(got["grads"][:4], expected[:4]):
        torch.testing.assert_close(g, e)
    assert got["counts"].tolist() == [2.0, 1.0]
