"""``condfip-eval publish RUN DEST``: the tables of a results folder, without its per-dataset files.

A run folder (``--out`` of the run commands) holds one JSON file per method and cell or dataset, so that a run
can resume; what a reader needs is its tables and what made them. ``publish`` rebuilds every table of RUN from
those files and writes, per run kind, one folder of DEST:

    DEST/paper-grid/graph-<true|inferred>-context-<n>.md
    DEST/csuite/context-<n>.md
    DEST/sachs/<raw|log>-context-<n>[-inferred-graph].md
    DEST/ecoli70/context-<n>[-inferred-graph].md
    DEST/<folder>/manifest.json

The manifest holds the condfip-eval version, the run's protocol, the versions of the packages that wrote
into it (every version seen, per package) and the sha256 of the weights it used. A published folder is
replaced whole: tables it held that RUN does not have are removed; ``README.md`` and any other file that is
not a table are kept. Every table of RUN is rebuilt, and every result file checked, before anything is written
to DEST: a damaged result file leaves DEST as it was.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from condfip_eval.results import ResultsDirectory, ResultsDirError, run_folders, write_json, write_text

__all__ = ["PUBLISHED_FOLDERS", "publish"]

PUBLISHED_FOLDERS = {"paper": "paper-grid", "csuite": "csuite", "sachs": "sachs", "ecoli70": "ecoli70"}
MANIFEST = "manifest.json"


def _paper_tables(root: Path) -> dict[str, Path]:
    from condfip_eval.paper import paper_run_folders, write_paper_tables

    return {
        f"{folder.parent.name}-{folder.name}.md": write_paper_tables(root, graph_source, num_context)
        for folder, graph_source, num_context in paper_run_folders(root)
    }


def _folder_tables(
    kind: str, pattern: re.Pattern[str], writer: Callable[[Path], Path]
) -> Callable[[Path], dict[str, Path]]:
    def tables(root: Path) -> dict[str, Path]:
        return {f"{folder.name}.md": writer(folder) for folder in run_folders(root / kind, pattern)}

    return tables


def _writers() -> dict[str, Callable[[Path], dict[str, Path]]]:
    from condfip_eval.csuite import CSUITE_RUN_FOLDER, write_csuite_tables
    from condfip_eval.ecoli70 import ECOLI70_RUN_FOLDER, write_ecoli70_tables
    from condfip_eval.sachs import SACHS_RUN_FOLDER, write_sachs_tables

    return {
        "paper": _paper_tables,
        "csuite": _folder_tables("csuite", CSUITE_RUN_FOLDER, write_csuite_tables),
        "sachs": _folder_tables("sachs", SACHS_RUN_FOLDER, write_sachs_tables),
        "ecoli70": _folder_tables("ecoli70", ECOLI70_RUN_FOLDER, write_ecoli70_tables),
    }


def _published_manifest(manifest: dict[str, Any], kind: str, tables: list[str]) -> dict[str, Any]:
    return {
        "condfip_eval_version": manifest["condfip_eval_version"],
        "run": kind,
        "protocol": manifest["runs"][kind],
        "environment": manifest.get("environment", {}).get(kind, {}),
        "weights_sha256": manifest.get("weights", {}),
        "tables": tables,
    }


def publish(run: str | Path, destination: str | Path) -> list[Path]:
    """Write the tables and a manifest of every run kind in ``run`` under ``destination``; returns the folders."""
    root = Path(run)
    manifest = ResultsDirectory(root).check_readable()
    destination = Path(destination)
    if destination.exists() and not destination.is_dir():
        raise ResultsDirError(f"{destination} is a file; publish into a folder")
    if destination.resolve() == root.resolve():
        raise ResultsDirError("publish into another folder than the run's own")
    writers = _writers()
    unknown = sorted(set(manifest["runs"]) - set(writers))
    if unknown:
        raise ResultsDirError(f"{root} holds a run kind this version cannot publish: {', '.join(unknown)}")
    # every table is rebuilt (and every result file checked) before anything is written to the destination
    built = {kind: writers[kind](root) for kind in sorted(manifest["runs"])}
    texts = {
        kind: {name: source.read_text(encoding="utf-8") for name, source in tables.items()}
        for kind, tables in built.items()
        if tables
    }
    if not texts:
        raise ResultsDirError(f"{root} holds no finished tables to publish")
    folders = []
    for kind, tables in texts.items():
        folder = destination / PUBLISHED_FOLDERS[kind]
        for name, text in tables.items():
            write_text(folder / name, text)
        for stale in folder.glob("*.md"):
            if stale.name != "README.md" and stale.name not in tables:
                stale.unlink()
        write_json(folder / MANIFEST, _published_manifest(manifest, kind, sorted(tables)))
        folders.append(folder)
    return folders
