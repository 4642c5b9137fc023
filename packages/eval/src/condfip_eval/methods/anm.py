"""Additive-noise regressions fitted per node: ``x_j = f_j(x_pa(j)) + n_j`` with ``n_j = x_j - f_j(x_pa(j))``.

- :class:`LinearANM` ("linear"): ordinary least squares with an intercept.
- :class:`KernelANM` ("nonlinear"): Gaussian-kernel ridge regression on standardized parents; the bandwidth
  (a multiple of the median pairwise distance) and the ridge are chosen per node by exact leave-one-out error.

A root node's mechanism is its context mean, so its noise is centred like every other node's.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from condfip.demo.baseline import BANDWIDTH_FACTORS, RIDGES, KernelRegression, check_kernel_grid
from condfip.demo.baseline import LinearANM as LeastSquaresANM
from condfip_eval.methods.base import FittedSCM, Method, generate_in_order

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
    The regressions are those of ``condfip.demo.KernelANM.fit`` (one implementation); this class gives them the
    benchmark's interface. Cost per node: O(n^3) in the number of context rows.
    """

    name = "nonlinear"

    def __init__(
        self,
        *,
        bandwidth_factors: Sequence[float] = BANDWIDTH_FACTORS,
        ridges: Sequence[float] = RIDGES,
    ) -> None:
        check_kernel_grid(bandwidth_factors, ridges)
        self.bandwidth_factors = tuple(float(f) for f in bandwidth_factors)
        self.ridges = np.asarray(ridges, dtype=np.float64)

    def _fit(self, context: np.ndarray, adjacency: np.ndarray) -> FittedSCM:
        def fit_node(parents: np.ndarray, node: int) -> Predictor:
            regression = KernelRegression.fit(
                context[:, parents],
                context[:, node],
                bandwidth_factors=self.bandwidth_factors,
                ridges=self.ridges,
            )
            return regression.predict

        return _regression_scm(context, adjacency, fit_node)
