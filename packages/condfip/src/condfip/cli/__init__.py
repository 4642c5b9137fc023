"""The ``condfip`` command line: every command, parsed here and delegated to the API or the training loop.

Commands: ``infer`` and ``effect`` (``condfip.cli.infer``), ``graph`` and ``calibrate`` (``condfip.cli.graph``),
``demo`` (``condfip.cli.demo``) and ``train`` (``condfip.cli.train``); their shared input helpers are
``condfip.cli.inputs``. Bad input: one line on stderr and exit code 2, never a traceback.
"""

from __future__ import annotations

import argparse
import sys

from condfip.cli import demo, graph, infer, train


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
        return args.handler(args)
    except ValueError as error:
        print(f"condfip {args.command}: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"condfip {args.command}: interrupted", file=sys.stderr)
        return 130
