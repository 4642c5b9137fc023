"""The structural causal model: sampling, interventions, abduction and counterfactuals.

`X_j = f_j(X_pa(j)) + N_j` (or `f_j + s_j N_j` for heteroscedastic mechanisms) over a DAG. Generation visits
the nodes in topological order and is vectorized over samples: one call of the node's mechanism per node.
A hard intervention `do(X_i = a)` replaces `f_i` by the constant `a` (a float, or one value per row).
"""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np

from scm_gen._checks import check_finite_array, check_int, check_sequence
from scm_gen.graphs import topological_order, validate_adjacency
from scm_gen.limits import check_memory
from scm_gen.mechanisms import Mechanisms
from scm_gen.noise import NoiseModel

Interventions = dict[int, "float | np.ndarray"]

REFERENCE_SAMPLES = 1000  # rows drawn to estimate a node's quantiles when no reference data is given


def check_intervention_value(value: Any, node: int, num_rows: int) -> np.ndarray:
    """An intervention's value on ``node`` for ``num_rows`` rows: a finite number, or an array of one finite number
    per row, as float64 of shape ``()`` or ``[num_rows]``; anything else is a ValueError naming the node."""
    try:
        array = np.asarray(value)
    except ValueError:  # a ragged list
        array = np.asarray(None)
    if array.dtype.kind not in "biuf" or array.shape not in ((), (num_rows,)):
        raise ValueError(
            f"intervention value for node {node} must be a number or an array of shape [{num_rows}] "
            f"(one value per row), got {value!r:.60}"
        )
    array = array.astype(np.float64)
    if not np.all(np.isfinite(array)):
        raise ValueError(f"intervention value for node {node} must be finite, got NaN or infinity")
    return array


def draw_between_deciles(values: np.ndarray, rng: np.random.Generator) -> float:
    """A value drawn from `U(q10, q90)` of `values` `[n]` (how the benchmark draws intervention values)."""
    low, high = np.quantile(values, [0.1, 0.9])
    return float(rng.uniform(low, high))


class SCM:
    """An additive (or heteroscedastic) noise model over a DAG.

    `adjacency[i, j] = 1` means `i -> j`. `metadata` holds JSON-friendly facts about how it was made.
    """

    def __init__(
        self,
        adjacency: Any,
        mechanisms: Mechanisms,
        noise: NoiseModel,
        *,
        metadata: dict | None = None,
    ) -> None:
        self.adjacency = validate_adjacency(adjacency)  # also rejects cycles
        if not np.array_equal(self.adjacency, mechanisms.adjacency) or noise.num_nodes != self.num_nodes:
            raise ValueError(
                "mechanisms and noise must be built for the same graph as adjacency "
                f"({self.num_nodes} nodes, {int(self.adjacency.sum())} edges)"
            )
        self.mechanisms_model = mechanisms
        self.noise_model = noise
        self.topological_order = topological_order(self.adjacency)
        self.parents = mechanisms.parents
        self.metadata = dict(metadata or {})

    @property
    def num_nodes(self) -> int:
        return self.adjacency.shape[0]

    @property
    def heteroscedastic(self) -> bool:
        return self.mechanisms_model.heteroscedastic

    def sample_noise(self, num_samples: int, rng: np.random.Generator) -> np.ndarray:
        """Fresh noise rows `[n, d]` float64."""
        num_samples = check_int("num_samples", num_samples, minimum=1)
        check_memory(  # the noise, the rows and one working copy, float64
            24 * num_samples * self.num_nodes,
            f"{num_samples} rows x {self.num_nodes} nodes",
            hint="draw fewer rows at a time",
        )
        return self.noise_model.draw(num_samples, rng)

    def generate(self, noise: np.ndarray, interventions: Interventions | None = None) -> np.ndarray:
        """Push noise rows `[n, d]` through the SCM (under the interventions, if any): data `[n, d]`."""
        noise = self._check_rows("noise", noise)
        clamp = self._check_interventions(interventions, noise.shape[0])
        data = np.empty_like(noise)
        with np.errstate(over="ignore", invalid="ignore"):  # a non-finite result is refused below
            for node in self.topological_order:
                if node in clamp:
                    data[:, node] = clamp[node]
                else:
                    parent_values = data[:, self.parents[node]]
                    data[:, node] = self.mechanisms_model.combine(node, parent_values, noise[:, node])
        return self._check_finite_result(data, "noise", clamp)

    def mechanisms(self, x: np.ndarray) -> np.ndarray:
        """The exact `F(x)` row-wise, `[n, d] -> [n, d]`: column `j` is `f_j(x_pa(j))` (no intervention)."""
        x = self._check_rows("x", x)
        out = np.empty_like(x)
        with np.errstate(over="ignore", invalid="ignore"):
            for node in range(self.num_nodes):
                out[:, node] = self.mechanisms_model.location(node, x[:, self.parents[node]])
        return self._check_finite_result(out, "x", {})

    def abduct(self, x: np.ndarray) -> np.ndarray:
        """The noise `N` `[n, d]` with `generate(N) == x` (up to rounding): `x - F(x)` for additive noise."""
        x = self._check_rows("x", x)
        noise = np.empty_like(x)
        with np.errstate(over="ignore", invalid="ignore"):
            for node in range(self.num_nodes):
                noise[:, node] = self.mechanisms_model.invert(node, x[:, self.parents[node]], x[:, node])
        return self._check_finite_result(noise, "x", {})

    def counterfactual(self, x: np.ndarray, interventions: Interventions) -> np.ndarray:
        """What each factual row of `x` `[n, d]` would have been under `interventions`: `[n, d]`.

        The noise of each row is abducted, then pushed through the intervened SCM. Nodes that are neither
        intervened on nor descendants of an intervened node keep their factual values exactly.
        """
        x = self._check_rows("x", x)
        clamp = self._check_interventions(interventions, x.shape[0])
        return self._propagate(x, None, clamp)

    def counterfactual_from_noise(
        self, x: np.ndarray, noise: np.ndarray, interventions: Interventions
    ) -> np.ndarray:
        """Like `counterfactual`, with the true noise `[n, d]` of the factual rows `x` given instead of abducted.

        Equals `generate(noise, interventions)`, recomputing only the intervened nodes and their descendants.
        """
        x = self._check_rows("x", x)
        noise = self._check_rows("noise", noise)
        if noise.shape != x.shape:
            raise ValueError(f"noise must have the shape of x {x.shape}, got {noise.shape}")
        clamp = self._check_interventions(interventions, x.shape[0])
        return self._propagate(x, noise, clamp)

    def _propagate(self, x: np.ndarray, noise: np.ndarray | None, clamp: dict) -> np.ndarray:
        """Factual rows `x` with the intervened nodes clamped and their descendants recomputed."""
        affected = self.descendants(clamp)
        out = x.copy()
        with np.errstate(over="ignore", invalid="ignore"):  # a non-finite result is refused below
            for node in self.topological_order:
                if not affected[node]:
                    continue
                if node in clamp:
                    out[:, node] = clamp[node]
                    continue
                parents = self.parents[node]
                if noise is None:
                    node_noise = self.mechanisms_model.invert(node, x[:, parents], x[:, node])
                else:
                    node_noise = noise[:, node]
                out[:, node] = self.mechanisms_model.combine(node, out[:, parents], node_noise)
        return self._check_finite_result(out, "x" if noise is None else "x and noise", clamp)

    def sample(
        self,
        num_samples: int,
        rng: np.random.Generator,
        interventions: Interventions | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Fresh rows and their noise, `([n, d], [n, d])`, under the interventions if any."""
        noise = self.sample_noise(num_samples, rng)
        return self.generate(noise, interventions), noise

    def sample_intervention_value(
        self, node: int, rng: np.random.Generator, *, reference: np.ndarray | None = None
    ) -> float:
        """A value drawn from `U(q10, q90)` of the node's observational marginal.

        The quantiles come from `reference` (observational rows `[n, d]`) when given, otherwise from
        1000 fresh observational rows drawn with `rng`.
        """
        node = check_int("node", node, minimum=0, maximum=self.num_nodes - 1)
        if reference is None:
            reference, _ = self.sample(REFERENCE_SAMPLES, rng)
        else:
            reference = self._check_rows("reference", reference)
            if reference.shape[0] == 0:
                raise ValueError("reference has no rows; give at least one observational row, or None")
        return draw_between_deciles(reference[:, node], rng)

    def descendants(self, nodes: Any) -> np.ndarray:
        """`[d]` bool: the given nodes (a list of node indices) and every node reachable from them."""
        marked = np.zeros(self.num_nodes, dtype=bool)
        marked[[self._check_node(node, "node") for node in check_sequence("nodes", nodes, "[0]")]] = True
        for node in self.topological_order:
            if not marked[node] and marked[self.parents[node]].any():
                marked[node] = True
        return marked

    def _check_rows(self, name: str, rows: Any) -> np.ndarray:
        rows = check_finite_array(name, rows, ndim=2)
        if rows.shape[1] != self.num_nodes:
            raise ValueError(
                f"{name} must have shape [n, {self.num_nodes}] (one column per node), got {rows.shape}"
            )
        return rows.astype(np.float64, copy=False)

    def _check_interventions(self, interventions: Any, num_rows: int) -> dict[int, float | np.ndarray]:
        if interventions is None:
            return {}
        if not isinstance(interventions, dict):
            raise ValueError(
                f"interventions must be a dict {{node: value}}, got {type(interventions).__name__}"
            )
        checked: dict[int, float | np.ndarray] = {}
        for node, value in interventions.items():
            node = self._check_node(node, "intervention node")
            array = check_intervention_value(value, node, num_rows)
            checked[node] = float(array) if array.shape == () else array
        return checked

    def _check_node(self, node: Any, name: str) -> int:
        """A node index: an integer (not a bool) in `[0, d)`."""
        if isinstance(node, bool) or not isinstance(node, numbers.Integral) or not 0 <= node < self.num_nodes:
            raise ValueError(f"{name} {node!r} does not exist; allowed: integers 0 to {self.num_nodes - 1}")
        return int(node)

    def _check_finite_result(self, result: np.ndarray, given: str, clamp: dict) -> np.ndarray:
        """`result` `[n, d]`, or a ValueError naming the first node (in topological order) that left float64
        and the interventions upstream of it."""
        finite = np.isfinite(result).all(axis=0)
        if finite.all():
            return result
        node = next(node for node in self.topological_order if not finite[node])
        causes = [source for source in clamp if self.descendants([source])[node]]
        cause = f" under the intervention on node(s) {causes}" if causes else ""
        fix = "intervention values" if causes else given
        raise ValueError(
            f"node {node} takes values beyond the float64 range (about 1.8e308){cause}; "
            f"give {fix} of smaller magnitude"
        )
