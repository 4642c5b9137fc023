"""The dataset encoder: per-scalar embedding, alternating attention over samples and over the DAG, and a
head predicting each node's mechanism value ``f(x_pa) = X - N``.

Axis legend: b datasets, n rows, m anchor rows, d nodes, e embedding.
"""

from __future__ import annotations

import torch
from einops import rearrange
from torch import nn

from condfip.model.config import CondFiPConfig
from condfip.nn.layers import MLP, AlternatingStack
from dag_attention import DAGAttention


class DatasetEncoder(nn.Module):
    def __init__(self, config: CondFiPConfig) -> None:
        super().__init__()
        self.value_embedding = nn.Linear(1, config.dim)  # no node or position embedding: equivariant
        self.stack = AlternatingStack(
            config.dim, config.num_heads, config.mlp_dim, config.encoder_pairs, node_attention=DAGAttention
        )
        self.head_norm = nn.LayerNorm(config.dim)
        self.head = MLP(config.dim, config.mlp_dim, 1)

    def embed_values(self, x: torch.Tensor) -> torch.Tensor:
        """x: [b, n, d] -> [b, n, d, e]."""
        return self.value_embedding(rearrange(x, "b n d -> b n d 1"))

    def anchor_states(
        self, anchors: torch.Tensor, parents: torch.Tensor, anchor_mask: torch.Tensor | None
    ) -> tuple[list[torch.Tensor], torch.Tensor]:
        """anchors: [b, m, d] -> (per-block anchor states, the anchors' output tokens [b, m, d, e])."""
        return self.stack.anchor_states(self.embed_values(anchors), parents, anchor_mask)

    def tokens(
        self,
        x: torch.Tensor,
        parents: torch.Tensor,
        anchor_states: list[torch.Tensor],
        anchor_mask: torch.Tensor | None,
    ) -> torch.Tensor:
        """x: [b, n, d] rows attending to the anchors -> tokens [b, n, d, e]."""
        return self.stack(self.embed_values(x), parents, anchor_states, anchor_mask)

    def predict(self, tokens: torch.Tensor) -> torch.Tensor:
        """tokens [b, n, d, e] -> predicted mechanism values [b, n, d]."""
        return rearrange(self.head(self.head_norm(tokens)), "b n d 1 -> b n d")
