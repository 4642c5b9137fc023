"""The ``condfip`` command line: every command, parsed here and delegated to the API or the training loop.

Commands: ``infer`` and ``effect`` (``condfip.cli.infer``), ``graph`` and ``calibrate`` (``condfip.cli.graph``),
``demo`` (``condfip.cli.demo``) and ``train`` (``condfip.cli.train``); their shared input helpers are
``condfip.cli.inputs``. Bad input: one line on stderr and exit code 2, never a traceback. SIGTERM and SIGHUP stop
a command as Ctrl-C does: the exception unwinds through the writers, which remove their temporary files
(``condfip.io.atomic``), and the exit code is 128 + the signal's number.
"""

from __future__ import annotations

import argparse
import contextlib
import signal
import sys
import threading
from collections.abc import Iterator

from condfip.cli import demo, graph, infer, train

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
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        with stopping_signals_raise():
            return args.handler(args)
    except ValueError as error:
        print(f"condfip {args.command}: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"condfip {args.command}: interrupted", file=sys.stderr)
        return 130
    except Stopped as stopped:
        print(f"condfip {args.command}: stopped by {signal.Signals(stopped.signum).name}", file=sys.stderr)
        return 128 + stopped.signum
