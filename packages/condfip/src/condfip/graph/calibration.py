"""The default edge threshold of a graph model, chosen on held-out SCMs and stored in its checkpoint.

A model trained with cross-entropy on sparse graphs gives calibrated, mostly low probabilities, so the DAG
rule at 0.5 keeps too few edges. ``calibrate_threshold`` scores the DAG rule at every candidate threshold
(0.05, 0.10, ..., 0.95) on fresh P_IN SCMs (linear and RFF, the training node counts, their own seed: neither
the validation set nor the test grid) and keeps the threshold of highest mean edge F1. ``write_calibration``
stores it in the checkpoint's ``config.json`` under ``"inference"``; ``infer_graph``, ``condfip graph`` and
``graph="infer"`` use it when no threshold is given.

    python -m condfip.graph.calibration CHECKPOINT_DIR [--datasets-per-cell 8]
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from condfip.checkpoint import CONFIG_NAME, read_config, write_json
from condfip.graph.checkpoint import GRAPH_MODEL_TYPE, load_graph_model
from condfip.graph.dag import dag_from_probabilities
from condfip.graph.metrics import edge_f1
from condfip.graph.model import GraphModel
from scm_gen import make_benchmark_dataset, standardize

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
            examples.append((standardize(example.data)[0], example.adjacency))
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
    config = read_config(directory, model_type=GRAPH_MODEL_TYPE)
    config["inference"] = inference
    write_json(Path(directory) / CONFIG_NAME, config)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m condfip.graph.calibration", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument(
        "checkpoint", type=Path, help="folder of a graph model checkpoint (rewritten in place)"
    )
    parser.add_argument("--datasets-per-cell", type=int, default=8, help="SCMs per mechanism and node count")
    args = parser.parse_args(argv)
    if args.datasets_per_cell < 1:
        parser.error(f"--datasets-per-cell must be >= 1, got {args.datasets_per_cell}")
    if not args.checkpoint.is_dir():
        parser.exit(
            2, f"error: {args.checkpoint} is not a folder; pass the folder of a graph model checkpoint\n"
        )
    try:
        model = load_graph_model(args.checkpoint)
        inference = calibrate_threshold(model, datasets_per_cell=args.datasets_per_cell)
        write_calibration(args.checkpoint, inference)
    except ValueError as error:
        parser.exit(2, f"error: {error}\n")
    print(json.dumps(inference, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
