"""From edge probabilities to a DAG, by a deterministic rule that always returns an acyclic graph.

The rule (greedy, highest probability first):

1. Start from the required edges (they must form a DAG themselves).
2. Candidates are the off-diagonal pairs ``i -> j`` with ``probabilities[i, j] > threshold`` that are neither
   forbidden nor already required, sorted by decreasing probability; ties are broken by the row-major index
   ``i * d + j`` (smaller first), so the result never depends on floating-point noise of a sort.
3. Each candidate is added unless it would close a cycle, i.e. unless ``j`` already reaches ``i``.

Every added edge keeps the graph acyclic, so the result is a DAG whatever the probabilities (all ones, exact
ties, both directions of a pair, cycles of certain edges). Of two opposite edges, the more probable one wins.
"""

from __future__ import annotations

import numbers
from collections.abc import Hashable, Sequence

import numpy as np


def _check_probabilities(probabilities: object) -> np.ndarray:
    values = np.asarray(probabilities, dtype=np.float64)
    if values.ndim != 2 or values.shape[0] != values.shape[1]:
        raise ValueError(f"probabilities must be a square [d, d] array, got shape {values.shape}")
    if not np.isfinite(values).all():
        raise ValueError("probabilities has NaN or infinite entries; pass values in [0, 1]")
    return values


def _check_mask(mask: object, num_nodes: int, parameter: str) -> np.ndarray:
    if mask is None:
        return np.zeros((num_nodes, num_nodes), dtype=bool)
    array = np.asarray(mask)
    if array.shape != (num_nodes, num_nodes):
        raise ValueError(
            f"{parameter} must be a [d, d] adjacency with d = {num_nodes} (adjacency[i, j] = 1 for i -> j), "
            f"got shape {array.shape}"
        )
    if array.dtype != np.bool_:
        if not np.issubdtype(array.dtype, np.number) or not np.isin(array, (0, 1)).all():
            raise ValueError(
                f"{parameter} must hold only 0 and 1 (or booleans); adjacency[i, j] = 1 for i -> j"
            )
    return array != 0


def dag_from_probabilities(
    probabilities: object,
    *,
    threshold: float = 0.5,
    required: object = None,
    forbidden: object = None,
    names: Sequence[Hashable] | None = None,
) -> np.ndarray:
    """The DAG [d, d] (int8, ``dag[i, j] = 1`` for ``i -> j``) built from edge probabilities by the rule above.

    probabilities: [d, d], ``probabilities[i, j]`` for the edge ``i -> j`` (the diagonal is ignored).
    threshold: an edge is a candidate when its probability is strictly above it (0 <= threshold <= 1).
    required / forbidden: [d, d] adjacency masks of edges that must be / must not be in the result.
    names: the node names that messages use (default: the positions 0..d-1).
    """
    values = _check_probabilities(probabilities)
    num_nodes = values.shape[0]
    if names is not None and len(names) != num_nodes:
        raise ValueError(f"names has {len(names)} entries for {num_nodes} nodes; give one name per node")

    def name(node: int) -> str:
        return str(int(node)) if names is None else repr(names[int(node)])

    if (
        isinstance(threshold, bool | np.bool_)
        or not isinstance(threshold, numbers.Real)
        or not 0.0 <= threshold <= 1.0
    ):
        raise ValueError(f"threshold must be a number in [0, 1], got {threshold!r}")
    must = _check_mask(required, num_nodes, "required")
    never = _check_mask(forbidden, num_nodes, "forbidden")
    both = np.argwhere(must & never)
    if both.size:
        i, j = both[0]
        raise ValueError(
            f"edge {name(i)} -> {name(j)} is both required and forbidden; remove it from one of them"
        )
    if np.diagonal(must).any():
        node = int(np.flatnonzero(np.diagonal(must))[0])
        raise ValueError(f"required has a self-loop on node {name(node)}; a DAG has none, remove it")

    dag = np.zeros((num_nodes, num_nodes), dtype=bool)
    reach = np.eye(num_nodes, dtype=bool)  # reach[a, b]: a path a -> ... -> b exists (a reaches itself)
    for i, j in np.argwhere(must):  # row-major order
        if reach[j, i]:
            raise ValueError(
                f"required edges contain a cycle through {name(i)} -> {name(j)}; required edges must form a "
                "DAG, remove one edge of the cycle"
            )
        _add_edge(dag, reach, i, j)

    candidate = (values > threshold) & ~np.eye(num_nodes, dtype=bool) & ~never & ~dag
    flat = np.flatnonzero(candidate)  # row-major indices i * d + j, increasing
    order = flat[np.argsort(-values.ravel()[flat], kind="stable")]  # decreasing probability, ties by index
    for index in order:
        i, j = divmod(int(index), num_nodes)
        if not reach[j, i]:  # i -> j closes a cycle exactly when j already reaches i
            _add_edge(dag, reach, i, j)
    return dag.astype(np.int8)


def _add_edge(dag: np.ndarray, reach: np.ndarray, i: int, j: int) -> None:
    """Add ``i -> j`` and update the transitive closure: whatever reaches i now reaches whatever j reaches."""
    dag[i, j] = True
    reach |= np.outer(reach[:, i], reach[j, :])
