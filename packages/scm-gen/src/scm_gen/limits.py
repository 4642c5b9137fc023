"""Upper bounds on request sizes, and the memory and disk estimates checked before any work starts.

Bounds (also in the README):

- `MAX_NODES` nodes per SCM (the dense `[d, d]` adjacency and per-node Python work grow with `d^2` and `d`);
- `MAX_DATASETS` datasets per export (the list of what to generate is held in memory);
- `MAX_SEED` for run seeds (the `seed` column of an export is int64);
- `MAX_MATRIX_CELLS` values in one matrix of one dataset (Arrow lists use 32-bit offsets);
- the estimated peak memory of a request must fit in the machine's physical memory, and the estimated size
  of an export in the free space of the disk it is written to.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from scm_gen._checks import check_int
from scm_gen.mechanisms import NUM_RANDOM_FEATURES

MAX_NODES = 5_000
MAX_DATASETS = 1_000_000
MAX_SEED = 2**63 - 1
MAX_MATRIX_CELLS = 2**31 - 1
FLOAT_BYTES = 8
# Generation holds a dataset about twice (rows, noise, interventional and counterfactual copies) plus the
# Arrow / Parquet conversion of the pending row group.
_GENERATION_COPIES = 3


def format_bytes(count: float) -> str:
    """`1536` -> `"1.5 KiB"`."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if count < 1024 or unit == "PiB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1024
    raise AssertionError("unreachable")


def physical_memory() -> int | None:
    """Bytes of physical memory of this machine, or None when the platform does not say."""
    try:
        return int(os.sysconf("SC_PAGE_SIZE")) * int(os.sysconf("SC_PHYS_PAGES"))
    except (AttributeError, ValueError, OSError):
        return None


def dataset_bytes(num_nodes: int, num_rows: int, num_query: int, num_interventional: int) -> int:
    """Bytes of one benchmark dataset: `num_rows` observational rows (with noise), the interventional rows
    (with noise) and the counterfactual rows, float64, plus the int8 adjacency."""
    cells = num_nodes * (2 * num_rows + 2 * num_interventional + num_query)
    return FLOAT_BYTES * cells + num_nodes * num_nodes


def check_matrix(num_rows: int, num_nodes: int, what: str) -> None:
    """`num_rows x num_nodes` values must fit one Arrow list (`MAX_MATRIX_CELLS`)."""
    if num_rows * num_nodes > MAX_MATRIX_CELLS:
        raise ValueError(
            f"{what}: {num_rows} rows x {num_nodes} nodes is {num_rows * num_nodes} values per dataset, "
            f"more than the {MAX_MATRIX_CELLS} one dataset may hold; use fewer rows or nodes"
        )


def check_nodes(name: str, value: int) -> int:
    """A node count: an integer in `[1, MAX_NODES]`; above, the message gives the adjacency's size."""
    value = check_int(name, value, minimum=1)
    if value > MAX_NODES:
        raise ValueError(
            f"{name}={value} is more than the {MAX_NODES} nodes an SCM may have (its adjacency matrix alone "
            f"would take {format_bytes(value * value)})"
        )
    return value


def check_datasets(name: str, value: int, each: int) -> int:
    """A dataset count: an integer in `[1, MAX_DATASETS]`; above, the message gives the export's size
    (`each` bytes per dataset)."""
    value = check_int(name, value, minimum=1)
    if value > MAX_DATASETS:
        raise ValueError(
            f"{name}={value} is more than the {MAX_DATASETS} datasets one export may hold (about "
            f"{format_bytes(value * each)} of data); split it into runs with different seeds"
        )
    return value


def check_memory(needed: int, what: str, *, hint: str) -> None:
    """Refuse `needed` bytes of working memory when they exceed the machine's physical memory."""
    available = physical_memory()
    if available is not None and needed > available:
        raise ValueError(
            f"{what} needs about {format_bytes(needed)} of memory, more than this machine's "
            f"{format_bytes(available)}; {hint}"
        )


def generation_memory(num_nodes: int, num_rows: int, num_query: int, num_interventional: int) -> int:
    """Estimated peak bytes to generate one benchmark dataset: its tables, and beside them one node's evaluation
    at a time, which for random Fourier features is a float32 table of ``NUM_RANDOM_FEATURES`` features and the
    node's inputs per row (at a few nodes, more than the dataset's own tables)."""
    evaluation = 4 * max(num_rows, num_interventional) * (NUM_RANDOM_FEATURES + num_nodes + 1)
    return _GENERATION_COPIES * dataset_bytes(num_nodes, num_rows, num_query, num_interventional) + evaluation


def check_dataset_request(num_nodes: int, num_rows: int, num_query: int, num_interventional: int) -> None:
    """One benchmark dataset must fit in an Arrow list and in memory."""
    check_memory(
        generation_memory(num_nodes, num_rows, num_query, num_interventional),
        f"one dataset of {num_rows} + {num_interventional} rows x {num_nodes} nodes",
        hint="use fewer rows, interventional rows or nodes",
    )
    check_matrix(num_rows, num_nodes, "observational rows")
    check_matrix(num_interventional, num_nodes, "interventional rows")


def free_disk_space(path: str | os.PathLike) -> int | None:
    """Free bytes on the file system that holds `path` (or its nearest existing parent), None if unknown."""
    path = Path(path).absolute()
    for candidate in (path, *path.parents):
        if candidate.exists():
            try:
                return shutil.disk_usage(candidate).free
            except OSError:
                return None
    return None


def check_disk(needed: int, out: str | os.PathLike, what: str) -> None:
    """Refuse to write `needed` bytes under `out` when its file system has less free space."""
    free = free_disk_space(Path(out).parent)
    if free is not None and needed > free:
        raise ValueError(
            f"{what} needs about {format_bytes(needed)} on disk, but only {format_bytes(free)} are free "
            f"under {str(Path(out).absolute().parent)!r}"
        )
