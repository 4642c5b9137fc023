"""The graph network's attention over nodes: plain (unmasked) attention, the node attention it plugs into the
shared alternating stack (``condfip.nn.layers.AlternatingStack``).

Unlike the Cond-FiP encoder, the graph is what this model predicts, so every node attends to every node;
only padded nodes are masked out as keys. Attention over nodes folds rows into the batch, as
``condfip.nn.layers.SampleAttention`` folds nodes, so that ``scaled_dot_product_attention`` gets 4-D tensors,
the shape its fused CPU kernel takes (5-D inputs fall back to the plain math path, about 6x slower on CPU).

Axis legend: b datasets, n rows (samples), m anchor rows, d nodes, h heads, e embedding.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from einops import rearrange, repeat
from torch import nn


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
