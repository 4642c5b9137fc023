"""``infer_graph``: a table in, edge probabilities and a DAG out, with the amortized graph model.

Graph convention: ``probabilities[i, j]`` and ``dag[i, j] = 1`` are about the edge ``i -> j``; rows and columns
follow the data's columns.

Axis legend: b datasets (1 here), n rows, d nodes.
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Hashable, Sequence
from pathlib import Path

import networkx as nx
import numpy as np
import pandas as pd
import torch

from condfip.api.engine import resolve_device, rows_per_chunk
from condfip.api.inputs import context_from_user
from condfip.graph.checkpoint import DEFAULT_GRAPH_MODEL, load_graph_model
from condfip.graph.dag import dag_from_probabilities
from condfip.graph.model import GraphModel
from condfip.graph.neighborhoods import local_edge_logits

AUTO_NEIGHBORHOOD = "auto"


@functools.lru_cache(maxsize=4)
def _cached_model(name_or_path: str, device: str) -> GraphModel:
    return load_graph_model(name_or_path, map_location=device)


def resolve_graph_model(model: GraphModel | str | Path, device: torch.device) -> GraphModel:
    """A GraphModel as given (moved to ``device``), or loaded once per process from a name or folder."""
    if isinstance(model, GraphModel):
        return model.to(device).eval()
    if isinstance(model, str | Path):
        return _cached_model(str(model), str(device))
    raise ValueError(
        f"model must be a GraphModel, a shipped name such as {DEFAULT_GRAPH_MODEL!r}, a checkpoint folder or a "
        f"Hub repo id, got {type(model).__name__}"
    )


def _endpoint(node: object, columns: Sequence[Hashable], parameter: str) -> int:
    """Column position of an edge endpoint: a column name, or an integer position when it names no column."""
    if node in columns:
        return list(columns).index(node)
    if isinstance(node, int | np.integer) and not isinstance(node, bool) and 0 <= node < len(columns):
        return int(node)
    raise ValueError(
        f"{parameter} names node {node!r}, which is neither a column name nor a column position "
        f"(columns: {list(columns)!r})"
    )


def constraint_mask(edges: object, columns: Sequence[Hashable], parameter: str) -> np.ndarray:
    """Known edges as a [d, d] bool mask over ``columns``.

    ``edges``: None, a list of ``(source, target)`` pairs (column names, or positions for unnamed arrays), a
    networkx DiGraph, a DataFrame with columns ``source`` and ``target``, or a [d, d] adjacency
    (array, or DataFrame labelled by the column names) with ``adjacency[i, j] = 1`` for ``i -> j``.
    """
    d = len(columns)
    mask = np.zeros((d, d), dtype=bool)
    if edges is None:
        return mask
    if isinstance(edges, nx.DiGraph):
        edges = list(edges.edges())
    elif isinstance(edges, pd.DataFrame):
        if list(edges.columns) == ["source", "target"]:
            edges = list(edges.itertuples(index=False, name=None))
        else:
            unknown = [name for name in edges.columns if name not in columns]
            if unknown or edges.shape != (d, d):
                raise ValueError(
                    f"{parameter} DataFrame must be a [d, d] adjacency labelled by the data's columns "
                    f"{list(columns)!r} or an edge list with columns 'source' and 'target'; got shape "
                    f"{edges.shape} with unknown labels {unknown!r}"
                )
            if not isinstance(edges.index, pd.RangeIndex):
                edges = edges.loc[list(columns)]
            edges = edges[list(columns)].to_numpy()
    if (
        isinstance(edges, np.ndarray)
        and edges.ndim == 2
        and edges.shape == (d, d)
        and edges.dtype.kind in "biuf"
    ):
        return edges != 0
    if isinstance(edges, str) or not isinstance(edges, Sequence | np.ndarray):
        raise ValueError(
            f"{parameter} of type {type(edges).__name__} is not understood; pass a list of (source, target) "
            "edges, a networkx DiGraph or a [d, d] adjacency (adjacency[i, j] = 1 for i -> j)"
        )
    for position, edge in enumerate(list(edges)):
        if isinstance(edge, str) or not hasattr(edge, "__len__") or len(edge) != 2:
            raise ValueError(
                f"{parameter}[{position}] is {edge!r}; every entry must be a (source, target) pair"
            )
        mask[_endpoint(edge[0], columns, parameter), _endpoint(edge[1], columns, parameter)] = True
    return mask


def resolve_neighborhood(neighborhood: object, num_nodes: int, trained_max_nodes: int | None) -> int | None:
    """The neighborhood size ``infer_graph`` uses on a table of ``num_nodes`` columns, None for the whole table.

    ``"auto"``: the model's largest training node count when the table has more columns, else the whole table;
    an int ``k >= 2``: neighborhoods of ``k`` nodes (the whole table when ``k >= num_nodes``); None: the whole
    table.
    """
    if neighborhood is None:
        return None
    if neighborhood == AUTO_NEIGHBORHOOD:
        if trained_max_nodes is not None and num_nodes > trained_max_nodes:
            return max(trained_max_nodes, 2)
        return None
    if isinstance(neighborhood, bool) or not isinstance(neighborhood, int | np.integer) or neighborhood < 2:
        raise ValueError(
            f"neighborhood must be 'auto', None (the whole table) or a number of nodes >= 2, got {neighborhood!r}"
        )
    return int(neighborhood) if neighborhood < num_nodes else None


@torch.inference_mode()
def edge_probabilities(
    model: GraphModel,
    standardized: np.ndarray,
    *,
    device: torch.device,
    chunk_size: int | None = None,
    neighborhood_size: int | None = None,
) -> np.ndarray:
    """Edge probabilities [d, d] (float64, zero diagonal) of one standardized table [n, d]: from the whole
    table, or from one neighborhood of ``neighborhood_size`` nodes per node (``condfip.graph.neighborhoods``)."""
    if neighborhood_size is not None:
        logits = local_edge_logits(
            model, standardized, neighborhood_size, device=device, chunk_size=chunk_size
        )  # [d, d]
        with np.errstate(over="ignore"):
            return 1.0 / (1.0 + np.exp(-logits))
    d = standardized.shape[1]
    dtype = next(model.parameters()).dtype
    data = torch.as_tensor(standardized, dtype=dtype, device=device)[None]  # [1, n, d]
    probabilities = model.edge_probabilities(
        data, chunk_size=rows_per_chunk(chunk_size, d, torch.device(device))
    )  # [1, d, d]
    return probabilities[0].double().cpu().numpy()


def infer_graph(
    data: object,
    *,
    model: GraphModel | str | Path = DEFAULT_GRAPH_MODEL,
    threshold: float | None = None,
    required: object = None,
    forbidden: object = None,
    columns: Sequence[Hashable] | None = None,
    device: str | torch.device = "auto",
    chunk_size: int | None = None,
    neighborhood: int | str | None = AUTO_NEIGHBORHOOD,
) -> tuple[np.ndarray, np.ndarray]:
    """Infer the causal graph of ``data`` zero-shot: ``(probabilities [d, d], dag [d, d])``.

    ``probabilities[i, j]`` is the model's probability of the edge ``i -> j`` (0 on the diagonal);
    ``dag[i, j] = 1`` (int8) when the DAG has ``i -> j``. Rows and columns follow the data's columns.

    The DAG rule (``condfip.graph.dag_from_probabilities``), deterministic and always acyclic: start from the
    ``required`` edges; take the other edges with probability above ``threshold``, never a ``forbidden`` one, in
    decreasing probability (ties by position), skipping any edge that would close a cycle. For another rule,
    use the probabilities. ``threshold=None`` takes the model's ``default_threshold``: the one chosen for
    the highest edge F1 on held-out SCMs (``condfip.graph.calibration``), 0.5 for an uncalibrated model.

    data: a DataFrame of numeric columns or an array [n, d] (``columns`` names it; default ``x0, x1, ...``);
    checked as by ``CondFiP.infer`` (no NaN, no constant column, at least 2 rows) and standardized inside.
    model: a GraphModel, a shipped name (default ``"graph-small"``), a checkpoint folder or a Hub repo id.
    required / forbidden: known edges, as a list of ``(source, target)`` pairs (column names, or column
    positions), a networkx DiGraph, or a [d, d] adjacency.
    neighborhood: on more columns than the model was trained on (``"auto"``, the default), each node's edges
    are scored on a sub-table of the node and its most related columns, as many as the largest training graph
    (``condfip.graph.neighborhoods``), which keeps the model's inputs in their training range; an int sets that
    size for any table, None always scores the whole table (with a warning beyond the training range).
    """
    values, names, standardization = context_from_user(data, columns)
    if threshold is not None and (
        isinstance(threshold, bool) or not isinstance(threshold, int | float) or not 0.0 <= threshold <= 1.0
    ):
        raise ValueError(
            f"threshold must be a number in [0, 1] or None (the model's default), got {threshold!r}"
        )
    must = constraint_mask(required, names, "required")
    never = constraint_mask(forbidden, names, "forbidden")
    torch_device = resolve_device(device)
    graph_model = resolve_graph_model(model, torch_device)
    if threshold is None:
        threshold = graph_model.default_threshold
    trained = graph_model.trained_max_nodes
    neighborhood_size = resolve_neighborhood(neighborhood, len(names), trained)
    if neighborhood_size is None and trained is not None and len(names) > trained:
        warnings.warn(
            f"data has {len(names)} columns but the graph model was trained on at most {trained} nodes and the "
            "whole table is scored, where its probabilities degrade; the default neighborhood='auto' scores "
            "one sub-table per node instead",
            UserWarning,
            stacklevel=2,
        )
    probabilities = edge_probabilities(
        graph_model,
        standardization.data_to_standard(values),
        device=torch_device,
        chunk_size=chunk_size,
        neighborhood_size=neighborhood_size,
    )
    dag = dag_from_probabilities(probabilities, threshold=threshold, required=must, forbidden=never)
    return probabilities, dag
