"""The per-dataset baseline of the demo: a linear additive-noise model fitted by least squares on the context.

``x_j = b_j + sum_{i in pa(j)} W_ij x_i + n_j``; abduction ``n = x - F(x)``; generation node by node in
topological order, with hard interventions replacing a node's mechanism by its value.
"""

from __future__ import annotations

import networkx as nx
import numpy as np

from condfip.core.dags import as_digraph


class LinearANM:
    """Least-squares linear mechanisms over a known DAG (``adjacency[i, j] = 1`` for ``i -> j``)."""

    def __init__(self, weights: np.ndarray, bias: np.ndarray, adjacency: np.ndarray) -> None:
        self.weights = weights  # [d, d], weights[i, j] for the edge i -> j
        self.bias = bias  # [d]
        self.adjacency = adjacency
        self.order = list(nx.topological_sort(as_digraph(adjacency)))

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

    def mechanisms(self, data: np.ndarray) -> np.ndarray:
        """F(x) row-wise: [n, d] -> [n, d]."""
        return self.bias + data @ self.weights

    def noise(self, data: np.ndarray) -> np.ndarray:
        return data - self.mechanisms(data)

    def generate(self, noise: np.ndarray, interventions: dict[int, float] | None = None) -> np.ndarray:
        interventions = interventions or {}
        data = np.zeros_like(noise)
        for node in self.order:
            if node in interventions:
                data[:, node] = interventions[node]
            else:
                data[:, node] = self.bias[node] + data @ self.weights[:, node] + noise[:, node]
        return data

    def counterfactual(self, data: np.ndarray, interventions: dict[int, float]) -> np.ndarray:
        return self.generate(self.noise(data), interventions)
