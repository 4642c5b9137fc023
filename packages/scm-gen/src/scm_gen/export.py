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
import uuid
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
from datasets import Features, List, Value

from scm_gen._checks import check_choice, check_int
from scm_gen.benchmark import BenchmarkDataset
from scm_gen.parquet_io import shard_task, table_to_datasets, write_shard
from scm_gen.specs import DatasetSpec

EXPORT_FORMAT_VERSION = 1
CONFIG_FILE = "scm_gen.json"

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
    error or interruption the temporary directory is removed. `generator` (JSON-friendly) is recorded in the
    card and in `scm_gen.json`; `num_proc` only changes the speed, never the bytes written.
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

    out.parent.mkdir(parents=True, exist_ok=True)
    staging = out.parent / f".{out.name}.partial-{uuid.uuid4().hex[:8]}"
    staging.mkdir()
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


def _run_tasks(tasks: list, *, num_proc: int, progress: bool, total: int) -> None:
    from tqdm.auto import tqdm

    with tqdm(total=total, unit="dataset", disable=not progress, desc="generating") as bar:
        if num_proc == 1:
            for specs, path in tasks:
                write_shard(specs, path, SCHEMA, on_dataset=lambda: bar.update(1))
            return
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=num_proc, mp_context=context) as pool:
            futures = [pool.submit(shard_task, specs, path, SCHEMA) for specs, path in tasks]
            try:
                for future in as_completed(futures):
                    bar.update(future.result())
            except BaseException:
                for future in futures:
                    future.cancel()
                raise


# --------------------------------------------------------------------------------------------------- reading


def read_summary(directory: str | os.PathLike) -> dict[str, Any]:
    """The `scm_gen.json` of an export directory."""
    path = Path(directory) / CONFIG_FILE
    if not path.is_file():
        raise ValueError(f"directory={str(directory)!r} is not an scm-gen export (no {CONFIG_FILE} inside)")
    return json.loads(path.read_text())


def shard_paths(directory: str | os.PathLike, config: str | None = None) -> list[Path]:
    """The Parquet shards of `config` (of the only config when None), in order."""
    summary = read_summary(directory)
    configs = list(summary["configs"])
    if config is None:
        if len(configs) != 1:
            raise ValueError(f"config=None is ambiguous; this export has configs: {', '.join(configs)}")
        config = configs[0]
    check_choice("config", config, configs)
    return sorted((Path(directory) / "data" / config).glob("*.parquet"))


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


def summary_rows(directory: str | os.PathLike) -> list[dict[str, Any]]:
    """One row per config: counts read from the Parquet footers, sizes from the files."""
    summary = read_summary(directory)
    rows = []
    for config, facts in summary["configs"].items():
        paths = shard_paths(directory, config)
        rows.append(
            {
                "config": config,
                "datasets": sum(pq.ParquetFile(p).metadata.num_rows for p in paths),
                "nodes": ",".join(map(str, facts["num_nodes"])),
                "context": ",".join(map(str, facts["num_context"])),
                "query": ",".join(map(str, facts["num_query"])),
                "interventional": ",".join(map(str, facts["num_interventional"])),
                "shards": len(paths),
                "MiB": round(sum(p.stat().st_size for p in paths) / 2**20, 2),
            }
        )
    return rows
