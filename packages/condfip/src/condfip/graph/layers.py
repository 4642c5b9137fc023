"""Transformer pieces of the graph model: plain (unmasked) attention over nodes, and the alternating stack.

Unlike the Cond-FiP encoder, the graph is what this model predicts, so every node attends to every node;
only padded nodes are masked out as keys. Attention over samples is the encoder's own ``SampleBlock`` (rows
attend to anchor rows). Attention over nodes folds rows into the batch, as ``SampleAttention`` folds nodes,
so that ``scaled_dot_product_attention`` gets 4-D tensors, the shape its fused CPU kernel takes (5-D inputs
fall back to the plain math path, about 6x slower on CPU).

Axis legend: b datasets, n rows (samples), m anchor rows, d nodes, h heads, e embedding.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from einops import rearrange, repeat
from torch import nn

from condfip.model.layers import MLP, SampleBlock


class NodeAttention(nn.Module):
    """Multi-head self-attention over the nodes of every row; ``node_mask`` hides padded nodes as keys."""

    def __init__(self, dim: int, num_heads: int) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.to_qkv = nn.Linear(dim, 3 * dim)
        self.out = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, node_mask: torch.Tensor | None) -> torch.Tensor:
        """x: [b, n, d, e]; node_mask: [b, d] bool (True = real node) -> [b, n, d, e]."""
        n = x.shape[1]
        q, k, v = rearrange(
            self.to_qkv(x), "b n d (three h e) -> three (b n) h d e", three=3, h=self.num_heads
        )
        attn_mask = None
        if node_mask is not None:
            attn_mask = repeat(node_mask, "b d -> (b n) 1 1 d", n=n)  # broadcast over heads and query nodes
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask)  # [(b n), h, d, e]
        return self.out(rearrange(out, "(b n) h d e -> b n d (h e)", n=n))


class NodeAttentionBlock(nn.Module):
    """Pre-LN transformer block with unmasked attention over nodes."""

    def __init__(self, dim: int, num_heads: int, mlp_dim: int) -> None:
        super().__init__()
        self.norm_attention = nn.LayerNorm(dim)
        self.attention = NodeAttention(dim, num_heads)
        self.norm_mlp = nn.LayerNorm(dim)
        self.mlp = MLP(dim, mlp_dim)

    def forward(self, x: torch.Tensor, node_mask: torch.Tensor | None) -> torch.Tensor:
        """x: [b, n, d, e]; node_mask: [b, d] bool or None."""
        x = x + self.attention(self.norm_attention(x), node_mask)
        return x + self.mlp(self.norm_mlp(x))


class GraphStack(nn.Module):
    """Pairs of (attention over samples, attention over nodes) blocks.

    As ``condfip.model.layers.AlternatingStack``, with plain attention over nodes in place of DAG attention:
    ``anchor_states`` runs the anchor rows alone and records each sample block's input; ``forward`` runs any
    rows against those records, so rows can be processed in chunks with identical results.
    """

    def __init__(self, dim: int, num_heads: int, mlp_dim: int, num_layers: int) -> None:
        super().__init__()
        self.sample_blocks = nn.ModuleList(SampleBlock(dim, num_heads, mlp_dim) for _ in range(num_layers))
        self.node_blocks = nn.ModuleList(
            NodeAttentionBlock(dim, num_heads, mlp_dim) for _ in range(num_layers)
        )

    def anchor_states(
        self, anchors: torch.Tensor, node_mask: torch.Tensor | None, anchor_mask: torch.Tensor | None
    ) -> tuple[list[torch.Tensor], torch.Tensor]:
        """anchors: [b, m, d, e] -> (the input of every sample block, each [b, m, d, e]; the anchors' output
        [b, m, d, e], which is what ``forward`` gives for the anchor rows)."""
        states = []
        x = anchors
        for sample_block, node_block in zip(self.sample_blocks, self.node_blocks, strict=True):
            states.append(x)
            x = node_block(sample_block(x, x, anchor_mask), node_mask)
        return states, x

    def forward(
        self,
        x: torch.Tensor,
        node_mask: torch.Tensor | None,
        anchor_states: list[torch.Tensor],
        anchor_mask: torch.Tensor | None,
    ) -> torch.Tensor:
        """x: [b, n, d, e] rows attending to the recorded anchors -> [b, n, d, e]."""
        for sample_block, node_block, memory in zip(
            self.sample_blocks, self.node_blocks, anchor_states, strict=True
        ):
            x = node_block(sample_block(x, memory, anchor_mask), node_mask)
        return x
