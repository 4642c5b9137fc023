"""``python -m condfip.train encoder|decoder|graph ...``: the training entry point for torchrun."""

from __future__ import annotations

import os
import sys

from condfip.cli import main

if __name__ == "__main__":
    code = main(["train", *sys.argv[1:]])
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        # a rank of a torchrun job: its files are written and closed and its process group left. The interpreter's
        # teardown is skipped: there gloo's threads could still abort a rank that finished ("terminate called
        # without an active exception", exit -6), and torchrun would report the job failed
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code or 0)
    sys.exit(code)
