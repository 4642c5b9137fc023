"""Additive-noise regressions fitted per node: ``x_j = f_j(x_pa(j)) + n_j`` with ``n_j = x_j - f_j(x_pa(j))``.

- :class:`LinearANM` ("linear"): ordinary least squares with an intercept.
- :class:`KernelANM` ("nonlinear"): Gaussian-kernel ridge regression on standardized parents; the bandwidth
  (a multiple of the median pairwise distance) and the ridge are chosen per node by exact leave-one-out error.

A root node's mechanism is its context mean, so its noise is centred like every other node's.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from condfip.core.standardization import Standardization
from condfip.demo.baseline import LinearANM as LeastSquaresANM
from condfip_eval.methods.base import FittedSCM, Method, generate_in_order
from condfip_eval.metrics import squared_distances

__all__ = ["KernelANM", "LinearANM", "NodeRegressionSCM"]

Predictor = Callable[[np.ndarray], np.ndarray]  # parents' values [n, p] -> prediction [n]


class NodeRegressionSCM(FittedSCM):
    """An additive-noise model given by one fitted regression per node."""

    def __init__(self, adjacency: np.ndarray, predictors: list[Predictor]) -> None:
        super().__init__(adjacency)
        self.parents = [np.flatnonzero(self.adjacency[:, node]) for node in range(self.num_nodes)]
        self.predictors = predictors

    def predict_node(self, node: int, x: np.ndarray) -> np.ndarray:
        return self.predictors[node](x[:, self.parents[node]])

    def _noise(self, x: np.ndarray) -> np.ndarray:
        predictions = np.stack([self.predict_node(node, x) for node in range(self.num_nodes)], axis=1)
        return x - predictions

    def _generate(self, noise: np.ndarray, interventions: dict[int, np.ndarray]) -> np.ndarray:
        return generate_in_order(self.adjacency, noise, self.predict_node, interventions)


def _constant(value: float) -> Predictor:
    return lambda inputs: np.full(inputs.shape[0], value)


def _regression_scm(
    context: np.ndarray, adjacency: np.ndarray, fit_node: Callable[[np.ndarray, int], Predictor]
) -> NodeRegressionSCM:
    """One predictor per node: a root's is its context mean, any other's ``fit_node(parents, node)``."""
    predictors: list[Predictor] = []
    for node in range(adjacency.shape[0]):
        parents = np.flatnonzero(adjacency[:, node])
        if parents.size == 0:
            predictors.append(_constant(float(context[:, node].mean())))
        else:
            predictors.append(fit_node(parents, node))
    return NodeRegressionSCM(adjacency, predictors)


class LinearANM(Method):
    """Least-squares linear regression of each node on its parents (with an intercept).

    The coefficients are those of ``condfip.demo.LinearANM.fit`` (one implementation of the regression); this
    class gives them the benchmark's interface (roots predict their context mean, interventions may hold one
    value per row, timing).
    """

    name = "linear"

    def _fit(self, context: np.ndarray, adjacency: np.ndarray) -> FittedSCM:
        least_squares = LeastSquaresANM.fit(context, adjacency)  # weights [d, d], bias [d]

        def fit_node(parents: np.ndarray, node: int) -> Predictor:
            intercept, weights = least_squares.bias[node], least_squares.weights[parents, node]  # [], [p]
            return lambda inputs: intercept + inputs @ weights

        return _regression_scm(context, adjacency, fit_node)


class KernelANM(Method):
    """Gaussian-kernel ridge regression of each node on its standardized parents.

    Per node, every pair (bandwidth, ridge) from ``bandwidth_factors x median distance`` and ``ridges`` is
    scored by its exact leave-one-out squared error (one eigendecomposition per bandwidth) and the best kept.
    Cost per node: O(n^3) in the number of context rows.
    """

    name = "nonlinear"

    def __init__(
        self,
        *,
        bandwidth_factors: Sequence[float] = (0.5, 1.0, 2.0, 4.0),
        ridges: Sequence[float] = tuple(np.logspace(-4.0, 1.0, 11)),
    ) -> None:
        if not bandwidth_factors or min(bandwidth_factors) <= 0:
            raise ValueError(f"bandwidth_factors must be positive numbers; got {tuple(bandwidth_factors)}")
        if not ridges or min(ridges) <= 0:
            raise ValueError(f"ridges must be positive numbers; got {tuple(ridges)}")
        self.bandwidth_factors = tuple(float(f) for f in bandwidth_factors)
        self.ridges = np.asarray(ridges, dtype=np.float64)

    def _fit(self, context: np.ndarray, adjacency: np.ndarray) -> FittedSCM:
        return _regression_scm(
            context, adjacency, lambda parents, node: self._fit_node(context[:, parents], context[:, node])
        )

    def _fit_node(self, inputs: np.ndarray, target: np.ndarray) -> Predictor:
        standardization = Standardization.fit(inputs)
        z = standardization.data_to_standard(inputs)  # [n, p]
        offset = target.mean()
        y = target - offset
        squared = squared_distances(z, z)
        median = float(np.sqrt(np.median(squared[np.triu_indices(z.shape[0], k=1)])))
        median = median if median > 0 else 1.0

        best = (np.inf, 1.0, 1.0)  # (leave-one-out error, bandwidth, ridge)
        for factor in self.bandwidth_factors:
            bandwidth = factor * median
            kernel = np.exp(-squared / (2.0 * bandwidth**2))
            eigenvalues, eigenvectors = np.linalg.eigh(kernel)
            eigenvalues = np.maximum(eigenvalues, 0.0)
            projected = eigenvectors.T @ y  # [n]
            for ridge in self.ridges:
                shrink = eigenvalues / (eigenvalues + ridge)  # hat matrix H = U diag(shrink) U^T
                fitted = eigenvectors @ (shrink * projected)
                leverage = (eigenvectors**2) @ shrink  # diag(H)
                residual = (y - fitted) / np.maximum(1.0 - leverage, 1e-12)
                error = float(np.mean(residual**2))
                if error < best[0]:
                    best = (error, bandwidth, float(ridge))

        _, bandwidth, ridge = best
        kernel = np.exp(-squared / (2.0 * bandwidth**2))
        weights = np.linalg.solve(kernel + ridge * np.eye(kernel.shape[0]), y)  # [n]

        def predict(parents: np.ndarray) -> np.ndarray:
            query = standardization.data_to_standard(parents)
            cross = np.exp(-squared_distances(query, z) / (2.0 * bandwidth**2))  # [m, n]
            return offset + cross @ weights

        return predict
