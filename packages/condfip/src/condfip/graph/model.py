"""The amortized graph model: a table in, the probability of every edge ``i -> j`` out (AVICI-style).

Every scalar is embedded alone (no node or position embedding, so the model is permutation equivariant in
the nodes); alternating attention over samples and over nodes mixes them; a max over rows gives one vector
per node; two projections ``u_i`` (as a cause) and ``v_i`` (as an effect) give the edge logit
``u_i . v_j / sqrt(e) + bias`` for ``i -> j``. With ``config.pair_statistics``, an MLP over the pair's
statistics (``condfip.graph.statistics``: correlations, partial correlations, nonlinear regression evidence)
adds its output to that logit: a small network learns far faster from those than from raw rows alone.
The diagonal is excluded (logit -inf, probability 0).

Axis legend: b datasets, n rows, m anchor rows, d nodes, e embedding.
Inputs are standardized per dataset; ``sample_mask[b, n]`` is True for real rows (padding rows come last),
``node_mask[b, d]`` True for real nodes (padded nodes get probability 0 and never influence real ones).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch
from einops import einsum, rearrange
from torch import nn

from condfip.graph.config import GraphModelConfig
from condfip.graph.layers import GraphStack
from condfip.graph.statistics import NUM_PAIR_FEATURES, pair_statistics
from condfip.model.anchors import anchor_indices, gather_rows


def pair_mlp(width: int, hidden_layers: int) -> nn.Sequential:
    """The pair-statistics MLP: NUM_PAIR_FEATURES -> ``hidden_layers`` x (Linear, GELU) of ``width`` -> 1."""
    layers: list[nn.Module] = []
    features = NUM_PAIR_FEATURES
    for _ in range(hidden_layers):
        layers += [nn.Linear(features, width), nn.GELU()]
        features = width
    return nn.Sequential(*layers, nn.Linear(features, 1))


class GraphModel(nn.Module):
    def __init__(self, config: GraphModelConfig) -> None:
        super().__init__()
        self.config = config
        self.training_recipe: dict[str, Any] = {}  # filled by from_pretrained
        self.inference: dict[str, Any] = {}  # config.json "inference": the default threshold (calibration)
        self.value_embedding = nn.Linear(1, config.dim)
        self.stack = GraphStack(config.dim, config.num_heads, config.mlp_dim, config.num_layers)
        self.norm = nn.LayerNorm(config.dim)
        self.to_cause = nn.Sequential(nn.LayerNorm(config.dim), nn.Linear(config.dim, config.dim))  # u
        self.to_effect = nn.Sequential(nn.LayerNorm(config.dim), nn.Linear(config.dim, config.dim))  # v
        self.edge_bias = nn.Parameter(torch.tensor(float(config.edge_bias_init)))
        self.pair_head = None
        if config.pair_statistics:
            self.pair_head = pair_mlp(config.pair_mlp_dim, config.pair_mlp_layers)
            # The attention channel starts silent (v = 0, so u . v = 0): a new model predicts from the pair
            # statistics alone, and a pair head trained first (``--pairs-only``) keeps its logits when the
            # whole model continues from it.
            nn.init.zeros_(self.to_effect[1].weight)
            nn.init.zeros_(self.to_effect[1].bias)

    @property
    def trained_max_nodes(self) -> int | None:
        """The largest node count of the training data (from the checkpoint's recipe), None when unknown."""
        counts = self.training_recipe.get("node_counts")
        return max(counts) if counts else None

    @property
    def default_threshold(self) -> float:
        """The edge threshold of the DAG rule when none is given: the calibrated one of the checkpoint
        (``condfip.graph.calibration``), else 0.5."""
        return float(self.inference.get("threshold", 0.5))

    def node_features(
        self,
        data: torch.Tensor,
        *,
        sample_mask: torch.Tensor | None = None,
        node_mask: torch.Tensor | None = None,
        chunk_size: int | None = None,
    ) -> torch.Tensor:
        """data: [b, n, d] -> per-node features [b, d, e], the max over rows computed chunk by chunk.

        Every row attends only to the anchor rows, so the result does not depend on ``chunk_size``.
        """
        if chunk_size is not None and chunk_size < 1:
            raise ValueError(f"chunk_size must be a positive number of rows or None, got {chunk_size}")
        b, n, _ = data.shape
        indices, anchor_mask = anchor_indices(n, self.config.num_anchor_rows, sample_mask, b, data.device)
        anchors = self._embed(gather_rows(data, indices))  # [b, m, d, e]
        states, anchor_output = self.stack.anchor_states(anchors, node_mask, anchor_mask)
        anchor_features = self.norm(anchor_output)  # the anchors' features come out of their own pass
        if anchor_mask is not None:  # datasets with fewer real rows than anchors: those slots never win
            anchor_features = anchor_features.masked_fill(~anchor_mask[:, :, None, None], float("-inf"))
        pooled = anchor_features.amax(dim=1)  # [b, d, e]
        rows, row_mask = data, sample_mask
        if sample_mask is None:  # the same anchor rows in every dataset: pool the other rows only
            others = torch.ones(n, dtype=torch.bool, device=data.device)
            others[indices[0]] = False
            rows = data[:, others]
        step = rows.shape[1] if chunk_size is None else chunk_size
        for start in range(0, rows.shape[1], max(step, 1)):
            part = rows[:, start : start + step]  # [b, n', d]
            features = self.norm(self.stack(self._embed(part), node_mask, states, anchor_mask))
            if row_mask is not None:  # padding rows never win the max
                real = row_mask[:, start : start + step, None, None]  # [b, n', 1, 1]
                features = features.masked_fill(~real, float("-inf"))
            pooled = torch.maximum(pooled, features.amax(dim=1))
        return pooled

    def _embed(self, x: torch.Tensor) -> torch.Tensor:
        """x: [b, n, d] -> [b, n, d, e]."""
        return self.value_embedding(rearrange(x, "b n d -> b n d 1"))

    def edge_logits(
        self,
        data: torch.Tensor,
        *,
        sample_mask: torch.Tensor | None = None,
        node_mask: torch.Tensor | None = None,
        chunk_size: int | None = None,
    ) -> torch.Tensor:
        """data: [b, n, d] -> logits [b, d, d] (float32) of the edges ``i -> j``; -inf on the diagonal and on
        pairs with a padded node."""
        pooled = self.node_features(data, sample_mask=sample_mask, node_mask=node_mask, chunk_size=chunk_size)
        cause = self.to_cause(pooled).float()  # [b, d, e]: u_i
        effect = self.to_effect(pooled).float()  # [b, d, e]: v_j
        logits = einsum(cause, effect, "b i e, b j e -> b i j") / math.sqrt(self.config.dim)
        logits = logits + self.edge_bias.float()
        if self.pair_head is not None:
            logits = logits + self._pair_channel(data, sample_mask, node_mask, chunk_size)
        return logits.masked_fill(
            ~allowed_pairs(node_mask, data.shape[0], data.shape[-1], data.device), float("-inf")
        )

    def pair_logits(
        self,
        data: torch.Tensor,
        *,
        sample_mask: torch.Tensor | None = None,
        node_mask: torch.Tensor | None = None,
        chunk_size: int | None = None,
    ) -> torch.Tensor:
        """The logits without the attention channel, ``pair_head(statistics) + bias``: [b, n, d] -> [b, d, d]
        (-inf on the diagonal and padded pairs). What ``condfip train graph --pairs-only`` trains on."""
        if self.pair_head is None:
            raise ValueError(
                "this graph model has no pair-statistics channel (config.pair_statistics is false)"
            )
        logits = self._pair_channel(data, sample_mask, node_mask, chunk_size) + self.edge_bias.float()
        return logits.masked_fill(
            ~allowed_pairs(node_mask, data.shape[0], data.shape[-1], data.device), float("-inf")
        )

    def _pair_channel(
        self,
        data: torch.Tensor,
        sample_mask: torch.Tensor | None,
        node_mask: torch.Tensor | None,
        chunk_size: int | None,
    ) -> torch.Tensor:
        statistics = pair_statistics(
            data, sample_mask=sample_mask, node_mask=node_mask, chunk_size=chunk_size
        )  # [b, d, d, F]
        return self.pair_head(statistics)[..., 0].float()  # [b, d, d]

    def edge_probabilities(self, data: torch.Tensor, **options: Any) -> torch.Tensor:
        """``sigmoid(edge_logits)``: [b, n, d] -> [b, d, d], exactly 0 on the diagonal and for padded nodes."""
        return torch.sigmoid(self.edge_logits(data, **options))

    # ----- checkpoints -----------------------------------------------------------------------------------

    def save_pretrained(self, directory: str | Path, *, training: dict | None = None) -> None:
        """Write ``model.safetensors`` and ``config.json`` (model_type "graph") into ``directory`` atomically."""
        from condfip.graph.checkpoint import save_graph_model

        save_graph_model(self, directory, training=training)

    @classmethod
    def from_pretrained(
        cls, name_or_path: str | Path = "graph-small", *, map_location: str | torch.device = "cpu"
    ) -> GraphModel:
        """A shipped name (``"graph-small"``), a folder written by ``save_pretrained``, or a Hub repo id."""
        from condfip.graph.checkpoint import load_graph_model

        return load_graph_model(name_or_path, map_location=map_location)


def allowed_pairs(
    node_mask: torch.Tensor | None, batch: int, num_nodes: int, device: torch.device
) -> torch.Tensor:
    """[b, d, d] bool: True for the pairs (i, j), i != j, of real nodes (the possible edges)."""
    allowed = ~torch.eye(num_nodes, dtype=torch.bool, device=device).expand(batch, -1, -1)
    if node_mask is not None:
        allowed = allowed & node_mask[:, :, None] & node_mask[:, None, :]
    return allowed
