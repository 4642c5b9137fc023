"""The semantics of DAG attention in plain PyTorch, differentiable by autograd.

Axis legend: b datasets, s rows of a dataset, h heads, i query node, j key node, e head dim.

For query node ``i`` with parents ``P(i)`` and scores ``s_ij = scale * q_i . k_j``:

    w_ij = exp(s_ij) / max(sum_{j in P(i)} exp(s_ij), 1)       (zero for j not in P(i))
    out_i = sum_j w_ij v_j

computed stably as ``exp(s_ij - m_i) / max(sum_j exp(s_ij - m_i), exp(-m_i))`` with ``m_i = max_j s_ij``.
A row without parents (a root node) is an exact zero and passes zero gradients.

Non-finite inputs reach only the nodes that read them: a NaN or an infinity in a query, key or value enters
the products as a zero (a zero weight times NaN is NaN, so through the dense products it would reach every node
of the row), and the output of a node whose own query (when it has parents) or whose parents' keys or values
hold one is NaN. Such outputs pass zero gradients. A score beyond the largest finite float saturates there.
"""

from __future__ import annotations

import torch


def _finite_vectors(t: torch.Tensor) -> torch.Tensor:
    """[...] bool from [..., e]: whether every entry of the vector is finite (0 * x is 0, or NaN for NaN and
    infinities; one float reduction, much faster on CPU than a bool reduction of isfinite)."""
    return (t.detach() * 0).sum(dim=-1) == 0


def _all_finite(t: torch.Tensor) -> bool:
    """Whether every entry of ``t`` is finite: 0 * x sums to 0 unless some x is NaN or infinite."""
    return bool((t.detach() * 0).sum() == 0)


def _reads_non_finite(
    q_finite: torch.Tensor, k_finite: torch.Tensor, v_finite: torch.Tensor, parents: torch.Tensor
) -> torch.Tensor:
    """[B, S, H, d_q] bool: the nodes whose output reads a NaN or an infinity.

    q_finite: [B, S, H, d_q], k_finite and v_finite: [B, S, H, d_k], whether each vector is finite. Node ``i``
    reads its own query when it has parents, and the key and value of each parent.
    """
    key_bad = ~(k_finite & v_finite)
    # float32 counts of at most d_k parents: exact up to 2^24
    parent_bad = torch.einsum("bij,bshj->bshi", parents.to(torch.float32), key_bad.to(torch.float32)) > 0
    return parent_bad | (~q_finite & parents.any(dim=-1)[:, None, None, :])


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
    Returns [B, S, H, d, e] in the dtype of ``q``; rows without parents are exact zeros, rows that read a
    non-finite input are NaN (module docstring).

    With ``upcast=True`` (the default) the arithmetic runs in float32 (float64 for float64 inputs). With
    ``upcast=False`` it runs in the input dtype: the tests use that to measure what plain PyTorch loses in
    half precision, which bounds the error allowed to the fused kernels.
    """
    if upcast:
        compute_dtype = torch.float64 if q.dtype == torch.float64 else torch.float32
    else:
        compute_dtype = q.dtype
    qf, kf, vf = (t.to(compute_dtype) for t in (q, k, v))
    poisoned = None  # [B, S, H, d_q]: the nodes that read a non-finite input, when there is one
    if not all(_all_finite(t) for t in (qf, kf, vf)):  # the usual case skips the isolation's passes
        poisoned = _reads_non_finite(*(_finite_vectors(t) for t in (qf, kf, vf)), parents)
        qf, kf, vf = (torch.nan_to_num(t, nan=0.0, posinf=0.0, neginf=0.0) for t in (qf, kf, vf))
    # Out of place (an in-place step on the einsum's output, a view, costs autograd a copy), but no step saves a
    # score-sized float tensor except exp and the division: ``_memory`` counts on it.
    scores = torch.einsum("bshie,bshje->bshij", qf, kf) * scale  # [B, S, H, d, d]
    largest = torch.finfo(scores.dtype).max  # (autocast may have made the product half precision)
    scores = torch.where(scores > largest, largest, scores)  # an overflow to +inf saturates; NaN stays NaN
    mask = parents[:, None, None, :, :]  # [B, 1, 1, d, d]: broadcast, never materialized per row
    scores = scores.masked_fill(~mask, float("-inf"))
    row_max = scores.detach().amax(dim=-1, keepdim=True)  # [B, S, H, d, 1]; -inf for a root row
    row_max = torch.where(torch.isfinite(row_max), row_max, torch.zeros_like(row_max))
    weights = (scores - row_max).exp_()  # masked entries are exp(-inf) = 0; in place on a fresh tensor
    del scores
    # clipped denominator: exp(s) / max(sum exp(s), 1) == exp(s - m) / max(sum exp(s - m), exp(-m))
    denominator = torch.maximum(weights.sum(dim=-1, keepdim=True), torch.exp(-row_max))
    out = torch.einsum("bshij,bshje->bshie", weights / denominator, vf)
    if poisoned is not None:
        out = out.masked_fill(poisoned[..., None], float("nan"))
    return out.to(q.dtype)
