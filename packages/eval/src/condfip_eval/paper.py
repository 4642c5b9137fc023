"""The paper's benchmark run: every method on every dataset of the test grid, four tasks, tables.

Layout of the results folder (resumable: each cell file is rewritten atomically after every dataset, and a
dataset already in it is skipped):

    DIR/manifest.json
    DIR/paper/graph-<true|inferred>/context-<n>/<method>/<preset>_<mechanism>_d<d>.json
    DIR/paper/graph-<true|inferred>/context-<n>/tables.md

Cells of other mechanism families (``mechanisms``) share the folder; the tables file gives them their own
tables after the paper's.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from condfip_eval.grid import (
    CANONICAL_NODE_COUNTS,
    CANONICAL_SCMS_PER_GRAPH,
    COLUMNS,
    PAPER_MECHANISMS,
    PRESET_ORDER,
    PaperCell,
    PaperDatasetSpec,
    cell_specs,
    column_rank,
    paper_cells,
)
from condfip_eval.methods import Method
from condfip_eval.results import (
    ResultsDirectory,
    finished_records,
    read_result_file,
    result_file_error,
    write_text,
)
from condfip_eval.runs import (
    GraphInferrer,
    graph_for,
    progress_bar,
    record_failure,
    resolve_graph_inferrer,
)
from condfip_eval.runs import graph_scores as graph_scores  # importable from here too
from condfip_eval.runs import load_graph_inferrer as load_graph_inferrer
from condfip_eval.scoring import TASK_TITLES, TASKS, score_dataset
from condfip_eval.settings import MethodSettings, check_integer, check_names
from condfip_eval.tables import (
    markdown_table,
    ordered_methods,
    paper_task_table,
    paper_time_table,
    summarize_records,
)

__all__ = [
    "GRAPH_SOURCES",
    "PaperSettings",
    "paper_run_folders",
    "read_cell_file",
    "run_paper",
    "write_paper_tables",
]

GRAPH_SOURCES = ("true", "inferred")
SAMPLES_KEPT = 200  # interventional rows kept (first dataset of each cell) for the report's marginal plots


@dataclass
class PaperSettings(MethodSettings):
    """What a ``paper`` run evaluates. ``quick``: d = 10 only (unless node counts are given), one SCM per graph
    family, 200 FiP steps. ``mechanisms`` and ``presets`` choose the cells (the paper's: linear and rff, in and
    out); they are not part of the protocol, so runs of other families may fill the same folder."""

    node_counts: tuple[int, ...] | None = None  # default (10, 20, 50, 100), or (10,) when quick
    mechanisms: tuple[str, ...] = PAPER_MECHANISMS
    presets: tuple[str, ...] = PRESET_ORDER
    num_context: int = 400
    graph_source: str = "true"
    num_query: int = 400
    num_interventional: int = 400
    scms_per_graph: int | None = None  # default: 3, or 1 when quick

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.graph_source not in GRAPH_SOURCES:
            raise ValueError(f"graph must be one of {', '.join(GRAPH_SOURCES)}; got {self.graph_source!r}")
        self.num_context = check_integer("num_context", self.num_context, 2)
        self.num_query = check_integer("num_query", self.num_query, 1)
        self.num_interventional = check_integer("num_interventional", self.num_interventional, 1)
        if self.scms_per_graph is None:
            self.scms_per_graph = 1 if self.quick else CANONICAL_SCMS_PER_GRAPH
        self.scms_per_graph = check_integer("scms_per_graph", self.scms_per_graph, 1, 99)
        if self.node_counts is None:
            self.node_counts = (10,) if self.quick else CANONICAL_NODE_COUNTS
        self.node_counts = tuple(check_names("node_counts", self.node_counts, "(10, 20)"))
        self.mechanisms = check_names("mechanisms", self.mechanisms, "('linear', 'rff')")
        self.presets = check_names("presets", self.presets, "('in', 'out')")
        paper_cells(self.node_counts, self.mechanisms, self.presets)  # validates the choices

    def protocol(self) -> dict[str, Any]:
        """The settings every resumed or added run in the same folder must share."""
        return {
            **self.method_protocol(),
            "num_query": self.num_query,
            "num_interventional": self.num_interventional,
            "scms_per_graph": self.scms_per_graph,
        }


def mean_graph_scores(documents: list[dict[str, Any]]) -> tuple[int, dict[str, float]]:
    """(number of replicates, mean of each graph score) over the inferred graphs recorded in method documents
    whose records carry ``"replicate"`` and ``"graph_scores"`` (every method saw the same graph per replicate)."""
    scored = {
        record["replicate"]: record["graph_scores"]
        for document in documents
        for record in document["replicates"]
        if "graph_scores" in record
    }
    means = {
        key: float(np.mean(values))
        if (values := [s[key] for s in scored.values() if key in s])
        else float("nan")
        for key in ("shd", "f1", "auroc", "auprc")
    }
    return len(scored), means


def inferred_graph_sentence(documents: list[dict[str, Any]], truth: str, *, unit: str = "dataset") -> str:
    """One sentence for a tables file: where the graph came from and how it scores against ``truth``."""
    count, means = mean_graph_scores(documents)
    return (
        f"Graph: inferred from each {unit}'s context rows by the amortized graph model (condfip.graph), the same "
        f"DAG for every method; against {truth}, mean over {count} {unit}s: SHD {means['shd']:.1f}, F1 "
        f"{means['f1']:.2f}, AUROC {means['auroc']:.3f}, AUPRC {means['auprc']:.3f}."
    )


def _run_folder(out: Path, graph_source: str, num_context: int) -> Path:
    return out / "paper" / f"graph-{graph_source}" / f"context-{num_context}"


def _cell_path(folder: Path, method: str, cell: PaperCell) -> Path:
    return folder / method / f"{cell.key}.json"


def _load_records(path: Path) -> list[dict[str, Any]]:
    return finished_records(path, "datasets")


_RUN_FOLDER = re.compile(r"graph-(true|inferred)/context-([1-9][0-9]*)")


def paper_run_folders(root: Path) -> list[tuple[Path, str, int]]:
    """(folder, graph source, context rows) of every paper run under ``root`` (``DIR/paper/graph-G/context-N``;
    folders named otherwise are not condfip-eval's and are left out), true graph first, then larger contexts."""
    found = []
    for folder in (Path(root) / "paper").glob("graph-*/context-*"):
        match = _RUN_FOLDER.fullmatch(f"{folder.parent.name}/{folder.name}")
        if match and folder.is_dir():
            found.append((folder, match.group(1), int(match.group(2))))
    return sorted(found, key=lambda item: (item[1] != "true", -item[2]))


def _samples_problem(samples: Any) -> str | None:
    """What is wrong with the interventional samples a record keeps for the report's plots, or None."""
    if not isinstance(samples, dict) or not isinstance(samples.get("nodes"), list):
        return "keeps samples without their nodes"
    for side in ("true", "generated"):
        rows = samples.get(side)
        if not isinstance(rows, list) or len(rows) != len(samples["nodes"]):
            return f"keeps {side!r} samples that are not one list per node"
        if not all(isinstance(row, list) and all(_finite_number(v) for v in row) for row in rows):
            return f"keeps {side!r} samples that are not finite numbers"
    if not isinstance(samples.get("intervention_node"), int):
        return "keeps samples without their intervened node"
    return None


def _finite_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def read_cell_file(path: Path) -> dict[str, Any]:
    """One cell file (``<run>/<method>/<preset>_<mechanism>_d<d>.json``), checked against its path and the
    protocol: a ``ResultsDirError`` naming the file and its first problem otherwise."""
    path = Path(path)
    document = read_result_file(
        path, "datasets", numbers=("fit_seconds", "sample_seconds"), tasks=TASKS, method=path.parent.name
    )
    cell = document.get("cell")
    matches = (
        isinstance(cell, dict)
        and isinstance(cell.get("num_nodes"), int)
        and not isinstance(cell["num_nodes"], bool)
        and all(isinstance(cell.get(name), str) for name in ("mechanism", "preset", "column"))
    )
    if matches:
        known = PaperCell(cell["num_nodes"], cell["mechanism"], cell["preset"])
        matches = known.key == path.stem and cell["column"] == known.column
    if not matches:
        raise result_file_error(path, f"its 'cell' is not the cell {path.stem!r} its name gives")
    if not isinstance(document.get("complete"), bool):
        raise result_file_error(path, "it does not say whether the cell is complete")
    for position, record in enumerate(document["datasets"]):
        problem = _samples_problem(record["samples"]) if "samples" in record else None
        if problem is not None:
            raise result_file_error(path, f"entry {position} of 'datasets' {problem}")
    return document


def _cell_document(
    method: str, cell: PaperCell, settings: PaperSettings, specs: Sequence[PaperDatasetSpec], records: list
) -> dict[str, Any]:
    return {
        "method": method,
        "graph_source": settings.graph_source,
        "num_context": settings.num_context,
        "cell": {**asdict(cell), "column": cell.column},
        "complete": len(records) == len(specs),
        "datasets": records,
        "summary": summarize_records(records, TASKS),
    }


def run_paper(
    settings: PaperSettings,
    out: str | Path,
    *,
    methods: Mapping[str, Method] | None = None,
    graph_inferrer: GraphInferrer | None = None,
    progress: bool = True,
) -> Path:
    """Run (or resume) the grid and write the tables; returns the path of the tables file.

    ``methods`` may supply ready-built methods by name (for example a Cond-FiP with local weights); the others
    are built from ``settings``. Errors of one method on one dataset are recorded in its cell file (and
    marked ``*`` in the tables) without stopping the run.
    """
    out = Path(out)
    directory = ResultsDirectory(out)
    directory.check_run("paper", settings.protocol())  # nothing is written before every check passed
    folder = _run_folder(out, settings.graph_source, settings.num_context)
    graph_inferrer, default_graph_model = resolve_graph_inferrer(settings.graph_source, graph_inferrer)

    cells = paper_cells(tuple(settings.node_counts), settings.mechanisms, settings.presets)
    plan = []  # (cell, specs, {method: records})
    remaining = 0
    for cell in cells:
        specs = cell_specs(
            cell,
            num_context=settings.num_context,
            num_query=settings.num_query,
            num_interventional=settings.num_interventional,
            scms_per_graph=settings.scms_per_graph,
            seed=settings.seed,
        )
        records = {name: _load_records(_cell_path(folder, name, cell)) for name in settings.methods}
        remaining += sum(len(specs) - len(found) for found in records.values())
        plan.append((cell, specs, records))

    built = settings.start_run(
        directory,
        "paper",
        settings.protocol(),
        methods,
        needed=remaining > 0,
        graph_model=default_graph_model,
    )
    bar = progress_bar("paper", remaining, progress=progress)
    for cell, specs, records in plan:
        for spec in specs:
            waiting = [
                name for name in settings.methods if spec.index not in {r["index"] for r in records[name]}
            ]
            if not waiting:
                continue
            dataset = spec.build()
            adjacency, inferred = graph_for(dataset.adjacency, dataset.context_data, graph_inferrer)
            for name in waiting:
                bar.set_postfix_str(f"{name} {cell.key} {spec.graph}#{spec.replicate}")
                record: dict[str, Any] = {
                    "index": spec.index,
                    "graph": spec.graph,
                    "replicate": spec.replicate,
                }
                try:
                    keep = SAMPLES_KEPT if spec.replicate == 0 and spec.graph == specs[0].graph else 0
                    record.update(score_dataset(built[name], dataset, adjacency, keep_samples=keep))
                except Exception as error:  # recorded, shown as '*' in the tables; the run goes on
                    record_failure(record, error, f"{name} failed on {cell.key} dataset {spec.index}")
                if inferred is not None:
                    record["graph_scores"] = inferred
                records[name].append(record)
                records[name].sort(key=lambda r: r["index"])
                directory.write_result(
                    _cell_path(folder, name, cell), _cell_document(name, cell, settings, specs, records[name])
                )
                bar.update(1)
        for name in settings.methods:  # refresh summaries of cells that were already complete
            path = _cell_path(folder, name, cell)
            if not path.exists():
                directory.write_result(path, _cell_document(name, cell, settings, specs, records[name]))
    bar.close()
    return write_paper_tables(out, settings.graph_source, settings.num_context)


def collect_summaries(
    folder: Path, *, paper_grid: bool | None = None
) -> dict[str, dict[int, dict[str, dict[str, Any]]]]:
    """``summaries[method][d][column]`` from every cell file under one run folder (methods in table order).

    ``paper_grid``: True keeps the paper's cells only (linear and rff mechanisms), False the other families,
    None every cell."""
    summaries: dict[str, dict[int, dict[str, dict[str, Any]]]] = {}
    paths = sorted(folder.glob("*/*.json"))
    order = {name: position for position, name in enumerate(ordered_methods(p.parent.name for p in paths))}
    for path in sorted(paths, key=lambda p: order[p.parent.name]):
        document = read_cell_file(path)
        cell = document["cell"]
        if paper_grid is not None and (cell["column"] in COLUMNS.values()) != paper_grid:
            continue
        by_nodes = summaries.setdefault(document["method"], {}).setdefault(cell["num_nodes"], {})
        summary = summarize_records(document["datasets"], TASKS)
        summary["incomplete"] = not document["complete"]
        by_nodes[cell["column"]] = summary
    return summaries


def _graph_table(folder: Path) -> str | None:
    rows = []
    for path in sorted(folder.glob("*/*.json")):
        document = read_cell_file(path)
        scored = [r["graph_scores"] for r in document["datasets"] if "graph_scores" in r]
        if not scored:
            continue
        cell = document["cell"]
        row = [str(cell["num_nodes"]), cell["column"], str(len(scored))]
        for key in ("shd", "f1", "auroc", "auprc"):
            values = [s[key] for s in scored if key in s]
            row.append(f"{np.mean(values):.3f}" if values else "—")
        rows.append((cell["num_nodes"], cell["column"], row))
    if not rows:
        return None
    unique = {(d, c): row for d, c, row in rows}  # every method saw the same inferred graphs
    return markdown_table(
        ["d", "cell", "datasets", "SHD", "F1", "AUROC", "AUPRC"], [unique[k] for k in sorted(unique)]
    )


def write_paper_tables(out: str | Path, graph_source: str, num_context: int) -> Path:
    """Write ``tables.md`` for one (graph source, context size) run folder from its cell files."""
    folder = _run_folder(Path(out), graph_source, num_context)
    summaries = collect_summaries(folder, paper_grid=True)
    families = collect_summaries(folder, paper_grid=False)
    graph_text = "true graph" if graph_source == "true" else "graph inferred by the amortized graph model"
    parts = [
        f"# Paper benchmark: {num_context} context rows, {graph_text}",
        "",
        "RMSE in standardized units (per-column mean and std of each dataset's observational rows; noise divided "
        "by the std only), mean over query rows of the root mean squared error over nodes; cells are "
        "`mean (s.e.)` over the SCMs of a cell. Rows marked (paper) are the published numbers of "
        "Mahajan et al. (arXiv 2410.06128). `*`: some datasets failed for that method (see the cell file); "
        "`+`: the cell is not finished yet (mean over the datasets done so far).",
    ]
    if summaries or not families:
        for number, task in enumerate(TASKS, start=1):
            parts += ["", f"## Table {number}. {TASK_TITLES[task]}", ""]
            parts.append(
                paper_task_table(
                    task, summaries, num_context=num_context, with_reference=graph_source == "true"
                )
            )
        parts += ["", "## Time per dataset (seconds, mean over datasets)", "", paper_time_table(summaries)]
    if families:
        columns = sorted(
            {column for by_nodes in families.values() for cells in by_nodes.values() for column in cells},
            key=column_rank,
        )
        parts += [
            "",
            "## Other mechanism families",
            "",
            "The same protocol on scm-gen's other mechanism families, one column per family and preset "
            "(`<mechanism>-<PRESET>`); the paper has no numbers for them.",
        ]
        for number, task in enumerate(TASKS, start=1):
            parts += ["", f"### Table F{number}. {TASK_TITLES[task]}", ""]
            parts.append(
                paper_task_table(
                    task, families, num_context=num_context, with_reference=False, columns=columns
                )
            )
        parts += [
            "",
            "### Time per dataset, other families (seconds, mean over datasets)",
            "",
            paper_time_table(families),
        ]
    graph_table = _graph_table(folder) if graph_source == "inferred" else None
    if graph_table:
        parts += ["", "## Inferred graphs (mean over datasets)", "", graph_table]
    path = folder / "tables.md"
    write_text(path, "\n".join(parts) + "\n")
    return path
