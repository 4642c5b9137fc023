"""Scores of the evaluation protocol (docs/ARCHITECTURE.md, "Evaluation protocol"), in plain numpy.

- RMSE in standardized units: ``mean over rows of sqrt(mean over nodes of (prediction - target)^2)``.
- Cell summaries: mean and standard error over the SCMs of a cell.
- Distribution distances for real data: unbiased MMD^2 with a Gaussian kernel and the energy distance.
- Graph scores: SHD, edge F1, AUROC and AUPRC (``condfip.core.graph_scores``; ``adjacency[i, j] = 1`` for ``i -> j``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

# the graph scores have one implementation, in condfip; re-exported here with the other scores
from condfip.core.graph_scores import (
    auprc,
    auroc,
    edge_f1,
    has_edges_and_non_edges,
    structural_hamming_distance,
)
from condfip.core.standardization import Standardization

# pairwise distances have one implementation, beside the kernel regression that needs them in condfip
from condfip.demo.baseline import squared_distances

__all__ = [
    "Standardizer",
    "auprc",
    "auroc",
    "edge_f1",
    "energy_distance",
    "has_edges_and_non_edges",
    "mean_and_standard_error",
    "median_heuristic_bandwidth",
    "mmd_squared",
    "rmse",
    "squared_distances",
    "structural_hamming_distance",
]


def _as_matrix(name: str, value: np.ndarray) -> np.ndarray:
    array = np.asarray(value, dtype=np.float64)
    if array.ndim != 2:
        raise ValueError(f"{name} must be a 2-d array [n, d]; got shape {array.shape}")
    return array


@dataclass(frozen=True)
class Standardizer(Standardization):
    """Per-column location and scale of a dataset's observational rows (``condfip.core.standardization``).

    Data are mapped to ``(x - mean) / std``; noise only to ``noise / std`` (noise is scaled, not centred).
    A column with zero spread keeps scale 1.
    """

    @classmethod
    def fit(cls, observational: np.ndarray) -> Standardizer:
        return super().fit(_as_matrix("observational", observational))

    def data(self, x: np.ndarray) -> np.ndarray:
        return self.data_to_standard(np.asarray(x, dtype=np.float64))

    def noise(self, noise: np.ndarray) -> np.ndarray:
        return self.noise_to_standard(np.asarray(noise, dtype=np.float64))


def rmse(prediction: np.ndarray, target: np.ndarray) -> float:
    """Mean over rows of the root mean squared error over nodes; both [n, d]."""
    prediction = _as_matrix("prediction", prediction)
    target = _as_matrix("target", target)
    if prediction.shape != target.shape:
        raise ValueError(
            f"prediction and target must have the same shape; got {prediction.shape} and {target.shape}"
        )
    if prediction.shape[0] == 0:
        raise ValueError("prediction and target must hold at least one row; got 0 rows")
    per_row = np.sqrt(np.mean((prediction - target) ** 2, axis=1))  # [n]
    return float(per_row.mean())


def mean_and_standard_error(values: Sequence[float]) -> tuple[float, float]:
    """Mean and standard error ``std(ddof=1) / sqrt(k)`` of k values; the error is NaN for a single value."""
    array = np.asarray(values, dtype=np.float64)
    if array.ndim != 1 or array.size == 0:
        raise ValueError(f"values must be a non-empty 1-d sequence; got shape {array.shape}")
    if array.size == 1:
        return float(array[0]), math.nan
    return float(array.mean()), float(array.std(ddof=1) / math.sqrt(array.size))


# ---------------------------------------------------------------------------------------------------------------
# Distribution distances


def median_heuristic_bandwidth(x: np.ndarray, y: np.ndarray) -> float:
    """Median of the pairwise Euclidean distances between distinct rows of the pooled sample."""
    pooled = np.concatenate([_as_matrix("x", x), _as_matrix("y", y)])
    distances = np.sqrt(squared_distances(pooled, pooled))
    upper = distances[np.triu_indices(pooled.shape[0], k=1)]
    median = float(np.median(upper))
    return median if median > 0 else 1.0


def mmd_squared(x: np.ndarray, y: np.ndarray, *, bandwidth: float | None = None) -> float:
    """Unbiased estimate of MMD^2 between samples x [n, d] and y [m, d] with the Gaussian kernel.

    ``k(a, b) = exp(-|a - b|^2 / (2 bandwidth^2))``; by default the bandwidth is the median heuristic over the
    pooled sample. The within-sample means leave out the diagonal, so the estimate can be slightly negative.
    """
    x, y = _as_matrix("x", x), _as_matrix("y", y)
    if x.shape[1] != y.shape[1]:
        raise ValueError(f"x and y must have the same number of columns; got {x.shape[1]} and {y.shape[1]}")
    if x.shape[0] < 2 or y.shape[0] < 2:
        raise ValueError(f"x and y need at least 2 rows each; got {x.shape[0]} and {y.shape[0]}")
    if bandwidth is None:
        bandwidth = median_heuristic_bandwidth(x, y)
    if not bandwidth > 0:
        raise ValueError(f"bandwidth must be positive; got {bandwidth}")
    gamma = 1.0 / (2.0 * bandwidth**2)
    k_xx = np.exp(-gamma * squared_distances(x, x))
    k_yy = np.exp(-gamma * squared_distances(y, y))
    k_xy = np.exp(-gamma * squared_distances(x, y))
    n, m = x.shape[0], y.shape[0]
    within_x = (k_xx.sum() - np.trace(k_xx)) / (n * (n - 1))
    within_y = (k_yy.sum() - np.trace(k_yy)) / (m * (m - 1))
    return float(within_x + within_y - 2.0 * k_xy.mean())


def energy_distance(x: np.ndarray, y: np.ndarray) -> float:
    """Energy distance ``2 E|X - Y| - E|X - X'| - E|Y - Y'|`` (Szekely and Rizzo) with the Euclidean norm.

    Computed between the two empirical distributions (V-statistic: every pair, diagonal included), so it is
    never negative and is zero only for equal samples.
    """
    x, y = _as_matrix("x", x), _as_matrix("y", y)
    if x.shape[1] != y.shape[1]:
        raise ValueError(f"x and y must have the same number of columns; got {x.shape[1]} and {y.shape[1]}")
    if x.shape[0] == 0 or y.shape[0] == 0:
        raise ValueError(f"x and y need at least 1 row each; got {x.shape[0]} and {y.shape[0]}")
    between = np.sqrt(squared_distances(x, y)).mean()
    within_x = np.sqrt(squared_distances(x, x)).mean()
    within_y = np.sqrt(squared_distances(y, y)).mean()
    return float(max(2.0 * between - within_x - within_y, 0.0))
