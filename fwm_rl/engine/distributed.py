"""Data parallelism with ``torch.distributed``, shared by every trainer.

Runs launched with ``torchrun`` get ``RANK``/``WORLD_SIZE``/``LOCAL_RANK`` in their
environment; :func:`init_distributed` turns them into a :class:`DistContext`
(``nccl`` on CUDA, ``gloo`` on CPU), a single process under ``torchrun`` included. A
plain ``python ...`` run gets a single-process context and every helper below becomes
a no-op, so trainers call them unconditionally.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist

from fwm_rl.engine.folders import RunClaim, claimed_run_folder
from fwm_rl.engine.training import resolve_device
from fwm_rl.memory.common import rebuild_state, state_leaves

__all__ = [
    "DistContext",
    "all_reduce_gradients",
    "all_reduce_sum",
    "all_reduce_tensor",
    "broadcast_object",
    "finish_distributed",
    "gather_rows",
    "hold_run_folder",
    "init_distributed",
    "launch_rank",
    "main_print",
    "on_main",
    "rank_seed",
    "row_share",
    "seed_other_ranks",
    "shard_bounds",
    "shard_rows",
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
        """Several processes, or one that joined a process group (``torchrun --nproc_per_node=1``)."""
        return self.world_size > 1 or self.backend is not None

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
    if world_size == 1 and "TORCHELASTIC_RUN_ID" not in os.environ:
        return DistContext(device=dev)  # a plain run; under torchrun even one process joins a group
    backend = "nccl" if dev.type == "cuda" else "gloo"
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
    if not dist.is_initialized():
        dist.init_process_group(backend=backend)
    return DistContext(rank=rank, world_size=world_size, local_rank=local_rank, device=dev, backend=backend)


def launch_rank() -> int:
    """This process's rank as torchrun set it (0 outside torchrun), before any process group exists."""
    return int(os.environ.get("RANK", "0"))


def finish_distributed() -> None:
    """Leave the process group, if this process joined one (the end of a command under torchrun)."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def _silent(*args: Any, **kwargs: Any) -> None:
    """Stands for ``print`` on the ranks other than 0."""


def main_print(ctx: DistContext) -> Callable[..., None]:
    """``print`` on rank 0 and a no-op elsewhere, for the console output of commands under torchrun."""
    return print if ctx.is_main else _silent


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

    A rank may have no gradient for a parameter (``p.grad is None``: its rows gave no
    loss, or did not reach that parameter); it then counts as zero. A parameter no
    rank has a gradient for keeps ``grad = None``, as in a single-process step, so the
    optimizer skips it there too. One collective call carries all of it.
    """
    if not ctx.distributed:
        return
    params = [p for p in module.parameters() if p.requires_grad]
    if not params:
        return
    scale = 1.0 / ctx.world_size if weight is None else weight
    dtype = params[0].dtype
    parts = [
        p.grad.reshape(-1).to(dtype) * scale if p.grad is not None else p.new_zeros(p.numel(), dtype=dtype) for p in params
    ]
    present = torch.tensor([float(p.grad is not None) for p in params], dtype=dtype, device=params[0].device)
    flat = torch.cat([*parts, present])
    dist.all_reduce(flat, op=dist.ReduceOp.SUM)
    offset = 0
    for i, p in enumerate(params):
        combined = flat[offset : offset + p.numel()].view_as(p)
        if p.grad is not None:
            p.grad.copy_(combined)
        elif flat[-len(params) + i] > 0:
            p.grad = combined.to(p.dtype).clone()
        offset += p.numel()


def all_reduce_sum(values: Mapping[str, float | torch.Tensor], ctx: DistContext) -> dict[str, float]:
    """Sum scalar metrics (counts, summed losses) over ranks; means are formed by the caller."""
    keys = sorted(values)
    t = torch.tensor([float(values[k]) for k in keys], dtype=torch.float64)
    if ctx.distributed:
        t = t.to(ctx.device) if ctx.backend == "nccl" else t
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return {k: float(v) for k, v in zip(keys, t.cpu().tolist())}


def rank0_clock(seconds: float, ctx: DistContext) -> float:
    """Rank 0's ``seconds`` on every rank: the one clock a time budget is measured on, so that every process
    stops after the same step (the trainers' ``--time-budget``)."""
    if not ctx.distributed:
        return seconds
    return all_reduce_sum({"t": seconds if ctx.is_main else 0.0}, ctx)["t"]


def broadcast_object(obj, ctx: DistContext):
    """Rank 0's ``obj`` on every rank (e.g. a resume decision or a shuffled order)."""
    if not ctx.distributed:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def on_main(fn: Callable[[], Any], ctx: DistContext) -> Any:
    """Run ``fn`` on rank 0 alone and return its result on every rank. A ``ValueError`` it raises
    (bad input, a run folder already taken) is raised on every rank, so that all stop together."""
    outcome = None
    if ctx.is_main:
        try:
            outcome = (fn(), None)
        except ValueError as exc:
            outcome = (None, exc)
    result, error = broadcast_object(outcome, ctx)
    if error is not None:
        raise error
    return result


@contextlib.contextmanager
def hold_run_folder(
    folder: str | os.PathLike | None,
    ctx: DistContext,
    claims: Iterable[RunClaim] = (),
    overwrite: bool = False,
    resume_hint: str = "",
):
    """Rank 0 holds ``folder``'s :func:`~fwm_rl.engine.run_lock` while the block runs (nothing for
    ``None``), and first claims each of ``claims`` for a new run (:func:`~fwm_rl.engine.claimed_run_folder`
    with ``overwrite`` and ``resume_hint``). If another run holds the folder or a folder below it, or a
    claim is refused, every rank stops with the same message."""
    with contextlib.ExitStack() as stack:
        if folder is not None:
            on_main(lambda: stack.enter_context(claimed_run_folder(folder, claims, overwrite, resume_hint)), ctx)
        yield


def all_reduce_tensor(tensor: torch.Tensor, ctx: DistContext) -> torch.Tensor:
    """Sum ``tensor`` (e.g. per-task counts and losses) over ranks, in place; returns it."""
    if ctx.distributed:
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


def row_share(n_rows: int, ctx: DistContext, option: str = "--batch-size") -> slice:
    """This rank's contiguous rows of a batch of ``n_rows`` (all of them in a single process).

    ``option`` names the setting that sizes the batch, for the error when there are more
    processes than rows.
    """
    if n_rows < ctx.world_size:
        raise ValueError(
            f"{option} {n_rows} gives fewer batch rows than the {ctx.world_size} processes of this run "
            f"(torchrun --nnodes x --nproc_per_node): every process needs at least one row; "
            f"raise {option} to at least {ctx.world_size} or start fewer processes"
        )
    return slice(*shard_bounds(n_rows, ctx.rank, ctx.world_size))


def seed_other_ranks(seed: int, ctx: DistContext) -> None:
    """Give every rank but 0 its own torch random stream (:func:`rank_seed`), e.g. for dropout masks.

    Rank 0 keeps its current stream, so a single-process run is exactly the plain run.
    Call it after building the model, whose initial parameters must agree on every rank.
    """
    if ctx.rank:
        torch.manual_seed(rank_seed(seed, ctx.rank))


def _paired_leaves(state: Any, batch_dims: Any) -> tuple[list, list]:
    leaves, dims = state_leaves(state), state_leaves(batch_dims)
    if len(leaves) != len(dims):
        raise ValueError(
            f"batch_dims has {len(dims)} entries for a state of {len(leaves)} tensors; give one batch dimension per tensor"
        )
    return leaves, dims


def gather_rows(state: Any, batch_dims: Any, ctx: DistContext) -> Any:
    """The full-batch version of a per-rank recurrent state, on the CPU, on every rank.

    ``state`` is a nest (tuples, lists, named tuples) of tensors, each holding this rank's
    contiguous share of the batch rows along the matching entry of ``batch_dims`` (a nest
    of the same shape, ints); ``None`` leaves stay ``None``. The shares are concatenated in
    rank order, so the result is what a single process would carry for the whole batch.
    This is how checkpoints stay independent of the world size.
    """
    leaves, dims = _paired_leaves(state, batch_dims)
    local = [None if t is None else t.detach().cpu() for t in leaves]
    if not ctx.distributed:
        return rebuild_state(state, local)
    shares: list = [None] * ctx.world_size
    dist.all_gather_object(shares, local)
    full = [None if parts[0] is None else torch.cat(parts, dim=dim) for parts, dim in zip(zip(*shares), dims)]
    return rebuild_state(state, full)


def shard_rows(state: Any, batch_dims: Any, ctx: DistContext) -> Any:
    """This rank's rows of a full-batch state (the inverse of :func:`gather_rows`)."""
    leaves, dims = _paired_leaves(state, batch_dims)
    if not ctx.distributed:
        return state
    parts = []
    for t, dim in zip(leaves, dims):
        if t is None:
            parts.append(None)
            continue
        rows = row_share(t.size(dim), ctx)
        parts.append(t.narrow(dim, rows.start, rows.stop - rows.start).clone())
    return rebuild_state(state, parts)
