"""``condfip infer`` and ``condfip effect``: an SCM inferred from a CSV table and its graph, then samples,
interventions, counterfactuals or an average causal effect. The commands parse and delegate to the API, which
checks the table, the graph and the interventions."""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

from condfip.api import CondFiP
from condfip.api.inferred_scm import DEFAULT_EFFECT_SAMPLES
from condfip.api.sampling import check_sample_memory
from condfip.cli.inputs import (
    MODEL_FLAGS,
    add_model_arguments,
    at_least_two,
    check_outputs,
    flag_names,
    non_negative_int,
    number_between,
    one_line_errors,
    one_line_warnings,
    output_path,
    positive_int,
    read_data_csv,
    read_graph_csv,
    write_csvs,
)
from condfip.graph import DEFAULT_GRAPH_MODEL
from condfip.model import CondFiPModel

DEFAULT_LEVEL = 0.95  # effect --bootstrap: the interval's level


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


class _AddColumns(argparse.Action):
    """``--positive``: repeated uses add up; a use without names means every column (True)."""

    def __call__(self, parser, namespace, values, option_string=None) -> None:
        current = getattr(namespace, self.dest)
        every = current is True or not values
        setattr(namespace, self.dest, True if every else [*(current or []), *values])


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
        help=f"with --graph infer: the graph model (name, folder, repo id; default {DEFAULT_GRAPH_MODEL})",
    )
    add_model_arguments(parser, CondFiPModel.default_name)
    parser.add_argument(
        "--zero-shot",
        action="store_true",
        help="the paper's zero-shot method: do not adapt the network to the data rows (the default adapts)",
    )
    parser.add_argument("--refit-readout", action="store_true", help=argparse.SUPPRESS)  # the default now
    parser.add_argument(
        "--positive",
        nargs="*",
        action=_AddColumns,
        metavar="COL",
        help="strictly positive columns (concentrations, prices), modelled on the log scale; answers stay in "
        "the data's units. Without names: every column. Repeated uses add up",
    )
    parser.add_argument(
        "--seed", type=non_negative_int, default=0, help="seed of the fresh noise (default 0)"
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
    """Add ``infer`` and ``effect`` to the ``condfip`` command line."""
    infer = subparsers.add_parser(
        "infer",
        help="infer the SCM of a CSV table (adapted to its rows unless --zero-shot) and write samples, "
        "interventions or counterfactuals",
        description=(
            "Infer the SCM behind --data given its causal --graph with a pretrained Cond-FiP network, by default "
            "adapted to the data rows (--zero-shot: the paper's zero-shot method, no adaptation), "
            "then write --num-samples observational rows, interventional rows (--intervene NAME=VALUE ...), or "
            "with --counterfactual one counterfactual per data row. The graph CSV is an adjacency matrix with a "
            "header row of node names (adjacency[i, j] = 1 means i -> j; an optional first column of row names) "
            "or an edge list with the header 'source,target'. --graph infer infers the graph from the data with "
            "the amortized graph model (as `condfip graph` does, at the model's default threshold)."
        ),
    )
    _add_inference_options(infer)
    infer.add_argument("--num-samples", type=positive_int, help="rows to draw (not with --counterfactual)")
    _add_interventions(infer, "--intervene", "do(NAME = VALUE)")
    infer.add_argument(
        "--counterfactual", action="store_true", help="counterfactuals of the data rows under --intervene"
    )
    infer.add_argument(
        "--noise-out", type=output_path, help="also write the abducted noise of the data rows here"
    )
    infer.add_argument("--out", required=True, type=output_path, help="output CSV")
    infer.set_defaults(handler=run_infer)
    one_line_errors(infer)

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
        type=positive_int,
        help=(
            "fresh rows of noise for both arms (default: until a 1 %% standard error, at most 10,000; not with "
            "--on-data)"
        ),
    )
    effect.add_argument(
        "--on-data", action="store_true", help="use the data rows' abducted noise (their counterfactuals)"
    )
    effect.add_argument(
        "--bootstrap",
        type=at_least_two,
        metavar="N",
        help="also fit on N resamples of the rows and print 'estimate lower upper' (a percentile interval)",
    )
    effect.add_argument(
        "--reinfer",
        action="store_true",
        default=None,
        help="with --bootstrap: run the whole inference on every resample (slower) instead of refitting the "
        "adapted weights",
    )
    effect.add_argument(
        "--level",
        type=number_between(0.0, 1.0, open_interval=True),
        help=f"with --bootstrap: the interval's level (default {DEFAULT_LEVEL})",
    )
    effect.set_defaults(handler=run_effect)
    one_line_errors(effect)


# ------------------------------------------------------------------------------------------------------- infer
INFERENCE_FLAGS = {"positive": "--positive", "name_or_path": "--graph-model", "zero_shot": "--zero-shot"}
"""The arguments of an inference (which loads the graph model with --graph infer), by the flags that give them."""


def _model(args: argparse.Namespace) -> CondFiP:
    graph_model = DEFAULT_GRAPH_MODEL if args.graph_model is None else args.graph_model
    with flag_names(MODEL_FLAGS):
        return CondFiP.from_pretrained(args.model, device=args.device, graph_model=graph_model)


def _check_graph_model(args: argparse.Namespace) -> None:
    """``--graph-model`` only applies with ``--graph infer``."""
    if args.graph_model is not None and str(args.graph) != "infer":
        raise ValueError("--graph-model applies only with --graph infer (the graph is given); drop it")


def _graph(args: argparse.Namespace) -> object:
    """``--graph``: "infer", or what its CSV holds."""
    return "infer" if str(args.graph) == "infer" else read_graph_csv(args.graph)


def _positive(args: argparse.Namespace) -> bool | list[str]:
    """``--positive``: absent is False, without names every column (True), else the named columns."""
    return False if args.positive is None else args.positive


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
    _check_graph_model(args)
    graph_file = None if str(args.graph) == "infer" else args.graph
    check_outputs(
        [("--noise-out", args.noise_out), ("--out", args.out)],
        inputs=[("--data", args.data), ("--graph", graph_file)],
    )
    data = read_data_csv(args.data)
    if args.num_samples is not None:
        check_sample_memory(args.num_samples, data.shape[1], "--num-samples")
    graph = _graph(args)
    model = _model(args)
    with one_line_warnings("infer", INFERENCE_FLAGS):
        with flag_names(INFERENCE_FLAGS):
            scm = model.infer(data, graph, zero_shot=args.zero_shot, positive=_positive(args))
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
        noise = [] if args.noise_out is None else [(scm.noise(), args.noise_out)]
    write_csvs([*noise, (result, args.out)])  # both files or neither
    print(
        f"wrote {what} to {args.out}"
        + (f" and the abducted noise to {args.noise_out}" if args.noise_out else "")
    )
    return 0


def run_effect(args: argparse.Namespace) -> int:
    alternative, reference = _arm(args.alternative, "--alternative"), _arm(args.reference, "--reference")
    if args.on_data and args.num_samples is not None:
        raise ValueError("--num-samples does not apply to --on-data (the data rows' noise is used)")
    if args.bootstrap is None:
        for option, value in (("--level", args.level), ("--reinfer", args.reinfer)):
            if value is not None:
                raise ValueError(f"{option} applies only with --bootstrap N (the interval); drop it")
    _check_graph_model(args)
    level = DEFAULT_LEVEL if args.level is None else args.level
    data = read_data_csv(args.data)
    if args.num_samples is not None:
        check_sample_memory(args.num_samples, data.shape[1], "--num-samples")
    graph = _graph(args)
    model = _model(args)

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
        rows = (
            f"{args.num_samples:,} fresh rows, seed {args.seed}"
            if args.num_samples
            else (
                "fresh rows in stratified blocks until a 1 % standard error "
                f"(at most {DEFAULT_EFFECT_SAMPLES:,}), seed {args.seed}"
            )
        )
    with one_line_warnings("effect", INFERENCE_FLAGS):
        if args.bootstrap is None:
            with flag_names(INFERENCE_FLAGS):
                scm = model.infer(data, graph, zero_shot=args.zero_shot, positive=_positive(args))
            printed = f"{statistic(scm):.6g}"
        else:
            with flag_names(INFERENCE_FLAGS):
                result = model.bootstrap(
                    data,
                    graph,
                    statistic,
                    num_bootstraps=args.bootstrap,
                    seed=args.seed,
                    zero_shot=args.zero_shot,
                    positive=_positive(args),
                    reinfer=bool(args.reinfer),
                )
            lower, upper = result.interval(level)
            printed = f"{result.estimate:.6g} {lower:.6g} {upper:.6g}"
            rows += f"; then the {level:.0%} percentile interval over {args.bootstrap} resamples of the rows"

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
