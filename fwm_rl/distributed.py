"""Data parallelism with ``torch.distributed``, shared by every trainer.

Runs launched with ``torchrun`` get ``RANK``/``WORLD_SIZE``/``LOCAL_RANK`` in their
environment; :func:`init_distributed` turns them into a :class:`DistContext`
(``nccl`` on CUDA, ``gloo`` on CPU). A plain ``python ...`` run gets a
single-process context and every helper below becomes a no-op, so trainers call
them unconditionally.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Mapping

import torch
import torch.distributed as dist

from fwm_rl.runs import resolve_device

__all__ = [
    "DistContext",
    "all_reduce_gradients",
    "all_reduce_sum",
    "broadcast_object",
    "init_distributed",
    "rank_seed",
    "shard_bounds",
]


@dataclass(frozen=True)
class DistContext:
    """Where this process stands in a (possibly single-process) run."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")
    backend: str | None = None

    @property
    def is_main(self) -> bool:
        """Rank 0 alone logs, evaluates and checkpoints."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    def barrier(self) -> None:
        if self.distributed:
            dist.barrier()


def init_distributed(device: str | torch.device = "auto") -> DistContext:
    """Join the process group described by torchrun's environment variables, if any.

    ``device="auto"`` picks ``cuda:LOCAL_RANK`` when CUDA is present, else the CPU.
    Calling it again in an initialised process returns the same context.
    """
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if world_size < 1 or not 0 <= rank < world_size:
        raise ValueError(f"inconsistent torchrun environment: RANK={rank}, WORLD_SIZE={world_size}")
    dev = resolve_device(device)
    if dev.type == "cuda" and dev.index is None:
        dev = torch.device("cuda", local_rank % max(torch.cuda.device_count(), 1))
    if world_size == 1:
        return DistContext(device=dev)
    backend = "nccl" if dev.type == "cuda" else "gloo"
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
    if not dist.is_initialized():
        dist.init_process_group(backend=backend)
    return DistContext(rank=rank, world_size=world_size, local_rank=local_rank, device=dev, backend=backend)


def rank_seed(seed: int, rank: int) -> int:
    """A distinct, reproducible seed per rank (rank 0 keeps ``seed``, so 1 process == the plain run)."""
    return seed + 1_000_003 * rank


def shard_bounds(n: int, rank: int, world_size: int) -> tuple[int, int]:
    """Contiguous share ``[start, stop)`` of ``n`` items for ``rank``; shares differ by at most one."""
    if n < world_size:
        raise ValueError(f"cannot split {n} items over {world_size} processes: use at most {n} processes")
    base, extra = divmod(n, world_size)
    start = rank * base + min(rank, extra)
    return start, start + base + (1 if rank < extra else 0)


def all_reduce_gradients(module: torch.nn.Module, ctx: DistContext, weight: float | None = None) -> None:
    """Combine the gradients of all ranks in place.

    With ``weight=None`` the gradients are averaged (equal shares). Otherwise each
    rank's gradient is multiplied by ``weight`` (its share of the global batch,
    e.g. ``n_local / n_total``) before summing, which equals the single-process
    gradient of a mean loss when shares differ.
    """
    if not ctx.distributed:
        return
    grads = [p.grad for p in module.parameters() if p.grad is not None]
    if not grads:
        return
    flat = torch.cat([g.reshape(-1) for g in grads])
    if weight is None:
        flat /= ctx.world_size
    else:
        flat *= weight
    dist.all_reduce(flat, op=dist.ReduceOp.SUM)
    offset = 0
    for g in grads:
        g.copy_(flat[offset : offset + g.numel()].view_as(g))
        offset += g.numel()


def all_reduce_sum(values: Mapping[str, float | torch.Tensor], ctx: DistContext) -> dict[str, float]:
    """Sum scalar metrics (counts, summed losses) over ranks; means are formed by the caller."""
    keys = sorted(values)
    t = torch.tensor([float(values[k]) for k in keys], dtype=torch.float64)
    if ctx.distributed:
        t = t.to(ctx.device) if ctx.backend == "nccl" else t
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return {k: float(v) for k, v in zip(keys, t.cpu().tolist())}


def broadcast_object(obj, ctx: DistContext):
    """Rank 0's ``obj`` on every rank (e.g. a resume decision or a shuffled order)."""
    if not ctx.distributed:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]
