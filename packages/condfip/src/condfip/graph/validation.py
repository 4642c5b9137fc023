"""A fixed held-out set for the graph model (d = 20, 400 rows, P_IN and P_OUT, linear and RFF) and its
figures: AUROC and AUPRC of the probabilities, SHD and F1 of the DAG rule at threshold 0.5, and the
cross-entropy. The SCMs are those of the Cond-FiP validation set (same seed and indices)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from condfip.graph.dag import dag_from_probabilities
from condfip.graph.metrics import auprc, auroc, edge_f1, structural_hamming_distance
from condfip.graph.model import GraphModel
from condfip.graph.objective import edge_cross_entropy
from condfip.training.validation import CELLS, VALIDATION_SEED
from scm_gen import make_benchmark_dataset, standardize


@dataclass
class GraphValidationCell:
    name: str  # e.g. "in/linear"
    data: torch.Tensor  # [b, n, d] standardized per dataset
    adjacency: torch.Tensor  # [b, d, d] int8, adjacency[b, i, j] = 1 for i -> j


def build_graph_validation_set(
    *, datasets_per_cell: int = 4, num_nodes: int = 20, num_rows: int = 400
) -> list[GraphValidationCell]:
    cells = []
    for cell_index, (preset, mechanism) in enumerate(CELLS):
        examples = [
            make_benchmark_dataset(
                preset,
                mechanism,
                num_nodes,
                num_context=num_rows,
                num_query=0,
                num_interventional=0,
                seed=VALIDATION_SEED,
                index=cell_index * 1000 + i,
            )
            for i in range(datasets_per_cell)
        ]
        data = np.stack([standardize(example.data)[0] for example in examples])  # [b, n, d]
        adjacency = np.stack([example.adjacency for example in examples])  # [b, d, d]
        cells.append(
            GraphValidationCell(
                f"{preset}/{mechanism}",
                torch.from_numpy(data.astype(np.float32)),
                torch.from_numpy(adjacency.astype(np.int8)),
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
    return {
        "auroc": auroc(truth, probabilities),
        "auprc": auprc(truth, probabilities),
        "shd": float(structural_hamming_distance(truth, dag)),
        "f1": edge_f1(truth, dag),
    }
