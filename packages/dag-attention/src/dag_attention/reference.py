"""The semantics of DAG attention in plain PyTorch (computed in float32, differentiable by autograd).

Axis legend: b datasets, s rows of a dataset, h heads, i query node, j key node, e head dim.
"""

from __future__ import annotations

import torch


def dag_attention_reference(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, parents: torch.Tensor, scale: float
) -> torch.Tensor:
    """Clipped-softmax attention of each node over its parents.

    q, k, v: [B, S, H, d, e]; parents: [B, d, d] bool, ``parents[b, i, j]`` true when ``j -> i``.
    Returns [B, S, H, d, e] in the dtype of ``q``; rows without parents are exact zeros.
    """
    compute_dtype = torch.float64 if q.dtype == torch.float64 else torch.float32
    qf, kf, vf = (t.to(compute_dtype) for t in (q, k, v))
    scores = torch.einsum("bshie,bshje->bshij", qf, kf) * scale  # [B, S, H, d, d]
    mask = parents[:, None, None, :, :]  # [B, 1, 1, d, d]: broadcast, never materialized per row
    scores = scores.masked_fill(~mask, float("-inf"))
    row_max = scores.amax(dim=-1, keepdim=True)  # [B, S, H, d, 1]; -inf for a root row
    row_max = torch.where(torch.isfinite(row_max), row_max, torch.zeros_like(row_max)).detach()
    weights = torch.exp(scores - row_max)  # masked entries are exp(-inf) = 0
    # clipped denominator: exp(s) / max(sum exp(s), 1) == exp(s - m) / max(sum exp(s - m), exp(-m))
    denominator = torch.maximum(weights.sum(dim=-1, keepdim=True), torch.exp(-row_max))
    out = torch.einsum("bshij,bshje->bshie", weights / denominator, vf)
    return out.to(q.dtype)
