"""The four tasks of the protocol scored on one benchmark dataset (docs/ARCHITECTURE.md, "Evaluation protocol").

All RMSEs are in standardized units: data ``(x - m) / s`` and noise ``n / s`` with the per-column mean m and
std s of the dataset's observational rows (context and query together). A dataset with a constant observational
column has no such units and is refused (a ValueError naming the column).

- ``noise``: abducted noise of the query rows vs their true noise;
- ``observational``: rows generated from the query rows' true noise vs the query rows;
- ``interventional``: rows generated from the interventional rows' true noise under ``do(node = value)`` vs
  the true interventional rows;
- ``counterfactual``: the query rows under ``do(node = value)``, from the method's own abducted noise, vs the
  true counterfactual rows.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from condfip_eval.methods.base import FittedSCM, Method
from condfip_eval.metrics import Standardizer, rmse

__all__ = ["TASKS", "TASK_TITLES", "score_dataset", "score_fitted"]

TASKS = ("noise", "observational", "interventional", "counterfactual")
TASK_TITLES = {
    "noise": "Noise prediction",
    "observational": "Sample generation (from the true noise)",
    "interventional": "Interventional generation (from the true noise)",
    "counterfactual": "Counterfactual generation (from the inferred noise)",
}


def score_dataset(
    method: Method, dataset: Any, adjacency: np.ndarray | None = None, *, keep_samples: int = 0
) -> dict[str, Any]:
    """Fit ``method`` on the dataset's context rows and score the four tasks.

    ``dataset`` is an ``scm_gen.BenchmarkDataset``; ``adjacency`` is the graph given to the method (default:
    the true one). Returns ``{"rmse": {task: value}, "fit_seconds": ..., "sample_seconds": ...}``, plus
    ``"samples"`` when ``keep_samples`` > 0 (see :func:`interventional_samples`).
    """
    graph = dataset.adjacency if adjacency is None else adjacency
    return score_fitted(method.fit(dataset.context_data, graph), dataset, keep_samples=keep_samples)


def plotted_nodes(dataset: Any, count: int = 2) -> list[int]:
    """Nodes whose interventional marginals are worth a picture: children of the intervened node first, then
    the nodes with the most parents (never the intervened node itself, which is constant)."""
    adjacency = np.asarray(dataset.adjacency) != 0
    node = int(dataset.intervention_node)
    children = np.flatnonzero(adjacency[node]).tolist()
    others = sorted(
        set(range(adjacency.shape[0])) - set(children) - {node}, key=lambda j: (-adjacency[:, j].sum(), j)
    )
    return (children + others)[:count]


def score_fitted(fitted: FittedSCM, dataset: Any, *, keep_samples: int = 0) -> dict[str, Any]:
    """Score the four tasks with an already fitted model (see :func:`score_dataset`).

    ``keep_samples`` > 0 also returns up to that many interventional rows, true and generated, of the
    :func:`plotted_nodes` (raw units), for the report's marginal plots.
    """
    standardizer = Standardizer.fit(dataset.data, allow_constant=False)
    interventions = {int(dataset.intervention_node): float(dataset.intervention_value)}
    noise = fitted.noise(dataset.query_data)
    observational = fitted.generate(dataset.query_noise)
    interventional = fitted.generate(dataset.interventional_noise, interventions)
    counterfactual = fitted.counterfactual(dataset.query_data, interventions)
    scores = {
        "noise": rmse(standardizer.noise(noise), standardizer.noise(dataset.query_noise)),
        "observational": rmse(standardizer.data(observational), standardizer.data(dataset.query_data)),
        "interventional": rmse(
            standardizer.data(interventional), standardizer.data(dataset.interventional_data)
        ),
        "counterfactual": rmse(
            standardizer.data(counterfactual), standardizer.data(dataset.counterfactual_data)
        ),
    }
    for task, value in scores.items():
        if not np.isfinite(value):
            raise ValueError(f"the {task} RMSE is not finite: the method returned NaN or infinite values")
    result: dict[str, Any] = {
        "rmse": scores,
        "fit_seconds": fitted.fit_seconds,
        "sample_seconds": fitted.sample_seconds,
    }
    if keep_samples > 0:
        nodes = plotted_nodes(dataset)
        result["samples"] = {
            "intervention_node": int(dataset.intervention_node),
            "intervention_value": float(dataset.intervention_value),
            "nodes": nodes,
            "true": dataset.interventional_data[:keep_samples, nodes].T.tolist(),
            "generated": interventional[:keep_samples, nodes].T.tolist(),
        }
    return result
