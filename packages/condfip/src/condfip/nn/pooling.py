"""Pooling row features over rows, chunk by chunk, with every row attending only to the anchor rows.

Both networks summarize a table by a max over rows of per-row, per-node features. Every row attends only to
the anchor rows (``condfip.nn.anchors``), so the rows can be processed in chunks of any size with the same
result, and memory does not grow with the number of rows. The anchor rows' features come out of the anchors'
own pass; when every dataset has the same anchors (no padding) those rows are not run a second time.

Axis legend: b datasets, n rows, m anchor rows, d nodes, e features.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import torch

from condfip.nn.anchors import anchor_indices, gather_rows

AnchorPass = Callable[[torch.Tensor, torch.Tensor | None], tuple[Any, torch.Tensor]]
RowPass = Callable[[torch.Tensor, Any, torch.Tensor | None], torch.Tensor]


def row_chunks(x: torch.Tensor, chunk_size: int | None) -> Iterator[tuple[int, torch.Tensor]]:
    """(start, x[:, start:start + chunk_size]) over the rows of x [b, n, ...]; None: all rows at once."""
    if chunk_size is not None and chunk_size < 1:
        raise ValueError(f"chunk_size must be a positive number of rows or None, got {chunk_size}")
    step = x.shape[1] if chunk_size is None else chunk_size
    for start in range(0, x.shape[1], max(step, 1)):
        yield start, x[:, start : start + step]


def max_over_rows(
    data: torch.Tensor,
    *,
    num_anchor_rows: int,
    sample_mask: torch.Tensor | None,
    chunk_size: int | None,
    anchor_pass: AnchorPass,
    row_pass: RowPass,
) -> torch.Tensor:
    """The max over the real rows of per-row features, data [b, n, d] -> [b, d, e].

    ``anchor_pass(anchors [b, m, d], anchor_mask)`` returns ``(state, anchor features [b, m, d, e])``, the
    state being whatever ``row_pass(rows [b, n', d], state, anchor_mask)`` needs to give the features
    [b, n', d, e] of other rows (the anchors' recorded activations). ``sample_mask[b, n]`` is True for real
    rows (padding rows come last and never win the max).
    """
    if chunk_size is not None and chunk_size < 1:
        raise ValueError(f"chunk_size must be a positive number of rows or None, got {chunk_size}")
    b, n, _ = data.shape
    indices, anchor_mask = anchor_indices(n, num_anchor_rows, sample_mask, b, data.device)
    state, anchor_features = anchor_pass(gather_rows(data, indices), anchor_mask)
    pooled = _masked_max(anchor_features, anchor_mask)  # [b, d, e]
    rows, row_mask = data, sample_mask
    if sample_mask is None:  # the same anchor rows in every dataset: pool the other rows only
        others = torch.ones(n, dtype=torch.bool, device=data.device)
        others[indices[0]] = False
        rows = data[:, others]
    for start, part in row_chunks(rows, chunk_size):
        real = None if row_mask is None else row_mask[:, start : start + part.shape[1]]  # [b, n']
        pooled = torch.maximum(pooled, _masked_max(row_pass(part, state, anchor_mask), real))
    return pooled


def _masked_max(features: torch.Tensor, real: torch.Tensor | None) -> torch.Tensor:
    """[b, n, d, e] -> [b, d, e], the max over real rows (-inf where a dataset has none here)."""
    if real is not None:
        features = features.masked_fill(~real[:, :, None, None], float("-inf"))
    return features.amax(dim=1)
