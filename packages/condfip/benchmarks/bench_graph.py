"""Quality of the amortized graph model on the scm-gen test grid (figures go to packages/condfip/BENCHMARKS.md,
"Graph inference").

    python packages/condfip/benchmarks/bench_graph.py [--model graph-small] [--nodes 10 20 50 100]
        [--presets in out] [--mechanisms linear rff] [--scms-per-graph 3] [--threshold T]
        [--neighborhood auto|none|K] [--num-context 400] [--json out.json]

For every cell (preset x mechanism x node count) of ``scm_gen.specs.grid_specs`` (the paper's test grid: 3 SCMs
per graph family, 400 context rows, or ``--num-context`` as in its scarce-data variants, which draw the same
SCMs; the datasets are those of the full grid whatever cells are selected), it
infers the probabilities and the DAG of each dataset from its context rows and prints, as mean (standard error)
over the cell's SCMs: SHD and edge F1 of the DAG at the threshold, AUROC and AUPRC of the probabilities, and
the SHD of the empty graph (the number of true edges: what predicting nothing scores). For reference it also
scores a plain statistic with no learning: the absolute partial correlation of each pair (from the inverse
correlation matrix of the context rows), symmetric, so it finds adjacencies but no directions. Cells with more
nodes than the model was trained on are marked with *; ``--neighborhood`` is passed to ``infer_graph`` (default
``auto``: one sub-table per node beyond the training range).
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import time
import warnings

import numpy as np


def mean_and_error(values: list[float]) -> tuple[float, float]:
    finite = [v for v in values if not math.isnan(v)]
    if not finite:
        return float("nan"), float("nan")
    mean = float(np.mean(finite))
    error = float(np.std(finite, ddof=1) / math.sqrt(len(finite))) if len(finite) > 1 else float("nan")
    return mean, error


def partial_correlations(data: np.ndarray) -> np.ndarray:
    """|partial correlation| of every pair of columns of ``data`` [n, d] given all others; zero diagonal."""
    correlation = np.corrcoef(data, rowvar=False)
    precision = np.linalg.pinv(correlation)
    scale = np.sqrt(np.abs(np.diagonal(precision)))
    partial = np.abs(precision / np.outer(scale, scale))
    np.fill_diagonal(partial, 0.0)
    return partial


def run_cell(model, specs, threshold: float, neighborhood: int | str | None) -> dict:
    from condfip import infer_graph
    from condfip.core.graph_scores import auprc, auroc, has_edges_and_non_edges
    from condfip.training.graph_validation import score_graph

    keys = ("shd", "f1", "auroc", "auprc", "empty_shd", "partial_auroc", "partial_auprc")
    scores: dict[str, list[float]] = {key: [] for key in keys}
    seconds = 0.0
    beyond_training = False
    for spec in specs:
        dataset = spec.build()
        start = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # beyond the training range with --neighborhood none
            probabilities, _ = infer_graph(
                dataset.context_data, model=model, threshold=threshold, neighborhood=neighborhood
            )
        seconds += time.perf_counter() - start
        trained = model.trained_max_nodes
        beyond_training |= trained is not None and dataset.adjacency.shape[0] > trained
        for key, value in score_graph(dataset.adjacency, probabilities, threshold=threshold).items():
            scores[key].append(value)
        scores["empty_shd"].append(
            float(dataset.adjacency.sum())
        )  # SHD of the empty graph: one per true edge
        partial = partial_correlations(dataset.context_data)
        ranked = has_edges_and_non_edges(dataset.adjacency)  # the ranking scores are undefined otherwise
        scores["partial_auroc"].append(auroc(dataset.adjacency, partial) if ranked else float("nan"))
        scores["partial_auprc"].append(auprc(dataset.adjacency, partial) if ranked else float("nan"))
    return {
        "num_scms": len(specs),
        "beyond_training": beyond_training,
        "seconds_per_dataset": seconds / max(len(specs), 1),
        **{key: mean_and_error(values) for key, values in scores.items()},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--model", default="graph-small", help="shipped name, checkpoint folder or Hub repo id"
    )
    parser.add_argument("--nodes", type=int, nargs="+", default=[10, 20, 50, 100])
    parser.add_argument("--presets", nargs="+", default=["in", "out"], choices=["in", "out"])
    parser.add_argument("--mechanisms", nargs="+", default=["linear", "rff"], choices=["linear", "rff"])
    parser.add_argument("--scms-per-graph", type=int, default=3)
    parser.add_argument(
        "--threshold",
        type=float,
        help="edge threshold of the DAG rule (default: the model's own, see calibration)",
    )
    parser.add_argument(
        "--neighborhood",
        default="auto",
        type=lambda text: None if text == "none" else text if text == "auto" else int(text),
        help="auto (default), none (always the whole table) or a neighborhood size",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the grid (0: the published grid)")
    parser.add_argument(
        "--num-context",
        type=int,
        default=400,
        help="context rows per dataset (the grid's scarce variants: 100, 50)",
    )
    parser.add_argument("--json", help="also write the figures to this JSON file")
    args = parser.parse_args()

    import torch

    from condfip.graph import GraphModel
    from scm_gen.specs import GRID_NODE_COUNTS, grid_specs

    model = GraphModel.from_pretrained(args.model)
    if args.threshold is None:
        args.threshold = model.default_threshold
    node_counts = tuple(sorted(set(GRID_NODE_COUNTS) | set(args.nodes)))
    specs = grid_specs(
        seed=args.seed,
        num_context=args.num_context,
        num_query=0,
        num_interventional=0,
        node_counts=node_counts,
        scms_per_graph=args.scms_per_graph,
    )
    print(
        f"model {args.model!r} ({model.config}), trained on node counts up to {model.trained_max_nodes}; "
        f"threshold {args.threshold}; neighborhood {args.neighborhood}; {args.num_context} context rows; torch {torch.__version__}, {torch.get_num_threads()} threads, "
        f"{platform.processor() or platform.machine()}"
    )
    print()
    print(
        "| cell | SCMs | SHD | F1 | AUROC | AUPRC | empty-graph SHD | partial corr. AUROC | partial corr. AUPRC "
        "| s / dataset |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    results = {}
    for preset in args.presets:
        for mechanism in args.mechanisms:
            for num_nodes in args.nodes:
                cell = [
                    s for s in specs if (s.preset, s.mechanism, s.num_nodes) == (preset, mechanism, num_nodes)
                ]
                figures = run_cell(model, cell, args.threshold, args.neighborhood)
                name = f"{preset.upper()} {mechanism} d={num_nodes}" + (
                    "*" if figures["beyond_training"] else ""
                )
                results[f"{preset}/{mechanism}/{num_nodes}"] = figures

                def show(key: str, digits: int, figures=figures) -> str:
                    mean, error = figures[key]
                    return f"{mean:.{digits}f} ({error:.{digits}f})"

                print(
                    f"| {name} | {figures['num_scms']} | {show('shd', 1)} | {show('f1', 2)} | {show('auroc', 3)} "
                    f"| {show('auprc', 3)} | {show('empty_shd', 1)} | {show('partial_auroc', 3)} "
                    f"| {show('partial_auprc', 3)} | {figures['seconds_per_dataset']:.2f} |",
                    flush=True,
                )
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(
                {
                    "model": str(args.model),
                    "threshold": args.threshold,
                    "neighborhood": args.neighborhood,
                    "num_context": args.num_context,
                    "cells": results,
                },
                handle,
                indent=2,
            )


if __name__ == "__main__":
    main()
