"""The graph stage's figures on the held-out SCMs of ``condfip.training.validation`` (d = 20, 400 rows):
AUROC and AUPRC of the probabilities, SHD and F1 of the DAG rule at threshold 0.5, and the cross-entropy."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from condfip.core.dag_rule import dag_from_probabilities
from condfip.core.graph_scores import (
    auprc,
    auroc,
    edge_f1,
    has_edges_and_non_edges,
    structural_hamming_distance,
)
from condfip.core.standardization import standardized
from condfip.graph import GraphModel
from condfip.training.graph_objective import edge_cross_entropy
from condfip.training.validation import validation_cells


@dataclass
class GraphValidationCell:
    name: str  # e.g. "in/linear"
    data: torch.Tensor  # [b, n, d] standardized per dataset
    adjacency: torch.Tensor  # [b, d, d] int8, adjacency[b, i, j] = 1 for i -> j


def build_graph_validation_set(
    *, datasets_per_cell: int = 4, num_nodes: int = 20, num_rows: int = 400
) -> list[GraphValidationCell]:
    cells = []
    for name, examples in validation_cells(
        datasets_per_cell=datasets_per_cell, num_nodes=num_nodes, num_context=num_rows, num_query=0
    ):
        data = np.stack([standardized(example.data) for example in examples])  # [b, n, d]
        adjacency = np.stack([example.adjacency for example in examples])  # [b, d, d]
        cells.append(
            GraphValidationCell(
                name, torch.from_numpy(data.astype(np.float32)), torch.from_numpy(adjacency.astype(np.int8))
            )
        )
    return cells


@torch.no_grad()
def evaluate_graph_model(model: GraphModel, cells: list[GraphValidationCell]) -> dict[str, float]:
    """Per cell, the mean over datasets of AUROC, AUPRC, SHD and F1 (DAG rule at 0.5) and the cross-entropy."""
    device = next(model.parameters()).device
    figures: dict[str, float] = {}
    for cell in cells:
        logits = model.edge_logits(cell.data.to(device))  # [b, d, d]
        figures[f"{cell.name}/bce"] = float(edge_cross_entropy(logits, cell.adjacency.to(device)))
        probabilities = torch.sigmoid(logits).double().cpu().numpy()
        scores = [
            score_graph(truth, p) for truth, p in zip(cell.adjacency.numpy(), probabilities, strict=True)
        ]
        for key in ("auroc", "auprc", "shd", "f1"):
            figures[f"{cell.name}/{key}"] = float(np.nanmean([score[key] for score in scores]))
    return figures


def score_graph(truth: np.ndarray, probabilities: np.ndarray, *, threshold: float = 0.5) -> dict[str, float]:
    """AUROC, AUPRC (NaN for an empty or complete truth), and SHD and F1 of the DAG rule at ``threshold``."""
    dag = dag_from_probabilities(probabilities, threshold=threshold)
    ranked = has_edges_and_non_edges(truth)
    return {
        "auroc": auroc(truth, probabilities) if ranked else float("nan"),
        "auprc": auprc(truth, probabilities) if ranked else float("nan"),
        "shd": float(structural_hamming_distance(truth, dag)),
        "f1": edge_f1(truth, dag),
    }
