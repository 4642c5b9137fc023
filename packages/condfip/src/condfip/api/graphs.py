"""The one parser of user graphs: a causal graph, or a set of known edges, as an adjacency over the columns.

Convention: ``adjacency[i, j] = 1`` means the edge ``i -> j``; the parents of node ``j`` are the nonzero
entries of column ``j``. Accepted forms: a networkx ``DiGraph`` over the column names, a square adjacency
array (or nested list) in column order, an adjacency DataFrame labelled by column names, or an edge list of
``(source, target)`` pairs (or a DataFrame with columns ``source`` and ``target``).

``adjacency_from_user`` reads the causal graph of ``CondFiP.infer``: every column a node, acyclic.
``edges_from_user`` reads known edges (``infer_graph``'s ``required`` / ``forbidden``): any subset of the
pairs, None for none, and edge endpoints may also be column positions (for unnamed arrays), unless a column has
an integer name: then an integer endpoint is always a name (``[(3, 0)]`` over the columns ``1, 2, 3`` would
otherwise mix a name and a position). On two columns, a 2x2 table of 0s and 1s reads as an adjacency, unless
only its reading as two ``(source, target)`` position pairs is free of self-loops (``[(0, 1), (0, 1)]``).
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence

import networkx as nx
import numpy as np
import pandas as pd

ACCEPTED_FORMS = (
    "a networkx DiGraph over the column names, an adjacency array or DataFrame (adjacency[i, j] = 1 for "
    "i -> j), or a list of (source, target) edges"
)


def adjacency_from_user(graph: object, columns: Sequence[Hashable]) -> np.ndarray:
    """The causal graph as an int8 adjacency [d, d] in the order of ``columns``, checked to be acyclic."""
    adjacency = _parse(graph, columns, parameter="graph", complete=True, positions=False)
    check_acyclic(adjacency, columns)
    return adjacency


def edges_from_user(edges: object, columns: Sequence[Hashable], parameter: str) -> np.ndarray:
    """Known edges as a [d, d] bool mask over ``columns`` (all False for None); endpoints are column names,
    or column positions where they name no column."""
    if edges is None:
        return np.zeros((len(columns), len(columns)), dtype=bool)
    return _parse(edges, columns, parameter=parameter, complete=False, positions=True) != 0


def _parse(
    graph: object, columns: Sequence[Hashable], *, parameter: str, complete: bool, positions: bool
) -> np.ndarray:
    """Any accepted form -> int8 adjacency [d, d]. ``complete``: every column must be a node of a DiGraph or
    adjacency DataFrame; ``positions``: integer endpoints that name no column are column positions."""
    if isinstance(graph, nx.Graph):
        if not graph.is_directed():
            raise ValueError(
                f"{parameter} is an undirected networkx Graph; a causal graph needs directions (pass an nx.DiGraph)"
            )
        if complete:
            _check_names(list(graph.nodes), columns, parameter, complete=True)
        return _from_edges(list(graph.edges()), columns, parameter, positions)
    if isinstance(graph, pd.DataFrame):
        if list(graph.columns) == ["source", "target"] and set(columns) != {"source", "target"}:
            return _from_edges(list(graph.itertuples(index=False, name=None)), columns, parameter, positions)
        return _from_adjacency_frame(graph, columns, parameter)
    if positions and _pairs_not_adjacency(graph, columns):
        return _from_edges(_edge_list(np.asarray(graph).tolist(), parameter), columns, parameter, positions)
    if (
        isinstance(graph, np.ndarray)
        and graph.ndim == 2
        and graph.shape[1] == 2
        and graph.dtype.kind in "OUS"
    ):
        return _from_edges(_edge_list(graph.tolist(), parameter), columns, parameter, positions)
    if isinstance(graph, np.ndarray) and not (positions and _is_position_pairs(graph, len(columns))):
        return _from_adjacency_array(graph, columns, parameter)
    if _looks_like_matrix(graph, columns):
        return _from_adjacency_array(graph, columns, parameter)
    if isinstance(graph, Sequence | np.ndarray) and not isinstance(graph, str):
        return _from_edges(_edge_list(graph, parameter), columns, parameter, positions)
    raise ValueError(f"{parameter} of type {type(graph).__name__} is not understood; pass {ACCEPTED_FORMS}")


def _check_names(
    nodes: Sequence[Hashable],
    columns: Sequence[Hashable],
    parameter: str,
    *,
    complete: bool,
    frame: bool = False,
) -> None:
    """Refuse nodes that are not columns, and with ``complete`` columns that are not nodes (``frame``: of an
    adjacency DataFrame, which needs a row and a column per data column)."""
    column_set = set(columns)
    unknown = [node for node in nodes if node not in column_set]
    if unknown:
        raise ValueError(
            f"{parameter} nodes {unknown[:10]!r} are not columns of the data (columns: {list(columns)!r}); "
            f"name {parameter} nodes exactly like the columns, or drop those nodes"
        )
    if complete:
        node_set = set(nodes)
        missing = [column for column in columns if column not in node_set]
        if missing and frame:
            raise ValueError(
                f"the {parameter} adjacency DataFrame has no row and column for the data columns "
                f"{missing[:10]!r}; give it one row and one column per data column (0 where there is no edge), "
                "or pass a list of (source, target) edges"
            )
        if missing:
            raise ValueError(
                f"data columns {missing[:10]!r} are missing from the {parameter}; add them as nodes "
                "(isolated nodes are fine: graph.add_node(name)) or drop those columns"
            )


def _is_integer_name(name: object) -> bool:
    return isinstance(name, int | np.integer) and not isinstance(name, bool | np.bool_)


def _endpoint_index(node: object, columns: Sequence[Hashable], parameter: str, by_position: bool) -> int:
    """Column position of an edge endpoint: a column name, or with ``by_position`` an integer position when it
    names no column."""
    if node in columns:
        return list(columns).index(node)
    if by_position and _is_integer_name(node) and 0 <= node < len(columns):
        return int(node)
    if not by_position and _is_integer_name(node):
        raise ValueError(
            f"{parameter} names node {node!r}, which is not a column name (columns: {list(columns)!r}); the "
            "data has integer column names, so integer endpoints are names, never positions"
        )
    raise ValueError(
        f"{parameter} names node {node!r}, which is neither a column name nor a column position "
        f"(columns: {list(columns)!r})"
    )


def _from_edges(
    edges: Sequence[tuple[Hashable, Hashable]], columns: Sequence[Hashable], parameter: str, positions: bool
) -> np.ndarray:
    adjacency = np.zeros((len(columns), len(columns)), dtype=np.int8)
    if positions:
        by_position = not any(_is_integer_name(column) for column in columns)
        for source, target in edges:
            adjacency[
                _endpoint_index(source, columns, parameter, by_position),
                _endpoint_index(target, columns, parameter, by_position),
            ] = 1
        return adjacency
    _check_names(
        list(dict.fromkeys(node for edge in edges for node in edge)), columns, parameter, complete=False
    )
    index = {name: j for j, name in enumerate(columns)}
    for source, target in edges:
        adjacency[index[source], index[target]] = 1
    return adjacency


def _edge_list(graph: object, parameter: str) -> list[tuple[Hashable, Hashable]]:
    edges = []
    for position, edge in enumerate(graph):  # type: ignore[attr-defined]
        if isinstance(edge, str) or not hasattr(edge, "__len__") or len(edge) != 2:
            raise ValueError(
                f"{parameter} edge list entry {position} is {edge!r}; every entry must be a (source, target) pair"
            )
        edges.append((edge[0], edge[1]))
    return edges


def _from_adjacency_array(graph: object, columns: Sequence[Hashable], parameter: str) -> np.ndarray:
    array = np.asarray(graph)
    if array.ndim != 2 or array.shape[0] != array.shape[1]:
        raise ValueError(
            f"{parameter} adjacency must be square [d, d], got shape {array.shape}; "
            "adjacency[i, j] = 1 means the edge i -> j"
        )
    if array.shape[0] != len(columns):
        raise ValueError(
            f"{parameter} adjacency is {array.shape[0]}x{array.shape[1]} but the data has {len(columns)} columns; "
            "give one row and one column per data column, in the same order"
        )
    if array.dtype == np.bool_:
        return array.astype(np.int8)
    if not np.issubdtype(array.dtype, np.number) or np.issubdtype(array.dtype, np.complexfloating):
        raise ValueError(
            f"{parameter} adjacency has dtype {array.dtype}; entries must be 0 or 1 (or booleans), "
            "adjacency[i, j] = 1 for the edge i -> j"
        )
    not_binary = ~np.isin(array, (0, 1))  # NaN is neither
    if not_binary.any():
        i, j = np.argwhere(not_binary)[0]
        raise ValueError(
            f"{parameter} adjacency entry [{columns[i]!r}, {columns[j]!r}] (row {i}, column {j}) is "
            f"{array[i, j].item()!r}; entries must be 0 or 1 (or booleans), adjacency[i, j] = 1 for the edge "
            f"i -> j ({int(not_binary.sum())} of {array.size} entries are not)"
        )
    return array.astype(np.int8)


def _from_adjacency_frame(frame: pd.DataFrame, columns: Sequence[Hashable], parameter: str) -> np.ndarray:
    if frame.shape[0] != frame.shape[1]:
        raise ValueError(
            f"{parameter} adjacency DataFrame must be square, got shape {frame.shape}; "
            "rows and columns are the nodes, adjacency[i, j] = 1 means the edge i -> j"
        )
    labels = list(frame.columns)
    _check_names(labels, columns, parameter, complete=True, frame=True)
    if isinstance(frame.index, pd.RangeIndex):
        frame = frame.set_axis(labels, axis=0)  # unlabelled rows: same order as the columns
    elif set(frame.index) != set(labels):
        raise ValueError(
            f"{parameter} adjacency DataFrame has row labels {list(frame.index)!r} that differ from its column "
            f"labels {labels!r}; label rows and columns with the same node names"
        )
    return _from_adjacency_array(frame.loc[list(columns), list(columns)].to_numpy(), columns, parameter)


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


def _pairs_not_adjacency(graph: object, columns: Sequence[Hashable]) -> bool:
    """Known edges on two columns given as a 2x2 table of 0s and 1s that are two (source, target) position pairs:
    read as an adjacency it has a self-loop, read as pairs it has none (``[(0, 1), (0, 1)]``: the edge 0 -> 1
    twice, not ``0 -> 1`` and ``1 -> 1``). No table is free of self-loops both ways but ``[[0, 1], [1, 0]]``,
    which means the same edges either way. Columns with integer names keep their names (``_from_edges``)."""
    if len(columns) != 2 or not isinstance(graph, list | tuple | np.ndarray) or isinstance(graph, str):
        return False
    try:
        array = np.asarray(graph)
    except ValueError:  # ragged
        return False
    if array.shape != (2, 2) or array.dtype == np.bool_ or not np.issubdtype(array.dtype, np.number):
        return False
    if not np.isin(array, (0, 1)).all() or any(_is_integer_name(column) for column in columns):
        return False
    return bool(np.diagonal(array).any()) and not bool((array[:, 0] == array[:, 1]).any())


def _is_position_pairs(array: np.ndarray, num_nodes: int) -> bool:
    """An integer array [k, 2] that is not the [d, d] adjacency: pairs of column positions."""
    return array.ndim == 2 and array.shape[1] == 2 and array.shape != (num_nodes, num_nodes)


def check_acyclic(adjacency: np.ndarray, columns: Sequence[Hashable]) -> None:
    """Raise a ValueError naming a self-loop or one cycle of the graph."""
    loops = np.flatnonzero(np.diagonal(adjacency))
    if loops.size:
        raise ValueError(
            f"graph has a self-loop on {columns[loops[0]]!r}; a causal graph must be acyclic, remove that edge"
        )
    try:
        cycle = nx.find_cycle(nx.from_numpy_array(adjacency, create_using=nx.DiGraph))
    except nx.NetworkXNoCycle:
        return
    path = " -> ".join(repr(columns[source]) for source, _ in cycle) + f" -> {columns[cycle[0][0]]!r}"
    raise ValueError(f"graph has a cycle {path}; a causal graph must be acyclic, remove one of these edges")


def digraph_from_adjacency(adjacency: np.ndarray, columns: Sequence[Hashable]) -> nx.DiGraph:
    """A networkx DiGraph whose nodes are the column names, in column order."""
    graph = nx.DiGraph()
    graph.add_nodes_from(columns)
    sources, targets = np.nonzero(adjacency)
    graph.add_edges_from((columns[i], columns[j]) for i, j in zip(sources, targets, strict=True))
    return graph
