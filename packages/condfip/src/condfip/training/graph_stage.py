"""The ``graph`` stage of the training loop: ``condfip train graph --config small|base|FILE.json ...``.

Every batch is a fresh set of scm-gen SCMs (the run's ``--preset``, ``--mechanisms`` and ``--nodes``; one node
count per batch), standardized per dataset. The loss is ``condfip.training.graph_objective``: binary
cross-entropy against the true adjacency plus the acyclicity penalty, whose weight grows linearly from 0 to
``--acyclicity-weight`` over the run's ``--steps``.

A cheap first phase, ``--pairs-only``, trains only the pair-statistics head and the edge bias on the logits
without the attention channel (no attention is computed, so a step costs a fraction of a full one); a second
run, ``--init`` from its checkpoint, then trains the whole model. The attention channel starts silent (see
``GraphModel``), so the second run starts from exactly the first one's predictions.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from condfip.graph import GraphModel
from condfip.training.graph_objective import acyclicity_weight, graph_loss
from condfip.training.graph_validation import (
    GraphValidationCell,
    build_graph_validation_set,
    evaluate_graph_model,
)
from condfip.training.options import GraphOptions, TrainingOptions


class GraphLoss(nn.Module):
    """The graph stage's loss as a module's forward, so DistributedDataParallel can wrap it."""

    def __init__(
        self, model: GraphModel, *, total_steps: int, final_weight: float, pairs_only: bool = False
    ) -> None:
        super().__init__()
        self.model = model
        self.total_steps = total_steps
        self.final_weight = final_weight
        self.pairs_only = pairs_only

    def forward(
        self, data: torch.Tensor, noise: torch.Tensor, parents: torch.Tensor, step: int = 0
    ) -> torch.Tensor:
        """data: [b, n, d] standardized; noise is not used; parents: [b, d, d] (j -> i), the adjacency's transpose."""
        adjacency = parents.transpose(-1, -2)  # [b, d, d]: i -> j
        weight = acyclicity_weight(step, total_steps=self.total_steps, final_weight=self.final_weight)
        logits = self.model.pair_logits(data) if self.pairs_only else self.model.edge_logits(data)
        loss, _, _ = graph_loss(logits, adjacency, weight=weight)
        return loss


class GraphStage:
    """Stage ``graph``: the graph network."""

    def __init__(self, options: GraphOptions) -> None:
        self.options = options

    def build_model(self, options: TrainingOptions) -> nn.Module:
        with torch.random.fork_rng(devices=[]):  # the initialization depends on the seed only
            torch.manual_seed(options.seed)
            model = GraphModel(options.config)
        if (
            self.options.pairs_only
        ):  # only the pair head and the bias learn; the attention channel stays as is
            for name, parameter in model.named_parameters():
                parameter.requires_grad_(name == "edge_bias" or name.startswith("pair_head."))
        return model

    def loss_module(self, model: nn.Module, options: TrainingOptions) -> nn.Module:
        return GraphLoss(
            model,
            total_steps=options.steps,
            final_weight=self.options.acyclicity_weight,
            pairs_only=self.options.pairs_only,
        )

    def validation_set(self, options: TrainingOptions) -> list[GraphValidationCell]:
        return build_graph_validation_set(datasets_per_cell=options.validation_datasets)

    def evaluate(self, model: nn.Module, cells: list[GraphValidationCell]) -> dict[str, float]:
        return evaluate_graph_model(model, cells)

    def recipe(self) -> dict[str, Any]:
        return {}
