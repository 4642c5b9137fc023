"""Calibrated mechanisms: random node functions of standardized parents, with a chosen signal scale.

Node `j` with parents `pa(j)` and a random function `phi_j` (`scm_gen.node_functions`):

    f_j(x_pa) = b_j + o_j (phi_j(z) - m_j) / s_j,        z_i = (x_i - mu_i) / sigma_i,

where `mu_i`, `sigma_i` are the mean and standard deviation of parent `i` and `m_j`, `s_j` those of the raw
`phi_j`, all measured once on reference rows drawn from the SCM itself (`calibrate`). After calibration the
functions are fixed: `f_j` has mean `b_j` and standard deviation `o_j` on the reference rows, whatever the
family and the depth of the node, which keeps the signal-to-noise ratio comparable across families and the
values finite through deep graphs. A root's `f_j` is the constant `b_j`.

A heteroscedastic node (family `<name>_hetero`) is `X_j = f_j(x_pa) + t_j(x_pa) N_j` with
`t_j = 0.1 + softplus(C tanh(g_j / C))`, `g_j` a second random function of the same family, calibrated to mean
0 and standard deviation 1 (the pattern of `rff_hetero`); the soft clip (`C = 3`) bounds `t_j` to about
(0.15, 3.15), so noise never multiplies up along a path. A root's noise is additive.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from scm_gen.graphs import topological_order
from scm_gen.mechanisms import HETERO_SCALE_FLOOR, Mechanisms
from scm_gen.node_functions import NodeFunction, soft_clip

HETERO_SUFFIX = "_hetero"
_DEGENERATE = 1e-12  # a spread below this (relative) counts as zero: the value is only centred


def _spread(values: np.ndarray) -> tuple[float, float]:
    """Mean and standard deviation of `values` `[r]`; a zero (or vanishing) deviation becomes 1."""
    mean, std = float(values.mean()), float(values.std())
    if not std > _DEGENERATE * max(1.0, abs(mean)):
        std = 1.0
    return mean, std


class CalibratedMechanisms(Mechanisms):
    """Mechanisms of the calibrated families, one `NodeFunction` per non-root node (see the module docstring).

    `families[j]` names node `j`'s family (`"nn_tanh"`, `"polynomial_hetero"`, ...); `functions[j]` and
    `scale_functions[j]` are None for a root, and `scale_functions[j]` is None for an additive node.
    `output_scales` `[d]` are the `o_j`, `bias` `[d]` the `b_j`. Call `calibrate` once before use.
    """

    def __init__(
        self,
        adjacency: np.ndarray,
        *,
        kind: str,
        families: Sequence[str],
        functions: Sequence[NodeFunction | None],
        scale_functions: Sequence[NodeFunction | None],
        output_scales: np.ndarray,
        bias: np.ndarray,
    ) -> None:
        super().__init__(adjacency)
        num_nodes = self.num_nodes
        if not len(families) == len(functions) == len(scale_functions) == num_nodes:
            raise ValueError(f"families, functions and scale_functions must hold {num_nodes} entries each")
        for node, parents in enumerate(self.parents):
            if (functions[node] is None) != (parents.size == 0):
                raise ValueError(f"node {node} needs a function exactly when it has parents")
        self.kind = kind
        self.families = tuple(families)
        self.functions = tuple(functions)
        self.scale_functions = tuple(scale_functions)
        self.output_scales = np.asarray(output_scales, dtype=np.float64)  # [d]
        self.bias = np.asarray(bias, dtype=np.float64)  # [d]
        self.heteroscedastic = any(function is not None for function in self.scale_functions)
        self.calibrated = False

    def calibrate(self, reference_noise: np.ndarray) -> CalibratedMechanisms:
        """Measure every statistic of the module docstring on the rows generated from `reference_noise` `[r, d]`.

        Nodes are visited in topological order, so each node is calibrated on its parents' final values.
        Returns `self`.
        """
        reference_noise = np.asarray(reference_noise, dtype=np.float64)
        num_nodes = self.num_nodes
        if reference_noise.ndim != 2 or reference_noise.shape[1] != num_nodes or reference_noise.shape[0] < 2:
            raise ValueError(
                f"reference_noise must have shape [r, {num_nodes}] with r >= 2, got {reference_noise.shape}"
            )
        self._node_mean = np.zeros(num_nodes)  # [d]
        self._node_std = np.ones(num_nodes)  # [d]
        self._input_mean: list[np.ndarray] = [np.empty(0)] * num_nodes  # per node [p]
        self._input_std: list[np.ndarray] = [np.empty(0)] * num_nodes  # per node [p]
        self._output_mean = np.zeros(num_nodes)  # [d] the m_j
        self._output_std = np.ones(num_nodes)  # [d] the s_j
        self._scale_mean = np.zeros(num_nodes)  # [d] mean of the raw g_j
        self._scale_std = np.ones(num_nodes)  # [d] its deviation
        values = np.empty_like(reference_noise)  # [r, d]
        for node in topological_order(self.adjacency):
            parents = self.parents[node]
            if parents.size:
                self._input_mean[node] = self._node_mean[parents]
                self._input_std[node] = self._node_std[parents]
                inputs = self._standardized(node, values[:, parents])
                self._output_mean[node], self._output_std[node] = _spread(self.functions[node](inputs))
                if self.scale_functions[node] is not None:
                    self._scale_mean[node], self._scale_std[node] = _spread(
                        self.scale_functions[node](inputs)
                    )
            self.calibrated = True  # the statistics of `node` and of its ancestors are in place
            values[:, node] = self.combine(node, values[:, parents], reference_noise[:, node])
            self._node_mean[node], self._node_std[node] = _spread(values[:, node])
        return self

    def _standardized(self, node: int, parent_values: np.ndarray) -> np.ndarray:
        """`z` `[n, p]`: the parents' values standardized by their reference statistics."""
        return (parent_values - self._input_mean[node]) / self._input_std[node]

    def _check_calibrated(self) -> None:
        if not self.calibrated:
            raise ValueError("these mechanisms are not calibrated yet; call calibrate(reference_noise) first")

    def location(self, node: int, parent_values: np.ndarray) -> np.ndarray:
        self._check_calibrated()
        if parent_values.shape[1] == 0:
            return np.full(parent_values.shape[0], self.bias[node])
        raw = self.functions[node](self._standardized(node, parent_values))  # [n]
        signal = (raw - self._output_mean[node]) / self._output_std[node]
        return self.bias[node] + self.output_scales[node] * signal

    def scale(self, node: int, parent_values: np.ndarray) -> np.ndarray:
        """`t_j(x_pa) > 0` `[n]` of a heteroscedastic node (ones for an additive node)."""
        self._check_calibrated()
        function = self.scale_functions[node]
        if function is None:
            return np.ones(parent_values.shape[0])
        raw = function(self._standardized(node, parent_values))
        signal = soft_clip((raw - self._scale_mean[node]) / self._scale_std[node])
        return HETERO_SCALE_FLOOR + np.logaddexp(0.0, signal)

    def combine(self, node: int, parent_values: np.ndarray, noise: np.ndarray) -> np.ndarray:
        if self.scale_functions[node] is None:
            return self.location(node, parent_values) + noise
        return self.location(node, parent_values) + self.scale(node, parent_values) * noise

    def invert(self, node: int, parent_values: np.ndarray, values: np.ndarray) -> np.ndarray:
        if self.scale_functions[node] is None:
            return values - self.location(node, parent_values)
        return (values - self.location(node, parent_values)) / self.scale(node, parent_values)

    def describe(self) -> dict:
        counts: dict[str, int] = {}
        for family in self.families:
            counts[family] = counts.get(family, 0) + 1
        return {"kind": self.kind, "node_families": dict(sorted(counts.items()))}
