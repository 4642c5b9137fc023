"""Scores of a predicted graph against the true one; all over the off-diagonal entries (``a[i, j]``: i -> j).

The same definitions as the condfip-eval package (which cannot be imported from here): SHD counts node
pairs whose directed status differs (a reversed edge counts once); F1 is over directed edges; AUROC (ties
count one half) and AUPRC (average precision, tied scores enter together) rank the probabilities.
"""

from __future__ import annotations

import numpy as np


def _off_diagonal(matrix: np.ndarray) -> np.ndarray:
    return matrix[~np.eye(matrix.shape[0], dtype=bool)]


def structural_hamming_distance(truth: np.ndarray, predicted: np.ndarray) -> int:
    """Insertions, deletions and reversals turning ``predicted`` into ``truth``; self-loops ignored."""
    t = np.asarray(truth) != 0
    p = np.asarray(predicted) != 0
    differs = (t != p) | (t.T != p.T)  # the pair {i, j} is in a different state
    return int(np.triu(differs, k=1).sum())


def edge_f1(truth: np.ndarray, predicted: np.ndarray) -> float:
    """``2 TP / (2 TP + FP + FN)`` over directed edges; 1.0 when both graphs are empty."""
    t = _off_diagonal(np.asarray(truth) != 0)
    p = _off_diagonal(np.asarray(predicted) != 0)
    true_positive, errors = int((t & p).sum()), int((t != p).sum())
    return 1.0 if true_positive + errors == 0 else 2.0 * true_positive / (2.0 * true_positive + errors)


def _labels_and_scores(truth: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    labels = _off_diagonal(np.asarray(truth) != 0)
    values = _off_diagonal(np.asarray(scores, dtype=np.float64))
    if labels.all() or not labels.any():
        return None
    return labels, values


def auroc(truth: np.ndarray, scores: np.ndarray) -> float:
    """Area under the ROC curve (Mann-Whitney U with average ranks); NaN without both edges and non-edges."""
    pair = _labels_and_scores(truth, scores)
    if pair is None:
        return float("nan")
    labels, values = pair
    distinct, inverse, counts = np.unique(values, return_inverse=True, return_counts=True)
    upper = np.cumsum(counts)  # 1-based rank of the last member of each group of ties
    average_rank = (upper - (counts - 1) / 2.0)[inverse]
    positives, negatives = int(labels.sum()), int((~labels).sum())
    u = average_rank[labels].sum() - positives * (positives + 1) / 2.0
    return float(u / (positives * negatives))


def auprc(truth: np.ndarray, scores: np.ndarray) -> float:
    """Average precision ``sum_k (R_k - R_{k-1}) P_k`` over distinct thresholds, high to low; NaN without
    both edges and non-edges."""
    pair = _labels_and_scores(truth, scores)
    if pair is None:
        return float("nan")
    labels, values = pair
    distinct, inverse = np.unique(-values, return_inverse=True)  # groups of tied scores, highest first
    positives_per_group = np.bincount(inverse, weights=labels, minlength=distinct.size)
    size_per_group = np.bincount(inverse, minlength=distinct.size)
    true_positives = np.cumsum(positives_per_group)
    precision = true_positives / np.cumsum(size_per_group)
    recall_step = positives_per_group / labels.sum()
    return float(np.sum(recall_step * precision))
