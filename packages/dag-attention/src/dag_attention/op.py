"""The public DAG-attention function: validation, backend choice, and the 4-D form without a row axis."""

from __future__ import annotations

import torch

from dag_attention._dispatch import load_triton_op, resolve_backend
from dag_attention._memory import check_memory
from dag_attention._validation import check_inputs
from dag_attention.reference import dag_attention_reference


def parents_from_adjacency(adjacency: torch.Tensor) -> torch.Tensor:
    """Parent mask from an adjacency in the project's convention (``adjacency[..., i, j] = 1`` for ``i -> j``).

    adjacency: [..., d, d], a tensor, array or nested sequence of numbers or booleans (nonzero = edge).
    Returns a bool tensor of the same shape with ``parents[..., i, j]`` true when ``j -> i`` (the
    transpose), the mask ``dag_attention`` takes. Raises ``ValueError`` for anything that is not numbers
    (a string, objects), for a wrong shape, and for a NaN entry (neither an edge nor its absence).
    """
    if not isinstance(adjacency, torch.Tensor):
        if isinstance(adjacency, str | bytes):
            raise ValueError(
                f"parents_from_adjacency: adjacency must be numbers [..., d, d] (a tensor, array or nested "
                f"lists), got a {type(adjacency).__name__}"
            )
        try:
            adjacency = torch.as_tensor(adjacency)
        except (TypeError, ValueError, RuntimeError) as error:
            raise ValueError(
                f"parents_from_adjacency: adjacency must be numbers [..., d, d] (a tensor, array or nested "
                f"lists), got {type(adjacency).__name__} that torch cannot read as numbers ({error})"
            ) from None
    if adjacency.dim() < 2 or adjacency.shape[-1] != adjacency.shape[-2]:
        raise ValueError(
            f"parents_from_adjacency: adjacency must have shape [..., d, d], got {tuple(adjacency.shape)}"
        )
    if (adjacency.is_floating_point() or adjacency.is_complex()) and bool(torch.isnan(adjacency).any()):
        where = tuple(int(i) for i in torch.nonzero(torch.isnan(adjacency))[0])
        raise ValueError(
            f"parents_from_adjacency: adjacency has a NaN entry at index {where}; use 1 for an edge, 0 for none"
        )
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

    Shapes (b datasets, s rows of a dataset, h heads, d nodes, e head dim):
        q, k, v: [B, S, H, d, e], or [B, H, d, e] without the row axis; one dtype among float16,
            bfloat16, float32 (and float64 on the reference backend), one device.
        parents: [B, d, d] bool, ``parents[b, i, j]`` true when ``j -> i`` (``parents_from_adjacency``);
            one mask per dataset, shared by every row and head (an expanded view is fine).
    Query and key nodes may differ (the rectangular form): q: [..., d_q, e] with k, v: [..., d_k, e] and
        parents: [B, d_q, d_k], ``parents[b, i, j]`` true when key node ``j`` is a parent of query node ``i``;
        it evaluates a subset of the nodes against the keys of the nodes they read. It runs on the reference
        backend (``"auto"`` picks it; ``"triton"`` raises).
    Returns a tensor shaped like ``q``: ``out[..., i, :] = sum_j w_ij v[..., j, :]`` with
    ``w_ij = exp(s_ij) / max(sum_{j in pa(i)} exp(s_ij), 1)``, ``s_ij = scale * q_i . k_j`` over the parents
    of ``i``. Nodes without parents get exact zeros (and zero gradients), never NaN. A NaN or an infinity in
    the inputs reaches only the nodes that read it: node ``i``'s output is NaN when its query (if it has
    parents) or a parent's key or value holds one, and every other output is as if it were not there; a NaN
    output passes no gradient. Scores that overflow saturate at the largest finite float.

    Raises ValueError for a bad input (message: what was received, what is allowed) and for a call whose
    working memory exceeds what its device has in all (the reference holds a few B·S·H·d_q·d_k score tensors).

    scale: defaults to ``1 / sqrt(e)``.
    backend: ``"auto"`` (Triton for CUDA tensors when Triton imports, else the reference; the environment
        variable ``DAG_ATTENTION_BACKEND`` overrides it), ``"reference"`` or ``"triton"`` (raises where the
        kernels cannot run). Arithmetic is accumulated in float32 on both backends.
    """
    scale = check_inputs(q, k, v, parents, scale)
    chosen = resolve_backend(backend, q, rectangular=k.shape[-2] != q.shape[-2])
    squeeze = q.dim() == 4
    if squeeze:  # [B, H, d, e] -> [B, 1, H, d, e]
        q, k, v = (t.unsqueeze(1) for t in (q, k, v))
    check_memory(q, k, v, chosen)  # before anything is allocated
    if chosen == "triton":
        out = load_triton_op().dag_attention_triton(q, k, v, parents, scale)
    else:
        out = dag_attention_reference(q, k, v, parents, scale)
    return out.squeeze(1) if squeeze else out
