"""Fresh training datasets from scm-gen, produced in background worker processes.

Batch ``k`` of a run is a pure function of (seed, k, shard), so the order is fixed whatever the number of
workers and a resumed run sees exactly the batches it would have seen.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from scm_gen import make_training_batch


@dataclass(frozen=True)
class StreamSpec:
    batch_size: int  # datasets per rank
    num_samples: int
    node_counts: tuple[int, ...]
    preset: str
    mechanisms: tuple[str, ...]
    seed: int
    rank: int = 0
    world_size: int = 1


class TrainingStream(IterableDataset):
    """Yields (data, noise, parents) tensors for batches start, start + 1, ... of one rank."""

    def __init__(self, spec: StreamSpec, start: int) -> None:
        super().__init__()
        self.spec = spec
        self.start = start

    def batch(self, index: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        spec = self.spec
        batch = make_training_batch(
            index,
            batch_size=spec.batch_size * spec.world_size,
            num_samples=spec.num_samples,
            node_counts=spec.node_counts,
            preset=spec.preset,
            mechanisms=spec.mechanisms,
            seed=spec.seed,
            shard=(spec.rank, spec.world_size),
        )
        parents = np.ascontiguousarray(np.swapaxes(batch.adjacency, -1, -2) != 0)  # [b, d, d]: j -> i
        return (
            torch.from_numpy(np.ascontiguousarray(batch.data, dtype=np.float32)),
            torch.from_numpy(np.ascontiguousarray(batch.noise, dtype=np.float32)),
            torch.from_numpy(parents),
        )

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        info = get_worker_info()
        worker, workers = (0, 1) if info is None else (info.id, info.num_workers)
        # DataLoader takes one item from each worker in turn, so worker w making batches w, w + W, ...
        # gives the batches in order.
        index = self.start + worker
        while True:
            yield self.batch(index)
            index += workers


def training_loader(spec: StreamSpec, start: int, num_workers: int) -> DataLoader:
    return DataLoader(
        TrainingStream(spec, start),
        batch_size=None,
        num_workers=num_workers,
        prefetch_factor=4 if num_workers > 0 else None,
        persistent_workers=num_workers > 0,
    )
