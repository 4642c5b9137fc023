"""The ``condfip`` command line: every command, parsed here and delegated to the API or the training loop.

Commands: ``infer`` and ``effect`` (``condfip.cli.infer``), ``graph`` and ``calibrate`` (``condfip.cli.graph``),
``demo`` (``condfip.cli.demo``) and ``train`` (``condfip.cli.train``); their shared input helpers are
``condfip.cli.inputs``. Bad input: one line on stderr and exit code 2, never a traceback. Ctrl-C prints one
"interrupted" line, exit code 130. SIGTERM and SIGHUP stop a command as Ctrl-C does: the exception unwinds through
the writers, which remove their temporary files (``condfip.io.atomic``), and the exit code is 128 + the signal's
number. A closed standard output (``condfip effect ... | head -0``) ends the command quietly, exit code 141 as
for SIGPIPE.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
import threading
from collections.abc import Iterator

from condfip.cli import demo, graph, infer, train
from condfip.cli.inputs import one_line_errors

EXIT_BROKEN_PIPE = 128 + 13  # the shell's code for a process ended by SIGPIPE
STOPPING_SIGNALS = tuple(getattr(signal, name) for name in ("SIGTERM", "SIGHUP") if hasattr(signal, name))


class Stopped(BaseException):
    """Raised in the main thread by SIGTERM or SIGHUP; a BaseException like KeyboardInterrupt, so that nothing
    that catches Exception keeps running."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


def _raise_stopped(signum: int, frame: object) -> None:
    raise Stopped(signum)


@contextlib.contextmanager
def stopping_signals_raise() -> Iterator[None]:
    """While inside, SIGTERM and SIGHUP raise ``Stopped`` in the main thread (previous handlers restored)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {signum: signal.signal(signum, _raise_stopped) for signum in STOPPING_SIGNALS}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="condfip", description="Zero-shot causal model inference (Cond-FiP)."
    )
    subparsers = parser.add_subparsers(dest="command", required=True)
    train.register(subparsers)
    infer.register(subparsers)
    demo.register(subparsers)
    graph.register(subparsers)
    for command in subparsers.choices.values():  # an unknown option is reported by its command (see main)
        command.set_defaults(command_parser=command)
    return one_line_errors(parser)


def _quiet_broken_pipe() -> int:
    """After standard output was closed by its reader: point it at /dev/null, so that the interpreter's last
    flush does not fail again, and return ``EXIT_BROKEN_PIPE``."""
    with contextlib.suppress(OSError, ValueError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    return EXIT_BROKEN_PIPE


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, unknown = parser.parse_known_args(argv)
    if unknown:
        args.command_parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    try:
        with stopping_signals_raise():
            code = args.handler(args)
            sys.stdout.flush()  # a closed output shows here, inside the handlers below
            return code
    except ValueError as error:
        print(f"condfip {args.command}: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"condfip {args.command}: interrupted", file=sys.stderr)
        return 130
    except Stopped as stopped:
        print(f"condfip {args.command}: stopped by {signal.Signals(stopped.signum).name}", file=sys.stderr)
        return 128 + stopped.signum
    except BrokenPipeError:
        return _quiet_broken_pipe()
