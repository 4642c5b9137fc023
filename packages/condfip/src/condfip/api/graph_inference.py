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

import numpy as np
import torch

from condfip.api.arguments import is_integer, is_real
from condfip.api.engine import resolve_device, rows_per_chunk
from condfip.api.graphs import edges_from_user
from condfip.api.neighborhoods import local_edge_logits
from condfip.api.tables import context_from_user
from condfip.core.dag_rule import dag_from_probabilities
from condfip.graph import DEFAULT_GRAPH_MODEL, GraphModel
from condfip.io.checkpoint import checkpoint_stamp
from condfip.io.pretrained import shipped_checkpoints

AUTO_NEIGHBORHOOD = "auto"


@functools.lru_cache(maxsize=4)
def _cached_model(name_or_path: str, device: str, stamp: tuple = ()) -> GraphModel:
    """The model at ``name_or_path``; ``stamp`` (``condfip.io.checkpoint.checkpoint_stamp``) only keys the cache."""
    return GraphModel.from_pretrained(name_or_path, map_location=device)


def resolve_graph_model(model: GraphModel | str | Path, device: torch.device) -> GraphModel:
    """A GraphModel as given (moved to ``device``), or loaded once per process from a name or folder."""
    if isinstance(model, GraphModel):
        return model.to(device).eval()
    if isinstance(model, str | Path):
        folder = Path(model).expanduser()
        if folder.is_dir() and str(model) not in shipped_checkpoints(
            model_type="graph"
        ):  # a local folder: keyed by its absolute path and the state of its files
            folder = folder.resolve()
            return _cached_model(str(folder), str(device), checkpoint_stamp(folder))
        return _cached_model(str(model), str(device))
    raise ValueError(
        f"model must be a GraphModel, a shipped name such as {DEFAULT_GRAPH_MODEL!r}, a checkpoint folder or a "
        f"Hub repo id, got {type(model).__name__}"
    )


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
    if not is_integer(neighborhood) or neighborhood < 2:
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
    table, or from one neighborhood of ``neighborhood_size`` nodes per node (``condfip.api.neighborhoods``)."""
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

    The DAG rule (``condfip.core.dag_rule.dag_from_probabilities``), deterministic and always acyclic: start from the
    ``required`` edges; take the other edges with probability above ``threshold``, never a ``forbidden`` one, in
    decreasing probability (ties by position), skipping any edge that would close a cycle. For another rule,
    use the probabilities. ``threshold=None`` takes the model's ``default_threshold``: the one chosen for
    the highest edge F1 on held-out SCMs (``condfip.training.calibration``), 0.5 for an uncalibrated model.

    data: a DataFrame of numeric columns or an array [n, d] (``columns`` names it; default ``x0, x1, ...``);
    checked as by ``CondFiP.infer`` (no NaN, no constant column, at least 2 rows) and standardized inside.
    model: a GraphModel, a shipped name (default ``"graph-small"``), a checkpoint folder or a Hub repo id.
    required / forbidden: known edges, as a list of ``(source, target)`` pairs (column names, or column
    positions), a networkx DiGraph, or a [d, d] adjacency.
    neighborhood: on more columns than the model was trained on (``"auto"``, the default), each node's edges
    are scored on a sub-table of the node and its most related columns, as many as the largest training graph
    (``condfip.api.neighborhoods``), which keeps the model's inputs in their training range; an int sets that
    size for any table, None always scores the whole table (with a warning beyond the training range).
    """
    values, names, standardization = context_from_user(data, columns)
    if threshold is not None and (not is_real(threshold) or not 0.0 <= threshold <= 1.0):
        raise ValueError(
            f"threshold must be a number in [0, 1] or None (the model's default), got {threshold!r}"
        )
    must = edges_from_user(required, names, "required")
    never = edges_from_user(forbidden, names, "forbidden")
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
    dag = dag_from_probabilities(
        probabilities, threshold=threshold, required=must, forbidden=never, names=names
    )
    return probabilities, dag
