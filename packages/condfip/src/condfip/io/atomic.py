"""Writing files and directories so that a crash never leaves a half-written one behind.

A file or directory is written under a temporary name beside its target, ``.<name>.<pid>.<random>.tmp``, and
renamed into place when complete. An exception, Ctrl-C, or SIGTERM/SIGHUP (which ``condfip.cli`` turns into an
exception) removes the temporary; after SIGKILL, which nothing can intercept, the next write of the same name
removes the temporaries whose process is gone. Files get the permissions the umask gives, as with ``open``.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any


@contextlib.contextmanager
def atomic_file(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it replaces ``path`` in one rename."""
    path = Path(path)
    _make_parent(path)
    remove_stale_temporaries(path)
    handle, temporary = tempfile.mkstemp(prefix=_prefix(path), suffix=".tmp", dir=path.parent)
    os.close(handle)
    temporary = Path(temporary)
    try:
        yield temporary
        os.chmod(temporary, 0o666 & ~_umask())  # mkstemp creates 0600; give the file the usual permissions
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def write_json(path: str | Path, value: Any) -> None:
    """``value`` as indented JSON with sorted keys, written atomically."""
    with atomic_file(path) as temporary:
        temporary.write_text(json.dumps(value, indent=2, sort_keys=True) + "\n")


def _make_parent(path: Path) -> None:
    """Create the folder of ``path``; a file in its place is the OSError "Not a directory" (``mkdir`` would
    report "File exists", which misleads)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        parents = (path.parent, *path.parent.parents)
        blocking = next((p for p in parents if p.exists() and not p.is_dir()), path.parent)
        raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), str(blocking)) from None


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current


def _prefix(path: Path) -> str:
    """The start of this process's temporary names for ``path``: ``.<name>.<pid>.``."""
    return f".{path.name}.{os.getpid()}."


def _process_exists(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True  # another user's process, or the platform cannot tell: keep its files
    return True


def remove_stale_temporaries(path: str | Path) -> list[Path]:
    """Remove the temporaries of ``path`` (files or directories) left by processes that no longer run, e.g.
    after SIGKILL; returns what was removed. Temporaries of running processes are kept."""
    path = Path(path)
    pattern = re.compile(rf"^\.{re.escape(path.name)}\.(\d+)\.[^.]+\.tmp$")
    removed = []
    try:
        entries = list(path.parent.iterdir())
    except OSError:
        return removed
    for entry in entries:
        match = pattern.match(entry.name)
        if match is None or _process_exists(int(match.group(1))):
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)
        removed.append(entry)
    return removed


@contextlib.contextmanager
def temporary_directory(path: str | Path) -> Iterator[Path]:
    """Yield a fresh temporary directory beside ``path``, named for it; it is removed at the end."""
    path = Path(path)
    _make_parent(path)
    remove_stale_temporaries(path)
    temporary = Path(tempfile.mkdtemp(prefix=_prefix(path), suffix=".tmp", dir=path.parent))
    try:
        os.chmod(temporary, 0o777 & ~_umask())  # mkdtemp creates 0700; give the folder the usual permissions
        yield temporary
    finally:
        shutil.rmtree(temporary, ignore_errors=True)


@contextlib.contextmanager
def atomic_directory(path: str | Path) -> Iterator[Path]:
    """Yield a fresh temporary directory; on success it takes the place of ``path`` (old content removed).

    The swap is two renames; if the second fails, the previous version is renamed back; if a crash falls
    between them, ``path.old`` holds the previous version, which :func:`existing_directory` returns.
    """
    path = Path(path)
    previous = path.with_name(path.name + ".old")
    with temporary_directory(path) as temporary:
        yield temporary
        if path.exists():
            shutil.rmtree(previous, ignore_errors=True)
            os.replace(path, previous)
        try:
            os.replace(temporary, path)
        except BaseException:
            if previous.exists() and not path.exists():
                os.replace(previous, path)
            raise
        shutil.rmtree(previous, ignore_errors=True)


def existing_directory(path: str | Path) -> Path | None:
    """``path`` if it exists, else the ``path.old`` left by an interrupted swap, else None."""
    path = Path(path)
    if path.is_dir():
        return path
    previous = path.with_name(path.name + ".old")
    return previous if previous.is_dir() else None
