"""Several processes in one gloo group on this machine (loopback, a free port): how the distributed
tests and the distributed benchmark run ``compress`` as ``torchrun`` would, without ``torchrun``."""

from __future__ import annotations

import os
import socket
from collections.abc import Callable
from typing import Any

import torch.distributed as dist
import torch.multiprocessing as mp


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _entry(rank: int, worker: Callable[..., None], world: int, port: int, args: tuple[Any, ...]) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        worker(rank, world, *args)
    finally:
        dist.destroy_process_group()


def run_on_loopback(worker: Callable[..., None], world: int, *args: Any) -> None:
    """Spawn ``world`` processes that each call ``worker(rank, world, *args)`` inside a gloo group
    (destroyed after); ``worker`` must be importable (a module-level function). Raises if one fails."""
    mp.spawn(_entry, args=(worker, world, free_port(), args), nprocs=world, join=True)
