"""Order and paths of a DAG given as an adjacency matrix (``adjacency[i, j] != 0`` for the edge ``i -> j``)."""

from __future__ import annotations

import networkx as nx
import numpy as np


def as_digraph(adjacency: np.ndarray) -> nx.DiGraph:
    """The adjacency [d, d] as a networkx DiGraph over the node indices 0..d-1."""
    return nx.from_numpy_array(np.asarray(adjacency) != 0, create_using=nx.DiGraph)


def longest_path_length(adjacency: np.ndarray) -> int:
    """Number of edges on the longest directed path of a DAG (0 for a graph without edges)."""
    return int(nx.dag_longest_path_length(as_digraph(adjacency)))


def topological_levels(adjacency: np.ndarray) -> list[np.ndarray]:
    """Nodes grouped by depth (edges on the longest path reaching them): level 0 holds the roots, and every
    parent of a node sits in an earlier level. There are longest path + 1 levels."""
    return [
        np.array(sorted(level), dtype=np.int64) for level in nx.topological_generations(as_digraph(adjacency))
    ]
