"""Launchers and the autograd function around the Triton kernels (private; importing it imports Triton).

Axis legend: b datasets, s rows of a dataset, h heads, d nodes, e head dim.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import triton

from dag_attention._dispatch import interpreter_enabled
from dag_attention._triton_kernels import (
    _backward_dkdv_kernel,
    _backward_dq_kernel,
    _backward_single_block_kernel,
    _forward_kernel,
)

LOG2_E = 1.4426950408889634
TILE_POSITIONS = 64  # packed (row, node) positions per tile side on a GPU
MAX_GRID_DATASETS = 65535  # CUDA's limit on a grid's third axis, which holds the datasets: launched in chunks


@dataclass(frozen=True)
class TileConfig:
    """How the work is cut: PACK rows of one dataset per program, blocks of BLOCK_NODES nodes."""

    pack: int
    block_nodes: int
    block_e: int
    num_warps: int

    @property
    def positions(self) -> int:
        return self.pack * self.block_nodes


def choose_config(
    num_rows: int,
    num_nodes: int,
    head_dim: int,
    *,
    dtype: torch.dtype = torch.bfloat16,
    pack: int | None = None,
    block_nodes: int | None = None,
    num_warps: int | None = None,
) -> TileConfig:
    """Tile sizes for d nodes, e head dim, S * H rows per dataset and the input dtype.

    A tile side holds TILE_POSITIONS packed (row, node) positions (half that for float32 inputs with e > 32
    or any input with e > 128, which would spill registers otherwise); d up to that fits one block and
    several rows share it, larger d is tiled. ``pack``, ``block_nodes`` and ``num_warps`` override the
    heuristic (powers of two; ``pack * block_nodes >= 16`` for ``tl.dot``): the tests use that to run the
    multi-block code paths on tiny inputs, the benchmark to sweep tile shapes. Not yet tuned on hardware.
    """
    block_e = max(16, triton.next_power_of_2(head_dim))
    positions = TILE_POSITIONS
    if block_e > 128 or (dtype == torch.float32 and block_e > 32):
        positions //= 2
    if block_nodes is None:
        block_nodes = min(max(16, triton.next_power_of_2(num_nodes)), positions)
    if pack is None:
        if interpreter_enabled():  # the interpreter pays per program: as few, large programs as possible
            pack = max(1, 256 // block_nodes)
        else:
            pack = max(1, positions // block_nodes)
        pack = min(pack, max(1, triton.next_power_of_2(num_rows)))
    for name, value in (("pack", pack), ("block_nodes", block_nodes)):
        if value < 1 or value & (value - 1):
            raise ValueError(f"dag_attention triton: {name} must be a power of two, got {value}")
    if pack * block_nodes < 16:
        raise ValueError(
            f"dag_attention triton: pack * block_nodes must be at least 16, got {pack * block_nodes}"
        )
    if num_warps is None:
        num_warps = 4 if pack * block_nodes * max(block_e, pack * block_nodes) <= 32 * 32 else 8
    if num_warps not in (1, 2, 4, 8, 16):
        raise ValueError(f"dag_attention triton: num_warps must be 1, 2, 4, 8 or 16, got {num_warps}")
    return TileConfig(pack=pack, block_nodes=block_nodes, block_e=block_e, num_warps=num_warps)


def _strides(t: torch.Tensor) -> tuple[int, int, int, int]:
    """(b, s, h, d) strides of a [B, S, H, d, e] tensor with unit stride on e."""
    return t.stride(0), t.stride(1), t.stride(2), t.stride(3)


def _unit_last_stride(t: torch.Tensor) -> torch.Tensor:
    return t if t.stride(-1) == 1 and t.shape[-1] > 0 else t.contiguous()


def _precision(dtype: torch.dtype) -> str | None:
    # float32 inputs get full float32 products (as torch's matmul by default), not TF32; None: the default
    return "ieee" if dtype == torch.float32 else None


def _grid(config: TileConfig, batch: int, num_rows: int, num_nodes: int) -> tuple[int, int, int]:
    return (triton.cdiv(num_rows, config.pack), triton.cdiv(num_nodes, config.block_nodes), batch)


def _dataset_chunks(batch: int) -> list[slice]:
    """Slices of at most MAX_GRID_DATASETS datasets covering ``batch``: one launch each."""
    return [
        slice(start, min(start + MAX_GRID_DATASETS, batch)) for start in range(0, batch, MAX_GRID_DATASETS)
    ]


def _forward(q, k, v, parents_u8, scale: float, config: TileConfig):
    out = torch.empty_like(q)  # keeps q's layout (e.g. [B, S, d, H, e] memory from a head split)
    lse = torch.empty(q.shape[:4], device=q.device, dtype=torch.float32)
    for c in _dataset_chunks(q.shape[0]):  # views: the kernels take strides and a base pointer
        _forward_chunk(q[c], k[c], v[c], out[c], lse[c], parents_u8[c], scale, config)
    return out, lse


def _forward_chunk(q, k, v, out, lse, parents_u8, scale: float, config: TileConfig) -> None:
    batch, rows, heads, num_nodes, head_dim = q.shape
    _forward_kernel[_grid(config, batch, rows * heads, num_nodes)](
        q, k, v, out, lse, parents_u8,
        *_strides(q), *_strides(k), *_strides(v), *_strides(out), *parents_u8.stride(),
        heads, rows * heads, num_nodes, head_dim,
        scale * LOG2_E,
        PACK=config.pack, BLOCK_M=config.block_nodes, BLOCK_N=config.block_nodes, BLOCK_E=config.block_e,
        PRECISION=_precision(q.dtype), num_warps=config.num_warps,
    )  # fmt: skip


def _backward(q, k, v, out, grad_out, lse, parents_u8, scale: float, config: TileConfig):
    dq, dk, dv = torch.empty_like(q), torch.empty_like(k), torch.empty_like(v)
    for c in _dataset_chunks(q.shape[0]):
        _backward_chunk(
            q[c], k[c], v[c], out[c], grad_out[c], lse[c], parents_u8[c], dq[c], dk[c], dv[c], scale, config
        )
    return dq, dk, dv


def _backward_chunk(q, k, v, out, grad_out, lse, parents_u8, dq, dk, dv, scale: float, config: TileConfig):
    batch, rows, heads, num_nodes, head_dim = q.shape
    grid = _grid(config, batch, rows * heads, num_nodes)
    shape_args = (heads, rows * heads, num_nodes, head_dim, scale * LOG2_E, scale)
    if grid[1] == 1:  # one block of nodes: all three gradients in one pass
        _backward_single_block_kernel[grid](
            q, k, v, grad_out, dq, dk, dv, lse, parents_u8,
            *_strides(q), *_strides(k), *_strides(v), *_strides(grad_out),
            *_strides(dq), *_strides(dk), *_strides(dv), *parents_u8.stride(),
            *shape_args,
            PACK=config.pack, BLOCK_D=config.block_nodes, BLOCK_E=config.block_e,
            PRECISION=_precision(q.dtype), num_warps=config.num_warps,
        )  # fmt: skip
        return
    delta = torch.empty_like(lse)  # [B, S, H, d]: dO_i . O_i where the softmax is normalized, else 0
    blocks = dict(
        PACK=config.pack, BLOCK_M=config.block_nodes, BLOCK_N=config.block_nodes, BLOCK_E=config.block_e
    )
    _backward_dq_kernel[grid](
        q, k, v, out, grad_out, dq, lse, delta, parents_u8,
        *_strides(q), *_strides(k), *_strides(v), *_strides(out), *_strides(grad_out), *_strides(dq),
        *parents_u8.stride(),
        *shape_args,
        **blocks, PRECISION=_precision(q.dtype), num_warps=config.num_warps,
    )  # fmt: skip
    _backward_dkdv_kernel[grid](
        q, k, v, grad_out, dk, dv, lse, delta, parents_u8,
        *_strides(q), *_strides(k), *_strides(v), *_strides(grad_out), *_strides(dk), *_strides(dv),
        *parents_u8.stride(),
        *shape_args,
        **blocks, PRECISION=_precision(q.dtype), num_warps=config.num_warps,
    )  # fmt: skip


class DAGAttentionFunction(torch.autograd.Function):
    """Fused forward (saves only the clipped log-sum-exp per row and node) and fused backward."""

    @staticmethod
    def forward(ctx, q, k, v, parents, scale: float, config: TileConfig):
        q, k, v = (_unit_last_stride(t) for t in (q, k, v))
        parents_u8 = parents.view(torch.uint8)  # same bytes; Triton reads it as uint8
        out, lse = _forward(q, k, v, parents_u8, scale, config)
        ctx.save_for_backward(q, k, v, out, lse, parents_u8)
        ctx.scale = scale
        ctx.config = config
        return out

    @staticmethod
    def backward(ctx, grad_out):
        q, k, v, out, lse, parents_u8 = ctx.saved_tensors
        grad_out = _unit_last_stride(grad_out)  # e.g. the stride-0 gradient of out.sum()
        dq, dk, dv = _backward(q, k, v, out, grad_out, lse, parents_u8, ctx.scale, ctx.config)
        return dq, dk, dv, None, None, None


def dag_attention_triton(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    parents: torch.Tensor,
    scale: float,
    *,
    pack: int | None = None,
    block_nodes: int | None = None,
    num_warps: int | None = None,
) -> torch.Tensor:
    """The Triton path of ``dag_attention`` on validated [B, S, H, d, e] inputs (see ``choose_config``)."""
    batch, rows, heads, num_nodes, head_dim = q.shape
    if q.numel() == 0:  # nothing to launch; keep the autograd graph through the reference
        from dag_attention.reference import dag_attention_reference

        return dag_attention_reference(q, k, v, parents, scale)
    if not math.isfinite(scale):
        raise ValueError(f"dag_attention triton: scale must be finite, got {scale}")
    config = choose_config(
        rows * heads,
        num_nodes,
        head_dim,
        dtype=q.dtype,
        pack=pack,
        block_nodes=block_nodes,
        num_warps=num_warps,
    )
    return DAGAttentionFunction.apply(q, k, v, parents, scale, config)
