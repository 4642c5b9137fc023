"""Transformer pieces shared by both networks: MLP, attention over samples, the node block and the stack.

Axis legend: b datasets, n rows (samples), m anchor rows, d nodes, h heads, e embedding.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from einops import rearrange, repeat
from torch import nn


class MLP(nn.Module):
    def __init__(self, dim: int, hidden: int, out_dim: int | None = None) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, out_dim or dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(x)))


class SampleAttention(nn.Module):
    """Multi-head attention over rows, separately for every node; no mask but padding."""

    def __init__(self, dim: int, num_heads: int) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.to_q = nn.Linear(dim, dim)
        self.to_kv = nn.Linear(dim, 2 * dim)
        self.out = nn.Linear(dim, dim)

    def forward(
        self, x: torch.Tensor, memory: torch.Tensor, memory_mask: torch.Tensor | None
    ) -> torch.Tensor:
        """x: [b, n, d, e] queries; memory: [b, m, d, e] keys/values; memory_mask: [b, m] bool (True = real)."""
        d = x.shape[2]
        # fold nodes into the batch: 4-D inputs take PyTorch's fused CPU kernels (5-D falls back to the slow path)
        q = rearrange(self.to_q(x), "b n d (h e) -> (b d) h n e", h=self.num_heads)
        k, v = rearrange(self.to_kv(memory), "b m d (two h e) -> two (b d) h m e", two=2, h=self.num_heads)
        attn_mask = None
        if memory_mask is not None:
            attn_mask = repeat(memory_mask, "b m -> (b d) 1 1 m", d=d)  # same keys for every node and head
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask)  # [(b d), h, n, e]
        return self.out(rearrange(out, "(b d) h n e -> b n d (h e)", d=d))


class SampleBlock(nn.Module):
    """Pre-LN transformer block attending over rows (to the anchor rows' states)."""

    def __init__(self, dim: int, num_heads: int, mlp_dim: int) -> None:
        super().__init__()
        self.norm_x = nn.LayerNorm(dim)
        self.attention = SampleAttention(dim, num_heads)
        self.norm_mlp = nn.LayerNorm(dim)
        self.mlp = MLP(dim, mlp_dim)

    def forward(
        self, x: torch.Tensor, memory: torch.Tensor, memory_mask: torch.Tensor | None
    ) -> torch.Tensor:
        """x: [b, n, d, e]; memory: [b, m, d, e], the anchors' input to this block (x itself for self-attention)."""
        x = x + self.attention(self.norm_x(x), self.norm_x(memory), memory_mask)
        return x + self.mlp(self.norm_mlp(x))


class NodeBlock(nn.Module):
    """Pre-LN transformer block with attention over nodes; the attention is pluggable.

    ``attention(x, nodes)`` maps [b, n, d, e] to [b, n, d, e] given what the nodes may see: DAG attention
    (each node sees its parents, ``nodes`` = parents [b, d, d] bool) in the Cond-FiP network, plain attention
    over all real nodes (``nodes`` = node mask [b, d] bool or None) in the graph network.
    """

    def __init__(self, dim: int, mlp_dim: int, attention: nn.Module) -> None:
        super().__init__()
        self.norm_attention = nn.LayerNorm(dim)
        self.attention = attention
        self.norm_mlp = nn.LayerNorm(dim)
        self.mlp = MLP(dim, mlp_dim)

    def forward(self, x: torch.Tensor, nodes: torch.Tensor | None) -> torch.Tensor:
        """x: [b, n, d, e]; nodes: what the node attention takes (see the class docstring)."""
        x = x + self.attention(self.norm_attention(x), nodes)
        return x + self.mlp(self.norm_mlp(x))


NodeAttentionFactory = Callable[[int, int], nn.Module]  # (dim, num_heads) -> attention over nodes


class AlternatingStack(nn.Module):
    """Pairs of (attention over samples, attention over nodes) blocks.

    Attention over samples takes its keys and values from the anchor rows. ``anchor_states`` runs the
    anchors alone (plain self-attention) and records each sample block's input; ``forward`` then runs any
    rows against those records, so rows can be processed in chunks with identical results.
    ``node_attention(dim, num_heads)`` builds the attention over nodes of every node block.
    """

    def __init__(
        self, dim: int, num_heads: int, mlp_dim: int, num_pairs: int, node_attention: NodeAttentionFactory
    ) -> None:
        super().__init__()
        self.sample_blocks = nn.ModuleList(SampleBlock(dim, num_heads, mlp_dim) for _ in range(num_pairs))
        self.node_blocks = nn.ModuleList(
            NodeBlock(dim, mlp_dim, node_attention(dim, num_heads)) for _ in range(num_pairs)
        )

    def anchor_states(
        self, anchors: torch.Tensor, nodes: torch.Tensor | None, anchor_mask: torch.Tensor | None
    ) -> tuple[list[torch.Tensor], torch.Tensor]:
        """anchors: [b, m, d, e] -> (the input of every sample block, each [b, m, d, e]; the anchors' output
        [b, m, d, e], which is what ``forward`` gives for the anchor rows)."""
        states = []
        x = anchors
        for sample_block, node_block in zip(self.sample_blocks, self.node_blocks, strict=True):
            states.append(x)
            x = node_block(sample_block(x, x, anchor_mask), nodes)
        return states, x

    def forward(
        self,
        x: torch.Tensor,
        nodes: torch.Tensor | None,
        anchor_states: list[torch.Tensor],
        anchor_mask: torch.Tensor | None,
    ) -> torch.Tensor:
        """x: [b, n, d, e] rows attending to the recorded anchors -> [b, n, d, e]."""
        for sample_block, node_block, memory in zip(
            self.sample_blocks, self.node_blocks, anchor_states, strict=True
        ):
            x = node_block(sample_block(x, memory, anchor_mask), nodes)
        return x
