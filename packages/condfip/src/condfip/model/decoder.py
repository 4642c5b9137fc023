"""The conditional fixed-point decoder: ``F_hat(z)`` for any rows ``z`` given a dataset embedding.

Axis legend: b datasets, n rows, d nodes, e embedding.
"""

from __future__ import annotations

import torch
from einops import rearrange
from torch import nn

from condfip.model.config import CondFiPConfig
from condfip.model.embedding import DatasetEmbedding
from condfip.model.layers import AdaLNBlock


class ConditionalDecoder(nn.Module):
    """Rows are independent given the embedding; node ``i``'s output sees only the values of its parents."""

    def __init__(self, config: CondFiPConfig) -> None:
        super().__init__()
        self.value_norm = nn.LayerNorm(config.dim)
        self.blocks = nn.ModuleList(
            AdaLNBlock(config.dim, config.num_heads, config.mlp_dim) for _ in range(config.decoder_blocks)
        )
        self.out_norm = nn.LayerNorm(config.dim)
        self.out = nn.Linear(config.dim, 1)

    def forward(self, z: torch.Tensor, parents: torch.Tensor, embedding: DatasetEmbedding) -> torch.Tensor:
        """z: [b, n, d] -> F_hat(z): [b, n, d]."""
        scale = rearrange(embedding.scale, "b d e -> b 1 d e")
        position = rearrange(embedding.position, "b d e -> b 1 d e")
        values = self.value_norm(rearrange(z, "b n d -> b n d 1") * scale + position)  # [b, n, d, e]
        h = position.expand_as(values)  # queries start from the node positions
        for block in self.blocks:
            h = block(h, values, parents, embedding.condition)
        return rearrange(self.out(self.out_norm(h)), "b n d 1 -> b n d")
