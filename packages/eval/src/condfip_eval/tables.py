"""Markdown tables laid out like the paper's Tables 1-3: rows method x d, columns LIN-IN, RFF-IN, LIN-OUT,
RFF-OUT, cells ``mean (s.e.)`` over the SCMs of a cell, then the paper's published rows; and a time table.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

from condfip_eval.grid import COLUMNS
from condfip_eval.metrics import mean_and_standard_error
from condfip_eval.reference import paper_rows

__all__ = [
    "display_name",
    "format_mean_error",
    "markdown_table",
    "ordered_methods",
    "paper_task_table",
    "paper_time_table",
    "summarize_records",
]

COLUMN_LABELS = tuple(COLUMNS.values())
DISPLAY_NAMES = {
    "condfip": "Cond-FiP",
    "condfip-zero-shot": "Cond-FiP zero-shot",
    "condfip-refit": "Cond-FiP + refit",  # condfip-eval 0.1.0's infer(refit_readout=True), in older folders
    "fip": "FiP",
    "dowhy": "DoWhy",
    "linear": "Linear ANM",
    "nonlinear": "Kernel ANM",
}
TABLE_ORDER = ("condfip", "condfip-zero-shot", "condfip-refit", "fip", "dowhy", "linear", "nonlinear")


def display_name(method: str) -> str:
    return DISPLAY_NAMES.get(method, method)


def ordered_methods(names: Iterable[str]) -> list[str]:
    """Method names in table order (known ones first, in ``TABLE_ORDER``, then the others sorted)."""
    order = {name: position for position, name in enumerate(TABLE_ORDER)}
    return sorted(set(names), key=lambda name: (order.get(name, len(order)), name))


def format_mean_error(mean: float | None, error: float | None, *, digits: int = 3) -> str:
    """``mean (s.e.)``; a missing error (one value) shows as ``-``."""
    if mean is None or (isinstance(mean, float) and math.isnan(mean)):
        return "—"
    if error is None or (isinstance(error, float) and math.isnan(error)):
        return f"{mean:.{digits}f} (-)"
    return f"{mean:.{digits}f} ({error:.{digits}f})"


def markdown_table(header: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def summarize_records(records: Sequence[dict[str, Any]], tasks: Sequence[str]) -> dict[str, Any]:
    """Mean and standard error per task over the records without an error, plus mean seconds and counts."""
    ok = [record for record in records if "error" not in record]
    summary: dict[str, Any] = {"count": len(ok), "failed": len(records) - len(ok)}
    for task in tasks:
        values = [record["rmse"][task] for record in ok if record["rmse"].get(task) is not None]
        mean, error = mean_and_standard_error(values) if values else (None, None)
        summary[task] = {"mean": mean, "standard_error": error, "count": len(values)}
    for timing in ("fit_seconds", "sample_seconds"):
        values = [record[timing] for record in ok]
        summary[timing] = sum(values) / len(values) if values else None
    return summary


def _cell_text(summary: dict[str, Any] | None, task: str) -> str:
    if summary is None:
        return "—"
    entry = summary[task]
    text = format_mean_error(entry["mean"], entry["standard_error"])
    return text + ("*" if summary.get("failed") else "") + ("+" if summary.get("incomplete") else "")


def paper_task_table(
    task: str,
    summaries: dict[str, dict[int, dict[str, dict[str, Any]]]],
    *,
    num_context: int,
    with_reference: bool = True,
    columns: Sequence[str] = COLUMN_LABELS,
) -> str:
    """One task's table. ``summaries[method][d][column]`` is a cell summary from :func:`summarize_records`.

    The paper's rows follow for the node counts measured here (all of them when nothing was measured yet);
    ``columns``: the table's columns (default the paper's four; other labels have no published rows).
    """
    rows = []
    for method, by_nodes in summaries.items():
        for num_nodes in sorted(by_nodes):
            cells = by_nodes[num_nodes]
            rows.append(
                [
                    display_name(method),
                    str(num_nodes),
                    *(_cell_text(cells.get(c), task) for c in columns),
                ]
            )
    if with_reference and tuple(columns) == COLUMN_LABELS:
        measured = {num_nodes for by_nodes in summaries.values() for num_nodes in by_nodes}
        for method, by_nodes in paper_rows(task, num_context).items():
            for num_nodes in sorted(by_nodes):
                if measured and num_nodes not in measured:
                    continue
                values = by_nodes[num_nodes]
                rows.append(
                    [f"{method} (paper)", str(num_nodes), *(f"{values[c]:.2f}" for c in COLUMN_LABELS)]
                )
    return markdown_table(["method", "d", *columns], rows)


def paper_time_table(summaries: dict[str, dict[int, dict[str, dict[str, Any]]]]) -> str:
    """Mean seconds per dataset to fit and to answer the four tasks, per method and node count."""
    rows = []
    for method, by_nodes in summaries.items():
        for num_nodes in sorted(by_nodes):
            cells = [summary for summary in by_nodes[num_nodes].values() if summary["count"]]
            count = sum(summary["count"] for summary in cells)
            if not count:
                continue
            fit = sum(summary["fit_seconds"] * summary["count"] for summary in cells) / count
            sample = sum(summary["sample_seconds"] * summary["count"] for summary in cells) / count
            rows.append([display_name(method), str(num_nodes), f"{fit:.3g}", f"{sample:.3g}", str(count)])
    return markdown_table(["method", "d", "fit s / dataset", "tasks s / dataset", "datasets"], rows)
