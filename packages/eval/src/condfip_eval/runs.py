"""Steps every benchmark run (paper grid, CSuite, Sachs, ecoli70) shares: the progress bar, recording a failed
fit, and the graph the methods get for one dataset (the true one, or the DAG a graph model infers)."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from condfip_eval.metrics import auprc, auroc, edge_f1, has_edges_and_non_edges, structural_hamming_distance

__all__ = [
    "GraphInferrer",
    "graph_for",
    "graph_scores",
    "load_graph_inferrer",
    "progress_bar",
    "record_failure",
    "resolve_graph_inferrer",
]

GraphInferrer = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]  # data [n, d] -> (probabilities, dag)


def progress_bar(kind: str, total: int, *, progress: bool) -> tqdm:
    """The bar of a run over ``total`` fits, on stderr (hidden unless ``progress``)."""
    return tqdm(
        total=max(total, 0), desc=kind, unit="fit", disable=not progress, file=sys.stderr, dynamic_ncols=True
    )


def record_failure(record: dict[str, Any], error: Exception, what: str) -> None:
    """Record a fit that raised in ``record["error"]`` and say ``"<what>: <error>"`` on stderr above the bar;
    the run goes on."""
    record["error"] = f"{type(error).__name__}: {error}"
    tqdm.write(f"{what}: {record['error']}", file=sys.stderr)


def load_graph_inferrer() -> GraphInferrer:
    """The amortized graph model of the condfip package: ``infer_graph(data) -> (probabilities, dag)``."""
    import importlib

    import condfip

    for module_name in ("condfip.graph", "condfip"):
        try:
            inferrer = getattr(importlib.import_module(module_name), "infer_graph", None)
        except ImportError:
            inferrer = None
        if inferrer is not None:
            return inferrer
    raise ValueError(
        "--graph inferred needs the amortized graph model (condfip.graph.infer_graph), which this condfip "
        f"version ({condfip.__version__}) does not provide; use --graph true"
    )


def resolve_graph_inferrer(
    graph_source: str, graph_inferrer: GraphInferrer | None
) -> tuple[GraphInferrer | None, bool]:
    """(the inferrer a run uses, whether it is condfip's own graph model): ``graph_inferrer`` when given, else
    condfip's graph model for ``graph_source="inferred"``, else None (the methods get the true graph)."""
    default_graph_model = graph_source == "inferred" and graph_inferrer is None
    return (load_graph_inferrer() if default_graph_model else graph_inferrer), default_graph_model


def graph_scores(true_adjacency: np.ndarray, probabilities: np.ndarray, dag: np.ndarray) -> dict[str, float]:
    """SHD and F1 of an inferred DAG, and AUROC and AUPRC of its edge probabilities where the truth has both
    edges and non-edges."""
    scores: dict[str, float] = {
        "shd": float(structural_hamming_distance(true_adjacency, dag)),
        "f1": edge_f1(true_adjacency, dag),
    }
    if has_edges_and_non_edges(true_adjacency):
        scores["auroc"] = auroc(true_adjacency, probabilities)
        scores["auprc"] = auprc(true_adjacency, probabilities)
    return scores


def graph_for(
    true_adjacency: np.ndarray, context: np.ndarray, graph_inferrer: GraphInferrer | None
) -> tuple[np.ndarray, dict[str, float] | None]:
    """(the graph every method gets for one dataset, the scores of that graph or None): the truth without an
    inferrer, else the DAG it infers from the ``context`` rows [n, d], scored against the truth."""
    if graph_inferrer is None:
        return true_adjacency, None
    probabilities, dag = graph_inferrer(context)
    adjacency = np.asarray(dag)
    return adjacency, graph_scores(true_adjacency, np.asarray(probabilities), adjacency)
