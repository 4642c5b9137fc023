"""Multi-head DAG attention as an ``nn.Module``: projections in, ``dag_attention`` over nodes, projection out.

Axis legend: b datasets, s rows of a dataset, d nodes, h heads, e head dim, c model dim (= h * e).
"""

from __future__ import annotations

import torch
from einops import rearrange
from torch import nn

from dag_attention.op import dag_attention


class DAGAttention(nn.Module):
    """Multi-head attention of every node over its parents (clipped softmax, see ``dag_attention``).

    dim: model width c, split into ``num_heads`` heads of ``dim // num_heads``; bias: biases of the four
    projections; backend: passed to ``dag_attention`` (``"auto"``, ``"reference"`` or ``"triton"``).
    """

    def __init__(self, dim: int, num_heads: int, *, bias: bool = True, backend: str = "auto") -> None:
        super().__init__()
        if not isinstance(dim, int) or dim < 1:
            raise ValueError(f"DAGAttention: dim must be a positive int, got {dim!r}")
        if not isinstance(num_heads, int) or num_heads < 1 or dim % num_heads != 0:
            raise ValueError(
                f"DAGAttention: num_heads must be a positive int dividing dim = {dim}, got {num_heads!r}"
            )
        self.dim = dim
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.backend = backend
        self.to_q = nn.Linear(dim, dim, bias=bias)
        self.to_kv = nn.Linear(dim, 2 * dim, bias=bias)
        self.to_out = nn.Linear(dim, dim, bias=bias)

    def forward(
        self, x: torch.Tensor, parents: torch.Tensor, *, context: torch.Tensor | None = None
    ) -> torch.Tensor:
        """x: [B, S, d, dim] queries (and keys/values when ``context`` is None); context: [B, S, d_k, dim]
        source of keys and values; parents: [B, d, d_k] bool (``parents[b, i, j]`` for ``j -> i``; square
        unless the context holds other nodes than x). Returns [B, S, d, dim]."""
        if not isinstance(x, torch.Tensor) or x.dim() != 4 or x.shape[-1] != self.dim:
            shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise ValueError(f"DAGAttention: x must have shape [B, S, d, {self.dim}], got {shape}")
        if context is None:
            context = x
        elif (
            not isinstance(context, torch.Tensor)
            or context.dim() != 4
            or context.shape[:2] != x.shape[:2]
            or context.shape[-1] != x.shape[-1]
        ):
            shape = tuple(context.shape) if isinstance(context, torch.Tensor) else type(context).__name__
            raise ValueError(
                f"DAGAttention: context must have the shape of x, {tuple(x.shape)}, except perhaps its number of "
                f"nodes (axis 2), got {shape}"
            )
        self._check_dtype(x, "x")
        if context is not x:
            self._check_dtype(context, "context")
        q = rearrange(self.to_q(x), "b s d (h e) -> b s h d e", h=self.num_heads)
        k, v = rearrange(self.to_kv(context), "b s d (two h e) -> two b s h d e", two=2, h=self.num_heads)
        out = dag_attention(q, k, v, parents, backend=self.backend)  # [b, s, h, d, e]
        return self.to_out(rearrange(out, "b s h d e -> b s d (h e)"))

    def _check_dtype(self, t: torch.Tensor, name: str) -> None:
        """Inputs in the dtype of the parameters (autocast, which casts the projections itself, excepted)."""
        weight_dtype = self.to_q.weight.dtype
        if t.dtype == weight_dtype or _autocast_enabled(t.device.type):
            return
        raise ValueError(
            f"DAGAttention: {name} has dtype {t.dtype} but the layer's parameters are {weight_dtype}; convert "
            f"one of them: layer.to({t.dtype}) (float64 runs on the reference backend) or {name}.to({weight_dtype})"
        )


def _autocast_enabled(device_type: str) -> bool:
    try:
        return bool(torch.is_autocast_enabled(device_type))
    except TypeError:  # torch < 2.4 takes no device type
        if device_type == "cpu":
            return bool(torch.is_autocast_cpu_enabled())
        return bool(torch.is_autocast_enabled())
