"""One dataset of the benchmark: observational, interventional and counterfactual rows with their noise."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from scm_gen._checks import check_int
from scm_gen.limits import MAX_NODES, MAX_SEED, check_dataset_request
from scm_gen.scm import SCM


@dataclass
class BenchmarkDataset:
    """One benchmark dataset in raw (unstandardized) units. `adjacency[i, j] = 1` means `i -> j`."""

    adjacency: np.ndarray  # [d, d] int8
    data: np.ndarray  # [n_context + n_query, d] observational rows, context first
    noise: np.ndarray  # [n_context + n_query, d] their true noise
    num_context: int
    intervention_node: int
    intervention_value: float  # U(q10, q90) of the node's observational marginal
    interventional_data: np.ndarray  # [n_int, d] fresh rows under do(node = value)
    interventional_noise: np.ndarray  # [n_int, d] their true noise
    counterfactual_data: np.ndarray  # [n_query, d] the query rows' noise pushed through do(node = value)
    metadata: dict  # preset, mechanism, graph, num_nodes, seed, index, scm_gen version, ...
    scm: SCM | None = field(default=None, repr=False, compare=False)  # the true SCM, when generated here

    @property
    def num_nodes(self) -> int:
        return self.adjacency.shape[0]

    @property
    def num_query(self) -> int:
        return self.data.shape[0] - self.num_context

    @property
    def context_data(self) -> np.ndarray:
        return self.data[: self.num_context]

    @property
    def query_data(self) -> np.ndarray:
        return self.data[self.num_context :]

    @property
    def context_noise(self) -> np.ndarray:
        return self.noise[: self.num_context]

    @property
    def query_noise(self) -> np.ndarray:
        return self.noise[self.num_context :]


def make_benchmark_dataset(
    preset: str,
    mechanism: str,
    num_nodes: int,
    *,
    graph: Any = None,
    families: Sequence[str] | None = None,
    num_context: int = 400,
    num_query: int = 400,
    num_interventional: int = 400,
    seed: int = 0,
    index: int = 0,
) -> BenchmarkDataset:
    """Dataset `index` of a run seeded `seed`: everything is drawn from `SeedSequence(seed, spawn_key=(index,))`.

    The SCM comes from `sample_scm(preset, mechanism, num_nodes, graph=graph, families=families)`; one node,
    drawn uniformly, is intervened on with a value from `U(q10, q90)` of its observational rows. Requests
    whose estimated memory exceeds the machine's are refused before anything is drawn (`scm_gen.limits`).
    """
    from scm_gen.presets import sample_scm

    num_context = check_int("num_context", num_context, minimum=1)
    num_query = check_int("num_query", num_query, minimum=0)
    num_interventional = check_int("num_interventional", num_interventional, minimum=0)
    seed, index = check_run_position(seed, index)
    num_nodes = check_int("num_nodes", num_nodes, minimum=1, maximum=MAX_NODES)
    check_dataset_request(num_nodes, num_context + num_query, num_query, num_interventional)
    rng = dataset_rng(seed, index)
    scm = sample_scm(preset, mechanism, num_nodes, rng=rng, graph=graph, families=families)
    return sample_run_dataset(
        scm,
        rng,
        seed=seed,
        index=index,
        num_context=num_context,
        num_query=num_query,
        num_interventional=num_interventional,
    )


def check_run_position(seed: int, index: int) -> tuple[int, int]:
    """`seed` and `index` of a dataset of a run: integers in `[0, MAX_SEED]`, as ints."""
    seed = check_int("seed", seed, minimum=0, maximum=MAX_SEED)
    index = check_int("index", index, minimum=0, maximum=MAX_SEED)
    return seed, index


def dataset_rng(seed: int, index: int) -> np.random.Generator:
    """The generator dataset `index` of a run seeded `seed` draws everything from:
    `SeedSequence(seed, spawn_key=(index,))`."""
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(index,)))


def sample_run_dataset(
    scm: SCM,
    rng: np.random.Generator,
    *,
    seed: int,
    index: int,
    num_context: int,
    num_query: int,
    num_interventional: int,
    labels: dict[str, Any] | None = None,
) -> BenchmarkDataset:
    """`sample_benchmark_dataset` for dataset `index` of a run seeded `seed`; its metadata holds the SCM's,
    then `labels`, then the node count, `seed`, `index` and the scm_gen version."""
    from scm_gen import __version__

    metadata = {
        **scm.metadata,
        **(labels or {}),
        "num_nodes": scm.num_nodes,
        "seed": seed,
        "index": index,
        "scm_gen_version": __version__,
    }
    return sample_benchmark_dataset(
        scm,
        rng,
        num_context=num_context,
        num_query=num_query,
        num_interventional=num_interventional,
        metadata=metadata,
    )


def sample_benchmark_dataset(
    scm: SCM,
    rng: np.random.Generator,
    *,
    num_context: int = 400,
    num_query: int = 400,
    num_interventional: int = 400,
    metadata: dict | None = None,
) -> BenchmarkDataset:
    """Observational, interventional and counterfactual rows of a given SCM, drawn with `rng`."""
    num_context = check_int("num_context", num_context, minimum=1)
    num_query = check_int("num_query", num_query, minimum=0)
    num_interventional = check_int("num_interventional", num_interventional, minimum=0)
    check_dataset_request(scm.num_nodes, num_context + num_query, num_query, num_interventional)
    data, noise = scm.sample(num_context + num_query, rng)
    node = int(rng.integers(scm.num_nodes))
    value = scm.sample_intervention_value(node, rng, reference=data)
    interventions = {node: value}
    interventional_noise = scm.noise_model.draw(num_interventional, rng)
    interventional_data = scm.generate(interventional_noise, interventions)
    counterfactual_data = scm.counterfactual_from_noise(
        data[num_context:], noise[num_context:], interventions
    )
    return BenchmarkDataset(
        adjacency=scm.adjacency,
        data=data,
        noise=noise,
        num_context=num_context,
        intervention_node=node,
        intervention_value=value,
        interventional_data=interventional_data,
        interventional_noise=interventional_noise,
        counterfactual_data=counterfactual_data,
        metadata=dict(metadata or scm.metadata),
        scm=scm,
    )
