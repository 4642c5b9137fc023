"""The four tasks of the protocol scored on one benchmark dataset (DESIGN section 6).

All RMSEs are in standardized units: data ``(x - m) / s`` and noise ``n / s`` with the per-column mean m and
std s of the dataset's observational rows (context and query together).

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


def score_dataset(method: Method, dataset: Any, adjacency: np.ndarray | None = None) -> dict[str, Any]:
    """Fit ``method`` on the dataset's context rows and score the four tasks.

    ``dataset`` is an ``scm_gen.BenchmarkDataset``; ``adjacency`` is the graph given to the method (default:
    the true one). Returns ``{"rmse": {task: value}, "fit_seconds": ..., "sample_seconds": ...}``.
    """
    graph = dataset.adjacency if adjacency is None else adjacency
    return score_fitted(method.fit(dataset.context_data, graph), dataset)


def score_fitted(fitted: FittedSCM, dataset: Any) -> dict[str, Any]:
    """Score the four tasks with an already fitted model (see :func:`score_dataset`)."""
    standardizer = Standardizer.fit(dataset.data)
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
    return {"rmse": scores, "fit_seconds": fitted.fit_seconds, "sample_seconds": fitted.sample_seconds}
