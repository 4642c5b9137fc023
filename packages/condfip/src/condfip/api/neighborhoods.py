"""Graph inference on more nodes than the model was trained on, or on fewer rows: one small sub-table per node.

On a table with many more columns than the graphs the model saw in training, or with fewer rows than it was
trained on for that many columns, its inputs leave their training range (the pair statistics regress every node
on all the others, with more regressors than rows at d = 100 and n = 400), and the probabilities become worse
than predicting no edge at all. The local mode keeps every input in range (its size:
``condfip.api.graph_inference.resolve_neighborhood``): each node ``j`` gets a neighborhood of ``size`` columns,
``j`` itself followed by the ``size - 1`` nodes most related to it, and the model scores each neighborhood as a
table of its own. An edge between ``j`` and a member ``i``, in either direction, is read from ``j``'s
neighborhood (the one built around ``j``); a pair read from both ends' neighborhoods gets the mean of the two
logits, and a pair found in neither has probability 0.

Members are chosen by two scores. Two thirds of them are the nodes of largest absolute partial correlation with
``j`` given all other columns (from a ridge-regularized inverse of the correlation matrix, defined even with fewer
rows than columns): a node's parents, children and its children's other parents (its Markov blanket) have
nonzero partial correlation with it. The rest are the nodes of largest absolute correlation not already in,
which catches dependences that partial correlations miss on nonlinear SCMs. On the scm-gen grid at d = 100
(BENCHMARKS.md, "Graph inference") this mix matched partial correlation alone on linear SCMs and beat it on
RFF ones (AUROC 0.848 against 0.809).

Axis legend: t neighborhood tables (one per centre node), n rows, d nodes, k nodes of a neighborhood.
"""

from __future__ import annotations

import numpy as np
import torch

from condfip.api.engine import rows_per_chunk
from condfip.api.progress import progress_slices
from condfip.graph import GraphModel

RELATEDNESS_RIDGE = 1e-3  # on the correlation scale
PARTIAL_SHARE = 2 / 3  # of a neighborhood's members chosen by partial correlation; the rest by correlation
TABLES_PER_BATCH = 16  # neighborhood tables scored per forward pass (bounds memory)


def relatedness(standardized: np.ndarray) -> np.ndarray:
    """|partial correlation| of every pair of columns of a table [n, d] given all the others: [d, d], zero
    diagonal."""
    correlation = np.atleast_2d(np.corrcoef(standardized, rowvar=False))
    precision = np.linalg.inv(correlation + RELATEDNESS_RIDGE * np.eye(len(correlation)))
    scale = np.sqrt(np.diagonal(precision))
    partial = np.abs(precision / np.outer(scale, scale))
    np.fill_diagonal(partial, 0.0)
    return partial


def neighborhoods(standardized: np.ndarray, size: int) -> np.ndarray:
    """The neighborhood of every node of a table [n, d]: [d, size] column indices, row ``j`` = ``j``, then the
    ``floor(PARTIAL_SHARE * (size - 1))`` nodes of largest relatedness to ``j`` in decreasing order, then the
    nodes of largest absolute correlation with ``j`` among the rest, in decreasing order (ties by index)."""
    num_nodes = standardized.shape[1]
    if not 2 <= size <= num_nodes:
        raise ValueError(f"a neighborhood has between 2 and d = {num_nodes} nodes, got {size}")
    by_partial = int(PARTIAL_SHARE * (size - 1))
    partial = relatedness(standardized)
    correlation = np.abs(np.atleast_2d(np.corrcoef(standardized, rowvar=False)))
    members = np.empty((num_nodes, size), dtype=np.int64)
    for centre in range(num_nodes):
        scores = partial[centre].copy()
        scores[centre] = -np.inf  # the centre comes first, not among its neighbors
        first = np.argsort(-scores, kind="stable")[:by_partial]
        remaining = correlation[centre].copy()
        remaining[centre] = -np.inf
        remaining[first] = -np.inf
        rest = np.argsort(-remaining, kind="stable")[: size - 1 - by_partial]
        members[centre] = np.concatenate(([centre], first, rest))
    return members


@torch.inference_mode()
def local_edge_logits(
    model: GraphModel,
    standardized: np.ndarray,
    size: int,
    *,
    device: torch.device,
    chunk_size: int | None = None,
) -> np.ndarray:
    """Edge logits [d, d] (float64) of a standardized table [n, d] from one neighborhood per node (module
    docstring); ``-inf`` on the diagonal and on pairs that no neighborhood centred on either end contains."""
    num_nodes = standardized.shape[1]
    members = neighborhoods(standardized, size)  # [d, k]
    dtype = next(model.parameters()).dtype
    data = torch.as_tensor(standardized, dtype=dtype, device=device)  # [n, d]
    total = np.zeros((num_nodes, num_nodes))
    count = np.zeros((num_nodes, num_nodes))
    for tables_of in progress_slices(num_nodes, TABLES_PER_BATCH, "scoring neighborhoods", "table"):
        batch = members[tables_of]  # [t, k]
        tables = data[:, torch.as_tensor(batch, device=device)].permute(1, 0, 2)  # [t, n, k]
        logits = model.edge_logits(
            tables, chunk_size=rows_per_chunk(chunk_size, size * len(batch), torch.device(device))
        )  # [t, k, k]
        logits = logits.double().cpu().numpy()
        centres, others = batch[:, :1], batch[:, 1:]  # [t, 1], [t, k - 1]
        # into the centre (i -> j: column 0 of each table) and out of it (j -> i: row 0)
        np.add.at(total, (others, np.broadcast_to(centres, others.shape)), logits[:, 1:, 0])
        np.add.at(count, (others, np.broadcast_to(centres, others.shape)), 1.0)
        np.add.at(total, (np.broadcast_to(centres, others.shape), others), logits[:, 0, 1:])
        np.add.at(count, (np.broadcast_to(centres, others.shape), others), 1.0)
    read = count > 0
    result = np.full((num_nodes, num_nodes), -np.inf)
    result[read] = total[read] / count[read]
    return result
