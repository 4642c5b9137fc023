"""The conditional fixed-point decoder: ``F_hat(z)`` for any rows ``z`` given a dataset embedding.

Axis legend: b datasets, n rows, d nodes, e embedding.
"""

from __future__ import annotations

import torch
from einops import rearrange
from torch import nn

from condfip.model.config import CondFiPConfig
from condfip.model.embedding import DatasetEmbedding
from condfip.nn.layers import MLP
from dag_attention import DAGAttention


class AdaLNBlock(nn.Module):
    """Decoder block: DAG attention and MLP, both modulated per node by the dataset condition (DiT-style)."""

    def __init__(self, dim: int, num_heads: int, mlp_dim: int) -> None:
        super().__init__()
        self.norm_query = nn.LayerNorm(dim, elementwise_affine=False)
        self.norm_mlp = nn.LayerNorm(dim, elementwise_affine=False)
        self.attention = DAGAttention(dim, num_heads)
        self.mlp = MLP(dim, mlp_dim)
        self.modulation = nn.Sequential(nn.SiLU(), nn.Linear(dim, 6 * dim))
        nn.init.zeros_(self.modulation[1].weight)  # every block starts as the identity
        nn.init.zeros_(self.modulation[1].bias)

    def forward(
        self, h: torch.Tensor, values: torch.Tensor, parents: torch.Tensor, condition: torch.Tensor
    ) -> torch.Tensor:
        """h: [b, n, d, e] queries; values: [b, n, d, e] keys/values; condition: [b, d, e] -> [b, n, d, e]."""
        modulation = rearrange(self.modulation(condition), "b d (six e) -> six b 1 d e", six=6)
        shift_attn, scale_attn, gate_attn, shift_mlp, scale_mlp, gate_mlp = modulation
        query = self.norm_query(h) * (1 + scale_attn) + shift_attn
        h = h + gate_attn * self.attention(query, parents, context=values)
        hidden = self.norm_mlp(h) * (1 + scale_mlp) + shift_mlp
        return h + gate_mlp * self.mlp(hidden)


class ConditionalDecoder(nn.Module):
    """Rows are independent given the embedding; node ``i``'s output sees only the values of its parents."""

    def __init__(self, config: CondFiPConfig) -> None:
        super().__init__()
        self.value_norm = nn.LayerNorm(config.dim) if config.decoder_value_norm else nn.Identity()
        mlp_dim = config.decoder_mlp_dim or config.mlp_dim
        self.blocks = nn.ModuleList(
            AdaLNBlock(config.dim, config.num_heads, mlp_dim) for _ in range(config.decoder_blocks)
        )
        self.out_norm = nn.LayerNorm(config.dim)
        self.out = nn.Linear(config.dim, 1)

    def forward(
        self,
        z: torch.Tensor,
        parents: torch.Tensor,
        embedding: DatasetEmbedding,
        nodes: torch.Tensor | None = None,
        *,
        return_features: bool = False,
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """z: [b, n, d] -> F_hat(z): [b, n, d], or [b, n, k] for the query nodes ``nodes`` ([k] indices) only.

        Output ``i`` reads only the values of ``i``'s parents, so a subset of nodes is evaluated from the
        value embeddings of their parents alone (the same numbers as the full call, at a fraction of its cost).
        ``return_features``: also return the readout features, the states after every block through the output
        norm, concatenated: [b, n, d or k, blocks * e] (``condfip.model.readout``).
        """
        scale, position, condition = embedding.scale, embedding.position, embedding.condition  # [b, d, e]
        if nodes is not None:
            query_parents = parents[:, nodes]  # [b, k, d]
            keys = query_parents.any(dim=1).any(dim=0).nonzero().flatten()  # nodes read by any query node
            if keys.numel() == 0:  # roots only: attention gives exact zeros whatever the key
                keys = nodes[:1]
            z, scale, key_position = z[:, :, keys], scale[:, keys], position[:, keys]
            parents = query_parents[:, :, keys]  # [b, k, d_keys]
            position, condition = position[:, nodes], condition[:, nodes]
        else:
            key_position = position
        values = self.value_norm(
            rearrange(z, "b n d -> b n d 1") * rearrange(scale, "b d e -> b 1 d e")
            + rearrange(key_position, "b d e -> b 1 d e")
        )  # [b, n, d_keys, e]
        # A key whose value embedding is not finite (z beyond what float32 carries) must reach only its
        # children: attention weighs every key, and a zero weight times inf or NaN is NaN. Such keys enter as 0,
        # and the outputs of the nodes that read one are NaN.
        broken = ~torch.isfinite(values).all(dim=-1)  # [b, n, d_keys]
        values = values.masked_fill(broken[..., None], 0.0)
        reads_broken = torch.einsum("bnj,bij->bni", broken.to(values.dtype), parents.to(values.dtype)) > 0
        h = rearrange(position, "b d e -> b 1 d e").expand(-1, z.shape[1], -1, -1)  # queries: node positions
        features = []
        for block in self.blocks:
            h = block(h, values, parents, condition)
            if return_features:
                features.append(self.out_norm(h).masked_fill(reads_broken[..., None], float("nan")))
        out = rearrange(self.out(self.out_norm(h)), "b n d 1 -> b n d").masked_fill(
            reads_broken, float("nan")
        )
        return (out, torch.cat(features, dim=-1)) if return_features else out
