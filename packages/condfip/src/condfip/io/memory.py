"""The machine's memory, checked before work starts: a request (rows to draw, a context to infer from, a
network to build from a checkpoint) whose estimate exceeds the physical memory is refused with that estimate,
before anything is allocated."""

from __future__ import annotations

import os

FLOAT_BYTES = 8  # float64, the type of every table in user units


def format_bytes(count: float) -> str:
    """``1536`` -> ``"1.5 KiB"``."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if count < 1024 or unit == "PiB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1024
    return f"{count:.1f} PiB"


def physical_memory() -> int | None:
    """Bytes of physical memory of this machine, or None when the platform does not say."""
    try:
        return int(os.sysconf("SC_PAGE_SIZE")) * int(os.sysconf("SC_PHYS_PAGES"))
    except (AttributeError, ValueError, OSError):
        return None


def check_memory(needed: float, what: str, *, hint: str) -> None:
    """Refuse ``needed`` bytes when they exceed the machine's physical memory; the message gives both."""
    available = physical_memory()
    if available is not None and needed > available:
        raise ValueError(
            f"{what} needs about {format_bytes(needed)} of memory, more than this machine's "
            f"{format_bytes(available)}; {hint}"
        )


def table_bytes(num_rows: int, num_columns: int, copies: int = 1) -> int:
    """Bytes of ``copies`` float64 tables [num_rows, num_columns]."""
    return copies * FLOAT_BYTES * num_rows * num_columns
