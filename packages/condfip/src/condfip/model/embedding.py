"""The dataset embedding: encoder tokens -> more alternating blocks -> max over rows -> (C, P, c).

The max over rows, computed chunk by chunk, is ``condfip.nn.pooling``.

Axis legend: b datasets, n rows, d nodes, e embedding.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from condfip.model.config import CondFiPConfig
from condfip.nn.layers import AlternatingStack
from dag_attention import DAGAttention


@dataclass
class DatasetEmbedding:
    """What the decoder is conditioned on, per dataset and node; each field is [b, d, e]."""

    scale: torch.Tensor  # C: multiplies a value in the value embedding z * C + P
    position: torch.Tensor  # P: node identity inside the dataset; also the decoder's initial queries
    condition: torch.Tensor  # c: drives the adaLN modulation of every decoder block

    def index(self, rows: slice | torch.Tensor) -> DatasetEmbedding:
        """Select datasets along the batch axis."""
        return DatasetEmbedding(self.scale[rows], self.position[rows], self.condition[rows])


class EmbeddingHead(nn.Module):
    """Alternating blocks over encoder tokens whose max over rows gives the dataset embedding."""

    def __init__(self, config: CondFiPConfig) -> None:
        super().__init__()
        self.projection = nn.Linear(config.dim, config.dim)
        self.stack = AlternatingStack(
            config.dim, config.num_heads, config.mlp_dim, config.embedding_pairs, node_attention=DAGAttention
        )
        self.norm = nn.LayerNorm(config.dim)
        self.to_scale = nn.Sequential(nn.Linear(config.dim, config.dim), nn.LayerNorm(config.dim))
        self.to_position = nn.Sequential(nn.Linear(config.dim, config.dim), nn.LayerNorm(config.dim))
        self.to_condition = nn.Sequential(nn.Linear(config.dim, config.dim), nn.LayerNorm(config.dim))

    def anchor_states(
        self, anchor_tokens: torch.Tensor, parents: torch.Tensor, anchor_mask: torch.Tensor | None
    ) -> tuple[list[torch.Tensor], torch.Tensor]:
        """anchor_tokens: the anchors' encoder tokens [b, m, d, e] -> (per-block anchor states, the anchors'
        normalized features [b, m, d, e], as ``row_features`` gives them)."""
        states, output = self.stack.anchor_states(self.projection(anchor_tokens), parents, anchor_mask)
        return states, self.norm(output)

    def row_features(
        self,
        tokens: torch.Tensor,
        parents: torch.Tensor,
        anchor_states: list[torch.Tensor],
        anchor_mask: torch.Tensor | None,
    ) -> torch.Tensor:
        """Encoder tokens [b, n, d, e] -> normalized features [b, n, d, e], to be max-pooled over rows."""
        return self.norm(self.stack(self.projection(tokens), parents, anchor_states, anchor_mask))

    def finish(self, pooled: torch.Tensor) -> DatasetEmbedding:
        """pooled: [b, d, e], the max over rows of ``row_features`` -> the embedding."""
        return DatasetEmbedding(self.to_scale(pooled), self.to_position(pooled), self.to_condition(pooled))
