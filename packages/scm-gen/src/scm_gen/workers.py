"""Worker processes of an export: their set-up and the task they run (numpy and pyarrow imports only).

Workers ignore SIGINT (the parent process handles Ctrl-C and terminates them) and, on Linux, ask the kernel
to send them SIGTERM when the parent dies, so no worker outlives a killed export.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
from collections.abc import Sequence
from typing import Any

import pyarrow as pa

from scm_gen.parquet_io import write_shard

_PR_SET_PDEATHSIG = 1  # prctl option, linux/prctl.h


def init_worker(parent_pid: int) -> None:
    """Pool initializer: leave SIGINT to the parent, die with the parent."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
        except (OSError, AttributeError):
            pass  # best effort: without it a worker still ends when its task queue closes
    if os.getppid() != parent_pid:  # the parent died before the request above took effect
        os._exit(1)


def shard_job(task: tuple[Sequence[Any], str, pa.Schema]) -> int:
    """Write one shard: `task` is `(specs, path, schema)`; returns the number of datasets written."""
    specs, path, schema = task
    return write_shard(specs, path, schema)
