"""CSuite (Geffner et al. 2022) and its Gaussian-mixture variants: every method, the four tasks.

Datasets come from ``scm_gen.csuite.make_csuite_dataset(name, seed=seed, index=replicate)`` (2 to 9 nodes,
additive noise of several kinds; the ``_gm`` variants swap every noise for a 50/50 Gaussian mixture as in the
Cond-FiP paper). Scores are the standardized RMSEs of :mod:`condfip_eval.scoring`.

Layout: ``DIR/csuite/context-<n>/<method>/<name>.json`` (resumable per dataset) and ``tables.md``, one table
per task with rows CSuite dataset and columns method.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from condfip_eval.methods import Method
from condfip_eval.results import (
    ResultsDirectory,
    finished_records,
    read_result_file,
    result_file_error,
    write_text,
)
from condfip_eval.runs import progress_bar, record_failure
from condfip_eval.scoring import TASK_TITLES, TASKS, score_dataset
from condfip_eval.settings import MethodSettings, check_integer, check_names
from condfip_eval.tables import (
    display_name,
    format_mean_error,
    markdown_table,
    ordered_methods,
    summarize_records,
)

__all__ = ["CSUITE_RUN_FOLDER", "CSuiteSettings", "csuite_names", "run_csuite"]

CSUITE_RUN_FOLDER = re.compile(r"context-([1-9][0-9]*)")


def csuite_names() -> tuple[str, ...]:
    try:
        from scm_gen.csuite import CSUITE_NAMES
    except ImportError:
        raise ValueError("this scm-gen has no CSuite models (scm_gen.csuite); upgrade scm-gen") from None
    return tuple(CSUITE_NAMES)


@dataclass
class CSuiteSettings(MethodSettings):
    """``names`` None means every CSuite model; ``replicates`` datasets (scm-gen indices 0..r-1) per model."""

    names: tuple[str, ...] | None = None
    replicates: int = 3
    num_context: int = 400
    num_query: int = 400
    num_interventional: int = 400

    def __post_init__(self) -> None:
        super().__post_init__()
        self.replicates = check_integer("replicates", self.replicates, 1)
        self.num_context = check_integer("num_context", self.num_context, 2)
        self.num_query = check_integer("num_query", self.num_query, 1)
        self.num_interventional = check_integer("num_interventional", self.num_interventional, 1)
        known = csuite_names()
        if self.names is None:
            self.names = known
        self.names = check_names("names", self.names, "('lingauss',)")
        unknown = [name for name in self.names if name not in known]
        if unknown or not self.names:
            shown = repr(unknown[0]) if unknown else "(none)"
            raise ValueError(f"unknown CSuite dataset {shown}; choose from {', '.join(known)}")

    def protocol(self) -> dict[str, Any]:
        return {
            **self.method_protocol(),
            "replicates": self.replicates,
            "num_query": self.num_query,
            "num_interventional": self.num_interventional,
        }


def run_csuite(
    settings: CSuiteSettings,
    out: str | Path,
    *,
    methods: dict[str, Method] | None = None,
    progress: bool = True,
) -> Path:
    """Run (or resume) every method on every requested CSuite dataset; returns the tables path."""
    from scm_gen.csuite import make_csuite_dataset

    out = Path(out)
    directory = ResultsDirectory(out)
    directory.check_run("csuite", settings.protocol())  # nothing is written before every check passed
    folder = out / "csuite" / f"context-{settings.num_context}"

    def path_of(method: str, name: str) -> Path:
        return folder / method / f"{name}.json"

    records = {
        (method, name): finished_records(path_of(method, name), "datasets")
        for method in settings.methods
        for name in settings.names
    }
    remaining = sum(settings.replicates - len(found) for found in records.values())
    built = settings.start_run(directory, "csuite", settings.protocol(), methods, needed=remaining > 0)
    bar = progress_bar("csuite", remaining, progress=progress)
    for name in settings.names:
        for replicate in range(settings.replicates):
            waiting = [
                m for m in settings.methods if not any(r["index"] == replicate for r in records[(m, name)])
            ]
            if not waiting:
                continue
            dataset = make_csuite_dataset(
                name,
                num_context=settings.num_context,
                num_query=settings.num_query,
                num_interventional=settings.num_interventional,
                seed=settings.seed,
                index=replicate,
            )
            for method in waiting:
                bar.set_postfix_str(f"{method} {name}#{replicate}")
                record: dict[str, Any] = {"index": replicate}
                try:
                    record.update(score_dataset(built[method], dataset))
                except Exception as error:  # recorded, the run goes on
                    record_failure(record, error, f"{method} failed on {name} #{replicate}")
                records[(method, name)].append(record)
                document = {"method": method, "dataset": name, "datasets": records[(method, name)]}
                directory.write_result(path_of(method, name), document)
                bar.update(1)
    bar.close()
    return write_csuite_tables(folder)


def write_csuite_tables(folder: Path) -> Path:
    summaries: dict[str, dict[str, dict[str, Any]]] = {}  # dataset -> method -> summary
    for path in sorted(folder.glob("*/*.json")):
        document = read_result_file(
            path, "datasets", numbers=("fit_seconds", "sample_seconds"), tasks=TASKS, method=path.parent.name
        )
        if document.get("dataset") != path.stem:
            raise result_file_error(path, f"it does not hold the CSuite dataset {path.stem!r} its name gives")
        summaries.setdefault(document["dataset"], {})[document["method"]] = summarize_records(
            document["datasets"], TASKS
        )
    methods = ordered_methods(m for by_method in summaries.values() for m in by_method)
    parts = [
        "# CSuite",
        "",
        "RMSE in standardized units, mean (s.e.) over the datasets of each CSuite model; `_gm`: Gaussian-mixture "
        "noise. `*`: some datasets failed for that method.",
    ]
    for number, task in enumerate(TASKS, start=1):
        rows = []
        for name, by_method in summaries.items():
            cells = []
            for method in methods:
                summary = by_method.get(method)
                if summary is None:
                    cells.append("—")
                    continue
                entry = summary[task]
                cells.append(
                    format_mean_error(entry["mean"], entry["standard_error"])
                    + ("*" if summary["failed"] else "")
                )
            rows.append([name, *cells])
        parts += [
            "",
            f"## Table {number}. {TASK_TITLES[task]}",
            "",
            markdown_table(["dataset", *map(display_name, methods)], rows),
        ]
    path = folder / "tables.md"
    write_text(path, "\n".join(parts) + "\n")
    return path
