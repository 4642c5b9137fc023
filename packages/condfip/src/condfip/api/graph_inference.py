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
from condfip.api.neighborhoods import TABLES_PER_BATCH, local_edge_logits
from condfip.api.tables import context_from_user
from condfip.core.dag_rule import dag_from_probabilities
from condfip.core.row_order import canonical_row_order
from condfip.graph import DEFAULT_GRAPH_MODEL, GraphModel
from condfip.graph.statistics import NUM_BASIS
from condfip.io.checkpoint import checkpoint_stamp
from condfip.io.memory import FLOAT_BYTES, check_memory
from condfip.io.pretrained import shipped_checkpoints

AUTO_NEIGHBORHOOD = "auto"
MIN_NEIGHBORHOOD = 3  # the smallest table "auto" scores: a pair and a third node, which can orient it
DEPENDENCE_ROUNDINGS = 4  # float64 roundings within which a combination of columns counts as exact
DEPENDENCE_ROWS_PER_NODE = 2  # rows (evenly spaced) that dependent_columns factors, per column


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


def nodes_within_training_range(
    num_rows: int, trained_max_nodes: int | None, trained_num_rows: int | None
) -> int | None:
    """The most nodes a scored table of ``num_rows`` rows may have and keep the graph model's pair statistics in
    their training range, None when the checkpoint does not record its training sizes.

    The statistics regress every node on five functions of each other node (``condfip.graph.statistics``), so
    what they saw in training is a ratio of regressors to rows: at most ``trained_max_nodes - 1`` other nodes
    for ``trained_num_rows`` rows (29 for 400 for ``graph-small``). A table of ``num_rows`` rows keeps that
    ratio with ``1 + (trained_max_nodes - 1) * num_rows // trained_num_rows`` nodes. (A model trained on single
    nodes saw no pair: None too.)
    """
    if trained_max_nodes is None or trained_num_rows is None or trained_max_nodes < 2:
        return None
    return 1 + (trained_max_nodes - 1) * num_rows // trained_num_rows


def resolve_neighborhood(
    neighborhood: object,
    num_nodes: int,
    trained_max_nodes: int | None,
    num_rows: int | None = None,
    trained_num_rows: int | None = None,
) -> int | None:
    """The neighborhood size ``infer_graph`` uses on a table of ``num_nodes`` columns, None for the whole table.

    ``"auto"``: the model's largest training node count, or fewer where the table has fewer rows than the model
    was trained on (``nodes_within_training_range`` of ``num_rows``; never below ``MIN_NEIGHBORHOOD``), and the
    whole table when it has no more columns than that; an int ``k >= 2``: neighborhoods of ``k`` nodes (the
    whole table when ``k >= num_nodes``); None: the whole table.
    """
    if neighborhood is None:
        return None
    if neighborhood == AUTO_NEIGHBORHOOD:
        if trained_max_nodes is None:
            return None
        size = trained_max_nodes
        if num_rows is not None:
            within = nodes_within_training_range(num_rows, trained_max_nodes, trained_num_rows)
            size = size if within is None else min(size, within)
        size = max(size, min(MIN_NEIGHBORHOOD, max(trained_max_nodes, 2)))
        return size if size < num_nodes else None
    if not is_integer(neighborhood) or neighborhood < 2:
        raise ValueError(
            f"neighborhood must be 'auto', None (the whole table) or a number of nodes >= 2, got {neighborhood!r}"
        )
    return int(neighborhood) if neighborhood < num_nodes else None


def _warn_outside_training_range(
    graph_model: GraphModel, num_rows: int, num_nodes: int, neighborhood: object, size: int | None
) -> None:
    """Warn where the tables ``infer_graph`` scores (of ``size`` nodes, None: the whole table) put the graph
    model's inputs outside its training range: more nodes than it was trained on, or too few rows for them."""
    trained, trained_rows = graph_model.trained_max_nodes, graph_model.trained_num_rows
    scored = num_nodes if size is None else size
    if trained is not None and scored > trained:
        what = "the whole table is scored" if size is None else f"sub-tables of {size} nodes are scored"
        warnings.warn(
            f"data has {num_nodes} columns but the graph model was trained on at most {trained} nodes and {what}, "
            "where its probabilities degrade; the default neighborhood='auto' scores one sub-table per node "
            "instead",
            UserWarning,
            stacklevel=3,
        )
    within = nodes_within_training_range(num_rows, trained, trained_rows)
    if within is None or num_nodes < 2:
        return
    smallest = min(MIN_NEIGHBORHOOD, num_nodes)
    if within < smallest:  # even the smallest table "auto" scores has too few rows
        needed = -(-(smallest - 1) * trained_rows // (trained - 1))
        warnings.warn(
            f"data has {num_rows} rows, too few for the graph model: it was trained on {trained_rows} rows and "
            f"needs at least {needed} to score tables of {smallest} nodes within its training range; from so "
            "few rows its edges are little better than chance (AUROC 0.55-0.7 at 10-15 rows on scm-gen SCMs, "
            "BENCHMARKS.md); give more rows, or give the graph yourself instead of inferring it",
            UserWarning,
            stacklevel=3,
        )
    elif scored > within and neighborhood != AUTO_NEIGHBORHOOD:
        auto = resolve_neighborhood(AUTO_NEIGHBORHOOD, num_nodes, trained, num_rows, trained_rows)
        instead = "the whole table" if auto is None else f"sub-tables of {auto} nodes"
        warnings.warn(
            f"data has {num_rows} rows, too few for tables of {scored} nodes: the graph model was trained on "
            f"{trained_rows} rows for at most {trained} nodes, and with fewer rows per node its pair statistics "
            f"leave their training range and its probabilities degrade; the default neighborhood='auto' scores "
            f"{instead} instead",
            UserWarning,
            stacklevel=3,
        )


def graph_memory_bytes(num_nodes: int, neighborhood_size: int | None, num_rows: int = 0) -> int:
    """Bytes that scoring a table of ``num_rows`` x ``num_nodes`` takes at its peak beyond the table itself: the
    pair statistics of one batch of tables (``condfip.graph.statistics``: the collider evidence ``[k, k, k]``
    and its intermediates, the covariance of the bases ``[5k, 5k]`` and its inverses, the per-pair blocks
    ``[k, k, 5, 5]``, all float64), with neighborhoods the ``[d, d]`` correlations they are chosen from, or the
    rows and factors of ``dependent_columns``, whichever is more. Measured on the whole table (d = 400 and 600,
    50 rows): 2.3 and 6.9 GiB, where this gives 2.2 and 7.1."""
    size = num_nodes if neighborhood_size is None else neighborhood_size
    tables = 1 if neighborhood_size is None else min(TABLES_PER_BATCH, num_nodes)
    per_table = 4 * size**3 + 6 * (NUM_BASIS * size) ** 2 + 4 * NUM_BASIS**2 * size**2
    relatedness_matrices = 0 if neighborhood_size is None else 6 * num_nodes**2
    dependence = 2 * min(num_rows, DEPENDENCE_ROWS_PER_NODE * num_nodes) * num_nodes + 4 * num_nodes**2
    return FLOAT_BYTES * max(tables * per_table + relatedness_matrices, dependence)


def check_graph_memory(num_rows: int, num_nodes: int, neighborhood_size: int | None) -> None:
    """Refuse, before anything is allocated, a graph inference whose estimate exceeds the machine's memory."""
    how = "as one table" if neighborhood_size is None else f"by neighborhoods of {neighborhood_size} nodes"
    check_memory(
        graph_memory_bytes(num_nodes, neighborhood_size, num_rows),
        f"inferring the graph of {num_rows:,} rows of {num_nodes:,} columns {how}",
        hint="score smaller neighborhoods (neighborhood='auto' or a number of nodes) or fewer columns",
    )


def dependence_tolerance(num_nodes: int, magnitude: float) -> float:
    """The residual, in standard deviations, below which a combination of the columns of a standardized table
    is exact up to float64 rounding: ``DEPENDENCE_ROUNDINGS`` roundings of a column's values (its largest
    magnitude ``magnitude`` standard deviations: standardizing a column far from 0 loses digits) over the
    ``sqrt(d)`` norm of a unit combination of ``d`` columns.

    Copies, sums and weighted sums of columns of any scales and offsets measured at most 0.71 of ``eps *
    sqrt(d) * magnitude`` (eps: float64's; 1,500 random tables). A few of scm-gen's P_OUT linear SCMs at d = 100
    come as close: columns of spread 1e12 and noise of spread 1 (down to 2.7 of it), deterministic to float64's
    precision, and warned about too."""
    return DEPENDENCE_ROUNDINGS * float(np.finfo(np.float64).eps) * np.sqrt(num_nodes) * max(magnitude, 1.0)


def dependent_columns(standardized: np.ndarray, magnitude: float = 1.0) -> list[int] | None:
    """Positions of columns of a table [n, d] (standardized) of which one is a copy of another up to scale and
    offset, or a linear combination of others (a total, a difference, a unit conversion), exactly up to float64
    rounding (``dependence_tolerance``; ``magnitude``: the largest ``|x| / std`` of a column in the user's
    units); None when there are none.

    A copy stored in float32 or printed to a few digits is not exact: a nearly deterministic column, which the
    model scores as such. A table of n <= d rows is always linearly dependent (its centred columns span at most
    n - 1 dimensions): there only pairs of columns are checked.
    """
    num_rows, num_nodes = standardized.shape
    if num_nodes < 2 or num_rows < 3:  # two rows: every pair of columns is collinear, a fact of the rows
        return None
    tolerance = dependence_tolerance(num_nodes, magnitude)
    if num_rows <= num_nodes:
        return _copies(standardized, tolerance)
    return _linearly_dependent(standardized, tolerance)


def _warn_dependent_columns(members: list[int], names: Sequence[Hashable]) -> None:
    named = [names[j] for j in members]
    if len(named) == 2:
        what = f"data columns {named[0]!r} and {named[1]!r} are copies of each other up to scale and offset"
    else:
        what = (
            f"data columns {named!r} are linearly dependent: one is a weighted sum of the others plus a constant "
            "(a total, a difference, a unit conversion)"
        )
    warnings.warn(
        f"{what}, exactly up to float64 rounding; a column without noise of its own leaves the graph model's "
        "partial correlations undefined, and its edges and those of the columns it copies are unreliable (a copy "
        "of a column can take all of that column's edges): drop one of them, or give the graph yourself instead "
        "of inferring it",
        UserWarning,
        stacklevel=3,
    )


def _copies(standardized: np.ndarray, tolerance: float) -> list[int] | None:
    """The pairwise part of ``dependent_columns``: candidates by correlation (any residual below 1e-3 has a
    correlation above 1 - 1e-6), each confirmed by the residual of one column on the other, computed from the
    rows."""
    num_rows = standardized.shape[0]
    correlation = standardized.T @ standardized / num_rows  # [d, d]
    candidates = np.argwhere(np.triu(np.abs(correlation) > 1.0 - 1e-6, k=1))
    for i, j in candidates:
        residual = standardized[:, j] - correlation[i, j] * standardized[:, i]
        if residual.std() < tolerance:
            return [int(i), int(j)]
    return None


def _linearly_dependent(standardized: np.ndarray, tolerance: float) -> list[int] | None:
    """The columns of one exact linear dependence (residual below ``tolerance``) of a table [n, d] with n > d
    (centred, unit-variance columns), in column order; None when there is none.

    The null directions are found on at most ``DEPENDENCE_ROWS_PER_NODE * d`` evenly spaced rows (a QR factor,
    then its SVD) and confirmed on all rows: a dependence of every row holds on those rows, and one that holds
    there by chance (columns constant on them) fails on the rest.
    """
    num_rows, num_nodes = standardized.shape
    sampled = min(num_rows, DEPENDENCE_ROWS_PER_NODE * num_nodes)
    rows = np.unique(np.linspace(0, num_rows - 1, sampled).round().astype(np.int64))
    factor = np.linalg.qr(standardized[rows], mode="r")  # [d, d]: the same singular values as the rows
    if np.linalg.svd(factor, compute_uv=False)[-1] >= tolerance * np.sqrt(len(rows)):
        return None
    _, singular, directions = np.linalg.svd(factor)
    null = directions[singular < tolerance * np.sqrt(len(rows))].T  # [d, r]
    if len(rows) < num_rows:  # the combinations of those directions that vanish on every row
        _, singular, within = np.linalg.svd(standardized @ null, full_matrices=False)
        if singular[-1] >= tolerance * np.sqrt(num_rows):
            return None
        null = null @ within[-1:].T
    direction = np.abs(null[:, -1])  # [d], unit norm
    return [int(j) for j in np.flatnonzero(direction > 1e-6 * direction.max())]


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
    checked as by ``CondFiP.infer`` (no NaN, no constant column, at least 2 rows) and standardized inside; the
    order of its rows does not matter (they are read in their canonical order, ``condfip.core.row_order``). A
    column that is a copy or a linear combination of others exactly up to float64 rounding is warned about
    (``dependent_columns``: its graph is unreliable), and so are fewer rows than the model needs to keep even
    3-node tables in its training range (28 for ``graph-small``: from fewer, its edges are little better than
    chance).
    model: a GraphModel, a shipped name (default ``"graph-small"``), a checkpoint folder or a Hub repo id.
    required / forbidden: known edges, as a list of ``(source, target)`` pairs (column names, or column
    positions where no column has an integer name), a networkx DiGraph, or a [d, d] adjacency.
    neighborhood: ``"auto"`` (the default) keeps the model's inputs in their training range: on a table with
    more columns than the model was trained on, or with fewer rows than it was trained on for that many
    columns, each node's edges are scored on a sub-table of the node and its most related columns
    (``condfip.api.neighborhoods``), as many as the largest training graph, or fewer with fewer rows: the
    training data's ratio of nodes to rows (``resolve_neighborhood``; ``graph-small``: 29 other nodes for 400
    rows, so 9 nodes at 120 rows). An int sets that size for any table, None always scores the whole table
    (either with a warning outside the training range). A request whose memory estimate exceeds the
    machine's (``graph_memory_bytes``) is refused before anything is allocated.
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
    num_rows = len(values)
    neighborhood_size = resolve_neighborhood(
        neighborhood, len(names), graph_model.trained_max_nodes, num_rows, graph_model.trained_num_rows
    )
    check_graph_memory(num_rows, len(names), neighborhood_size)
    standardized = standardization.data_to_standard(values)  # [n, d]
    # in the rows' canonical order (``condfip.core.row_order``): the network's anchors, the dependence check's rows
    # and every sum over the rows are then the same for the same rows in any order
    standardized = standardized[canonical_row_order(standardized)]
    dependent = dependent_columns(
        standardized, float((np.abs(values).max(axis=0) / standardization.std).max())
    )
    if dependent is not None:
        _warn_dependent_columns(dependent, names)
    _warn_outside_training_range(graph_model, num_rows, len(names), neighborhood, neighborhood_size)
    probabilities = edge_probabilities(
        graph_model,
        standardized,
        device=torch_device,
        chunk_size=chunk_size,
        neighborhood_size=neighborhood_size,
    )
    dag = dag_from_probabilities(
        probabilities, threshold=threshold, required=must, forbidden=never, names=names
    )
    return probabilities, dag
