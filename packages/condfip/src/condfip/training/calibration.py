"""The default edge threshold of a graph model, chosen on held-out SCMs and stored in its checkpoint.

A model trained with cross-entropy on sparse graphs gives calibrated, mostly low probabilities, so the DAG
rule at 0.5 keeps too few edges. ``calibrate_threshold`` scores the DAG rule at every candidate threshold
(0.05, 0.10, ..., 0.95) on fresh P_IN SCMs (linear and RFF, the training node counts, their own seed: neither
the validation set nor the test grid) and keeps the threshold of highest mean edge F1. ``write_calibration``
stores it in the checkpoint's ``config.json`` under ``"inference"``; ``infer_graph``, ``condfip graph`` and
``graph="infer"`` use it when no threshold is given. On the command line: ``condfip calibrate CHECKPOINT_DIR``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from condfip.core.dag_rule import dag_from_probabilities
from condfip.core.graph_scores import edge_f1
from condfip.core.standardization import standardized
from condfip.graph import GraphModel
from condfip.io.atomic import write_json
from condfip.io.checkpoint import CONFIG_NAME, read_config
from scm_gen import make_benchmark_dataset

CALIBRATION_SEED = 20_241_008  # its own SCMs: not the validation set's, not the test grid's
CANDIDATE_THRESHOLDS = tuple(round(0.05 * k, 2) for k in range(1, 20))  # 0.05 ... 0.95


def best_f1_threshold(
    truths: Sequence[np.ndarray],
    probabilities: Sequence[np.ndarray],
    candidates: Sequence[float] = CANDIDATE_THRESHOLDS,
) -> tuple[float, float]:
    """``(threshold, mean F1)``: the candidate whose DAG rule has the highest mean edge F1 over the datasets
    (the lowest such candidate on ties)."""
    if len(truths) != len(probabilities) or not truths:
        raise ValueError(
            f"need one probability matrix per true adjacency and at least one pair, got {len(truths)} "
            f"adjacencies and {len(probabilities)} probability matrices"
        )
    pairs = list(zip(truths, probabilities, strict=True))

    def mean_f1(threshold: float) -> float:
        return float(np.mean([edge_f1(t, dag_from_probabilities(p, threshold=threshold)) for t, p in pairs]))

    scores = [mean_f1(candidate) for candidate in candidates]
    best = int(np.argmax(scores))  # the first maximum: the lowest threshold
    return float(candidates[best]), scores[best]


def calibration_set(
    *, datasets_per_cell: int = 8, node_counts: Sequence[int] = (10, 20, 30), num_rows: int = 400
) -> list[tuple[np.ndarray, np.ndarray]]:
    """(standardized data [n, d], adjacency [d, d]) of fresh P_IN SCMs, linear and RFF, per node count."""
    examples = []
    for cell, (mechanism, num_nodes) in enumerate((m, d) for m in ("linear", "rff") for d in node_counts):
        for index in range(datasets_per_cell):
            example = make_benchmark_dataset(
                "in",
                mechanism,
                num_nodes,
                num_context=num_rows,
                num_query=0,
                num_interventional=0,
                seed=CALIBRATION_SEED,
                index=cell * 1000 + index,
            )
            examples.append((standardized(example.data), example.adjacency))
    return examples


@torch.no_grad()
def calibrate_threshold(
    model: GraphModel, *, datasets_per_cell: int = 8, node_counts: Sequence[int] | None = None
) -> dict[str, Any]:
    """Choose the model's default threshold (see the module docstring); returns the ``"inference"`` section."""
    if node_counts is None:
        trained = model.training_recipe.get("node_counts") or [20]
        node_counts = sorted({min(trained), round((min(trained) + max(trained)) / 2), max(trained)})
    examples = calibration_set(datasets_per_cell=datasets_per_cell, node_counts=node_counts)
    device = next(model.parameters()).device
    probabilities = []
    for data, _ in examples:
        batch = torch.as_tensor(data, dtype=torch.float32, device=device)[None]  # [1, n, d]
        probabilities.append(model.edge_probabilities(batch)[0].double().cpu().numpy())
    threshold, f1 = best_f1_threshold([truth for _, truth in examples], probabilities)
    return {
        "threshold": threshold,
        "calibration": {
            "rule": "highest mean edge F1 of the DAG rule over thresholds 0.05, 0.10, ..., 0.95",
            "mean_f1": f1,
            "seed": CALIBRATION_SEED,
            "preset": "in",
            "mechanisms": ["linear", "rff"],
            "node_counts": [int(d) for d in node_counts],
            "datasets_per_cell": datasets_per_cell,
        },
    }


def write_calibration(directory: str | Path, inference: dict[str, Any]) -> None:
    """Store ``inference`` in the checkpoint's ``config.json`` (atomically; the weights are untouched)."""
    config = read_config(directory, model_type=GraphModel.model_type)
    config["inference"] = inference
    write_json(Path(directory) / CONFIG_NAME, config)


def calibrate_checkpoint(directory: str | Path, *, datasets_per_cell: int = 8) -> dict[str, Any]:
    """Choose the default threshold of the graph model checkpoint in ``directory`` and store it there;
    returns the ``"inference"`` section written."""
    if isinstance(datasets_per_cell, bool) or not isinstance(datasets_per_cell, int) or datasets_per_cell < 1:
        raise ValueError(f"datasets_per_cell must be an int >= 1, got {datasets_per_cell!r}")
    if not Path(directory).is_dir():
        raise ValueError(f"{directory} is not a folder; pass the folder of a graph model checkpoint")
    model = GraphModel.from_pretrained(Path(directory))
    inference = calibrate_threshold(model, datasets_per_cell=datasets_per_cell)
    write_calibration(directory, inference)
    return inference
