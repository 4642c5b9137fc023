"""The per-dataset baselines of the demo: additive-noise models ``x_j = f_j(x_pa(j)) + n_j`` fitted per node on
the context.

- :class:`LinearANM`: ``f_j`` linear, fitted by least squares with an intercept.
- :class:`KernelANM`: ``f_j`` a Gaussian-kernel ridge regression on the standardized parents; the bandwidth (a
  multiple of the median pairwise distance) and the ridge are chosen per node by exact leave-one-out error.

Abduction ``n = x - F(x)``; generation node by node in topological order, with hard interventions replacing a
node's mechanism by its value. Numpy only; ``condfip_eval.methods`` builds its linear and kernel baselines on
these fits.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import networkx as nx
import numpy as np

from condfip.core.dags import as_digraph
from condfip.core.standardization import Standardization

BANDWIDTH_FACTORS = (0.5, 1.0, 2.0, 4.0)
"""Kernel bandwidths tried per node, as multiples of the median distance between the standardized parents."""
RIDGES = tuple(float(r) for r in np.logspace(-4.0, 1.0, 11))
"""Ridge penalties tried per node (the kernel's diagonal is 1)."""


def squared_distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise squared Euclidean distances [n, m] between the rows of ``a`` [n, k] and ``b`` [m, k], clipped at
    0 against rounding."""
    squared = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2.0 * a @ b.T
    return np.maximum(squared, 0.0)


class _AdditiveNoiseModel:
    """Abduction, generation and counterfactuals of ``x = F(x) + n`` over a DAG, given ``predict_node``."""

    def __init__(self, adjacency: np.ndarray) -> None:
        self.adjacency = np.asarray(adjacency)
        self.order = list(nx.topological_sort(as_digraph(self.adjacency)))

    def predict_node(self, node: int, data: np.ndarray) -> np.ndarray:
        """``f_node`` on the rows ``data`` [n, d] (reads only the node's parents): [n]."""
        raise NotImplementedError

    def mechanisms(self, data: np.ndarray) -> np.ndarray:
        """F(x) row-wise: [n, d] -> [n, d]."""
        return np.stack([self.predict_node(node, data) for node in range(data.shape[1])], axis=1)

    def noise(self, data: np.ndarray) -> np.ndarray:
        return data - self.mechanisms(data)

    def generate(self, noise: np.ndarray, interventions: dict[int, float] | None = None) -> np.ndarray:
        interventions = interventions or {}
        data = np.zeros_like(noise)
        for node in self.order:
            if node in interventions:
                data[:, node] = interventions[node]
            else:
                data[:, node] = self.predict_node(node, data) + noise[:, node]
        return data

    def counterfactual(self, data: np.ndarray, interventions: dict[int, float]) -> np.ndarray:
        return self.generate(self.noise(data), interventions)


class LinearANM(_AdditiveNoiseModel):
    """Least-squares linear mechanisms over a known DAG (``adjacency[i, j] = 1`` for ``i -> j``)."""

    def __init__(self, weights: np.ndarray, bias: np.ndarray, adjacency: np.ndarray) -> None:
        super().__init__(adjacency)
        self.weights = weights  # [d, d], weights[i, j] for the edge i -> j
        self.bias = bias  # [d]

    @classmethod
    def fit(cls, data: np.ndarray, adjacency: np.ndarray) -> LinearANM:
        """Regress every node on its parents (with an intercept) over the rows of ``data`` [n, d]."""
        num_nodes = data.shape[1]
        weights = np.zeros((num_nodes, num_nodes))
        bias = np.zeros(num_nodes)
        for node in range(num_nodes):
            parents = np.flatnonzero(adjacency[:, node])
            design = np.column_stack([np.ones(len(data)), data[:, parents]])  # [n, 1 + |pa|]
            solution, *_ = np.linalg.lstsq(design, data[:, node], rcond=None)
            bias[node] = solution[0]
            weights[parents, node] = solution[1:]
        return cls(weights, bias, np.asarray(adjacency))

    def predict_node(self, node: int, data: np.ndarray) -> np.ndarray:
        return self.bias[node] + data @ self.weights[:, node]

    def mechanisms(self, data: np.ndarray) -> np.ndarray:
        return self.bias + data @ self.weights


def check_kernel_grid(bandwidth_factors: Sequence[float], ridges: Sequence[float]) -> None:
    """Refuse an empty or non-positive grid of bandwidth factors or ridges with a ValueError."""
    if not len(bandwidth_factors) or min(bandwidth_factors) <= 0:
        raise ValueError(f"bandwidth_factors must be positive numbers; got {tuple(bandwidth_factors)}")
    if not len(ridges) or min(ridges) <= 0:
        raise ValueError(f"ridges must be positive numbers; got {tuple(ridges)}")


def kernel_matrix(squared: np.ndarray, bandwidth: float) -> np.ndarray:
    """The Gaussian kernel ``exp(-|a - b|^2 / (2 bandwidth^2))`` of squared distances [n, m]."""
    return np.exp(-squared / (2.0 * bandwidth**2))


def leave_one_out_errors(kernel: np.ndarray, target: np.ndarray, ridges: np.ndarray) -> np.ndarray:
    """Mean squared leave-one-out error [r] of the kernel ridge regression of ``target`` [n] on ``kernel`` [n, n],
    for each ridge in ``ridges`` [r]; exact, from one eigendecomposition.

    With ``K = U diag(s) U^T`` the fit is ``H y`` with ``H = U diag(s / (s + ridge)) U^T``, and the residual of
    row i refitted without row i is ``(y_i - (H y)_i) / (1 - H_ii)``.
    """
    eigenvalues, eigenvectors = np.linalg.eigh(kernel)  # [n], [n, n]
    eigenvalues = np.maximum(eigenvalues, 0.0)
    projected = eigenvectors.T @ target  # [n]
    squared_vectors = eigenvectors**2  # [n, n]
    errors = np.empty(len(ridges))
    for k, ridge in enumerate(ridges):
        shrink = eigenvalues / (eigenvalues + ridge)  # [n]
        fitted = eigenvectors @ (shrink * projected)  # H y
        leverage = squared_vectors @ shrink  # diag(H)
        residual = (target - fitted) / np.maximum(1.0 - leverage, 1e-12)
        errors[k] = np.mean(residual**2)
    return errors


@dataclass(frozen=True)
class KernelRegression:
    """One node's Gaussian-kernel ridge regression: ``offset + sum_i weights_i k(z, inputs_i)`` with ``z`` the
    standardized parents."""

    standardization: Standardization  # of the parents' context values
    inputs: np.ndarray  # [n, p], the context rows' standardized parents
    weights: np.ndarray  # [n]
    offset: float  # the context mean of the node
    bandwidth: float
    ridge: float
    leave_one_out_error: float  # of the chosen (bandwidth, ridge), in the node's squared units

    @classmethod
    def fit(
        cls,
        parents: np.ndarray,
        target: np.ndarray,
        *,
        bandwidth_factors: Sequence[float] = BANDWIDTH_FACTORS,
        ridges: Sequence[float] = RIDGES,
    ) -> KernelRegression:
        """Fit ``target`` [n] on ``parents`` [n, p], keeping the (bandwidth, ridge) pair of least exact
        leave-one-out error (the first on ties). Cost: O(n^3) time and a few n x n matrices of memory."""
        standardization = Standardization.fit(parents)
        z = standardization.data_to_standard(parents)  # [n, p]
        offset = target.mean()
        y = target - offset  # [n]
        squared = squared_distances(z, z)  # [n, n]
        median = float(np.sqrt(np.median(squared[np.triu_indices(z.shape[0], k=1)])))
        median = median if median > 0 else 1.0
        ridge_grid = np.asarray(ridges, dtype=np.float64)

        best = (np.inf, 1.0, 1.0)  # (leave-one-out error, bandwidth, ridge)
        for factor in bandwidth_factors:
            bandwidth = factor * median
            errors = leave_one_out_errors(kernel_matrix(squared, bandwidth), y, ridge_grid)  # [r]
            for error, ridge in zip(errors.tolist(), ridge_grid.tolist(), strict=True):
                if error < best[0]:
                    best = (error, bandwidth, ridge)

        error, bandwidth, ridge = best
        kernel = kernel_matrix(squared, bandwidth)
        weights = np.linalg.solve(kernel + ridge * np.eye(kernel.shape[0]), y)  # [n]
        return cls(standardization, z, weights, float(offset), float(bandwidth), float(ridge), float(error))

    def predict(self, parents: np.ndarray) -> np.ndarray:
        """The regression at rows of the parents' values [m, p]: [m]."""
        query = self.standardization.data_to_standard(parents)  # [m, p]
        cross = kernel_matrix(squared_distances(query, self.inputs), self.bandwidth)  # [m, n]
        return self.offset + cross @ self.weights


class KernelANM(_AdditiveNoiseModel):
    """Gaussian-kernel ridge mechanisms over a known DAG (``adjacency[i, j] = 1`` for ``i -> j``); a root
    node's mechanism is its context mean."""

    def __init__(
        self, regressions: list[KernelRegression | None], means: np.ndarray, adjacency: np.ndarray
    ) -> None:
        super().__init__(adjacency)
        self.regressions = regressions  # per node; None for a root
        self.means = means  # [d], context means (a root's mechanism)
        self.parents = [np.flatnonzero(self.adjacency[:, node]) for node in range(self.adjacency.shape[0])]

    @classmethod
    def fit(
        cls,
        data: np.ndarray,
        adjacency: np.ndarray,
        *,
        bandwidth_factors: Sequence[float] = BANDWIDTH_FACTORS,
        ridges: Sequence[float] = RIDGES,
    ) -> KernelANM:
        """One :class:`KernelRegression` per non-root node over the rows of ``data`` [n, d] (O(n^3) each)."""
        check_kernel_grid(bandwidth_factors, ridges)
        adjacency = np.asarray(adjacency)
        regressions: list[KernelRegression | None] = []
        for node in range(data.shape[1]):
            parents = np.flatnonzero(adjacency[:, node])
            regressions.append(
                None
                if parents.size == 0
                else KernelRegression.fit(
                    data[:, parents], data[:, node], bandwidth_factors=bandwidth_factors, ridges=ridges
                )
            )
        means = np.array([data[:, node].mean() for node in range(data.shape[1])])
        return cls(regressions, means, adjacency)

    def predict_node(self, node: int, data: np.ndarray) -> np.ndarray:
        regression = self.regressions[node]
        if regression is None:
            return np.full(data.shape[0], self.means[node])
        return regression.predict(data[:, self.parents[node]])
