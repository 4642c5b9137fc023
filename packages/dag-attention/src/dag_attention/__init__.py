"""Masked DAG attention with a clipped softmax (FiP), Triton-fused with a PyTorch reference."""

from __future__ import annotations

import math

import torch

from dag_attention.reference import dag_attention_reference

__version__ = "0.1.0"
__all__ = ["dag_attention", "dag_attention_reference", "parents_from_adjacency"]


def parents_from_adjacency(adjacency: torch.Tensor) -> torch.Tensor:
    """Parent mask from an adjacency in the project's convention (``adjacency[..., i, j] = 1`` for ``i -> j``).

    Returns a bool tensor with ``parents[..., i, j]`` true when ``j -> i`` (the transpose).
    """
    return adjacency.transpose(-1, -2) != 0


def dag_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    parents: torch.Tensor,
    *,
    scale: float | None = None,
    backend: str = "auto",
) -> torch.Tensor:
    """Attention of each node over its parents, normalized by ``exp(s) / max(sum exp(s), 1)``.

    q, k, v: [B, S, H, d, e] (or [B, H, d, e]); parents: [B, d, d] bool with ``parents[b, i, j]`` for ``j -> i``.
    """
    if scale is None:
        scale = 1.0 / math.sqrt(q.shape[-1])
    squeeze = q.dim() == 4
    if squeeze:
        q, k, v = (t.unsqueeze(1) for t in (q, k, v))
    out = dag_attention_reference(q, k, v, parents, scale)
    return out.squeeze(1) if squeeze else out
