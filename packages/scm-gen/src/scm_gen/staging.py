"""Temporary sibling directories in which exports are written before the final rename.

A staging directory is named `.<out name>.partial-<host>-<pid>-<token>`, so a later run in the same folder can
tell the leftovers of a run that was killed (SIGKILL, power loss) from the work of a run still going: it
removes a staging directory only when it was made on this host by a process that no longer exists.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import uuid
from pathlib import Path

_HOST_CHARACTERS = re.compile(r"[^A-Za-z0-9.]")
_PARTIAL = re.compile(r"^\..+\.partial-(?P<host>[A-Za-z0-9._]+)-(?P<pid>\d+)-[0-9a-f]{8}$")


def _host() -> str:
    """This host's name, reduced to letters, digits and dots (at most 40 of them)."""
    return _HOST_CHARACTERS.sub("_", socket.gethostname())[:40] or "host"


def make_staging_directory(out: Path) -> Path:
    """Create and return a new, empty staging directory next to `out`."""
    staging = out.parent / f".{out.name}.partial-{_host()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    staging.mkdir()
    return staging


def _process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True  # another user's process (or a number we cannot check): leave its files alone
    return True


def remove_dead_staging(folder: Path) -> list[Path]:
    """Remove the staging directories in `folder` left by dead processes of this host; returns them."""
    removed = []
    if not folder.is_dir():
        return removed
    host = _host()
    for entry in folder.iterdir():
        match = _PARTIAL.match(entry.name)
        if match is None or match["host"] != host or int(match["pid"]) == os.getpid():
            continue
        if entry.is_dir() and not entry.is_symlink() and not _process_exists(int(match["pid"])):
            shutil.rmtree(entry, ignore_errors=True)
            removed.append(entry)
    return removed
