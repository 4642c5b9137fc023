"""The graph network's commands: ``condfip graph --data X.csv --out G.csv [--probabilities P.csv]`` infers a
causal graph from a CSV table; ``condfip calibrate CHECKPOINT_DIR`` chooses and stores a graph model's default
threshold (``condfip.training.calibration``).

The DAG is written as an adjacency CSV (a header row and a first column of node names, ``G[i, j] = 1`` for
``i -> j``), which ``condfip infer --graph G.csv`` reads back. Bad input: one line on stderr, exit code 2; an
output that names an input file is bad input. The API's warnings (too few rows, dependent columns): one line each
on stderr, naming the flags.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from condfip.api import infer_graph
from condfip.cli.inputs import (
    MODEL_FLAGS,
    add_model_arguments,
    check_outputs,
    flag_names,
    labelled_matrix,
    number_between,
    one_line_errors,
    one_line_warnings,
    os_errors,
    output_path,
    positive_int,
    read_data_csv,
    read_edge_csv,
    requires_training_extra,
    write_csvs,
)
from condfip.graph import DEFAULT_GRAPH_MODEL


def _neighborhood(text: str) -> int | str | None:
    if text in ("auto", "none"):
        return None if text == "none" else text
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 2:
        raise argparse.ArgumentTypeError(f"expected auto, none or a number of nodes >= 2, got {text!r}")
    return value


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``graph`` and ``calibrate`` to the ``condfip`` command line."""
    parser = subparsers.add_parser(
        "graph",
        help="infer the causal graph (a DAG) of a CSV table with the amortized graph model",
        description=(
            "Infer edge probabilities and a DAG for the columns of --data with a pretrained graph model (no "
            "training). The DAG keeps the edges above --threshold in decreasing probability, skipping any edge "
            "that would close a cycle; --required edges are always kept, --forbidden ones never. Output: an "
            "adjacency CSV (G[i, j] = 1 means i -> j) that `condfip infer --graph` reads."
        ),
    )
    parser.add_argument("--data", required=True, type=Path, help="CSV with a header row; numeric columns")
    parser.add_argument("--out", required=True, type=output_path, help="output adjacency CSV of the DAG")
    parser.add_argument(
        "--probabilities", type=output_path, help="also write the edge probabilities (same layout)"
    )
    parser.add_argument(
        "--threshold",
        type=number_between(0.0, 1.0, open_interval=False),
        help="edge threshold (default: the model's own, chosen for the best edge F1 on held-out SCMs; 0.5 for "
        "an uncalibrated model)",
    )
    parser.add_argument(
        "--neighborhood",
        type=_neighborhood,
        default="auto",
        help="auto (default): on more columns than the model was trained on, score each node's edges on a "
        "sub-table of the node and its most related columns; none: always the whole table; K: sub-tables of K "
        "columns",
    )
    parser.add_argument("--required", type=Path, help="CSV 'source,target' of edges that must be in the DAG")
    parser.add_argument("--forbidden", type=Path, help="CSV 'source,target' of edges that must not be")
    add_model_arguments(parser, DEFAULT_GRAPH_MODEL)
    parser.set_defaults(handler=run_graph)
    one_line_errors(parser)

    calibrate = subparsers.add_parser(
        "calibrate",
        help="choose a graph model's default edge threshold on held-out SCMs and store it in its checkpoint",
        description=(
            "Score the DAG rule at thresholds 0.05, 0.10, ..., 0.95 on fresh P_IN SCMs (linear and RFF, the "
            "training node counts) and store the threshold of highest mean edge F1 in the checkpoint's "
            "config.json (rewritten in place; the weights are untouched). Needs condfip[train]."
        ),
    )
    calibrate.add_argument("checkpoint", type=Path, help="folder of a graph model checkpoint")
    calibrate.add_argument(
        "--datasets-per-cell", type=positive_int, default=8, help="SCMs per mechanism and node count"
    )
    calibrate.set_defaults(handler=run_calibrate)
    one_line_errors(calibrate)


def _count(number: int, noun: str) -> str:
    """``1 edge``, ``3 edges``."""
    return f"{number} {noun}" + ("" if number == 1 else "s")


GRAPH_FLAGS = {
    **MODEL_FLAGS,
    "required": "--required",
    "forbidden": "--forbidden",
    "neighborhood": "--neighborhood",
    "threshold": "--threshold",
}
"""The arguments of ``infer_graph`` (and of loading its model) by the flags that give them."""


def run_graph(args: argparse.Namespace) -> int:
    check_outputs(
        [("--probabilities", args.probabilities), ("--out", args.out)],
        inputs=[("--data", args.data), ("--required", args.required), ("--forbidden", args.forbidden)],
    )
    data = read_data_csv(args.data)
    required = read_edge_csv(args.required, "--required") if args.required else None
    forbidden = read_edge_csv(args.forbidden, "--forbidden") if args.forbidden else None
    with one_line_warnings("graph", GRAPH_FLAGS), flag_names(GRAPH_FLAGS):
        probabilities, dag = infer_graph(
            data,
            model=args.model,
            threshold=args.threshold,
            required=required,
            forbidden=forbidden,
            device=args.device,
            neighborhood=args.neighborhood,
        )
    names = [str(name) for name in data.columns]
    written = (
        [] if args.probabilities is None else [(labelled_matrix(probabilities, names), args.probabilities)]
    )
    write_csvs([*written, (labelled_matrix(dag, names), args.out)])  # both files or neither
    print(
        f"wrote a DAG with {_count(int(dag.sum()), 'edge')} over {_count(len(names), 'node')} to {args.out}"
        + (f" and the edge probabilities to {args.probabilities}" if args.probabilities else "")
    )
    return 0


def run_calibrate(args: argparse.Namespace) -> int:
    requires_training_extra("calibrate")
    from condfip.training.calibration import calibrate_checkpoint  # needs scm-gen, checked just above

    with os_errors(f"cannot update the checkpoint {str(args.checkpoint)!r}"):
        inference = calibrate_checkpoint(args.checkpoint, datasets_per_cell=args.datasets_per_cell)
    print(json.dumps(inference, indent=2))
    return 0
