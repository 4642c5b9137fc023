"""Which context rows serve as anchors (the keys and values of attention over samples)."""

from __future__ import annotations

import torch


def anchor_indices(
    num_rows: int, num_anchors: int, sample_mask: torch.Tensor | None, batch_size: int, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Evenly spaced real rows of every dataset, at most ``num_anchors`` of them.

    Returns the indices [b, m] into the row axis and the anchor mask [b, m] (None when every dataset has
    ``m`` real anchors). With no padding and ``num_rows <= num_anchors`` the anchors are all rows, in order.
    """
    if sample_mask is None:
        counts = torch.full((batch_size,), num_rows, device=device)
    else:
        counts = sample_mask.sum(dim=1)  # [b]; real rows come first in a padded dataset
    m = int(min(num_anchors, int(counts.max())))
    taken = torch.clamp(counts, max=m)  # [b] anchors of each dataset
    k = torch.arange(m, device=device)  # [m]
    # floor(k * counts / taken): k-th of `taken` evenly spaced rows among `counts` real rows
    indices = torch.div(k[None, :] * counts[:, None], taken[:, None].clamp(min=1), rounding_mode="floor")
    valid = k[None, :] < taken[:, None]  # [b, m]
    indices = torch.where(valid, indices, torch.zeros_like(indices))
    return indices, (None if bool(valid.all()) else valid)


def gather_rows(x: torch.Tensor, indices: torch.Tensor) -> torch.Tensor:
    """x: [b, n, ...] and indices [b, m] -> [b, m, ...]."""
    index = indices.reshape(*indices.shape, *([1] * (x.dim() - 2))).expand(-1, -1, *x.shape[2:])
    return torch.gather(x, 1, index)
