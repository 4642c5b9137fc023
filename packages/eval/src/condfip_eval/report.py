"""``condfip-eval report DIR``: one Markdown report of every run in a results folder, with PNG figures.

The tables are rebuilt from the JSON result files (so the report always matches them). Figures need
matplotlib (optional extra ``plot``); without it the report says so (as does the command) and holds the tables
only:

- per paper run and task: grouped bars (one group per cell, one bar per method) with standard-error bars;
- per paper run: true vs generated interventional marginals of one node in the first dataset of each cell;
- Sachs: MMD^2 per method with the context-rows floor.
"""

from __future__ import annotations

import io
import re
from pathlib import Path
from typing import Any

from condfip_eval.grid import COLUMNS, column_rank
from condfip_eval.results import ResultsDirectory, run_folders, write_bytes, write_text
from condfip_eval.scoring import TASK_TITLES, TASKS
from condfip_eval.tables import display_name, ordered_methods

__all__ = ["MATPLOTLIB_HINT", "matplotlib_available", "write_report"]


def _demote(markdown: str) -> str:
    """Every heading one level down, so each run's tables sit under the report's own title."""
    return re.sub(r"^(#+) ", lambda match: "#" + match.group(1) + " ", markdown, flags=re.MULTILINE)


MATPLOTLIB_HINT = (
    "figures skipped: matplotlib is not installed; pip install matplotlib (or pip install './packages/eval[plot]' "
    "in a clone of the repository) and run the report again"
)


def matplotlib_available() -> bool:
    """Whether the report can draw its figures here."""
    return _load_pyplot() is not None


def _load_pyplot():
    try:
        import matplotlib
    except ImportError:
        return None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(figure, path: Path) -> None:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=120, bbox_inches="tight")
    write_bytes(path, buffer.getvalue())


def _cell_documents(folder: Path) -> list[dict[str, Any]]:
    from condfip_eval.paper import read_cell_file

    return [read_cell_file(path) for path in sorted(folder.glob("*/*.json"))]


def _task_bars(plt, documents: list[dict[str, Any]], task: str, title: str, path: Path) -> None:
    from condfip_eval.tables import summarize_records

    methods = ordered_methods(d["method"] for d in documents)
    cells = sorted(
        {(d["cell"]["num_nodes"], d["cell"]["column"]) for d in documents},
        key=lambda c: (c[0], column_rank(c[1])),
    )
    width = 0.8 / max(len(methods), 1)
    figure, axes = plt.subplots(figsize=(max(6, 1.2 * len(cells) + 2), 3.8))
    for position, method in enumerate(methods):
        means, errors = [], []
        for num_nodes, column in cells:
            found = [
                d
                for d in documents
                if d["method"] == method
                and (d["cell"]["num_nodes"], d["cell"]["column"]) == (num_nodes, column)
            ]
            entry = summarize_records(found[0]["datasets"], TASKS)[task] if found else {"mean": None}
            means.append(entry["mean"] if entry["mean"] is not None else float("nan"))
            error = entry.get("standard_error")
            errors.append(error if error is not None else 0.0)
        x = [index + (position - (len(methods) - 1) / 2) * width for index in range(len(cells))]
        axes.bar(x, means, width, yerr=errors, capsize=2, label=display_name(method))
    axes.set_xticks(range(len(cells)), [f"d={d}\n{column}" for d, column in cells], fontsize=8)
    axes.set_ylabel("RMSE (standardized)")
    axes.set_title(title)
    axes.legend(fontsize=8)
    _save(figure, path)
    plt.close(figure)


def _marginals(plt, documents: list[dict[str, Any]], title: str, path: Path) -> bool:
    import numpy as np

    by_cell: dict[tuple[int, str], dict[str, Any]] = {}
    for document in documents:
        for record in document["datasets"]:
            if "samples" in record:
                key = (document["cell"]["num_nodes"], document["cell"]["column"])
                by_cell.setdefault(key, {})[document["method"]] = record["samples"]
                break
    if not by_cell:
        return False
    smallest = min(d for d, _ in by_cell)
    keys = [(smallest, column) for column in COLUMNS.values() if (smallest, column) in by_cell]
    figure, axes = plt.subplots(1, len(keys), figsize=(4 * len(keys), 3.2), squeeze=False)
    for axis, key in zip(axes[0], keys, strict=True):
        samples = by_cell[key]
        first = next(iter(samples.values()))
        methods = ordered_methods(samples)
        pooled = np.concatenate([first["true"][0], *(samples[m]["generated"][0] for m in methods)])
        bins = np.histogram_bin_edges(pooled[np.isfinite(pooled)], bins=30)
        axis.hist(first["true"][0], bins=bins, density=True, color="0.75", label="true")
        for method in methods:
            axis.hist(
                samples[method]["generated"][0],
                bins=bins,
                density=True,
                histtype="step",
                label=display_name(method),
            )
        axis.set_title(
            f"d={key[0]} {key[1]}: node {first['nodes'][0]} | do(node {first['intervention_node']})",
            fontsize=9,
        )
    axes[0][0].legend(fontsize=7)
    figure.suptitle(title, fontsize=10)
    _save(figure, path)
    plt.close(figure)
    return True


def _sachs_bars(plt, folder: Path, path: Path) -> None:
    import numpy as np

    from condfip_eval.sachs import read_sachs_documents

    documents = read_sachs_documents(folder)
    floor = [d for d in documents if d["method"] == "floor"]
    methods = [d for d in documents if d["method"] != "floor"]
    figure, axes = plt.subplots(figsize=(6, 3.5))
    for index, document in enumerate(methods):
        values = [r["mmd2"] for r in document["replicates"] if "error" not in r]
        if values:
            error = np.std(values, ddof=1) / np.sqrt(len(values)) if len(values) > 1 else 0.0
            axes.bar(index, np.mean(values), yerr=error, capsize=3)
    if floor:
        axes.axhline(
            np.mean([r["mmd2"] for r in floor[0]["replicates"]]),
            color="k",
            linestyle="--",
            label="context rows (floor)",
        )
        axes.legend(fontsize=8)
    axes.set_xticks(range(len(methods)), [display_name(d["method"]) for d in methods])
    axes.set_ylabel("MMD^2 (standardized)")
    axes.set_title(f"Sachs, generated vs held-out rows ({folder.name})")
    _save(figure, path)
    plt.close(figure)


def write_report(directory: str | Path, *, figures: bool = True) -> Path:
    """Write ``DIR/report.md`` (and ``DIR/figures/*.png`` when matplotlib is available); returns its path."""
    from condfip_eval.csuite import CSUITE_RUN_FOLDER, write_csuite_tables
    from condfip_eval.ecoli70 import ECOLI70_RUN_FOLDER, write_ecoli70_tables
    from condfip_eval.paper import paper_run_folders, write_paper_tables
    from condfip_eval.sachs import SACHS_RUN_FOLDER, write_sachs_tables

    root = Path(directory)
    manifest = ResultsDirectory(root).check_readable()
    plt = _load_pyplot() if figures else None
    figure_folder = root / "figures"
    parts = [
        "# Cond-FiP evaluation report",
        "",
        f"condfip-eval {manifest['condfip_eval_version']}; runs: {', '.join(sorted(manifest['runs'])) or 'none'}. "
        "Settings of each run (`manifest.json`):",
        "",
        *[
            f"- `{kind}`: " + ", ".join(f"{k}={v}" for k, v in protocol.items())
            for kind, protocol in sorted(manifest["runs"].items())
        ],
    ]
    if figures and plt is None:
        parts += ["", f"_{MATPLOTLIB_HINT[0].upper()}{MATPLOTLIB_HINT[1:]}._"]

    for folder, graph_source, num_context in paper_run_folders(root):
        tables = write_paper_tables(root, graph_source, num_context)
        parts += ["", _demote(tables.read_text().strip())]
        if plt is not None:
            documents = _cell_documents(folder)
            stem = f"paper_{graph_source}_context{num_context}"
            parts += ["", f"### Figures ({num_context} context rows, {graph_source} graph)", ""]
            for task in TASKS:
                name = f"{stem}_{task}.png"
                _task_bars(
                    plt,
                    documents,
                    task,
                    f"{TASK_TITLES[task]}, {num_context} context rows",
                    figure_folder / name,
                )
                parts.append(f"![{TASK_TITLES[task]}](figures/{name})")
            name = f"{stem}_marginals.png"
            if _marginals(plt, documents, "True vs generated interventional marginals", figure_folder / name):
                parts.append(f"![interventional marginals](figures/{name})")

    for folder in run_folders(root / "csuite", CSUITE_RUN_FOLDER):
        parts += ["", _demote(write_csuite_tables(folder).read_text().strip())]
    for folder in run_folders(root / "sachs", SACHS_RUN_FOLDER):
        parts += ["", _demote(write_sachs_tables(folder).read_text().strip())]
        if plt is not None:
            name = f"sachs_{folder.name}.png"
            _sachs_bars(plt, folder, figure_folder / name)
            parts += ["", f"![Sachs MMD](figures/{name})"]
    for folder in run_folders(root / "ecoli70", ECOLI70_RUN_FOLDER):
        parts += ["", _demote(write_ecoli70_tables(folder).read_text().strip())]

    path = root / "report.md"
    write_text(path, "\n".join(parts) + "\n")
    return path
