"""Hugging Face export: benchmark datasets as Parquet shards plus a dataset card, written atomically.

Layout of an export directory:

    README.md                       dataset card (YAML `configs`, features, conventions, citations)
    scm_gen.json                    generator config, seeds, package version, row counts per config
    data/<config>/<split>-00000-of-00003.parquet

One Parquet row is one dataset (one SCM): observational rows with their noise, the interventional rows and
the counterfactual rows, in raw (unstandardized) units. The shards of a config hold fixed runs of dataset
indices, and dataset `index` is drawn from `SeedSequence(seed, spawn_key=(index,))`, so the bytes written
do not depend on the number of worker processes.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import shutil
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
from datasets import Features, List, Value

from scm_gen._checks import check_choice, check_int
from scm_gen.benchmark import BenchmarkDataset
from scm_gen.limits import (
    check_dataset_request,
    check_disk,
    check_memory,
    dataset_bytes,
    format_bytes,
)
from scm_gen.parquet_io import matrix_cells, row_group_size, table_to_datasets, write_shard
from scm_gen.specs import DatasetSpec
from scm_gen.staging import make_staging_directory, remove_dead_staging
from scm_gen.summary import CONFIG_FILE, read_summary, shard_paths, summary_rows  # noqa: F401 (re-exported)
from scm_gen.workers import init_worker, shard_job

EXPORT_FORMAT_VERSION = 1
WORKER_BASE_BYTES = 150 * 2**20  # resident memory of a worker process before its first dataset

_MATRIX = List(List(Value("float64")))
FEATURES = Features(
    {
        "adjacency": List(List(Value("int8"))),
        "data": _MATRIX,
        "noise": _MATRIX,
        "num_context": Value("int32"),
        "intervention_node": Value("int32"),
        "intervention_value": Value("float64"),
        "interventional_data": _MATRIX,
        "interventional_noise": _MATRIX,
        "counterfactual_data": _MATRIX,
        "num_nodes": Value("int32"),
        "preset": Value("string"),
        "mechanism": Value("string"),
        "graph": Value("string"),
        "seed": Value("int64"),
        "index": Value("int64"),
        "scm_gen_version": Value("string"),
        "metadata": Value("string"),
    }
)
SCHEMA = FEATURES.arrow_schema  # carries the features in its metadata, so `datasets` reads them back


# --------------------------------------------------------------------------------------------------- writing


def export_benchmark(
    specs: Sequence[DatasetSpec],
    out: str | os.PathLike,
    *,
    generator: dict[str, Any],
    split: str = "test",
    num_proc: int = 1,
    shard_size: int = 500,
    progress: bool = False,
    title: str = "scm-gen benchmark",
) -> Path:
    """Write `specs` as a Hugging Face dataset directory at `out` (which must not exist yet).

    Everything goes to a temporary sibling directory first and is renamed to `out` only when complete; on any
    error or interruption (KeyboardInterrupt, or a signal turned into an exception by the caller) the worker
    processes are terminated and the temporary directory is removed. Leftovers of runs that were killed
    outright are removed from `out`'s folder first (`scm_gen.staging`). A request whose estimated size
    exceeds the free disk space, or whose estimated memory exceeds the machine's, is refused before anything
    is written. `generator` (JSON-friendly) is recorded in the card and in `scm_gen.json`; `num_proc` only
    changes the speed, never the bytes written.
    """
    from scm_gen import __version__

    out = Path(out)
    if out.exists():
        raise ValueError(
            f"out={str(out)!r} already exists; choose a new directory (exports are never overwritten)"
        )
    num_proc = check_int("num_proc", num_proc, minimum=1)
    shard_size = check_int("shard_size", shard_size, minimum=1)
    check_choice("split", split, ("train", "validation", "test"))
    if not specs:
        raise ValueError("nothing to export: the list of datasets is empty")
    configs: dict[str, list[DatasetSpec]] = {}
    for spec in specs:
        configs.setdefault(spec.config, []).append(spec)
    num_tasks = sum(-(-len(members) // shard_size) for members in configs.values())
    _check_resources(specs, out, min(num_proc, num_tasks))

    out.parent.mkdir(parents=True, exist_ok=True)
    remove_dead_staging(out.parent)
    staging = make_staging_directory(out)
    try:
        tasks = []
        for config, members in configs.items():
            (staging / "data" / config).mkdir(parents=True)
            chunks = [members[start : start + shard_size] for start in range(0, len(members), shard_size)]
            for number, chunk in enumerate(chunks):
                name = f"{split}-{number:05d}-of-{len(chunks):05d}.parquet"
                tasks.append((chunk, str(staging / "data" / config / name)))
        _run_tasks(tasks, num_proc=num_proc, progress=progress, total=len(specs))
        summary = {
            "format_version": EXPORT_FORMAT_VERSION,
            "scm_gen_version": __version__,
            "title": title,
            "split": split,
            "generator": generator,
            "mechanisms": sorted({spec.mechanism for spec in specs if spec.mechanism is not None}),
            "configs": {
                config: {
                    "num_datasets": len(members),
                    "num_nodes": sorted({m.num_nodes for m in members}),
                    "num_context": sorted({m.num_context for m in members}),
                    "num_query": sorted({m.num_query for m in members}),
                    "num_interventional": sorted({m.num_interventional for m in members}),
                    "seed": sorted({m.seed for m in members}),
                    "first_index": members[0].index,
                    "last_index": members[-1].index,
                    "num_shards": -(-len(members) // shard_size),
                }
                for config, members in configs.items()
            },
        }
        (staging / CONFIG_FILE).write_text(json.dumps(summary, indent=2, sort_keys=True) + "\n")
        from scm_gen.card import dataset_card

        (staging / "README.md").write_text(dataset_card(summary))
        os.rename(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return out


def _check_resources(specs: Sequence[DatasetSpec], out: Path, workers: int) -> None:
    """Refuse exports that cannot fit on disk, or whose generation cannot fit in memory."""
    sizes: dict[tuple[int, int, int, int], int] = {}
    for spec in specs:
        key = (spec.num_nodes, spec.num_context + spec.num_query, spec.num_query, spec.num_interventional)
        sizes[key] = sizes.get(key, 0) + 1
    for key in sizes:
        check_dataset_request(*key)
    total = sum(dataset_bytes(*key) * count for key, count in sizes.items())
    check_disk(total, out, f"this export ({len(specs)} datasets)")
    largest = max(sizes, key=lambda key: dataset_bytes(*key))
    group = row_group_size(max(matrix_cells(key[0], key[1], key[3]) for key in sizes))
    # a pending row group, its Arrow copy and one dataset being generated, plus the interpreter and its imports
    per_worker = (2 * group + 3) * dataset_bytes(*largest) + WORKER_BASE_BYTES
    check_memory(
        per_worker * workers,
        f"generating with {workers} process(es) ({format_bytes(per_worker)} each)",
        hint="use fewer processes (--num-proc), rows or nodes",
    )


def _terminal_size() -> tuple[int | None, int | None]:
    """Columns and rows for the progress bar: None (tqdm measures the terminal itself) unless the terminal on
    stderr reports no size, as pseudo-terminals of CI runners and some multiplexers do; then 80 x 24 (tqdm
    would otherwise draw nothing)."""
    import sys

    try:
        size = os.get_terminal_size(sys.stderr.fileno())
    except (OSError, ValueError, AttributeError):
        return 80, 24
    return (None, None) if size.columns > 0 and size.lines > 0 else (80, 24)


def _run_tasks(tasks: list, *, num_proc: int, progress: bool, total: int) -> None:
    from tqdm.auto import tqdm

    columns, rows = _terminal_size() if progress else (None, None)
    with tqdm(
        total=total, unit="dataset", disable=not progress, desc="generating", ncols=columns, nrows=rows
    ) as bar:
        if num_proc == 1:
            for specs, path in tasks:
                write_shard(specs, path, SCHEMA, on_dataset=lambda: bar.update(1))
            return
        context = multiprocessing.get_context("spawn")
        pool = context.Pool(
            processes=min(num_proc, len(tasks)), initializer=init_worker, initargs=(os.getpid(),)
        )
        try:
            jobs = [(specs, path, SCHEMA) for specs, path in tasks]
            for count in pool.imap_unordered(shard_job, jobs):
                bar.update(count)
            pool.close()
        except BaseException:
            pool.terminate()  # SIGTERM to every worker, then wait for them
            raise
        finally:
            pool.join()


# --------------------------------------------------------------------------------------------------- reading


def iter_benchmark(directory: str | os.PathLike, config: str | None = None) -> Iterator[BenchmarkDataset]:
    """The datasets of one config of an export, in index order, one row group in memory at a time."""
    for path in shard_paths(directory, config):
        parquet = pq.ParquetFile(path)
        for group in range(parquet.num_row_groups):
            yield from table_to_datasets(parquet.read_row_group(group))


def load_hf_dataset(directory: str | os.PathLike, config: str | None = None, *, cache_dir: str | None = None):
    """One config of an export as a `datasets.Dataset` (features as declared in `FEATURES`)."""
    from datasets import Dataset

    files = [str(path) for path in shard_paths(directory, config)]
    return Dataset.from_parquet(files, features=FEATURES, cache_dir=cache_dir)
