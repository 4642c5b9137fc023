"""The on-the-fly training stream: batches of fresh standardized datasets, deterministic per seed.

Batch `b` of a stream seeded `seed` draws its node count from `SeedSequence(seed, spawn_key=(b,))` and its
dataset `j` from `SeedSequence(seed, spawn_key=(b, j))`, so a batch (or a shard of it) is a pure function of
its arguments and does not depend on which process makes it.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from scm_gen._checks import check_choice, check_int, check_sequence
from scm_gen.limits import MAX_NODES, check_matrix, check_memory
from scm_gen.mechanisms import MECHANISM_KINDS
from scm_gen.presets import PRESETS, sample_scm
from scm_gen.standardization import standardize


@dataclass
class TrainingBatch:
    """Standardized datasets of one node count. The mechanisms' target is `data - noise` (standardized F(X))."""

    data: np.ndarray  # [B, n, d] float32, standardized per dataset
    noise: np.ndarray  # [B, n, d] float32, divided by the same std (not centred)
    adjacency: np.ndarray  # [B, d, d] int8, adjacency[b, i, j] = 1 for i -> j

    @property
    def target(self) -> np.ndarray:
        """`data - noise` `[B, n, d]`: the standardized `F(X)` (additive-noise mechanisms)."""
        return self.data - self.noise


def make_training_batch(
    batch_index: int,
    *,
    batch_size: int,
    num_samples: int = 400,
    node_counts: Sequence[int] = (20,),
    preset: str = "in",
    mechanisms: Sequence[str] = ("linear", "rff"),
    seed: int = 0,
    shard: tuple[int, int] = (0, 1),
) -> TrainingBatch:
    """Batch `batch_index` of the stream, or the shard `(rank, world)` of it: datasets `j % world == rank`.

    Every dataset of a batch has the same number of nodes, drawn from `node_counts`; each draws its mechanism
    from `mechanisms` (any of `MECHANISM_KINDS`; for the heteroscedastic ones `target` is not `F(X)`) and its
    SCM from `preset`.
    """
    batch_index = check_int("batch_index", batch_index, minimum=0)
    batch_size = check_int("batch_size", batch_size, minimum=1)
    num_samples = check_int("num_samples", num_samples, minimum=2)
    seed = check_int("seed", seed, minimum=0)
    node_counts = check_sequence("node_counts", node_counts, "[20]")
    if not node_counts:
        raise ValueError("node_counts=() is empty; give at least one node count, e.g. (20,)")
    for count in node_counts:
        check_int("node_counts entry", count, minimum=1, maximum=MAX_NODES)
        check_matrix(num_samples, count, "training rows")
    check_choice("preset", preset, PRESETS)
    mechanisms = check_sequence("mechanisms", mechanisms, "['linear']")
    if not mechanisms:
        raise ValueError(f"mechanisms=() is empty; allowed: {', '.join(MECHANISM_KINDS)}")
    for mechanism in mechanisms:
        check_choice("mechanism", mechanism, MECHANISM_KINDS)
    rank, world = _check_shard(shard)
    # float32 data and noise of the whole shard, plus the float64 working copies of one dataset
    cells = num_samples * max(node_counts)
    check_memory(
        8 * cells * len(range(rank, batch_size, world)) + 64 * cells,
        f"a training batch of {batch_size} x {num_samples} rows x {max(node_counts)} nodes",
        hint="use a smaller batch, fewer samples or fewer nodes",
    )

    batch_rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(batch_index,)))
    num_nodes = int(node_counts[batch_rng.integers(len(node_counts))])
    indices = range(rank, batch_size, world)
    data = np.empty((len(indices), num_samples, num_nodes), dtype=np.float32)
    noise = np.empty_like(data)
    adjacency = np.empty((len(indices), num_nodes, num_nodes), dtype=np.int8)
    for row, index in enumerate(indices):
        rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(batch_index, index)))
        mechanism = mechanisms[rng.integers(len(mechanisms))]
        scm = sample_scm(preset, mechanism, num_nodes, rng=rng)
        x, n = scm.sample(num_samples, rng)
        x_std, n_std, _, _ = standardize(x, n)
        data[row], noise[row], adjacency[row] = x_std, n_std, scm.adjacency
    return TrainingBatch(data=data, noise=noise, adjacency=adjacency)


def training_batches(*, start: int = 0, **kwargs) -> Iterator[TrainingBatch]:
    """Batches `start, start + 1, ...` of `make_training_batch(**kwargs)`, forever."""
    start = check_int("start", start, minimum=0)
    for batch_index in itertools.count(start):
        yield make_training_batch(batch_index, **kwargs)


def _check_shard(shard: tuple[int, int]) -> tuple[int, int]:
    try:
        rank, world = shard
    except (TypeError, ValueError):
        raise ValueError(f"shard={shard!r} must be a pair (rank, world)") from None
    world = check_int("shard world", world, minimum=1)
    rank = check_int("shard rank", rank, minimum=0, maximum=world - 1)
    return rank, world
