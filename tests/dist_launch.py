"""Launch a function on N local CPU processes in a gloo process group (test helper)."""

from __future__ import annotations

import os
import socket
import sys

import torch.distributed as dist
import torch.multiprocessing as mp


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank: int, world_size: int, port: int, fn, args) -> None:
    os.environ.update(
        MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world_size), LOCAL_RANK=str(rank)
    )
    fn(rank, world_size, *args)  # (an exception ends this process; mp.spawn reports it)
    if dist.is_initialized():
        # Leave together: a process that tears down its gloo group while the other is still
        # using the shared store (hosted by rank 0) can abort it.
        dist.barrier()
        dist.destroy_process_group()
    # Skip the interpreter's teardown: with torch 2.13 a gloo worker sometimes aborts there
    # ("terminate called without an active exception") after all its work is done.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def spawn_gloo(fn, world_size: int = 2, *args) -> None:
    """Run ``fn(rank, world_size, *args)`` in ``world_size`` processes (torchrun-like environment).

    ``fn`` must be a module-level function; results go through files in ``args``.
    """
    mp.spawn(_worker, args=(world_size, _free_port(), fn, args), nprocs=world_size, join=True)
