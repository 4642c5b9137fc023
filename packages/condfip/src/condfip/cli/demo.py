"""``condfip demo``: a fresh scm-gen SCM inferred zero-shot and by the default (adapted) path, scored against the
truth beside linear and kernel regressions fitted on the same rows (``condfip.demo``). Needs the
``condfip[train]`` extra (scm-gen draws the SCM)."""

from __future__ import annotations

import argparse
import importlib.util
import sys
import time

import numpy as np

from condfip.api import CondFiP
from condfip.cli.inputs import (
    MODEL_FLAGS,
    add_model_arguments,
    at_least_two,
    check_outputs,
    flag_names,
    non_negative_int,
    one_line_errors,
    os_errors,
    output_path,
    positive_int,
    requires_training_extra,
)
from condfip.demo.plot import plot_interventional_marginals
from condfip.demo.run import KERNEL_MAX_ROWS, check_demo_memory, run_demo, with_informative_intervention
from condfip.graph import DEFAULT_GRAPH_MODEL
from condfip.model import CondFiPModel


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``demo`` to the ``condfip`` command line."""
    demo = subparsers.add_parser(
        "demo",
        help="infer a fresh scm-gen SCM and compare with the truth and fitted linear and kernel regressions",
        description=(
            "Draw a fresh SCM with scm-gen (default: P_IN preset, RFF mechanisms, d = 20, 400 context rows), infer "
            "it with the shipped weights zero-shot and by the default path (adapted to the context rows), and print "
            "noise / generation / interventional / counterfactual RMSE (standardized units) beside linear and "
            "Gaussian-kernel ridge additive-noise regressions fitted on the same rows (the kernel one up to "
            f"{KERNEL_MAX_ROWS:,} context rows)."
        ),
    )
    demo.add_argument("--seed", type=non_negative_int, help="seed of the SCM (default: a fresh one, printed)")
    demo.add_argument("--num-nodes", type=positive_int, default=20, help="nodes of the SCM (default 20)")
    demo.add_argument(
        "--mechanism", choices=("linear", "rff"), default="rff", help="its mechanisms (default rff)"
    )
    demo.add_argument(
        "--preset", choices=("in", "out"), default="in", help="scm-gen's preset: P_IN or P_OUT (default in)"
    )
    demo.add_argument(
        "--num-context", type=at_least_two, default=400, help="rows to infer the SCM from (default 400)"
    )
    add_model_arguments(demo, CondFiPModel.default_name)
    demo.add_argument(
        "--plot", type=output_path, metavar="FILE.png", help="save true vs inferred interventional marginals"
    )
    demo.add_argument(
        "--infer-graph",
        action="store_true",
        help="give every method the DAG that the graph model infers from the context rows, not the true graph",
    )
    demo.add_argument(
        "--graph-model",
        help=f"with --infer-graph: shipped name, folder or Hub repo id (default {DEFAULT_GRAPH_MODEL})",
    )
    demo.add_argument(
        "--no-refit-readout",
        action="store_true",
        help="leave out the column of Cond-FiP's default path (adapted to the context rows)",
    )
    demo.set_defaults(handler=run_demo_command)
    one_line_errors(demo)


SCM_FLAGS = {"num_nodes": "--num-nodes", "num_context": "--num-context", "seed": "--seed"}
"""The arguments of scm-gen's ``make_benchmark_dataset`` by the flags that give them."""


def run_demo_command(args: argparse.Namespace) -> int:
    requires_training_extra("demo")
    import scm_gen  # an optional dependency, checked just above
    from scm_gen.mechanisms import NUM_RANDOM_FEATURES

    if args.graph_model is not None and not args.infer_graph:
        raise ValueError("--graph-model applies only with --infer-graph (the true graph is given); drop it")
    if args.plot is not None and importlib.util.find_spec("matplotlib") is None:
        raise ValueError("--plot needs matplotlib; install it with: pip install 'condfip[plot]'")
    check_outputs([("--plot", args.plot)])
    features = NUM_RANDOM_FEATURES if args.mechanism == "rff" else 0
    check_demo_memory(args.num_context, args.num_nodes, features)
    seed = args.seed if args.seed is not None else int(np.random.SeedSequence().entropy % 2**31)
    start = time.perf_counter()
    graph_model = DEFAULT_GRAPH_MODEL if args.graph_model is None else args.graph_model
    with flag_names(MODEL_FLAGS):
        model = CondFiP.from_pretrained(args.model, device=args.device, graph_model=graph_model)
    load_seconds = time.perf_counter() - start
    with flag_names(SCM_FLAGS):
        dataset = scm_gen.make_benchmark_dataset(
            args.preset, args.mechanism, args.num_nodes, num_context=args.num_context, seed=seed
        )
    dataset = with_informative_intervention(dataset, seed)
    with flag_names({"name_or_path": "--graph-model"}):  # --infer-graph loads the graph model here
        report, scm = run_demo(
            model, dataset, infer_graph=args.infer_graph, refit_readout=not args.no_refit_readout
        )
    print(report.table())
    print(
        f"(weights {args.model!r} loaded in {load_seconds:.2f} s on {model.device}; rerun with --seed {seed})"
    )
    if args.plot is not None:
        with os_errors(f"cannot write the plot {str(args.plot)!r}"):
            written = plot_interventional_marginals(dataset, scm, args.plot, seed=seed)
        print(f"plot written to {written}")
    sys.stdout.flush()
    return 0
