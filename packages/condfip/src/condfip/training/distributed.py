"""torch.distributed for the training loop: process group, device of each rank, agreement across ranks."""

from __future__ import annotations

import gc
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn


@dataclass
class Distributed:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0


@contextmanager
def joined_ranks(device_kind: str) -> Iterator[Distributed]:
    """Join the process group that torchrun describes (``WORLD_SIZE`` > 1), or run alone; a group joined here
    is left when the block ends, also on an error.

    A gloo group left to the interpreter's exit is torn down while its threads still run, which can abort a
    rank that finished its work ("terminate called without an active exception", exit -6): torchrun then
    reports the run failed.
    """
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        yield Distributed()
        return
    if dist.is_initialized():  # a caller's group: theirs to leave
        yield Distributed(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))
        return
    dist.init_process_group(backend="nccl" if device_kind == "cuda" else "gloo")
    try:
        yield Distributed(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))
    finally:
        # what still holds the group (a DistributedDataParallel wrapper in a reference cycle) is collected first:
        # left to the interpreter's exit, it would tear the group's threads down there
        gc.collect()
        dist.destroy_process_group()


def pick_device(name: str, local_rank: int) -> torch.device:
    if name == "auto":
        return torch.device(f"cuda:{local_rank}" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def max_across_ranks(value: float, device: torch.device) -> float:
    """The largest ``value`` of any rank (every rank gets it)."""
    tensor = torch.tensor([value], dtype=torch.float64, device=device)
    dist.all_reduce(tensor, op=dist.ReduceOp.MAX)
    return float(tensor.item())


def weight_spread_across_ranks(model: nn.Module) -> float:
    """Largest difference of any weight between ranks (0 when DistributedDataParallel keeps them in sync)."""
    flat = torch.cat([p.detach().float().flatten() for p in model.parameters()])
    high, low = flat.clone(), flat.clone()
    dist.all_reduce(high, op=dist.ReduceOp.MAX)
    dist.all_reduce(low, op=dist.ReduceOp.MIN)
    return float((high - low).max())
