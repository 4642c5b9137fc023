"""What to generate: one `DatasetSpec` per dataset, for the paper's test grid, CSuite and `generate` runs."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from scm_gen._checks import check_choice, check_int, check_sequence
from scm_gen.benchmark import BenchmarkDataset, make_benchmark_dataset
from scm_gen.csuite import CSUITE_NAMES, csuite_scm, make_csuite_dataset
from scm_gen.graphs import GRAPH_KINDS
from scm_gen.limits import (
    MAX_DATASETS,
    MAX_SEED,
    check_dataset_request,
    check_datasets,
    check_nodes,
    dataset_bytes,
)
from scm_gen.mechanisms import MECHANISM_KINDS, NODE_FAMILIES
from scm_gen.presets import PRESETS


@dataclass(frozen=True)
class DatasetSpec:
    """Everything needed to regenerate one dataset of an export, alone, in any process."""

    config: str
    index: int
    seed: int
    num_nodes: int
    num_context: int
    num_query: int
    num_interventional: int
    preset: str | None = None  # for SCMs drawn from a preset
    mechanism: str | None = None
    graph: str | None = None
    csuite: str | None = None  # for the hand-written CSuite models
    families: tuple[str, ...] | None = None  # node families of a mixed SCM (None: the preset's)

    def build(self) -> BenchmarkDataset:
        sizes = {
            "num_context": self.num_context,
            "num_query": self.num_query,
            "num_interventional": self.num_interventional,
            "seed": self.seed,
            "index": self.index,
        }
        if self.csuite is not None:
            return make_csuite_dataset(self.csuite, **sizes)
        return make_benchmark_dataset(
            self.preset, self.mechanism, self.num_nodes, graph=self.graph, families=self.families, **sizes
        )


GRID_NODE_COUNTS = (10, 20, 50, 100)
GRID_MECHANISMS = ("linear", "rff")
GRID_PRESETS = ("in", "out")
GRID_SCMS_PER_GRAPH = 3
DEFAULT_CONTEXT = 400
SCARCE_CONTEXT_SIZES = (100, 50)  # the paper's scarce-data variants: same SCMs, fewer context rows


def _check_sizes(
    num_context: int, num_query: int, num_interventional: int, seed: int, num_nodes: int = 1
) -> dict[str, int]:
    """Row counts and seed; `num_nodes` (the largest of the request) for the memory estimate. Returns the four
    as given, as `DatasetSpec` fields."""
    check_int("num_context", num_context, minimum=1)
    check_int("num_query", num_query, minimum=0)
    check_int("num_interventional", num_interventional, minimum=0)
    check_int("seed", seed, minimum=0, maximum=MAX_SEED)
    check_dataset_request(num_nodes, num_context + num_query, num_query, num_interventional)
    return {
        "seed": seed,
        "num_context": num_context,
        "num_query": num_query,
        "num_interventional": num_interventional,
    }


def _config_specs(
    config: str, first_index: int, count: int, num_nodes: int, sizes: dict[str, int], **source: Any
) -> list[DatasetSpec]:
    """`count` datasets of `config` with indices from `first_index` on; `source` says what they are drawn from
    (`preset`, `mechanism`, `graph` and `families`, or `csuite`)."""
    return [
        DatasetSpec(config=config, index=first_index + offset, num_nodes=num_nodes, **sizes, **source)
        for offset in range(count)
    ]


def grid_config_name(preset: str, mechanism: str, num_nodes: int, num_context: int = DEFAULT_CONTEXT) -> str:
    name = f"{preset}_{mechanism}_d{num_nodes}"
    return name if num_context == DEFAULT_CONTEXT else f"{name}_ctx{num_context}"


def grid_specs(
    *,
    seed: int = 0,
    num_context: int = DEFAULT_CONTEXT,
    num_query: int = 400,
    num_interventional: int = 400,
    node_counts: tuple[int, ...] = GRID_NODE_COUNTS,
    scms_per_graph: int = GRID_SCMS_PER_GRAPH,
    mechanisms: Sequence[str] = GRID_MECHANISMS,
) -> list[DatasetSpec]:
    """The test grid: node counts x mechanisms ({linear, rff} by default) x {in, out}, `scms_per_graph` SCMs
    per graph family of the preset (9 per IN cell, 6 per OUT cell). One config per cell; dataset indices run
    over the whole grid in the order preset, mechanism, node count, graph family.

    A scarce-data variant (`num_context` 100 or 50) draws the same SCMs (the SCM is drawn before the rows)
    and lives in configs suffixed `_ctx<num_context>`.
    """
    scms_per_graph = check_int("scms_per_graph", scms_per_graph, minimum=1, maximum=MAX_DATASETS)
    node_counts = check_sequence("node_counts", node_counts, "[10, 20, 50, 100]")
    if not node_counts:
        raise ValueError("node_counts is empty; give at least one node count, e.g. 10,20,50,100")
    node_counts = tuple(check_nodes("nodes", count) for count in node_counts)
    repeated = next((count for count in node_counts if node_counts.count(count) > 1), None)
    if repeated is not None:
        raise ValueError(f"node_counts={list(node_counts)} names {repeated} more than once; give each once")
    sizes = _check_sizes(num_context, num_query, num_interventional, seed, max(node_counts))
    mechanisms = _check_mechanisms(mechanisms)
    size = len(GRID_PRESETS) * len(mechanisms) * len(node_counts) * scms_per_graph * 3
    if size > MAX_DATASETS:
        raise ValueError(f"this grid would hold about {size} datasets, more than the {MAX_DATASETS} allowed")
    specs = []
    for preset in GRID_PRESETS:
        for mechanism in mechanisms:
            for num_nodes in node_counts:
                config = grid_config_name(preset, mechanism, num_nodes, num_context)
                for graph in PRESETS[preset].graphs:
                    specs += _config_specs(
                        config,
                        len(specs),
                        scms_per_graph,
                        num_nodes,
                        sizes,
                        preset=preset,
                        mechanism=mechanism,
                        graph=graph,
                    )
    return specs


def generate_specs(
    *,
    preset: str,
    mechanism: str,
    num_nodes: int,
    num_datasets: int,
    num_context: int = 400,
    num_query: int = 400,
    num_interventional: int = 400,
    seed: int = 0,
    graph: str | None = None,
    families: Sequence[str] | None = None,
) -> list[DatasetSpec]:
    """`num_datasets` datasets of one preset and mechanism, indices `0..num_datasets-1`, one config.

    `families` (mechanism `mixed` only) lists what the nodes draw from; None keeps the preset's list.
    """
    check_choice("preset", preset, PRESETS)
    check_choice("mechanism", mechanism, MECHANISM_KINDS)
    num_nodes = check_nodes("nodes", num_nodes)
    sizes = _check_sizes(num_context, num_query, num_interventional, seed, num_nodes)
    each = dataset_bytes(num_nodes, num_context + num_query, num_query, num_interventional)
    num_datasets = check_datasets("datasets", num_datasets, each)
    if graph is not None:
        check_choice("graph", graph, GRAPH_KINDS)
    if families is not None:
        if mechanism != "mixed":
            raise ValueError(f"families are only for mechanism 'mixed', not {mechanism!r}")
        if isinstance(families, str) or not families:
            raise ValueError(f"families={families!r} must be a non-empty list of {', '.join(NODE_FAMILIES)}")
        families = tuple(check_choice("family", family, NODE_FAMILIES) for family in families)
    config = f"{preset}_{mechanism}_d{num_nodes}" + (f"_{graph}" if graph else "")
    return _config_specs(
        config,
        0,
        num_datasets,
        num_nodes,
        sizes,
        preset=preset,
        mechanism=mechanism,
        graph=graph,
        families=families,
    )


def _check_mechanisms(mechanisms: Sequence[str]) -> tuple[str, ...]:
    if isinstance(mechanisms, str) or not mechanisms:
        raise ValueError(
            f"mechanisms={mechanisms!r} must be a non-empty list of {', '.join(MECHANISM_KINDS)}"
        )
    mechanisms = tuple(check_choice("mechanism", mechanism, MECHANISM_KINDS) for mechanism in mechanisms)
    if len(set(mechanisms)) != len(mechanisms):
        raise ValueError(f"mechanisms={list(mechanisms)} names a mechanism twice")
    return mechanisms


def csuite_specs(
    *,
    seed: int = 0,
    num_datasets: int = 1,
    num_context: int = 400,
    num_query: int = 400,
    num_interventional: int = 400,
    names: tuple[str, ...] = CSUITE_NAMES,
) -> list[DatasetSpec]:
    """`num_datasets` datasets of every CSuite model, one config per model; indices run over all models."""
    names = check_sequence("names", names, f"[{CSUITE_NAMES[0]!r}]")
    for name in names:
        check_choice("csuite model", name, CSUITE_NAMES)
    node_counts = {name: csuite_scm(name).num_nodes for name in names}
    largest = max(node_counts.values(), default=1)
    sizes = _check_sizes(num_context, num_query, num_interventional, seed, largest)
    each = dataset_bytes(largest, num_context + num_query, num_query, num_interventional)
    num_datasets = check_int("datasets", num_datasets, minimum=1)
    check_datasets(f"datasets x {len(names)} models", num_datasets * max(1, len(names)), each)
    specs = []
    for name in names:
        specs += _config_specs(name, len(specs), num_datasets, node_counts[name], sizes, csuite=name)
    return specs
