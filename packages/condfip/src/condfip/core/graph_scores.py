"""Scores of a predicted graph against the true one, over the off-diagonal entries (``a[i, j]``: i -> j).

SHD counts node pairs whose directed status differs (a reversed edge counts once); F1 is over directed edges;
AUROC (ties count one half) and AUPRC (average precision, tied scores enter together) rank edge scores.
Adjacencies must hold 0 and 1 only; AUROC and AUPRC need a truth with both edges and non-edges (a ValueError
otherwise: the ranking is undefined).
"""

from __future__ import annotations

import numpy as np

__all__ = ["auprc", "auroc", "edge_f1", "has_edges_and_non_edges", "structural_hamming_distance"]


def _square(name: str, value: object, num_nodes: int | None = None) -> np.ndarray:
    array = np.asarray(value)
    if array.ndim != 2 or array.shape[0] != array.shape[1]:
        raise ValueError(f"{name} must be a square adjacency [d, d]; got shape {array.shape}")
    if num_nodes is not None and array.shape[0] != num_nodes:
        raise ValueError(
            f"{name} must be [{num_nodes}, {num_nodes}] like the true graph; got shape {array.shape}"
        )
    return array


def _binary(name: str, value: object, num_nodes: int | None = None) -> np.ndarray:
    """A 0/1 adjacency as bool [d, d] with a False diagonal (self-loops are ignored)."""
    array = _square(name, value, num_nodes)
    if not np.isin(array, (0, 1)).all():
        raise ValueError(f"{name} must hold only 0 and 1; got values {np.unique(array)[:5]}")
    return array.astype(bool) & ~np.eye(array.shape[0], dtype=bool)


def structural_hamming_distance(true_adjacency: object, predicted_adjacency: object) -> int:
    """Edge insertions, deletions and reversals turning the prediction into the truth; a reversal counts once."""
    truth = _binary("true_adjacency", true_adjacency)
    predicted = _binary("predicted_adjacency", predicted_adjacency, truth.shape[0])
    differs = (truth != predicted) | (truth.T != predicted.T)  # the pair {i, j} is in another state
    return int(np.triu(differs, k=1).sum())


def edge_f1(true_adjacency: object, predicted_adjacency: object) -> float:
    """``2 TP / (2 TP + FP + FN)`` over directed edges (a reversed edge is one FP and one FN); 1.0 when both
    graphs are empty."""
    truth = _binary("true_adjacency", true_adjacency)
    predicted = _binary("predicted_adjacency", predicted_adjacency, truth.shape[0])
    true_positives, errors = int((truth & predicted).sum()), int((truth != predicted).sum())
    return 1.0 if true_positives + errors == 0 else 2.0 * true_positives / (2.0 * true_positives + errors)


def has_edges_and_non_edges(true_adjacency: object) -> bool:
    """Whether AUROC and AUPRC are defined for this truth: some off-diagonal edges and some non-edges."""
    truth = _binary("true_adjacency", true_adjacency)
    edges = int(truth.sum())
    return 0 < edges < truth.shape[0] * (truth.shape[0] - 1)


def _labels_and_scores(true_adjacency: object, scores: object) -> tuple[np.ndarray, np.ndarray]:
    """The off-diagonal labels (bool) and scores (float64) of a truth with both classes."""
    truth = _binary("true_adjacency", true_adjacency)
    values = np.asarray(_square("scores", scores, truth.shape[0]), dtype=np.float64)
    if not np.isfinite(values).all():
        raise ValueError("scores must be finite")
    if not has_edges_and_non_edges(truth):
        raise ValueError("true_adjacency must have both edges and non-edges off the diagonal for AUROC/AUPRC")
    off_diagonal = ~np.eye(truth.shape[0], dtype=bool)
    return truth[off_diagonal], values[off_diagonal]


def auroc(true_adjacency: object, scores: object) -> float:
    """Area under the ROC curve of edge scores: the Mann-Whitney U of the edges with average ranks."""
    labels, values = _labels_and_scores(true_adjacency, scores)
    _, inverse, counts = np.unique(values, return_inverse=True, return_counts=True)
    average_rank = (np.cumsum(counts) - (counts - 1) / 2.0)[inverse]  # 1-based, ties share their mean rank
    positives, negatives = int(labels.sum()), int((~labels).sum())
    u_statistic = average_rank[labels].sum() - positives * (positives + 1) / 2.0
    return float(u_statistic / (positives * negatives))


def auprc(true_adjacency: object, scores: object) -> float:
    """Average precision ``sum_k (R_k - R_{k-1}) P_k`` over the distinct scores, from high to low."""
    labels, values = _labels_and_scores(true_adjacency, scores)
    groups, inverse = np.unique(-values, return_inverse=True)  # tied scores form one group, highest first
    edges_per_group = np.bincount(inverse, weights=labels, minlength=groups.size)
    size_per_group = np.bincount(inverse, minlength=groups.size)
    precision = np.cumsum(edges_per_group) / np.cumsum(size_per_group)
    return float(np.sum(edges_per_group / labels.sum() * precision))
