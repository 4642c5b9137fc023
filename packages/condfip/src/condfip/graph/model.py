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

from condfip.graph.attention import NodeAttention
from condfip.graph.config import GraphModelConfig
from condfip.graph.statistics import NUM_PAIR_FEATURES, pair_statistics
from condfip.io.registry import PretrainedModel
from condfip.nn.layers import AlternatingStack
from condfip.nn.pooling import max_over_rows

DEFAULT_GRAPH_MODEL = "graph-small"  # the shipped graph model, loaded when no other is named


def pair_mlp(width: int, hidden_layers: int) -> nn.Sequential:
    """The pair-statistics MLP: NUM_PAIR_FEATURES -> ``hidden_layers`` x (Linear, GELU) of ``width`` -> 1."""
    layers: list[nn.Module] = []
    features = NUM_PAIR_FEATURES
    for _ in range(hidden_layers):
        layers += [nn.Linear(features, width), nn.GELU()]
        features = width
    return nn.Sequential(*layers, nn.Linear(features, 1))


class GraphModel(nn.Module, PretrainedModel, model_type="graph"):
    """The graph network; ``save_pretrained`` / ``from_pretrained`` (default: the shipped ``graph-small``) come
    from ``condfip.io.registry.PretrainedModel``, with the ``"inference"`` section (the default threshold)."""

    config_class = GraphModelConfig
    default_name = DEFAULT_GRAPH_MODEL

    def __init__(self, config: GraphModelConfig) -> None:
        super().__init__()
        self.config = config
        self.training_recipe: dict[str, Any] = {}  # filled by from_pretrained
        self.inference: dict[str, Any] = {}  # config.json "inference": the default threshold (calibration)
        self.value_embedding = nn.Linear(1, config.dim)
        self.stack = AlternatingStack(
            config.dim, config.num_heads, config.mlp_dim, config.num_layers, node_attention=NodeAttention
        )
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
    def trained_num_rows(self) -> int | None:
        """The rows of every training dataset (the checkpoint's recipe ``num_samples``), None when unknown.

        With ``trained_max_nodes`` it bounds the ratio of nodes to rows the pair statistics were trained on
        (``condfip.api.graph_inference.resolve_neighborhood``)."""
        rows = self.training_recipe.get("num_samples")
        return int(rows) if _positive_int(rows) else None

    @property
    def default_threshold(self) -> float:
        """The edge threshold of the DAG rule when none is given: the calibrated one of the checkpoint
        (``condfip.training.calibration``), else 0.5."""
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

        Every row attends only to the anchor rows, so the result does not depend on ``chunk_size``
        (``condfip.nn.pooling``).
        """

        def anchor_pass(anchors: torch.Tensor, anchor_mask: torch.Tensor | None) -> tuple[Any, torch.Tensor]:
            states, output = self.stack.anchor_states(self._embed(anchors), node_mask, anchor_mask)
            return states, self.norm(output)

        def row_pass(rows: torch.Tensor, states: Any, anchor_mask: torch.Tensor | None) -> torch.Tensor:
            return self.norm(self.stack(self._embed(rows), node_mask, states, anchor_mask))

        return max_over_rows(
            data,
            num_anchor_rows=self.config.num_anchor_rows,
            sample_mask=sample_mask,
            chunk_size=chunk_size,
            anchor_pass=anchor_pass,
            row_pass=row_pass,
        )

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

    # ----- checkpoints: the "inference" section -----------------------------------------------------------

    def checkpoint_sections(self) -> dict[str, Any]:
        return {"inference": self.inference} if self.inference else {}

    def read_checkpoint_sections(self, config: dict[str, Any], path: Path) -> None:
        """The checkpoint's ``"inference"`` section (its default threshold); {} when it has none."""
        self.inference = dict(config.get("inference", {}))

    @classmethod
    def check_checkpoint_sections(cls, config: dict[str, Any], where: str) -> None:
        """Refuse an ``"inference"`` section without a threshold in [0, 1] and a recipe whose ``node_counts``
        (the training data's node counts, which ``trained_max_nodes`` reads) is neither absent nor a list of
        integers >= 1."""
        inference = config.get("inference", {})
        threshold = inference.get("threshold", 0.5) if isinstance(inference, dict) else None
        if (
            isinstance(threshold, bool)
            or not isinstance(threshold, int | float)
            or not 0.0 <= threshold <= 1.0
        ):
            raise ValueError(
                f"{where} has an invalid 'inference' section {inference!r}: its 'threshold' must be a number in "
                "[0, 1]; re-run `condfip calibrate` on the checkpoint"
            )
        counts = config.get("training", {}).get("node_counts")
        if not _node_counts(counts):
            raise ValueError(
                f"{where} has an invalid 'training.node_counts' {counts!r}: it must be a list of the node counts "
                "of the training data, integers >= 1 such as [10, 20, 30]"
            )
        rows = config.get("training", {}).get("num_samples")
        if rows is not None and not _positive_int(rows):
            raise ValueError(
                f"{where} has an invalid 'training.num_samples' {rows!r}: it must be the rows of every training "
                "dataset, an integer >= 1 such as 400 (or absent)"
            )


def _positive_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


def _node_counts(counts: object) -> bool:
    """Whether a recipe's ``node_counts`` is None (not recorded) or a list of integers >= 1."""
    if counts is None:
        return True
    return isinstance(counts, list) and all(_positive_int(count) for count in counts)


def allowed_pairs(
    node_mask: torch.Tensor | None, batch: int, num_nodes: int, device: torch.device
) -> torch.Tensor:
    """[b, d, d] bool: True for the pairs (i, j), i != j, of real nodes (the possible edges)."""
    allowed = ~torch.eye(num_nodes, dtype=torch.bool, device=device).expand(batch, -1, -1)
    if node_mask is not None:
        allowed = allowed & node_mask[:, :, None] & node_mask[:, None, :]
    return allowed
