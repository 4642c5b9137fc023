"""Causal mechanisms: the functions `f_j(x_pa(j))` of an SCM, one per node.

A `Mechanisms` object is built for one graph. `location(j, parent_values)` evaluates `f_j` on rows of the
parents' values (`[n, p] -> [n]`, vectorized over rows); `combine` turns parent values and the node's noise
into the node's value and `invert` recovers the noise. The SCM calls exactly these functions both when it
generates data and when it evaluates `F(x)`, so `X == F(X) + N` holds bit for bit for additive noise.

Families (docs/ARCHITECTURE.md, "Data families"):

- linear: `f_j = b_j + sum_i W_ij x_i`;
- random Fourier features (RFF): `f_j = b_j + o_j sqrt(2 / M) sum_m c_m cos(<w_m, x_pa(j)> / l_j + theta_m)`
  with `w_m ~ N(0, I)`, `c ~ N(0, I)`, `theta ~ U(0, 2 pi)`, `M = 100`;
- heteroscedastic RFF: `X_j = f_j(x_pa) + s_j(x_pa) N_j` with `s_j = 0.1 + softplus(g_j(x_pa))` and `g_j` a
  second RFF function (length scale as `f_j`, output scale 1, no bias).

Further families (random networks, polynomials, products, their heteroscedastic variants and mixed SCMs)
standardize their inputs and outputs on reference rows of the SCM: see `scm_gen.calibrated`.

The RFF features are evaluated in float32 (numpy's float64 cosine is not vectorized and would dominate the
cost); the function `F` is *defined* as this computation, and the result is returned in float64.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from functools import partial

import numpy as np

from scm_gen._checks import check_int, check_range

# Calibrated families (`scm_gen.calibrated`): each also comes as `<name>_hetero`; `mixed` draws one per node.
CALIBRATED_KINDS = ("nn_tanh", "nn_sigmoid", "nn_relu", "polynomial", "multiplicative")
HETERO_CALIBRATED_KINDS = tuple(f"{kind}_hetero" for kind in CALIBRATED_KINDS)
MECHANISM_KINDS = ("linear", "rff", "rff_hetero", *CALIBRATED_KINDS, *HETERO_CALIBRATED_KINDS, "mixed")
# What the nodes of a mixed SCM may draw (`linear` and `rff` there are calibrated like the other families).
NODE_FAMILIES = ("linear", "rff", *CALIBRATED_KINDS, "rff_hetero", *HETERO_CALIBRATED_KINDS)
NUM_RANDOM_FEATURES = 100
HETERO_SCALE_FLOOR = 0.1


def parents_of(adjacency: np.ndarray) -> tuple[np.ndarray, ...]:
    """Parents of every node: the nonzero rows of each column of `adjacency`."""
    return tuple(np.flatnonzero(adjacency[:, node]) for node in range(adjacency.shape[0]))


class Mechanisms(ABC):
    """The mechanisms of every node of one graph."""

    heteroscedastic: bool = False

    def __init__(self, adjacency: np.ndarray) -> None:
        self.adjacency = np.asarray(adjacency, dtype=np.int8)
        self.parents = parents_of(self.adjacency)

    @property
    def num_nodes(self) -> int:
        return self.adjacency.shape[0]

    @abstractmethod
    def location(self, node: int, parent_values: np.ndarray) -> np.ndarray:
        """`f_node` on rows of its parents' values: `[n, p] -> [n]` float64."""

    def combine(self, node: int, parent_values: np.ndarray, noise: np.ndarray) -> np.ndarray:
        """The node's value from its parents' values `[n, p]` and its noise `[n]`: additive by default."""
        return self.location(node, parent_values) + noise

    def invert(self, node: int, parent_values: np.ndarray, values: np.ndarray) -> np.ndarray:
        """The noise `[n]` that `combine` turns into `values` `[n]`."""
        return values - self.location(node, parent_values)

    def describe(self) -> dict:
        """JSON-friendly parameters, for metadata."""
        return {"kind": type(self).__name__}


class LinearMechanisms(Mechanisms):
    """`f_j(x) = bias[j] + sum_i weights[i, j] x_i` over the parents `i` of `j`."""

    def __init__(self, adjacency: np.ndarray, weights: np.ndarray, bias: np.ndarray) -> None:
        super().__init__(adjacency)
        self.weights = np.where(self.adjacency != 0, np.asarray(weights, dtype=np.float64), 0.0)  # [d, d]
        self.bias = np.asarray(bias, dtype=np.float64)  # [d]
        self._columns = [
            np.ascontiguousarray(self.weights[parents, node]) for node, parents in enumerate(self.parents)
        ]

    @classmethod
    def sample(
        cls,
        adjacency: np.ndarray,
        rng: np.random.Generator,
        *,
        weight_range: tuple[float, float],
        bias_range: tuple[float, float],
    ) -> LinearMechanisms:
        """Weights `+-U(weight_range)` (random sign), bias `U(bias_range)`."""
        low, high = check_range("weight_range", weight_range)
        bias_low, bias_high = check_range("bias_range", bias_range)
        num_nodes = adjacency.shape[0]
        magnitude = rng.uniform(low, high, size=(num_nodes, num_nodes))
        sign = np.where(rng.random((num_nodes, num_nodes)) < 0.5, -1.0, 1.0)
        bias = rng.uniform(bias_low, bias_high, size=num_nodes)
        return cls(adjacency, sign * magnitude, bias)

    def location(self, node: int, parent_values: np.ndarray) -> np.ndarray:
        if parent_values.shape[1] == 0:
            return np.full(parent_values.shape[0], self.bias[node])
        return parent_values @ self._columns[node] + self.bias[node]

    def describe(self) -> dict:
        return {"kind": "linear"}


class RFFMechanisms(Mechanisms):
    """Random Fourier feature mechanisms, see the module docstring.

    Per node `j`: `frequencies[j]` `[p_j, M]` (the `w_m`, one column per feature), `phases[j]` `[M]`,
    `coefficients[j]` `[M]`, and scalars `length_scales[j]`, `output_scales[j]`, `bias[j]`.
    """

    def __init__(
        self,
        adjacency: np.ndarray,
        frequencies: list[np.ndarray],
        phases: np.ndarray,
        coefficients: np.ndarray,
        length_scales: np.ndarray,
        output_scales: np.ndarray,
        bias: np.ndarray,
    ) -> None:
        super().__init__(adjacency)
        self.frequencies = frequencies
        self.phases = np.asarray(phases, dtype=np.float64)  # [d, M]
        self.coefficients = np.asarray(coefficients, dtype=np.float64)  # [d, M]
        self.length_scales = np.asarray(length_scales, dtype=np.float64)  # [d]
        self.output_scales = np.asarray(output_scales, dtype=np.float64)  # [d]
        self.bias = np.asarray(bias, dtype=np.float64)  # [d]
        num_features = self.phases.shape[1]
        # float32 working copies with the constants folded in: per node the matrix [w / l; theta] `[p + 1, M]`
        # (the phase is one matmul with a column of ones appended to the parents), and o sqrt(2 / M) c.
        self._weights32 = [
            np.vstack(
                [
                    np.asarray(w, dtype=np.float64).reshape(-1, num_features) / self.length_scales[node],
                    self.phases[node],
                ]
            ).astype(np.float32)
            for node, w in enumerate(frequencies)
        ]
        self._coefficients32 = (
            self.coefficients * (self.output_scales[:, None] * np.sqrt(2.0 / num_features))
        ).astype(np.float32)
        # A root's mechanism is a constant: the same sum with zero phases from the parents.
        self._root_values = (np.cos(self.phases.astype(np.float32)) * self._coefficients32).sum(
            axis=1, dtype=np.float64
        )

    @classmethod
    def sample(
        cls,
        adjacency: np.ndarray,
        rng: np.random.Generator,
        *,
        length_scale_range: tuple[float, float],
        output_scale_range: tuple[float, float],
        bias_range: tuple[float, float],
        num_features: int = NUM_RANDOM_FEATURES,
    ) -> RFFMechanisms:
        """Length scale, output scale and bias per node uniform in their ranges; features as in the paper."""
        length_range = check_range("length_scale_range", length_scale_range)
        output_range = check_range("output_scale_range", output_scale_range)
        bias_range = check_range("bias_range", bias_range)
        if length_range[0] <= 0:
            raise ValueError(f"length_scale_range={length_scale_range!r} must be positive")
        num_features = check_int("num_features", num_features, minimum=1)
        num_nodes = adjacency.shape[0]
        counts = (np.asarray(adjacency) != 0).sum(axis=0)  # [d] number of parents
        all_frequencies = rng.standard_normal((int(counts.sum()), num_features))
        frequencies = np.split(all_frequencies, np.cumsum(counts)[:-1])
        coefficients = rng.standard_normal((num_nodes, num_features))
        phases = rng.uniform(0.0, 2.0 * np.pi, size=(num_nodes, num_features))
        length_scales = rng.uniform(*length_range, size=num_nodes)
        output_scales = rng.uniform(*output_range, size=num_nodes)
        bias = rng.uniform(*bias_range, size=num_nodes)
        return cls(adjacency, frequencies, phases, coefficients, length_scales, output_scales, bias)

    def features_sum(self, node: int, parent_values: np.ndarray) -> np.ndarray:
        """`o_j sqrt(2 / M) sum_m c_m cos(<w_m, x> / l_j + theta_m)`, `[n, p] -> [n]` float64."""
        num_rows, num_parents = parent_values.shape
        if num_parents == 0:
            return np.full(num_rows, self._root_values[node])
        augmented = np.empty((num_rows, num_parents + 1), dtype=np.float32)  # [n, p + 1]: parents, then 1
        augmented[:, :num_parents] = parent_values
        augmented[:, num_parents] = 1.0
        phase = augmented @ self._weights32[node]  # [n, M]: <w_m, x> / l + theta_m
        np.cos(phase, out=phase)
        return (phase @ self._coefficients32[node]).astype(np.float64)  # [n]

    def location(self, node: int, parent_values: np.ndarray) -> np.ndarray:
        return self.features_sum(node, parent_values) + self.bias[node]

    def describe(self) -> dict:
        return {"kind": "rff", "num_features": int(self.phases.shape[1])}


class HeteroscedasticRFFMechanisms(Mechanisms):
    """`X_j = f_j(x_pa) + s_j(x_pa) N_j`, `f` and `g` RFF mechanisms, `s_j = 0.1 + softplus(g_j)`."""

    heteroscedastic = True

    def __init__(self, location: RFFMechanisms, log_scale: RFFMechanisms) -> None:
        super().__init__(location.adjacency)
        self.location_mechanisms = location
        self.scale_mechanisms = log_scale

    @classmethod
    def sample(
        cls,
        adjacency: np.ndarray,
        rng: np.random.Generator,
        *,
        length_scale_range: tuple[float, float],
        output_scale_range: tuple[float, float],
        bias_range: tuple[float, float],
        num_features: int = NUM_RANDOM_FEATURES,
    ) -> HeteroscedasticRFFMechanisms:
        """`f` as `RFFMechanisms.sample` draws it, then `g` likewise but with output scale 1 and no bias."""
        draw = partial(
            RFFMechanisms.sample,
            adjacency,
            rng,
            length_scale_range=length_scale_range,
            num_features=num_features,
        )
        location = draw(output_scale_range=output_scale_range, bias_range=bias_range)
        scale = draw(output_scale_range=(1.0, 1.0), bias_range=(0.0, 0.0))
        return cls(location, scale)

    def location(self, node: int, parent_values: np.ndarray) -> np.ndarray:
        return self.location_mechanisms.location(node, parent_values)

    def scale(self, node: int, parent_values: np.ndarray) -> np.ndarray:
        """`s_j(x_pa) > 0`, `[n, p] -> [n]`."""
        return HETERO_SCALE_FLOOR + np.logaddexp(0.0, self.scale_mechanisms.location(node, parent_values))

    def combine(self, node: int, parent_values: np.ndarray, noise: np.ndarray) -> np.ndarray:
        return self.location(node, parent_values) + self.scale(node, parent_values) * noise

    def invert(self, node: int, parent_values: np.ndarray, values: np.ndarray) -> np.ndarray:
        return (values - self.location(node, parent_values)) / self.scale(node, parent_values)

    def describe(self) -> dict:
        return {"kind": "rff_hetero", "num_features": int(self.location_mechanisms.phases.shape[1])}


class FunctionalMechanisms(Mechanisms):
    """Hand-written mechanisms: `functions[j](parent_values)` with the parents of `j` in increasing index order.

    Each function maps `[n, p_j]` to `[n]`; a root's function receives `[n, 0]`.
    """

    def __init__(self, adjacency: np.ndarray, functions: tuple, *, name: str = "functional") -> None:
        super().__init__(adjacency)
        if len(functions) != self.num_nodes:
            raise ValueError(
                f"functions must hold one callable per node ({self.num_nodes}), got {len(functions)}"
            )
        self.functions = tuple(functions)
        self.name = name

    def location(self, node: int, parent_values: np.ndarray) -> np.ndarray:
        return np.asarray(self.functions[node](parent_values), dtype=np.float64) * np.ones(
            parent_values.shape[0]
        )

    def describe(self) -> dict:
        return {"kind": self.name}
