"""Numbers published in the Cond-FiP paper (Mahajan et al., arXiv 2410.06128), shown next to ours.

RMSE in standardized units; columns LIN-IN, RFF-IN, LIN-OUT, RFF-OUT. Shown in extra table rows, marked
"(paper)", next to what our runs measure. Only a selection of the paper's cells is here; other cells stay empty.
"""

from __future__ import annotations

__all__ = ["PAPER_RMSE", "PAPER_SACHS_MMD", "paper_rows"]

_COLUMNS = ("LIN-IN", "RFF-IN", "LIN-OUT", "RFF-OUT")


def _row(*values: float) -> dict[str, float]:
    return dict(zip(_COLUMNS, values, strict=True))


# (task, number of context rows) -> reference method -> node count -> column -> RMSE
PAPER_RMSE: dict[tuple[str, int], dict[str, dict[int, dict[str, float]]]] = {
    ("noise", 400): {
        "Cond-FiP": {
            10: _row(0.06, 0.10, 0.07, 0.10),
            20: _row(0.06, 0.09, 0.07, 0.12),
            50: _row(0.06, 0.10, 0.07, 0.14),
            100: _row(0.05, 0.10, 0.07, 0.16),
        },
        "FiP": {20: _row(0.04, 0.12, 0.05, 0.15)},
        "DoWhy": {20: _row(0.03, 0.15, 0.03, 0.23)},
    },
    ("observational", 400): {
        "Cond-FiP": {
            10: _row(0.06, 0.14, 0.05, 0.08),
            20: _row(0.05, 0.24, 0.07, 0.30),
            50: _row(0.08, 0.25, 0.07, 0.48),
            100: _row(0.07, 0.29, 0.09, 0.57),
        },
    },
    ("interventional", 400): {
        "Cond-FiP": {
            10: _row(0.10, 0.21, 0.07, 0.11),
            20: _row(0.09, 0.24, 0.14, 0.31),
            50: _row(0.13, 0.27, 0.12, 0.48),
            100: _row(0.10, 0.30, 0.14, 0.56),
        },
    },
    ("noise", 50): {
        "Cond-FiP": {20: _row(0.10, 0.16, 0.11, 0.17)},
        "FiP": {20: _row(0.12, 0.33, 0.15, 0.35)},
    },
}

# MMD between generated and held-out Sachs rows (the paper's Table 24)
PAPER_SACHS_MMD = {"Cond-FiP": 0.013, "DoWhy": 0.015, "FiP": 0.015}


def paper_rows(task: str, num_context: int) -> dict[str, dict[int, dict[str, float]]]:
    """Reference rows for one table (empty when none of the paper's numbers for it are recorded here)."""
    return PAPER_RMSE.get((task, num_context), {})
