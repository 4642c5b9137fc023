"""The semantics of DAG attention in plain PyTorch, differentiable by autograd.

Axis legend: b datasets, s rows of a dataset, h heads, i query node, j key node, e head dim.

For query node ``i`` with parents ``P(i)`` and scores ``s_ij = scale * q_i . k_j``:

    w_ij = exp(s_ij) / max(sum_{j in P(i)} exp(s_ij), 1)       (zero for j not in P(i))
    out_i = sum_j w_ij v_j

computed stably as ``exp(s_ij - m_i) / max(sum_j exp(s_ij - m_i), exp(-m_i))`` with ``m_i = max_j s_ij``.
A row without parents (a root node) is an exact zero and passes zero gradients.
"""

from __future__ import annotations

import torch


def dag_attention_reference(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    parents: torch.Tensor,
    scale: float,
    *,
    upcast: bool = True,
) -> torch.Tensor:
    """Clipped-softmax attention of each node over its parents.

    q, k, v: [B, S, H, d, e]; parents: [B, d, d] bool, ``parents[b, i, j]`` true when ``j -> i``.
    Returns [B, S, H, d, e] in the dtype of ``q``; rows without parents are exact zeros.

    With ``upcast=True`` (the default) the arithmetic runs in float32 (float64 for float64 inputs). With
    ``upcast=False`` it runs in the input dtype: the tests use that to measure what plain PyTorch loses in
    half precision, which bounds the error allowed to the fused kernels.
    """
    if upcast:
        compute_dtype = torch.float64 if q.dtype == torch.float64 else torch.float32
    else:
        compute_dtype = q.dtype
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
