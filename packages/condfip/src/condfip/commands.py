"""The ``condfip infer``, ``condfip effect`` and ``condfip demo`` commands (registered on the top-level ``condfip`` parser).

Bad input ends with one line on stderr and exit code 2; outputs are written to a temporary file and renamed.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import NoReturn

import numpy as np
import pandas as pd

from condfip.atomic import atomic_file

EXIT_BAD_INPUT = 2


def _one_line_errors(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Make argparse report a usage mistake as one line (not usage + message) with exit code 2."""

    def error(message: str) -> NoReturn:
        parser.exit(EXIT_BAD_INPUT, f"{parser.prog}: error: {message} (see {parser.prog} --help)\n")

    parser.error = error  # type: ignore[method-assign]
    return parser


def _int_at_least(minimum: int, what: str) -> Callable[[str], int]:
    """An argparse type: an integer >= ``minimum``; ``what`` names it in the error ("a positive integer")."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}")
        return value

    return parse


_positive_int = _int_at_least(1, "a positive integer")
_non_negative_int = _int_at_least(0, "a non-negative integer")
_at_least_two = _int_at_least(2, "an integer >= 2")


def _level(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number between 0 and 1, got {text!r}") from None
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"expected a number strictly between 0 and 1, got {text!r}")
    return value


def _intervention(text: str) -> tuple[str, float]:
    name, separator, value = text.rpartition("=")
    if not separator or not name:
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got {text!r}")
    try:
        number = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"the value of {text!r} is not a number") from None
    if not math.isfinite(number):
        raise argparse.ArgumentTypeError(f"the value of {text!r} is not finite; give a finite number")
    return name, number


def _add_inference_options(parser: argparse.ArgumentParser) -> None:
    """The options of every command that infers an SCM from a CSV table and a graph, then draws noise."""
    parser.add_argument("--data", required=True, type=Path, help="CSV with a header row; numeric columns")
    parser.add_argument(
        "--graph",
        required=True,
        type=Path,
        help="adjacency CSV with header, or source,target CSV; 'infer' to infer it (a file named infer: give its full path)",
    )
    parser.add_argument(
        "--graph-model",
        default="graph-small",
        help="with --graph infer: the graph model (name, folder, repo id)",
    )
    parser.add_argument("--model", default="small", help="shipped name, checkpoint folder or Hub repo id")
    parser.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda, cuda:N")
    parser.add_argument(
        "--refit-readout",
        action="store_true",
        help="refit the decoder's readout per node on the data rows (more accurate with 50 rows or more; "
        "a step beyond zero-shot, see the README)",
    )
    parser.add_argument(
        "--seed", type=_non_negative_int, default=0, help="seed of the fresh noise (default 0)"
    )
    parser.add_argument(
        "--noise-model",
        choices=("empirical", "gaussian"),
        default="empirical",
        help="fresh noise per node: inverse empirical CDF of the abducted noise (default) or a fitted normal",
    )


def _add_interventions(parser: argparse.ArgumentParser, flag: str, help: str, required: bool = False) -> None:
    """A repeatable NAME=VALUE option, collected as a list of (name, value) pairs."""
    parser.add_argument(
        flag,
        action="append",
        type=_intervention,
        default=None if required else [],
        required=required,
        metavar="NAME=VALUE",
        help=help,
    )


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``infer``, ``effect`` and ``demo`` to the ``condfip`` command line."""
    infer = subparsers.add_parser(
        "infer",
        help="infer the SCM of a CSV table zero-shot and write samples, interventions or counterfactuals",
        description=(
            "Infer the SCM behind --data given its causal --graph with a pretrained Cond-FiP network (no training), "
            "then write --num-samples observational rows, interventional rows (--intervene NAME=VALUE ...), or "
            "with --counterfactual one counterfactual per data row. The graph CSV is an adjacency matrix with a "
            "header row of node names (adjacency[i, j] = 1 means i -> j; an optional first column of row names) "
            "or an edge list with the header 'source,target'. --graph infer infers the graph from the data with "
            "the amortized graph model (as `condfip graph` does, at the model's default threshold)."
        ),
    )
    _add_inference_options(infer)
    infer.add_argument("--num-samples", type=_positive_int, help="rows to draw (not with --counterfactual)")
    _add_interventions(infer, "--intervene", "do(NAME = VALUE)")
    infer.add_argument(
        "--counterfactual", action="store_true", help="counterfactuals of the data rows under --intervene"
    )
    infer.add_argument("--noise-out", type=Path, help="also write the abducted noise of the data rows here")
    infer.add_argument("--out", required=True, type=Path, help="output CSV")
    infer.set_defaults(handler=run_infer)
    _one_line_errors(infer)

    effect = subparsers.add_parser(
        "effect",
        help="the average causal effect on a column of one intervention against another",
        description=(
            "Infer the SCM behind --data given its causal --graph (as `condfip infer` does) and print "
            "E[TARGET | do(--alternative)] - E[TARGET | do(--reference)], both arms through the same noise: "
            "--num-samples fresh rows, or with --on-data the abducted noise of the data rows. Without "
            "--reference the reference is the observational mean."
        ),
    )
    _add_inference_options(effect)
    effect.add_argument("--target", required=True, help="the column whose mean is compared")
    _add_interventions(
        effect,
        "--alternative",
        "do(NAME = VALUE) in the alternative arm (repeat for several nodes)",
        required=True,
    )
    _add_interventions(
        effect, "--reference", "do(NAME = VALUE) in the reference arm (default: no intervention)"
    )
    effect.add_argument(
        "--num-samples",
        type=_positive_int,
        help="fresh rows of noise for both arms (default 10,000; not with --on-data)",
    )
    effect.add_argument(
        "--on-data", action="store_true", help="use the data rows' abducted noise (their counterfactuals)"
    )
    effect.add_argument(
        "--bootstrap",
        type=_at_least_two,
        metavar="N",
        help="also infer on N resamples of the rows and print 'estimate lower upper' (a percentile interval)",
    )
    effect.add_argument(
        "--level", type=_level, default=0.95, help="with --bootstrap: the interval's level (default 0.95)"
    )
    effect.set_defaults(handler=run_effect)
    _one_line_errors(effect)

    demo = subparsers.add_parser(
        "demo",
        help="infer a fresh scm-gen SCM zero-shot and compare with the truth and a fitted linear baseline",
        description=(
            "Draw a fresh SCM with scm-gen (default: P_IN preset, RFF mechanisms, d = 20, 400 context rows), infer "
            "it zero-shot with the shipped weights, and print noise / generation / interventional / counterfactual "
            "RMSE (standardized units) beside a linear additive-noise regression fitted on the same rows."
        ),
    )
    demo.add_argument(
        "--seed", type=_non_negative_int, help="seed of the SCM (default: a fresh one, printed)"
    )
    demo.add_argument("--num-nodes", type=_positive_int, default=20)
    demo.add_argument("--mechanism", choices=("linear", "rff"), default="rff")
    demo.add_argument("--preset", choices=("in", "out"), default="in")
    demo.add_argument("--num-context", type=_positive_int, default=400)
    demo.add_argument("--model", default="small", help="shipped name, checkpoint folder or Hub repo id")
    demo.add_argument("--device", default="auto")
    demo.add_argument(
        "--plot", type=Path, metavar="FILE.png", help="save true vs inferred interventional marginals"
    )
    demo.add_argument(
        "--infer-graph",
        action="store_true",
        help="give both methods the DAG that the graph model infers from the context rows, not the true graph",
    )
    demo.add_argument(
        "--graph-model", default="graph-small", help="with --infer-graph: shipped name, folder or Hub repo id"
    )
    demo.add_argument(
        "--no-refit-readout",
        action="store_true",
        help="leave out the column of Cond-FiP with its readout refitted on the context rows",
    )
    demo.set_defaults(handler=run_demo_command)
    _one_line_errors(demo)


# ------------------------------------------------------------------------------------------------------- infer
def _read_csv(path: Path, option: str, **options) -> pd.DataFrame:
    try:
        return pd.read_csv(path, **options)
    except FileNotFoundError:
        raise ValueError(f"{option} {str(path)!r}: no such file") from None
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as error:
        message = " ".join(str(error).split())
        raise ValueError(f"{option} {str(path)!r} is not a readable CSV: {message}") from None


def read_graph_csv(path: Path) -> object:
    """An edge list (header ``source,target``) as a list of pairs, or an adjacency CSV as a labelled DataFrame."""
    raw = _read_csv(path, "--graph", dtype=str, keep_default_na=False)
    header = [str(name).strip() for name in raw.columns]
    if [name.lower() for name in header] == ["source", "target"]:
        return [(source.strip(), target.strip()) for source, target in raw.itertuples(index=False, name=None)]
    if raw.shape[1] == raw.shape[0] + 1:  # a first column of row names
        raw = raw.set_index(raw.columns[0])
        raw.index = [str(name).strip() for name in raw.index]
        header = header[1:]
    raw.columns = header
    try:
        return raw.apply(lambda column: pd.to_numeric(column.str.strip()))
    except ValueError:
        raise ValueError(
            f"--graph {str(path)!r}: adjacency entries must be numbers (0/1); for an edge list use the header "
            "'source,target'"
        ) from None


def _write_csv(frame: pd.DataFrame, path: Path) -> None:
    try:
        with atomic_file(path) as temporary:
            frame.to_csv(temporary, index=False)
    except OSError as error:
        raise ValueError(f"cannot write {str(path)!r}: {error.strerror or error}") from None


def _model_and_graph(
    args: argparse.Namespace, data: pd.DataFrame, interventions: list[dict]
) -> tuple[object, object]:
    """The model of ``--model`` and the graph of ``--graph`` (``"infer"`` or what the CSV holds); the table,
    graph and ``interventions`` are checked before the model loads, so bad input fails fast."""
    from condfip.api.graphs import adjacency_from_user
    from condfip.api.inference import CondFiP
    from condfip.api.inputs import context_from_user
    from condfip.api.interventions import check_interventions

    infer_graph = str(args.graph) == "infer"
    graph = "infer" if infer_graph else read_graph_csv(args.graph)
    _, columns, _ = context_from_user(data)
    if not infer_graph:
        adjacency_from_user(graph, columns)
    for arm in interventions:
        check_interventions(arm, columns)
    model = CondFiP.from_pretrained(args.model, device=args.device, graph_model=args.graph_model)
    return model, graph


def _infer(args: argparse.Namespace, data: pd.DataFrame, interventions: list[dict]) -> object:
    """The InferredSCM of ``data`` and ``--graph``, inputs checked first (``_model_and_graph``)."""
    model, graph = _model_and_graph(args, data, interventions)
    return model.infer(data, graph, refit_readout=args.refit_readout)


def _arm(pairs: list[tuple[str, float]], option: str) -> dict[str, float]:
    arm = dict(pairs)
    if len(arm) != len(pairs):
        raise ValueError(f"{option} names a node twice; give each node once")
    return arm


def run_infer(args: argparse.Namespace) -> int:
    interventions = _arm(args.intervene, "--intervene")
    if args.counterfactual:
        if not interventions:
            raise ValueError("--counterfactual needs at least one --intervene NAME=VALUE")
        if args.num_samples is not None:
            raise ValueError(
                "--num-samples does not apply to --counterfactual (one counterfactual per data row)"
            )
    elif args.num_samples is None:
        raise ValueError("--num-samples N is required (rows to draw), unless --counterfactual is given")
    data = _read_csv(args.data, "--data")
    scm = _infer(args, data, [interventions])
    if args.counterfactual:
        result = scm.counterfactual_samples(interventions, data)
        what = f"{len(result)} counterfactual rows"
    elif interventions:
        result = scm.interventional_samples(
            interventions, n=args.num_samples, seed=args.seed, noise_model=args.noise_model
        )
        what = f"{len(result)} interventional rows"
    else:
        result = scm.sample(args.num_samples, seed=args.seed, noise_model=args.noise_model)
        what = f"{len(result)} observational rows"
    if args.noise_out is not None:
        _write_csv(scm.noise(), args.noise_out)
    _write_csv(result, args.out)
    print(
        f"wrote {what} to {args.out}"
        + (f" and the abducted noise to {args.noise_out}" if args.noise_out else "")
    )
    return 0


def run_effect(args: argparse.Namespace) -> int:
    alternative, reference = _arm(args.alternative, "--alternative"), _arm(args.reference, "--reference")
    if args.on_data and args.num_samples is not None:
        raise ValueError("--num-samples does not apply to --on-data (the data rows' noise is used)")
    from condfip.api.inferred_scm import DEFAULT_EFFECT_SAMPLES

    data = _read_csv(args.data, "--data")
    if args.target not in data.columns:
        raise ValueError(
            f"--target {args.target!r} is not a column of --data; choose one of {list(data.columns)!r}"
        )
    model, graph = _model_and_graph(args, data, [alternative, reference])

    def statistic(scm) -> float:
        if args.on_data:  # the rows the SCM was inferred from: the data, or a resample of them
            return scm.average_causal_effect(args.target, alternative, reference, data=scm.data)
        return scm.average_causal_effect(
            args.target,
            alternative,
            reference,
            n=args.num_samples,
            seed=args.seed,
            noise_model=args.noise_model,
        )

    if args.on_data:
        rows = f"the {len(data)} data rows' noise"
    else:
        rows = f"{args.num_samples or DEFAULT_EFFECT_SAMPLES:,} fresh rows, seed {args.seed}"
    if args.bootstrap is None:
        printed = f"{statistic(model.infer(data, graph, refit_readout=args.refit_readout)):.6g}"
    else:
        result = model.bootstrap(
            data,
            graph,
            statistic,
            num_bootstraps=args.bootstrap,
            seed=args.seed,
            refit_readout=args.refit_readout,
        )
        lower, upper = result.interval(args.level)
        printed = f"{result.estimate:.6g} {lower:.6g} {upper:.6g}"
        rows += f"; then the {args.level:.0%} percentile interval over {args.bootstrap} resamples of the rows"

    def arm_text(arm: dict[str, float]) -> str:
        return (
            "do(" + ", ".join(f"{name} = {value:g}" for name, value in arm.items()) + ")"
            if arm
            else "no intervention"
        )

    print(printed)
    print(
        f"average causal effect on {args.target} of {arm_text(alternative)} against {arm_text(reference)} "
        f"({rows})",
        file=sys.stderr,
    )
    return 0


# -------------------------------------------------------------------------------------------------------- demo
def run_demo_command(args: argparse.Namespace) -> int:
    import scm_gen
    from condfip.api.inference import CondFiP
    from condfip.demo.run import run_demo, with_informative_intervention

    seed = args.seed if args.seed is not None else int(np.random.SeedSequence().entropy % 2**31)
    start = time.perf_counter()
    model = CondFiP.from_pretrained(args.model, device=args.device, graph_model=args.graph_model)
    load_seconds = time.perf_counter() - start
    dataset = scm_gen.make_benchmark_dataset(
        args.preset, args.mechanism, args.num_nodes, num_context=args.num_context, seed=seed
    )
    dataset = with_informative_intervention(dataset, seed)
    report, scm = run_demo(
        model, dataset, infer_graph=args.infer_graph, refit_readout=not args.no_refit_readout
    )
    print(report.table())
    print(
        f"(weights {args.model!r} loaded in {load_seconds:.2f} s on {model.device}; rerun with --seed {seed})"
    )
    if args.plot is not None:
        from condfip.demo.plot import plot_interventional_marginals

        print(f"plot written to {plot_interventional_marginals(dataset, scm, args.plot, seed=seed)}")
    sys.stdout.flush()
    return 0
