"""The paper's test grid: node counts x {LIN, RFF} x {IN, OUT}, 3 SCMs per graph family; and the same grid over
scm-gen's other mechanism families (random networks, polynomials, products, heteroscedastic and mixed SCMs).

Every dataset comes from ``scm_gen.make_benchmark_dataset(preset, mechanism, d, graph=family, seed=seed,
index=index)``. The index of a dataset is its position in the canonical grid (presets in, out; mechanisms
linear, rff; node counts 10, 20, 50, 100; the preset's graph families; 3 SCMs each), the layout of scm-gen's
grid export, so a cell's datasets do not depend on which other cells a run asks for. Node counts outside the
canonical four get indices from 1,000,000 on, also fixed per (preset, mechanism, d, family, replicate).
A scarce-data run (fewer context rows) draws the same SCMs: scm-gen draws the SCM before the rows. Cells of
the other mechanism families get indices from 100,000,000 on, fixed per (mechanism, preset, d, family,
replicate) by the mechanism's position in ``MECHANISMS``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from scm_gen import PRESETS, BenchmarkDataset, make_benchmark_dataset

__all__ = [
    "CANONICAL_NODE_COUNTS",
    "COLUMNS",
    "MECHANISMS",
    "PAPER_MECHANISMS",
    "PaperCell",
    "PaperDatasetSpec",
    "cell_specs",
    "column_rank",
    "paper_cells",
]

CANONICAL_NODE_COUNTS = (10, 20, 50, 100)
CANONICAL_SCMS_PER_GRAPH = 3
PRESET_ORDER = ("in", "out")
MECHANISM_ORDER = ("linear", "rff")
PAPER_MECHANISMS = MECHANISM_ORDER
# every mechanism a grid cell may use; the position fixes the dataset indices, so names are only ever appended
MECHANISMS = (
    "linear",
    "rff",
    "rff_hetero",
    "nn_tanh",
    "nn_sigmoid",
    "nn_relu",
    "polynomial",
    "multiplicative",
    "nn_tanh_hetero",
    "nn_sigmoid_hetero",
    "nn_relu_hetero",
    "polynomial_hetero",
    "multiplicative_hetero",
    "mixed",
)
# table columns, in the paper's order: (mechanism, preset) -> label
COLUMNS = {
    ("linear", "in"): "LIN-IN",
    ("rff", "in"): "RFF-IN",
    ("linear", "out"): "LIN-OUT",
    ("rff", "out"): "RFF-OUT",
}
_OFF_GRID_BASE = 1_000_000
_FAMILY_BASE = 100_000_000


@dataclass(frozen=True)
class PaperCell:
    """One cell of the grid: a node count, a mechanism family and a preset."""

    num_nodes: int
    mechanism: str  # "linear" or "rff" on the paper's grid, any of MECHANISMS otherwise
    preset: str  # "in" or "out"

    @property
    def column(self) -> str:
        """Table column: LIN-IN, RFF-IN, LIN-OUT, RFF-OUT on the paper's grid, else ``<mechanism>-<PRESET>``."""
        return COLUMNS.get((self.mechanism, self.preset), f"{self.mechanism}-{self.preset.upper()}")

    @property
    def key(self) -> str:
        return f"{self.preset}_{self.mechanism}_d{self.num_nodes}"


@dataclass(frozen=True)
class PaperDatasetSpec:
    """Everything needed to rebuild one dataset of a cell, alone."""

    cell: PaperCell
    graph: str
    replicate: int
    index: int
    seed: int
    num_context: int
    num_query: int
    num_interventional: int

    def build(self) -> BenchmarkDataset:
        return make_benchmark_dataset(
            self.cell.preset,
            self.cell.mechanism,
            self.cell.num_nodes,
            graph=self.graph,
            num_context=self.num_context,
            num_query=self.num_query,
            num_interventional=self.num_interventional,
            seed=self.seed,
            index=self.index,
        )


def column_rank(label: str) -> tuple[int, int]:
    """Sort key of a table column: preset, then mechanism in ``MECHANISMS`` order (LIN-IN, RFF-IN, LIN-OUT,
    RFF-OUT on the paper's grid); unknown labels last."""
    for (mechanism, preset), known in COLUMNS.items():
        if label == known:
            return PRESET_ORDER.index(preset), MECHANISMS.index(mechanism)
    mechanism, _, preset = label.rpartition("-")
    if mechanism in MECHANISMS and preset.lower() in PRESET_ORDER:
        return PRESET_ORDER.index(preset.lower()), MECHANISMS.index(mechanism)
    return len(PRESET_ORDER), len(MECHANISMS)


def paper_cells(
    node_counts: tuple[int, ...],
    mechanisms: tuple[str, ...] = PAPER_MECHANISMS,
    presets: tuple[str, ...] = PRESET_ORDER,
) -> list[PaperCell]:
    """Cells in table order: node count, then preset, then mechanism (the paper's grid: LIN-IN, RFF-IN,
    LIN-OUT, RFF-OUT)."""
    for count in node_counts:
        if isinstance(count, bool) or not isinstance(count, int | np.integer) or count < 2:
            raise ValueError(f"node counts must be integers >= 2; got {count!r}")
    for name, chosen, known in (("mechanism", mechanisms, MECHANISMS), ("preset", presets, PRESET_ORDER)):
        if not chosen:
            raise ValueError(f"no {name} given; choose from {', '.join(known)}")
        for value in chosen:
            if value not in known:
                raise ValueError(f"unknown {name} {value!r}; choose from {', '.join(known)}")
    chosen_presets = [preset for preset in PRESET_ORDER if preset in presets]
    chosen_mechanisms = [mechanism for mechanism in MECHANISMS if mechanism in mechanisms]
    return [
        PaperCell(int(count), mechanism, preset)
        for count in node_counts
        for preset in chosen_presets
        for mechanism in chosen_mechanisms
    ]


def _canonical_index(cell: PaperCell, graph_position: int, replicate: int) -> int:
    index = 0
    for preset in PRESET_ORDER:
        graphs = PRESETS[preset].graphs
        for mechanism in MECHANISM_ORDER:
            for count in CANONICAL_NODE_COUNTS:
                if (preset, mechanism, count) == (cell.preset, cell.mechanism, cell.num_nodes):
                    return index + graph_position * CANONICAL_SCMS_PER_GRAPH + replicate
                index += len(graphs) * CANONICAL_SCMS_PER_GRAPH
    raise AssertionError("unreachable: cell is on the canonical grid")


def dataset_index(cell: PaperCell, graph_position: int, replicate: int) -> int:
    """The fixed scm-gen dataset index of replicate ``replicate`` of graph family ``graph_position`` in a cell."""
    if cell.mechanism not in PAPER_MECHANISMS:
        mechanism_id, preset_id = MECHANISMS.index(cell.mechanism), PRESET_ORDER.index(cell.preset)
        code = (((mechanism_id * 2 + preset_id) * 10_000 + cell.num_nodes) * 10 + graph_position) * 100
        return _FAMILY_BASE + code + replicate
    if cell.num_nodes in CANONICAL_NODE_COUNTS and replicate < CANONICAL_SCMS_PER_GRAPH:
        return _canonical_index(cell, graph_position, replicate)
    preset_id, mechanism_id = PRESET_ORDER.index(cell.preset), MECHANISM_ORDER.index(cell.mechanism)
    code = (
        ((preset_id * 2 + mechanism_id) * 10_000 + cell.num_nodes) * 10 + graph_position
    ) * 100 + replicate
    return _OFF_GRID_BASE + code


def cell_specs(
    cell: PaperCell,
    *,
    num_context: int = 400,
    num_query: int = 400,
    num_interventional: int = 400,
    scms_per_graph: int = CANONICAL_SCMS_PER_GRAPH,
    seed: int = 0,
) -> list[PaperDatasetSpec]:
    """The datasets of one cell: ``scms_per_graph`` SCMs for each graph family of the cell's preset."""
    if not 1 <= scms_per_graph < 100:
        raise ValueError(f"scms_per_graph must be in [1, 99]; got {scms_per_graph}")
    if num_context < 2:
        raise ValueError(f"num_context must be at least 2; got {num_context}")
    return [
        PaperDatasetSpec(
            cell=cell,
            graph=graph,
            replicate=replicate,
            index=dataset_index(cell, position, replicate),
            seed=seed,
            num_context=num_context,
            num_query=num_query,
            num_interventional=num_interventional,
        )
        for position, graph in enumerate(PRESETS[cell.preset].graphs)
        for replicate in range(scms_per_graph)
    ]
