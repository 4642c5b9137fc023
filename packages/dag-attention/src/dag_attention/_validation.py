"""Checks on the inputs of ``dag_attention``; every error quotes what was received and says what is allowed."""

from __future__ import annotations

import math
import numbers

import torch

SUPPORTED_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)
MAX_FLOAT32_SCALE = torch.finfo(torch.float32).max / 2  # log2(e) * scale stays finite in float32


def _shape(t: torch.Tensor) -> tuple[int, ...]:
    return tuple(t.shape)


def check_inputs(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, parents: torch.Tensor, scale: float | None
) -> float:
    """Validate the arguments of ``dag_attention`` and return the scale to use.

    Raises ``ValueError`` naming the offending argument, the value received and what is allowed.
    """
    for name, t in (("q", q), ("k", k), ("v", v), ("parents", parents)):
        if not isinstance(t, torch.Tensor):
            raise ValueError(f"dag_attention: {name} must be a torch.Tensor, got {type(t).__name__}")

    if q.dim() not in (4, 5):
        raise ValueError(
            f"dag_attention: q must have 5 dims [B, S, H, d, e] or 4 dims [B, H, d, e], "
            f"got {q.dim()} dims with shape {_shape(q)}"
        )
    for name, t in (("k", k), ("v", v)):
        if t.dim() != q.dim() or t.shape[:-2] != q.shape[:-2] or t.shape[-1] != q.shape[-1]:
            raise ValueError(
                f"dag_attention: q, k and v must have the same shape (k and v may have another number of "
                f"nodes on axis -2), got q {_shape(q)} and {name} {_shape(t)}"
            )
    if v.shape != k.shape:
        raise ValueError(
            f"dag_attention: k and v must have the same shape, got k {_shape(k)} and v {_shape(v)}"
        )

    if q.dtype not in SUPPORTED_DTYPES:
        allowed = ", ".join(str(d) for d in SUPPORTED_DTYPES)
        raise ValueError(f"dag_attention: q must have a floating dtype in ({allowed}), got {q.dtype}")
    for name, t in (("k", k), ("v", v)):
        if t.dtype != q.dtype:
            raise ValueError(
                f"dag_attention: q, k and v must share one dtype, got q {q.dtype} and {name} {t.dtype}; "
                f"cast them with .to({q.dtype})"
            )

    for name, t in (("k", k), ("v", v), ("parents", parents)):
        if t.device != q.device:
            raise ValueError(
                f"dag_attention: all inputs must be on one device, got q on {q.device} and {name} on "
                f"{t.device}; move it with .to({str(q.device)!r})"
            )

    batch, num_nodes, num_key_nodes, head_dim = q.shape[0], q.shape[-2], k.shape[-2], q.shape[-1]
    if num_nodes == 0 or head_dim == 0:
        raise ValueError(
            f"dag_attention: the node axis d and the head dim e must be at least 1, got q shape {_shape(q)}"
        )
    if num_key_nodes == 0:
        raise ValueError(f"dag_attention: k and v need at least one node, got k shape {_shape(k)}")
    if parents.dtype != torch.bool:
        raise ValueError(
            f"dag_attention: parents must be a bool tensor, got dtype {parents.dtype}; build it from an "
            f"adjacency with parents_from_adjacency(adjacency), or use parents != 0"
        )
    expected = (batch, num_nodes, num_key_nodes)
    if _shape(parents) != expected:
        layout = "[B, S, H, d, e]" if q.dim() == 5 else "[B, H, d, e]"
        mask_layout = "[B, d, d]" if num_nodes == num_key_nodes else "[B, d_q, d_k]"
        keys = "" if num_nodes == num_key_nodes else f" and k of shape {_shape(k)}"
        raise ValueError(
            f"dag_attention: parents must have shape {mask_layout} = {expected} for q of shape {_shape(q)} "
            f"{layout}{keys}, got {_shape(parents)}; one mask per dataset, shared by all rows and heads "
            f"(use parents.expand({', '.join(map(str, expected))}) to share one graph across datasets)"
        )

    if scale is None:
        return 1.0 / math.sqrt(head_dim)
    if isinstance(scale, bool) or not isinstance(scale, numbers.Real) or not math.isfinite(float(scale)):
        hint = "; pass float(scale) for a one-element tensor" if isinstance(scale, torch.Tensor) else ""
        raise ValueError(f"dag_attention: scale must be a finite real number or None, got {scale!r}{hint}")
    if q.dtype != torch.float64 and abs(float(scale)) > MAX_FLOAT32_SCALE:
        # float32 arithmetic: a larger scale is infinite there (and log2(e) * scale in the kernels), and
        # 0 * inf is NaN for an exactly orthogonal query and key
        raise ValueError(
            f"dag_attention: scale must be at most {MAX_FLOAT32_SCALE:.3g} in magnitude for {q.dtype} inputs "
            f"(computed in float32), got {scale!r}; use float64 inputs for a larger scale"
        )
    return float(scale)
