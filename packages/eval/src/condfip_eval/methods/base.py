"""The common interface of every method the benchmark compares.

A :class:`Method` fits a causal model to one dataset's context rows and its graph and returns a
:class:`FittedSCM`, which answers the four tasks of the protocol in the dataset's raw units:

- ``noise(x)``: the abducted noise of each row;
- ``generate(noise, interventions)``: rows pushed through the fitted model from given noise, with optional
  hard interventions ``{node: value}`` (a value is a scalar or one value per row);
- ``counterfactual(x, interventions)``: each observed row under the interventions (abduction, action,
  prediction).

Each method is timed the same way: ``fit_seconds`` is the wall time of ``fit``; ``sample_seconds`` adds up
the wall time of every ``noise``, ``generate`` and ``counterfactual`` call made on the fitted model.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping

import networkx as nx
import numpy as np

from condfip.core.dags import as_digraph
from scm_gen import check_intervention_value

Interventions = Mapping[int, "float | np.ndarray"]

__all__ = [
    "FittedSCM",
    "Interventions",
    "Method",
    "generate_in_order",
    "topological_order",
]


def topological_order(adjacency: np.ndarray) -> np.ndarray:
    """Nodes ordered so that every parent comes before its children (Kahn's algorithm, smallest index first).

    Raises ``ValueError`` naming a node on a cycle when the graph is not acyclic.
    """
    order: list[int] = []
    try:
        order.extend(nx.lexicographical_topological_sort(as_digraph(adjacency)))
    except nx.NetworkXUnfeasible:
        stuck = sorted(set(range(np.shape(adjacency)[0])) - set(order))
        raise ValueError(f"adjacency must be acyclic; nodes {stuck[:5]} lie on or after a cycle") from None
    return np.asarray(order, dtype=np.int64)


def _check_interventions(
    interventions: Interventions | None, num_nodes: int, num_rows: int
) -> dict[int, np.ndarray]:
    """Interventions as {node: values [num_rows]}; bad nodes or values raise ValueError."""
    if interventions is None:
        return {}
    if not isinstance(interventions, Mapping):
        raise ValueError(f"interventions must be a dict {{node: value}}; got {type(interventions).__name__}")
    checked: dict[int, np.ndarray] = {}
    for node, value in interventions.items():
        if (
            isinstance(node, bool | np.bool_)
            or not isinstance(node, int | np.integer)
            or not 0 <= node < num_nodes
        ):
            raise ValueError(
                f"intervention node must be an integer in [0, {num_nodes}) (not a bool); got {node!r}"
            )
        checked[int(node)] = np.broadcast_to(
            check_intervention_value(value, int(node), num_rows), (num_rows,)
        )
    return checked


def generate_in_order(
    adjacency: np.ndarray,
    noise: np.ndarray,
    mechanism: Callable[[int, np.ndarray], np.ndarray],
    interventions: Interventions | None = None,
) -> np.ndarray:
    """Rows of an additive-noise model: ``x_j = mechanism(j, x) + noise_j`` in topological order.

    ``mechanism(j, x)`` returns node j's prediction [n] from the rows x [n, d] built so far (it must read only
    j's parents). Intervened nodes take their values instead, so their descendants see them.
    """
    num_rows, num_nodes = noise.shape
    clamped = _check_interventions(interventions, num_nodes, num_rows)
    x = np.zeros_like(noise, dtype=np.float64)
    for node in topological_order(adjacency).tolist():
        x[:, node] = clamped[node] if node in clamped else mechanism(node, x) + noise[:, node]
    return x


def _as_rows(name: str, value: np.ndarray, num_nodes: int) -> np.ndarray:
    try:
        array = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):  # strings, ragged lists, objects
        raise ValueError(f"{name} must be a numeric array [n, {num_nodes}]") from None
    if array.ndim != 2 or array.shape[1] != num_nodes:
        raise ValueError(f"{name} must be an array [n, {num_nodes}]; got shape {array.shape}")
    if not np.isfinite(array).all():
        raise ValueError(f"{name} must be finite (no NaN or infinity)")
    return array


class FittedSCM(ABC):
    """A causal model fitted to one dataset. Inputs and outputs are arrays [n, d] in the dataset's raw units."""

    def __init__(self, adjacency: np.ndarray) -> None:
        self.adjacency = np.asarray(adjacency)
        self.num_nodes = self.adjacency.shape[0]
        self.fit_seconds = 0.0
        self.sample_seconds = 0.0

    # subclasses implement these (the last three have defaults)
    @abstractmethod
    def _noise(self, x: np.ndarray) -> np.ndarray: ...

    @abstractmethod
    def _generate(self, noise: np.ndarray, interventions: dict[int, np.ndarray]) -> np.ndarray: ...

    def _counterfactual(self, x: np.ndarray, interventions: dict[int, np.ndarray]) -> np.ndarray:
        return self._generate(self._noise(x), interventions)

    def _abducted_noise(self, x: np.ndarray) -> np.ndarray:
        return self._noise(x)

    def _sampling_noise(self, context: np.ndarray) -> np.ndarray:
        return self._abducted_noise(context)

    def _timed(self, what: str, rows: np.ndarray, call: Callable[[], np.ndarray]) -> np.ndarray:
        """``call()`` as float64 [n, d], timed; no rows give an empty result without calling it; a non-finite
        result is refused (a ValueError, never NaN)."""
        if rows.shape[0] == 0:
            return np.zeros((0, self.num_nodes))
        start = time.perf_counter()
        try:
            with np.errstate(over="ignore", invalid="ignore"):  # a non-finite result is refused below
                result = np.asarray(call(), dtype=np.float64)
        finally:
            self.sample_seconds += time.perf_counter() - start
        if not np.isfinite(result).all():
            raise ValueError(
                f"{what}: the fitted model gives NaN or infinite values for these inputs; give values nearer the "
                "range of the context rows"
            )
        return result

    def noise(self, x: np.ndarray) -> np.ndarray:
        """Abducted noise of each row of x [n, d]."""
        x = _as_rows("x", x, self.num_nodes)
        return self._timed("noise", x, lambda: self._noise(x))

    def abducted_noise(self, x: np.ndarray) -> np.ndarray:
        """The noise [n, d] that this model's generation maps back to the rows x [n, d], what its own sampling
        draws fresh noise from (by default the same as ``noise``)."""
        x = _as_rows("x", x, self.num_nodes)
        return self._timed("abducted_noise", x, lambda: self._abducted_noise(x))

    def sampling_noise(self, context: np.ndarray) -> np.ndarray:
        """The noise [n, d] of the rows this model was fitted on (``context``) as its own sampling draws fresh
        noise from it: by default ``abducted_noise``."""
        context = _as_rows("context", context, self.num_nodes)
        return self._timed("sampling_noise", context, lambda: self._sampling_noise(context))

    def generate(self, noise: np.ndarray, interventions: Interventions | None = None) -> np.ndarray:
        """Rows [n, d] from the given noise [n, d] under optional hard interventions {node: value}."""
        noise = _as_rows("noise", noise, self.num_nodes)
        clamped = _check_interventions(interventions, self.num_nodes, noise.shape[0])
        return self._timed("generate", noise, lambda: self._generate(noise, clamped))

    def counterfactual(self, x: np.ndarray, interventions: Interventions) -> np.ndarray:
        """Each row of x [n, d] as it would have been under the interventions."""
        x = _as_rows("x", x, self.num_nodes)
        clamped = _check_interventions(interventions, self.num_nodes, x.shape[0])
        return self._timed("counterfactual", x, lambda: self._counterfactual(x, clamped))


class Method(ABC):
    """Something that fits a causal model to one dataset given its graph."""

    name: str = "method"
    min_rows: int = 2  # context rows a fit needs

    @abstractmethod
    def _fit(self, context: np.ndarray, adjacency: np.ndarray) -> FittedSCM: ...

    def fit(self, context: np.ndarray, adjacency: np.ndarray) -> FittedSCM:
        """Fit to context rows [n, d] and a DAG ``adjacency[i, j] = 1`` for ``i -> j``; records ``fit_seconds``."""
        adjacency = np.asarray(adjacency)
        if adjacency.dtype.kind not in "biuf":
            raise ValueError(
                f"adjacency must be a numeric 0/1 (or boolean) matrix; got dtype {adjacency.dtype}"
            )
        if adjacency.ndim != 2 or adjacency.shape[0] != adjacency.shape[1]:
            raise ValueError(f"adjacency must be square [d, d]; got shape {adjacency.shape}")
        binary = np.isin(adjacency, (0, 1))  # NaN is neither
        if not binary.all():
            raise ValueError(
                f"adjacency entries must be 0 or 1 (1 for an edge i -> j); got {adjacency[~binary][0].item()!r}"
            )
        if np.any(np.diag(adjacency) != 0):
            raise ValueError("adjacency must have no self-loops (a zero diagonal)")
        topological_order(adjacency)  # raises on a cycle
        context = _as_rows("context", context, adjacency.shape[0])
        if context.shape[1] == 0:
            raise ValueError(f"context must have at least one column (node); got shape {context.shape}")
        if context.shape[0] < self.min_rows:
            raise ValueError(
                f"context must hold at least {self.min_rows} rows for method {self.name!r}; got {context.shape[0]}"
            )
        start = time.perf_counter()
        fitted = self._fit(context, (adjacency != 0).astype(np.int8))
        fitted.fit_seconds = time.perf_counter() - start
        return fitted

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"
