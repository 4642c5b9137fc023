"""The benchmark presets P_IN and P_OUT (DESIGN section 5.2) and `sample_scm`."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from scm_gen._checks import check_choice, check_int
from scm_gen.graphs import GRAPH_KINDS, max_edges_per_node, sample_graph, validate_adjacency
from scm_gen.mechanisms import (
    MECHANISM_KINDS,
    HeteroscedasticRFFMechanisms,
    LinearMechanisms,
    Mechanisms,
    RFFMechanisms,
)
from scm_gen.noise import NoiseModel
from scm_gen.scm import SCM


@dataclass(frozen=True)
class Preset:
    """Everything random about an SCM family: graphs, noise and the ranges of the mechanism parameters."""

    name: str
    graphs: tuple[str, ...]  # graph families drawn uniformly
    noise: str  # noise kind of every node
    linear_weight: tuple[float, float]  # |W_ij| ~ U(range), sign +-1 with probability 1/2
    linear_bias: tuple[float, float]  # b_j ~ U(range)
    rff_length_scale: tuple[float, float]  # l_j ~ U(range)
    rff_output_scale: tuple[float, float]  # o_j ~ U(range)
    rff_bias: tuple[float, float]  # b_j ~ U(range)
    noise_scale: tuple[float, float] = (0.2, 2.0)  # per-node noise scale ~ U(range)
    edges_per_node: tuple[int, ...] = (1, 2, 3)  # drawn for er / sf_in / sf_out
    sbm_edges_per_node: int = 2

    def to_dict(self) -> dict[str, Any]:
        return {
            key: list(value) if isinstance(value, tuple) else value for key, value in asdict(self).items()
        }


# The paper gives no bias range for P_OUT; we keep P_IN's U(-3, 3).
PRESETS: dict[str, Preset] = {
    "in": Preset(
        name="in",
        graphs=("er", "sf_in", "sf_out"),
        noise="gaussian",
        linear_weight=(1.0, 3.0),
        linear_bias=(-3.0, 3.0),
        rff_length_scale=(7.0, 10.0),
        rff_output_scale=(10.0, 20.0),
        rff_bias=(-3.0, 3.0),
    ),
    "out": Preset(
        name="out",
        graphs=("ws", "sbm"),
        noise="laplace",
        linear_weight=(0.5, 4.0),
        linear_bias=(-3.0, 3.0),
        rff_length_scale=(5.0, 12.0),
        rff_output_scale=(8.0, 22.0),
        rff_bias=(-3.0, 3.0),
    ),
}


def sample_scm(
    preset: str,
    mechanism: str,
    num_nodes: int,
    *,
    rng: np.random.Generator,
    graph: Any = None,
) -> SCM:
    """A random SCM of `preset` ("in" or "out") with `mechanism` ("linear", "rff", "rff_hetero").

    `graph=None` draws one of the preset's graph families; a family name from `GRAPH_KINDS` fixes the family
    (density drawn as in the presets); an adjacency matrix or `networkx.DiGraph` is used as given.
    """
    check_choice("preset", preset, PRESETS)
    check_choice("mechanism", mechanism, MECHANISM_KINDS)
    num_nodes = check_int("num_nodes", num_nodes, minimum=1)
    if not isinstance(rng, np.random.Generator):
        raise ValueError(f"rng must be a numpy.random.Generator, got {type(rng).__name__}")
    config = PRESETS[preset]
    metadata: dict[str, Any] = {"preset": preset, "mechanism": mechanism, "noise": config.noise}

    if graph is None or isinstance(graph, str):
        kind = config.graphs[rng.integers(len(config.graphs))] if graph is None else graph
        check_choice("graph", kind, GRAPH_KINDS)
        edges = _draw_edges_per_node(config, kind, num_nodes, rng)
        adjacency = sample_graph(kind, num_nodes, edges_per_node=edges, rng=rng)
        metadata.update(graph=kind, edges_per_node=edges)
    else:
        adjacency = validate_adjacency(graph, name="graph")
        if adjacency.shape[0] != num_nodes:
            raise ValueError(
                f"graph has {adjacency.shape[0]} nodes but num_nodes={num_nodes}; they must agree"
            )
        metadata.update(graph="user")

    mechanisms = _sample_mechanisms(config, mechanism, adjacency, rng)
    noise = NoiseModel.sample(config.noise, num_nodes, rng, scale_range=config.noise_scale)
    return SCM(adjacency, mechanisms, noise, metadata=metadata)


def _draw_edges_per_node(config: Preset, kind: str, num_nodes: int, rng: np.random.Generator) -> float:
    """The preset's density for `kind`, clipped to what `num_nodes` nodes allow."""
    if kind in ("ws", "rgg"):
        return 0
    wanted = (
        config.sbm_edges_per_node
        if kind == "sbm"
        else config.edges_per_node[rng.integers(len(config.edges_per_node))]
    )
    limit = max_edges_per_node(kind, num_nodes)
    if kind in ("sf_in", "sf_out"):
        return int(min(wanted, limit))
    return min(float(wanted), limit)


def _sample_mechanisms(
    config: Preset, mechanism: str, adjacency: np.ndarray, rng: np.random.Generator
) -> Mechanisms:
    if mechanism == "linear":
        return LinearMechanisms.sample(
            adjacency, rng, weight_range=config.linear_weight, bias_range=config.linear_bias
        )
    family = RFFMechanisms if mechanism == "rff" else HeteroscedasticRFFMechanisms
    return family.sample(
        adjacency,
        rng,
        length_scale_range=config.rff_length_scale,
        output_scale_range=config.rff_output_scale,
        bias_range=config.rff_bias,
    )
