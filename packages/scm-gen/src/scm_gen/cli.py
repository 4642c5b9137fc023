"""The `scm-gen` command line: generate, grid, csuite, push, info.

Every bad parameter, oversized request and file-system or network error ends the command with one line on
stderr and exit status 2. SIGINT, SIGTERM and SIGHUP end the worker processes and remove the partial output
(exit status 128 + the signal's number). A closed standard output (`scm-gen info DIR | head -2`) ends the
command quietly, exit status 141 as for SIGPIPE.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import NoReturn

from scm_gen._checks import check_int
from scm_gen.graphs import GRAPH_KINDS
from scm_gen.mechanisms import MECHANISM_KINDS, NODE_FAMILIES

EXIT_USAGE = 2
EXIT_BROKEN_PIPE = 128 + 13  # the shell's status for a process ended by SIGPIPE
HANDLED_SIGNALS = tuple(
    getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name)
)
_MESSAGE_LIMIT = 500  # characters of an error message


class Interrupted(KeyboardInterrupt):
    """A handled signal, raised in the main thread so that every `finally` and `except` cleans up."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


@contextmanager
def _signals_raise() -> Iterator[None]:
    """Turn the first SIGINT, SIGTERM or SIGHUP into `Interrupted`; later ones wait for the cleanup."""
    raised = []

    def handler(signum: int, frame) -> None:
        if not raised:
            raised.append(signum)
            raise Interrupted(signum)

    if threading.current_thread() is not threading.main_thread():  # only the main thread may set handlers
        yield
        return
    previous = {signum: signal.signal(signum, handler) for signum in HANDLED_SIGNALS}
    try:
        yield
    finally:
        for signum, old in previous.items():
            signal.signal(signum, old)


class _Parser(argparse.ArgumentParser):
    """An argument parser whose errors are a single line (no usage dump)."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


def _int_list(text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of integers") from None
    repeated = next((value for value in values if values.count(value) > 1), None)
    if repeated is not None:
        raise argparse.ArgumentTypeError(f"{text!r} names {repeated} more than once; give each value once")
    return values


def _name_list(text: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in text.split(",") if part.strip())


def _add_sizes(parser: argparse.ArgumentParser, *, context: int, query: int) -> None:
    parser.add_argument("--context", type=int, default=context, help="context rows per dataset")
    parser.add_argument("--query", type=int, default=query, help="query rows per dataset")
    parser.add_argument("--interventions", type=int, default=400, help="interventional rows per dataset")


def _sizes(args: argparse.Namespace) -> dict[str, int]:
    """The options of `_add_sizes` and the run seed, as the keyword arguments of the `*_specs` functions."""
    return {
        "seed": args.seed,
        "num_context": args.context,
        "num_query": args.query,
        "num_interventional": args.interventions,
    }


def _add_run(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--seed", type=int, default=0, help="run seed (dataset i uses SeedSequence(seed, (i,)))"
    )
    parser.add_argument(
        "--num-proc", type=int, default=1, help="worker processes (output bytes do not change)"
    )
    parser.add_argument("--shard-size", type=int, default=500, help="datasets per Parquet shard")
    parser.add_argument("--out", required=True, help="output directory (must not exist)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="scm-gen", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    generate = commands.add_parser("generate", help="datasets of one preset and mechanism")
    generate.add_argument("--preset", default="in", help="in (P_IN) or out (P_OUT)")
    generate.add_argument("--mechanism", default="rff", help=f"one of {', '.join(MECHANISM_KINDS)}")
    generate.add_argument(
        "--families",
        type=_name_list,
        default=None,
        help=f"mixed only: what the nodes draw from, comma-separated (default: the preset's); "
        f"{', '.join(NODE_FAMILIES)}",
    )
    generate.add_argument(
        "--graph", default=None, help=f"graph family (default: the preset's); {', '.join(GRAPH_KINDS)}"
    )
    generate.add_argument("--nodes", type=int, default=20, help="nodes per SCM")
    generate.add_argument("--datasets", type=int, default=100, help="number of datasets (SCMs)")
    generate.add_argument(
        "--samples", type=int, default=800, help="observational rows per dataset (context + query)"
    )
    generate.add_argument(
        "--context", type=int, default=None, help="context rows among --samples (default: half)"
    )
    generate.add_argument("--interventions", type=int, default=400, help="interventional rows per dataset")
    _add_run(generate)

    grid = commands.add_parser("grid", help="the paper's test grid (d x mechanism x preset)")
    grid.add_argument(
        "--nodes", type=_int_list, default=(10, 20, 50, 100), help="node counts, e.g. 10,20,50,100"
    )
    grid.add_argument("--scms-per-graph", type=int, default=3, help="SCMs per graph family and cell")
    grid.add_argument(
        "--mechanisms",
        type=_name_list,
        default=("linear", "rff"),
        help=f"mechanisms, comma-separated (default linear,rff: the paper's grid); {', '.join(MECHANISM_KINDS)}",
    )
    _add_sizes(grid, context=400, query=400)
    _add_run(grid)

    csuite = commands.add_parser("csuite", help="the CSuite-style models")
    csuite.add_argument("--datasets", type=int, default=1, help="datasets per model")
    _add_sizes(csuite, context=400, query=400)
    _add_run(csuite)

    push = commands.add_parser("push", help="upload an export to the Hugging Face Hub")
    push.add_argument("directory")
    push.add_argument("--repo", required=True, help="OWNER/NAME of the dataset repository")
    push.add_argument("--private", action="store_true")
    push.add_argument("--token", default=None, help="Hub token (default: the logged-in one)")

    info = commands.add_parser("info", help="summary table of an export")
    info.add_argument("directory")
    return parser


def _generator_config(args: argparse.Namespace, **extra) -> dict:
    keep = {
        k: list(v) if isinstance(v, tuple) else v
        for k, v in vars(args).items()
        if k not in ("out", "quiet", "num_proc", "token", "shard_size")
        and not (k == "families" and v is None)
    }
    return {**keep, **extra}


def _check_out(out: str) -> None:
    """`--out` must be a new folder under folders (a file among its parents would fail as "File exists")."""
    if not out.strip():
        raise ValueError("--out is empty; give the path of a new directory")
    blocking = next((parent for parent in Path(out).parents if parent.exists()), None)
    if blocking is not None and not blocking.is_dir():
        raise ValueError(f"--out {out!r}: {str(blocking)!r} is not a directory")


def _run(args: argparse.Namespace) -> int:
    from scm_gen import specs as lists

    if hasattr(args, "out"):
        _check_out(args.out)
    progress = not args.quiet and sys.stderr.isatty() if hasattr(args, "quiet") else False
    if args.command == "generate":
        samples = check_int("samples", args.samples, minimum=1)
        context = max(1, samples // 2) if args.context is None else args.context
        if not 1 <= context <= samples:
            raise ValueError(f"context={context} must be between 1 and samples={samples}")
        specs = lists.generate_specs(
            preset=args.preset,
            mechanism=args.mechanism,
            num_nodes=args.nodes,
            num_datasets=args.datasets,
            num_context=context,
            num_query=samples - context,
            num_interventional=args.interventions,
            seed=args.seed,
            graph=args.graph,
            families=args.families,
        )
        title, split = f"scm-gen {args.preset.upper()} {args.mechanism} d={args.nodes}", "train"
    elif args.command == "grid":
        specs = lists.grid_specs(
            **_sizes(args),
            node_counts=args.nodes,
            scms_per_graph=args.scms_per_graph,
            mechanisms=args.mechanisms,
        )
        title, split = "Cond-FiP test grid (scm-gen)", "test"
    elif args.command == "csuite":
        specs = lists.csuite_specs(**_sizes(args), num_datasets=args.datasets)
        title, split = "CSuite-style SCMs (scm-gen)", "test"
    elif args.command == "push":
        from scm_gen.hub import push_to_hub

        print(push_to_hub(args.directory, args.repo, private=args.private, token=args.token))
        return 0
    else:
        _print_info(args.directory)
        sys.stdout.flush()  # a closed output shows here, inside `main`'s handlers
        return 0
    from scm_gen.export import export_benchmark  # imports `datasets`: only once the request is checked

    out = export_benchmark(
        specs,
        args.out,
        generator={"command": args.command, **_generator_config(args)},
        split=split,
        num_proc=args.num_proc,
        shard_size=args.shard_size,
        progress=progress,
        title=title,
    )
    if not args.quiet:
        print(f"wrote {len(specs)} datasets to {out}")
    return 0


def _print_info(directory: str) -> None:
    from scm_gen.summary import read_summary, summary_rows

    summary = read_summary(directory)
    rows = summary_rows(directory)
    print(f"{summary['title']} (scm-gen {summary['scm_gen_version']}, split {summary['split']})")
    columns = list(rows[0])
    widths = {c: max(len(c), *(len(str(r[c])) for r in rows)) for c in columns}
    print("  ".join(c.ljust(widths[c]) for c in columns))
    for row in rows:
        print("  ".join(str(row[c]).ljust(widths[c]) for c in columns))


def _one_line(text: str) -> str:
    """`text` on one line, at most `_MESSAGE_LIMIT` characters."""
    line = " ".join(str(text).split())
    return line if len(line) <= _MESSAGE_LIMIT else line[: _MESSAGE_LIMIT - 3] + "..."


def _os_error_message(error: OSError) -> str:
    """`[Errno 28] No space left on device: '/out/x'` or, for errors without a number, their text."""
    if error.errno is not None and error.strerror:
        where = f": {str(error.filename)!r}" if error.filename is not None else ""
        return f"{error.strerror} (errno {error.errno}){where}"
    return str(error) or type(error).__name__


def _quiet_broken_pipe() -> int:
    """After standard output was closed by its reader: point it at /dev/null, so that the interpreter's last
    flush does not fail again, and return `EXIT_BROKEN_PIPE`."""
    with suppress(OSError, ValueError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    return EXIT_BROKEN_PIPE


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `scm-gen`; returns the exit status."""
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as stop:  # usage errors (one line, status 2) and --help (status 0)
        return int(stop.code or 0)
    try:
        with _signals_raise():
            return _run(args)
    except ValueError as error:
        print(f"scm-gen: error: {_one_line(error)}", file=sys.stderr)
        return EXIT_USAGE
    except BrokenPipeError:
        return _quiet_broken_pipe()
    except OSError as error:  # read-only or full disk, output path under a file, Hub unreachable, ...
        print(f"scm-gen: error: {_one_line(_os_error_message(error))}", file=sys.stderr)
        return EXIT_USAGE
    except MemoryError:
        print("scm-gen: error: out of memory; use fewer rows, nodes or processes", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt as stop:
        signum = stop.signum if isinstance(stop, Interrupted) else signal.SIGINT
        name = signal.Signals(signum).name
        print(f"scm-gen: interrupted ({name}); no output was written", file=sys.stderr)
        return 128 + int(signum)


if __name__ == "__main__":
    sys.exit(main())
