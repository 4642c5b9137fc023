"""Reading the summary (`scm_gen.json`) and the shard list of an export (json and pyarrow only, no `datasets`)."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from scm_gen._checks import check_choice

CONFIG_FILE = "scm_gen.json"
_SUMMARY_KEYS = {"title": str, "split": str, "scm_gen_version": str, "configs": dict}
_CONFIG_LISTS = ("num_nodes", "num_context", "num_query", "num_interventional")


def read_summary(directory: str | os.PathLike) -> dict[str, Any]:
    """The `scm_gen.json` of an export directory (checked: a malformed file is a `ValueError` naming it)."""
    path = Path(directory) / CONFIG_FILE
    if not path.is_file():
        raise ValueError(f"directory={str(directory)!r} is not an scm-gen export (no {CONFIG_FILE} inside)")
    try:
        summary = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"{str(path)!r} is not valid JSON ({error}); export the data again") from None
    problem = _summary_problem(summary)
    if problem:
        raise ValueError(f"{str(path)!r} is not an scm-gen summary: {problem}; export the data again")
    return summary


def _summary_problem(summary: Any) -> str | None:
    if not isinstance(summary, dict):
        return f"it holds a {type(summary).__name__}, not an object"
    for key, kind in _SUMMARY_KEYS.items():
        if not isinstance(summary.get(key), kind):
            return f"{key!r} is missing or not a {kind.__name__}"
    if not summary["configs"]:
        return "it lists no configs"
    for config, facts in summary["configs"].items():
        if not isinstance(facts, dict) or not all(isinstance(facts.get(key), list) for key in _CONFIG_LISTS):
            return f"config {config!r} lacks one of the lists {', '.join(_CONFIG_LISTS)}"
        if not re.fullmatch(r"[A-Za-z0-9_.-]+", config):
            return f"config name {config!r} is not a plain name"
    return None


def natural_key(name: str) -> tuple:
    """Sort key that orders the numbers inside names by value: `d10 < d20 < d100`."""
    return tuple(int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name))


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


def summary_rows(directory: str | os.PathLike) -> list[dict[str, Any]]:
    """One row per config, in natural order (`d10` before `d100`): counts read from the Parquet footers, sizes
    from the files."""
    summary = read_summary(directory)
    rows = []
    for config in sorted(summary["configs"], key=natural_key):
        facts = summary["configs"][config]
        paths = shard_paths(directory, config)
        rows.append(
            {
                "config": config,
                "datasets": sum(_num_rows(p) for p in paths),
                "nodes": ",".join(map(str, facts["num_nodes"])),
                "context": ",".join(map(str, facts["num_context"])),
                "query": ",".join(map(str, facts["num_query"])),
                "interventional": ",".join(map(str, facts["num_interventional"])),
                "shards": len(paths),
                "MiB": round(sum(p.stat().st_size for p in paths) / 2**20, 2),
            }
        )
    return rows


def _num_rows(path: Path) -> int:
    try:
        return pq.ParquetFile(path).metadata.num_rows
    except (pa.ArrowException, OSError) as error:
        raise ValueError(f"{str(path)!r} is not a readable Parquet file ({error})") from None
