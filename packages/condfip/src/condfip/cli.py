"""The ``condfip`` command line: one line on stderr and exit code 2 for bad input, never a traceback."""

from __future__ import annotations

import argparse
import sys

from condfip import commands
from condfip.graph import command as graph_command
from condfip.training import cli as training_cli


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="condfip", description="Zero-shot causal model inference (Cond-FiP)."
    )
    subparsers = parser.add_subparsers(dest="command", required=True)
    training_cli.register(subparsers)
    commands.register(subparsers)
    graph_command.register(subparsers)
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


if __name__ == "__main__":
    sys.exit(main())
