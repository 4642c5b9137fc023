"""Turning a user's causal graph into an adjacency over the data's columns, and checking it is a DAG.

Convention: ``adjacency[i, j] = 1`` means the edge ``i -> j``; the parents of node ``j`` are the nonzero
entries of column ``j``. Accepted graphs: a networkx ``DiGraph`` over the column names, a square adjacency
array in column order, an adjacency DataFrame labelled by column names, or an edge list of
``(source, target)`` pairs (or a DataFrame with columns ``source`` and ``target``).
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence

import networkx as nx
import numpy as np
import pandas as pd


def _check_node_names(nodes: Sequence[Hashable], columns: Sequence[Hashable], *, complete: bool) -> None:
    column_set = set(columns)
    unknown = [node for node in nodes if node not in column_set]
    if unknown:
        raise ValueError(
            f"graph nodes {unknown[:10]!r} are not columns of the data (columns: {list(columns)!r}); "
            "name graph nodes exactly like the columns, or drop those nodes"
        )
    if complete:
        node_set = set(nodes)
        missing = [column for column in columns if column not in node_set]
        if missing:
            raise ValueError(
                f"data columns {missing[:10]!r} are missing from the graph; add them as nodes "
                "(isolated nodes are fine: graph.add_node(name)) or drop those columns"
            )


def _from_edges(edges: Sequence[tuple[Hashable, Hashable]], columns: Sequence[Hashable]) -> np.ndarray:
    index = {name: j for j, name in enumerate(columns)}
    adjacency = np.zeros((len(columns), len(columns)), dtype=np.int8)
    endpoints = [node for edge in edges for node in edge]
    _check_node_names(list(dict.fromkeys(endpoints)), columns, complete=False)
    for source, target in edges:
        adjacency[index[source], index[target]] = 1
    return adjacency


def _edge_list(graph: object) -> list[tuple[Hashable, Hashable]]:
    edges = []
    for position, edge in enumerate(graph):  # type: ignore[attr-defined]
        if isinstance(edge, str) or not hasattr(edge, "__len__") or len(edge) != 2:
            raise ValueError(
                f"graph edge list entry {position} is {edge!r}; every entry must be a (source, target) pair"
            )
        edges.append((edge[0], edge[1]))
    return edges


def _from_adjacency_array(graph: object, columns: Sequence[Hashable]) -> np.ndarray:
    array = np.asarray(graph)
    if array.ndim != 2 or array.shape[0] != array.shape[1]:
        raise ValueError(
            f"graph adjacency must be square [d, d], got shape {array.shape}; "
            "adjacency[i, j] = 1 means the edge i -> j"
        )
    if array.shape[0] != len(columns):
        raise ValueError(
            f"graph adjacency is {array.shape[0]}x{array.shape[1]} but the data has {len(columns)} columns; "
            "give one row and one column per data column, in the same order"
        )
    if not (array.dtype == np.bool_ or np.issubdtype(array.dtype, np.number)):
        raise ValueError(f"graph adjacency has dtype {array.dtype}; use 0/1 (or booleans)")
    if not np.isfinite(array.astype(np.float64)).all():
        raise ValueError("graph adjacency has NaN or infinite entries; use 0/1 (or booleans)")
    return (array != 0).astype(np.int8)


def _from_adjacency_frame(frame: pd.DataFrame, columns: Sequence[Hashable]) -> np.ndarray:
    if frame.shape[0] != frame.shape[1]:
        raise ValueError(
            f"graph adjacency DataFrame must be square, got shape {frame.shape}; "
            "rows and columns are the nodes, adjacency[i, j] = 1 means the edge i -> j"
        )
    labels = list(frame.columns)
    _check_node_names(labels, columns, complete=True)
    if isinstance(frame.index, pd.RangeIndex):
        frame = frame.set_axis(labels, axis=0)  # unlabelled rows: same order as the columns
    elif set(frame.index) != set(labels):
        raise ValueError(
            f"graph adjacency DataFrame has row labels {list(frame.index)!r} that differ from its column "
            f"labels {labels!r}; label rows and columns with the same node names"
        )
    return _from_adjacency_array(frame.loc[list(columns), list(columns)].to_numpy(), columns)


def adjacency_from_user(graph: object, columns: Sequence[Hashable]) -> np.ndarray:
    """The graph as an int8 adjacency [d, d] in the order of ``columns``, checked to be acyclic."""
    if isinstance(graph, nx.Graph):
        if not graph.is_directed():
            raise ValueError(
                "graph is an undirected networkx Graph; a causal graph needs directions (pass an nx.DiGraph)"
            )
        _check_node_names(list(graph.nodes), columns, complete=True)
        adjacency = _from_edges(list(graph.edges()), columns)
    elif isinstance(graph, pd.DataFrame):
        if list(graph.columns) == ["source", "target"] and set(columns) != {"source", "target"}:
            adjacency = _from_edges(list(graph.itertuples(index=False, name=None)), columns)
        else:
            adjacency = _from_adjacency_frame(graph, columns)
    elif (
        isinstance(graph, np.ndarray)
        and graph.ndim == 2
        and graph.shape[1] == 2
        and graph.dtype.kind in "OUS"
    ):
        adjacency = _from_edges(_edge_list(graph.tolist()), columns)
    elif isinstance(graph, np.ndarray) or _looks_like_matrix(graph, columns):
        adjacency = _from_adjacency_array(graph, columns)
    elif isinstance(graph, Sequence) and not isinstance(graph, str):
        adjacency = _from_edges(_edge_list(graph), columns)
    else:
        raise ValueError(
            f"graph of type {type(graph).__name__} is not understood; pass a networkx DiGraph over the "
            "column names, an adjacency array or DataFrame (adjacency[i, j] = 1 for i -> j), "
            "or a list of (source, target) edges"
        )
    check_acyclic(adjacency, columns)
    return adjacency


def _looks_like_matrix(graph: object, columns: Sequence[Hashable]) -> bool:
    """A square nested list of numbers (as opposed to an edge list of column names)."""
    if not isinstance(graph, list | tuple) or len(graph) != len(columns):
        return False
    rows_are_numbers = all(
        isinstance(row, list | tuple)
        and len(row) == len(columns)
        and all(isinstance(v, int | float | bool | np.number) for v in row)
        for row in graph
    )
    if not rows_are_numbers:
        return False
    names = set(columns)
    return not (len(columns) == 2 and all(v in names for row in graph for v in row))


def check_acyclic(adjacency: np.ndarray, columns: Sequence[Hashable]) -> None:
    """Raise a ValueError naming a self-loop or one cycle of the graph."""
    loops = np.flatnonzero(np.diagonal(adjacency))
    if loops.size:
        raise ValueError(
            f"graph has a self-loop on {columns[loops[0]]!r}; a causal graph must be acyclic, remove that edge"
        )
    digraph = nx.from_numpy_array(adjacency, create_using=nx.DiGraph)
    try:
        cycle = nx.find_cycle(digraph)
    except nx.NetworkXNoCycle:
        return
    path = " -> ".join(repr(columns[source]) for source, _ in cycle) + f" -> {columns[cycle[0][0]]!r}"
    raise ValueError(f"graph has a cycle {path}; a causal graph must be acyclic, remove one of these edges")


def longest_path_length(adjacency: np.ndarray) -> int:
    """Number of edges on the longest directed path of a DAG (0 for a graph without edges)."""
    return int(nx.dag_longest_path_length(nx.from_numpy_array(adjacency, create_using=nx.DiGraph)))


def topological_levels(adjacency: np.ndarray) -> list[np.ndarray]:
    """Nodes grouped by depth (edges on the longest path reaching them): level 0 holds the roots, and every
    parent of a node sits in an earlier level. There are longest path + 1 levels."""
    digraph = nx.from_numpy_array(adjacency, create_using=nx.DiGraph)
    return [np.array(sorted(level), dtype=np.int64) for level in nx.topological_generations(digraph)]


def digraph_from_adjacency(adjacency: np.ndarray, columns: Sequence[Hashable]) -> nx.DiGraph:
    """A networkx DiGraph whose nodes are the column names, in column order."""
    graph = nx.DiGraph()
    graph.add_nodes_from(columns)
    sources, targets = np.nonzero(adjacency)
    graph.add_edges_from((columns[i], columns[j]) for i, j in zip(sources, targets, strict=True))
    return graph
