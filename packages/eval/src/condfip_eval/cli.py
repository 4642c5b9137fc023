"""``condfip-eval``: the benchmark runs, the report and the published tables.

    condfip-eval paper --nodes 10 20 50 100 --context 400 --methods condfip,fip,dowhy,linear,nonlinear --out DIR
    condfip-eval paper --nodes 20 --mechanisms nn_tanh mixed --presets in --out DIR
    condfip-eval csuite --out DIR
    condfip-eval sachs --out DIR [--data FILE.csv] [--log] [--graph true|inferred]
    condfip-eval ecoli70 --out DIR [--graph true|inferred]
    condfip-eval report DIR
    condfip-eval publish DIR DEST

Without ``--methods`` a run uses every method installed here and says on stderr which it skipped and why.
Bad input (unknown method or preset, a results folder of another version, a Sachs file with the wrong
columns, bad weights, an output folder that cannot be written, ...) prints one line to stderr and exits with
code 2, having written nothing. Ctrl-C prints one "interrupted" line and exits with code 130 (SIGTERM and
SIGHUP: 128 + the signal's number); the file being written is removed, finished ones stay. A closed standard
output (``condfip-eval report DIR | head -0``) ends the command quietly, exit code 141 as for SIGPIPE.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from collections.abc import Sequence
from contextlib import suppress
from pathlib import Path

from condfip_eval import __version__
from condfip_eval.grid import MECHANISMS, PAPER_MECHANISMS, PRESET_ORDER
from condfip_eval.methods import METHOD_NAMES, missing_dependency, unknown_method_message

__all__ = ["main"]

DEFAULT_FIP_STEPS = 2000
QUICK_FIP_STEPS = 200
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as the condfip and scm-gen commands
EXIT_BROKEN_PIPE = 128 + 13  # the shell's code for a process ended by SIGPIPE


class UsageError(Exception):
    """Bad command-line input: reported in one line, exit code 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, no usage block
        raise UsageError(message)


def _methods(text: str) -> tuple[str, ...]:
    names = tuple(name.strip() for name in text.split(",") if name.strip())
    unknown = [name for name in names if name not in METHOD_NAMES]
    if unknown:
        raise argparse.ArgumentTypeError(unknown_method_message(unknown[0]))
    if not names:
        raise argparse.ArgumentTypeError("no method given; choose from " + ",".join(METHOD_NAMES))
    return names


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def _add_common(parser: argparse.ArgumentParser, *, quick: bool = False) -> None:
    parser.add_argument("--out", required=True, help="results folder (created; resumed when it exists)")
    parser.add_argument(
        "--methods",
        type=_methods,
        default=None,
        help=f"comma-separated, from {','.join(METHOD_NAMES)} (default: all of them that are installed; "
        "the others are named on stderr with the reason)",
    )
    parser.add_argument(
        "--weights",
        default="small",
        help="Cond-FiP weights: shipped name, local folder or Hub id (default small)",
    )
    steps = f"default {DEFAULT_FIP_STEPS}" + (f"; {QUICK_FIP_STEPS} with --quick" if quick else "")
    parser.add_argument("--fip-steps", type=_positive, default=None, help=f"FiP training steps ({steps})")
    parser.add_argument(
        "--dowhy-quality",
        choices=("GOOD", "BETTER", "BEST"),
        default="GOOD",
        help="DoWhy's model quality (default GOOD)",
    )
    parser.add_argument("--seed", type=int, default=0, help="run seed (default 0)")
    parser.add_argument(
        "--no-progress",
        action="store_true",
        help="no progress bar (there is none when stderr is not a terminal)",
    )


def _graph_option(parser: argparse.ArgumentParser, truth: str) -> None:
    parser.add_argument(
        "--graph",
        choices=("true", "inferred"),
        default="true",
        help=f"{truth} (default), or the DAG the amortized graph model infers from each dataset's context rows",
    )


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="condfip-eval", description="Benchmarks of Cond-FiP against per-dataset baselines.")
    parser.add_argument("--version", action="version", version=f"condfip-eval {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    paper = commands.add_parser("paper", help="the paper's test grid (Tables 1-3 and more)")
    paper.add_argument(
        "--nodes",
        type=_positive,
        nargs="+",
        default=None,
        help="node counts (default 10 20 50 100; 10 with --quick)",
    )
    paper.add_argument(
        "--context",
        type=_positive,
        default=400,
        help="context rows per dataset (the paper's: 400, 100, 50; default 400)",
    )
    paper.add_argument(
        "--mechanisms",
        nargs="+",
        default=list(PAPER_MECHANISMS),
        metavar="MECHANISM",
        help=f"scm-gen mechanism families, from {' '.join(MECHANISMS)} (default: the paper's linear rff)",
    )
    paper.add_argument(
        "--presets",
        nargs="+",
        default=list(PRESET_ORDER),
        choices=PRESET_ORDER,
        metavar="PRESET",
        help="scm-gen presets: in (er, sf_in, sf_out graphs), out (ws, sbm) (default: in out)",
    )
    _graph_option(paper, "the true graph")
    paper.add_argument(
        "--quick", action="store_true", help="d = 10 unless --nodes, one SCM per graph family, 200 FiP steps"
    )
    _add_common(paper, quick=True)

    csuite = commands.add_parser("csuite", help="the CSuite datasets and their Gaussian-mixture variants")
    csuite.add_argument("--datasets", default=None, help="comma-separated CSuite names (default: all)")
    csuite.add_argument(
        "--replicates", type=_positive, default=3, help="datasets per CSuite model (default 3)"
    )
    _add_common(csuite)

    sachs = commands.add_parser(
        "sachs", help="Sachs protein signalling (CD3/CD28, 853 rows), MMD to held-out rows"
    )
    sachs.add_argument(
        "--data",
        default=None,
        help="a CSV with the 11 Sachs columns (default: the copy shipped with condfip-eval)",
    )
    sachs.add_argument("--log", action="store_true", help="log-transform the (positive, heavy-tailed) values")
    sachs.add_argument("--context", type=_positive, default=400, help="context rows (default 400)")
    sachs.add_argument(
        "--replicates", type=_positive, default=5, help="random context/held-out splits (default 5)"
    )
    _graph_option(sachs, "the consensus graph")
    _add_common(sachs)

    ecoli = commands.add_parser("ecoli70", help="the linear-Gaussian ecoli70 network (pgmpy's parameters)")
    ecoli.add_argument(
        "--model", default=None, help="a network in pgmpy's JSON format (default: pgmpy's ecoli70)"
    )
    ecoli.add_argument("--context", type=_positive, default=400, help="context rows (default 400)")
    ecoli.add_argument("--replicates", type=_positive, default=3, help="datasets drawn (default 3)")
    _graph_option(ecoli, "the network's graph")
    _add_common(ecoli)

    report = commands.add_parser("report", help="one Markdown report (with PNG figures) of every run in DIR")
    report.add_argument("directory", help="a results folder written by the run commands")
    report.add_argument("--no-figures", action="store_true", help="tables only (no matplotlib needed)")

    publish = commands.add_parser(
        "publish",
        help="the tables of every run in DIR, with a manifest, into DEST/<run kind>/ (no per-dataset files)",
    )
    publish.add_argument("directory", help="a results folder written by the run commands")
    publish.add_argument("destination", help="for example packages/eval/results")
    return parser


def _method_options(args: argparse.Namespace) -> dict:
    """Settings shared by every run; without --methods, every installed method (the others in ``skipped``,
    named on stderr once the run has passed its checks)."""
    methods, skipped = args.methods, {}
    if methods is None:
        skipped = {name: reason for name in METHOD_NAMES if (reason := missing_dependency(name)) is not None}
        methods = tuple(name for name in METHOD_NAMES if name not in skipped)
    return {
        "methods": methods,
        "skipped": skipped,
        "fip_steps": args.fip_steps,
        "dowhy_quality": args.dowhy_quality,
        "condfip_weights": args.weights,
        "seed": args.seed,
    }


def _check_folder(path: str, argument: str) -> None:
    """A folder argument of ``report`` or ``publish`` that names a file is refused by its own name."""
    if Path(path).exists() and not Path(path).is_dir():
        raise UsageError(
            f"{argument} {path!r} is a file, not a folder; give a results folder of condfip-eval"
        )


def _progress(args: argparse.Namespace) -> bool:
    """A progress bar unless --no-progress, and only on a terminal (not in a log file or a pipe)."""
    return not args.no_progress and sys.stderr.isatty()


def _run(args: argparse.Namespace) -> str:
    if args.command == "paper":
        from condfip_eval.paper import PaperSettings, run_paper

        settings = PaperSettings(
            node_counts=None if args.nodes is None else tuple(args.nodes),
            num_context=args.context,
            mechanisms=tuple(args.mechanisms),
            presets=tuple(args.presets),
            graph_source=args.graph,
            quick=args.quick,
            **_method_options(args),
        )
        return str(run_paper(settings, args.out, progress=_progress(args)))
    if args.command == "csuite":
        from condfip_eval.csuite import CSuiteSettings, run_csuite

        names = (
            None if args.datasets is None else tuple(n.strip() for n in args.datasets.split(",") if n.strip())
        )
        settings = CSuiteSettings(names=names, replicates=args.replicates, **_method_options(args))
        return str(run_csuite(settings, args.out, progress=_progress(args)))
    if args.command == "sachs":
        from condfip_eval.sachs import SachsSettings, run_sachs

        settings = SachsSettings(
            data_path=args.data,
            log_transform=args.log,
            num_context=args.context,
            replicates=args.replicates,
            graph_source=args.graph,
            **_method_options(args),
        )
        return str(run_sachs(settings, args.out, progress=_progress(args)))
    if args.command == "ecoli70":
        from condfip_eval.ecoli70 import Ecoli70Settings, run_ecoli70

        settings = Ecoli70Settings(
            model_path=args.model,
            num_context=args.context,
            replicates=args.replicates,
            graph_source=args.graph,
            **_method_options(args),
        )
        return str(run_ecoli70(settings, args.out, progress=_progress(args)))
    _check_folder(args.directory, "DIRECTORY")
    if args.command == "publish":
        from condfip_eval.publish import publish

        if Path(args.destination).exists() and not Path(args.destination).is_dir():
            raise UsageError(f"DESTINATION {args.destination!r} is a file, not a folder; give a folder")
        return "\n".join(str(folder) for folder in publish(args.directory, args.destination))
    from condfip_eval.report import MATPLOTLIB_HINT, matplotlib_available, write_report

    figures = not args.no_figures
    path = write_report(args.directory, figures=figures)
    if figures and not matplotlib_available():
        print(f"condfip-eval: {MATPLOTLIB_HINT}", file=sys.stderr)
    return str(path)


def _one_line(error: BaseException) -> str:
    if isinstance(error, OSError) and error.filename is not None:
        text = f"{error.strerror or type(error).__name__}: {error.filename}"
    else:
        text = str(error) or type(error).__name__
    return " ".join(text.split())


def _exit_on_signal(number: int, frame: object) -> None:
    """SIGTERM and SIGHUP end the run as Ctrl-C does: the file being written is removed, finished ones stay."""
    raise SystemExit(128 + number)


def _quiet_broken_pipe() -> int:
    """After standard output was closed by its reader: point it at /dev/null, so that the interpreter's last
    flush does not fail again, and return ``EXIT_BROKEN_PIPE``."""
    with suppress(OSError, ValueError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    return EXIT_BROKEN_PIPE


def main(argv: Sequence[str] | None = None) -> int:
    previous = {}
    if threading.current_thread() is threading.main_thread():
        for name in ("SIGTERM", "SIGHUP"):
            if hasattr(signal, name):
                previous[name] = signal.signal(getattr(signal, name), _exit_on_signal)
    try:
        args = _parser().parse_args(argv)
        print(_run(args))
        sys.stdout.flush()  # a closed output shows here, inside the handlers below
    except BrokenPipeError:
        return _quiet_broken_pipe()
    except (UsageError, ValueError, ImportError, OSError) as error:
        print(f"condfip-eval: error: {_one_line(error)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("condfip-eval: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    finally:
        for name, handler in previous.items():
            signal.signal(getattr(signal, name), handler)
    return 0


if __name__ == "__main__":
    sys.exit(main())
