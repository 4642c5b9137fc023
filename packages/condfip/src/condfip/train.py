"""``python -m condfip.train encoder|decoder|graph ...``: the training entry point for torchrun."""

from __future__ import annotations

import sys

from condfip.cli import main

if __name__ == "__main__":
    sys.exit(main(["train", *sys.argv[1:]]))
