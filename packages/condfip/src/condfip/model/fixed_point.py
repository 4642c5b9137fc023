"""Generation as the fixed point of ``z -> F(z) + n``, with hard interventions clamped after every step.

Axis legend: b datasets, n rows, d nodes.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from condfip.core.dags import longest_path_length


def longest_path_of_batch(parents: torch.Tensor) -> int:
    """Edges on the longest directed path of any DAG in the batch; parents: [b, d, d] bool (j -> i)."""
    adjacencies = parents.transpose(-1, -2).cpu().numpy()  # [b, d, d]: i -> j
    return max((longest_path_length(adjacency) for adjacency in adjacencies), default=0)


def fixed_point_generate(
    mechanisms: Callable[[torch.Tensor], torch.Tensor],
    noise: torch.Tensor,
    parents: torch.Tensor,
    *,
    intervened: torch.Tensor | None = None,
    values: torch.Tensor | None = None,
    num_iterations: int | None = None,
) -> torch.Tensor:
    """Iterate ``z <- F(z) + noise`` from ``z = noise``.

    noise: [b, n, d]; intervened: [b, d] bool or [b, n, d] bool, the clamped coordinates; values: broadcastable to
    [b, n, d], their values. ``num_iterations`` defaults to the longest path plus one, which reaches the fixed
    point exactly for a DAG (node at depth k is final after k + 1 steps).
    """
    if num_iterations is None:
        num_iterations = longest_path_of_batch(parents) + 1
    clamp = None
    if intervened is not None:
        clamp = intervened[:, None, :] if intervened.dim() == 2 else intervened  # [b, 1|n, d]
        values = torch.as_tensor(values, dtype=noise.dtype, device=noise.device)
    z = noise if clamp is None else torch.where(clamp, values, noise)
    for _ in range(num_iterations):
        z = mechanisms(z) + noise
        if clamp is not None:
            z = torch.where(clamp, values, z)
    return z
