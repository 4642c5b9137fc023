"""Multi-head DAG attention as an ``nn.Module``: projections in, ``dag_attention`` over nodes, projection out.

Axis legend: b datasets, s rows of a dataset, d nodes, h heads, e head dim, c model dim (= h * e).
"""

from __future__ import annotations

import torch
from einops import rearrange
from torch import nn

from dag_attention._dispatch import BACKENDS
from dag_attention._memory import device_memory, format_bytes
from dag_attention.op import dag_attention


class DAGAttention(nn.Module):
    """Multi-head attention of every node over its parents (clipped softmax, see ``dag_attention``).

    dim: model width c, split into ``num_heads`` heads of ``dim // num_heads``; bias: biases of the four
    projections; backend: passed to ``dag_attention`` (``"auto"``, ``"reference"`` or ``"triton"``).
    The parameters (4 dim² + 4 dim numbers) are refused before allocation when they cannot fit in memory.
    """

    def __init__(self, dim: int, num_heads: int, *, bias: bool = True, backend: str = "auto") -> None:
        super().__init__()
        if isinstance(dim, bool) or not isinstance(dim, int) or dim < 1:
            raise ValueError(f"DAGAttention: dim must be a positive int, got {dim!r}")
        if isinstance(num_heads, bool) or not isinstance(num_heads, int) or num_heads < 1 or dim % num_heads:
            raise ValueError(
                f"DAGAttention: num_heads must be a positive int dividing dim = {dim}, got {num_heads!r}"
            )
        if not isinstance(bias, bool):
            raise ValueError(f"DAGAttention: bias must be True or False, got {bias!r}")
        if not isinstance(backend, str) or backend.lower() not in BACKENDS:
            raise ValueError(f"DAGAttention: backend must be one of {BACKENDS}, got {backend!r}")
        _check_parameter_memory(dim)
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
        if x.shape[2] == 0:
            raise ValueError(
                f"DAGAttention: x must hold at least one node (axis 2), got shape {tuple(x.shape)}"
            )
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
        elif context.shape[2] == 0:
            raise ValueError(
                f"DAGAttention: context must hold at least one node (axis 2), got shape {tuple(context.shape)}"
            )
        expected = (x.shape[0], x.shape[2], context.shape[2])
        if not isinstance(parents, torch.Tensor) or tuple(parents.shape) != expected:
            shape = tuple(parents.shape) if isinstance(parents, torch.Tensor) else type(parents).__name__
            keys = "" if context is x else f" and context of shape {tuple(context.shape)}"
            layout = "[B, d, d]" if context is x else "[B, d, d_k]"
            raise ValueError(
                f"DAGAttention: parents must have shape {layout} = {expected} for x of shape {tuple(x.shape)}"
                f"{keys}, got {shape}; parents[b, i, j] is true when node j is a parent of node i"
            )
        for name, t in (("x", x), ("context", context)):
            if name == "x" or context is not x:
                self._check_input(t, name)
        q = rearrange(self.to_q(x), "b s d (h e) -> b s h d e", h=self.num_heads)
        k, v = rearrange(self.to_kv(context), "b s d (two h e) -> two b s h d e", two=2, h=self.num_heads)
        out = dag_attention(q, k, v, parents, backend=self.backend)  # [b, s, h, d, e]
        return self.to_out(rearrange(out, "b s h d e -> b s d (h e)"))

    def _check_input(self, t: torch.Tensor, name: str) -> None:
        """A floating input on the parameters' device, in their dtype (autocast, which casts the projections
        itself, excepted)."""
        weight = self.to_q.weight
        if not t.is_floating_point():
            raise ValueError(
                f"DAGAttention: {name} must be a floating tensor, got dtype {t.dtype}; convert it with "
                f"{name}.to({weight.dtype})"
            )
        if t.device != weight.device:
            raise ValueError(
                f"DAGAttention: {name} is on {t.device} but the layer's parameters are on {weight.device}; "
                f"move one of them: layer.to({str(t.device)!r}) or {name}.to({str(weight.device)!r})"
            )
        weight_dtype = weight.dtype
        if t.dtype == weight_dtype or _autocast_enabled(t.device.type):
            return
        raise ValueError(
            f"DAGAttention: {name} has dtype {t.dtype} but the layer's parameters are {weight_dtype}; convert "
            f"one of them: layer.to({t.dtype}) (float64 runs on the reference backend) or {name}.to({weight_dtype})"
        )


def _check_parameter_memory(dim: int) -> None:
    """Refuse parameters that cannot fit in the memory of the device they would be created on."""
    device = _default_device()
    available = device_memory(device)
    needed = 4 * (dim * dim + dim) * torch.empty((), dtype=torch.get_default_dtype()).element_size()
    if available is not None and needed > available:
        raise ValueError(
            f"DAGAttention: dim = {dim} needs {format_bytes(needed)} of parameters (4 dim² + 4 dim numbers), more "
            f"than the {format_bytes(available)} that {device} has in all; use a smaller dim"
        )


def _default_device() -> torch.device:
    try:
        return torch.get_default_device()
    except AttributeError:  # torch < 2.3
        return torch.device("cpu")


def _autocast_enabled(device_type: str) -> bool:
    try:
        return bool(torch.is_autocast_enabled(device_type))
    except TypeError:  # torch < 2.4 takes no device type
        if device_type == "cpu":
            return bool(torch.is_autocast_cpu_enabled())
        return bool(torch.is_autocast_enabled())
