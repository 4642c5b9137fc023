"""The benchmark presets P_IN and P_OUT (docs/ARCHITECTURE.md, "Data families") and `sample_scm`."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from scm_gen._checks import check_choice, check_int
from scm_gen.calibrated import HETERO_SUFFIX, CalibratedMechanisms
from scm_gen.graphs import GRAPH_KINDS, max_edges_per_node, sample_graph, validate_adjacency
from scm_gen.limits import MAX_NODES
from scm_gen.mechanisms import (
    MECHANISM_KINDS,
    NODE_FAMILIES,
    HeteroscedasticRFFMechanisms,
    LinearMechanisms,
    Mechanisms,
    RFFMechanisms,
)
from scm_gen.node_functions import (
    FourierFunction,
    LinearFunction,
    MLPFunction,
    NodeFunction,
    PolynomialFunction,
    ProductFunction,
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
    # Calibrated families (scm_gen.calibrated), per non-root node: the signal's standard deviation o_j and
    # mean b_j, then the parameters of each family's random function (scm_gen.node_functions).
    signal_scale: tuple[float, float] = (1.0, 8.0)
    signal_bias: tuple[float, float] = (-3.0, 3.0)
    nn_hidden: tuple[int, int] = (8, 32)  # hidden units, inclusive
    nn_gain: tuple[float, float] = (1.0, 3.0)
    polynomial_degree: tuple[int, int] = (2, 3)  # highest degree, inclusive
    multiplicative_exponent: tuple[float, float] = (0.5, 1.0)  # |a_i| sqrt(p) ~ U(range)
    # length scale of the rff nodes of mixed SCMs (their inputs are standardized)
    calibrated_rff_length_scale: tuple[float, float] = (1.0, 2.0)
    mixed_families: tuple[str, ...] = (
        "linear",
        "rff",
        "nn_tanh",
        "nn_sigmoid",
        "nn_relu",
        "polynomial",
        "multiplicative",
    )

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
        signal_scale=(0.5, 10.0),
        nn_gain=(0.5, 4.0),
        multiplicative_exponent=(0.3, 1.5),
        calibrated_rff_length_scale=(0.7, 2.5),
    ),
}
CALIBRATION_ROWS = 512  # reference rows on which calibrated mechanisms measure their statistics
_RAW_KINDS = ("linear", "rff", "rff_hetero")  # the paper's families: parameters act on raw values


def sample_scm(
    preset: str,
    mechanism: str,
    num_nodes: int,
    *,
    rng: np.random.Generator,
    graph: Any = None,
    families: Sequence[str] | None = None,
) -> SCM:
    """A random SCM of `preset` ("in" or "out") with `mechanism` (one of `MECHANISM_KINDS`).

    `graph=None` draws one of the preset's graph families; a family name from `GRAPH_KINDS` fixes the family
    (density drawn as in the presets); an adjacency matrix or `networkx.DiGraph` is used as given.
    `families` (only with `mechanism="mixed"`, default the preset's `mixed_families`) lists what each node
    draws its mechanism from, uniformly; `metadata["node_families"]` records the draws.
    """
    check_choice("preset", preset, PRESETS)
    check_choice("mechanism", mechanism, MECHANISM_KINDS)
    num_nodes = check_int("num_nodes", num_nodes, minimum=1, maximum=MAX_NODES)
    if not isinstance(rng, np.random.Generator):
        raise ValueError(f"rng must be a numpy.random.Generator, got {type(rng).__name__}")
    config = PRESETS[preset]
    families = _check_families(mechanism, families, config)
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

    if mechanism in _RAW_KINDS:
        mechanisms = _sample_mechanisms(config, mechanism, adjacency, rng)
    else:
        mechanisms = _sample_calibrated(config, mechanism, families, adjacency, rng)
    noise = NoiseModel.sample(config.noise, num_nodes, rng, scale_range=config.noise_scale)
    if isinstance(mechanisms, CalibratedMechanisms):  # reference rows drawn after everything else
        mechanisms.calibrate(noise.draw(CALIBRATION_ROWS, rng))
        if mechanism == "mixed":
            metadata["node_families"] = list(mechanisms.families)
    return SCM(adjacency, mechanisms, noise, metadata=metadata)


def _check_families(mechanism: str, families: Sequence[str] | None, config: Preset) -> tuple[str, ...]:
    if mechanism != "mixed":
        if families is not None:
            raise ValueError(f"families={families!r} is only for mechanism='mixed', not {mechanism!r}")
        return ()
    if families is None:
        return config.mixed_families
    if isinstance(families, str) or not families:
        raise ValueError(f"families={families!r} must be a non-empty list of names from {NODE_FAMILIES}")
    for family in families:
        check_choice("family", family, NODE_FAMILIES)
    return tuple(families)


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


def _sample_function(config: Preset, family: str, num_parents: int, rng: np.random.Generator) -> NodeFunction:
    """One random node function of `family` (without the `_hetero` suffix) over `num_parents >= 1` parents."""
    if family.startswith("nn_"):
        return MLPFunction.sample(
            family[3:], num_parents, rng, hidden_range=config.nn_hidden, gain_range=config.nn_gain
        )
    if family == "polynomial":
        return PolynomialFunction.sample(num_parents, rng, degree_range=config.polynomial_degree)
    if family == "multiplicative":
        return ProductFunction.sample(num_parents, rng, exponent_range=config.multiplicative_exponent)
    if family == "linear":
        return LinearFunction.sample(num_parents, rng, weight_range=config.linear_weight)
    return FourierFunction.sample(num_parents, rng, length_scale_range=config.calibrated_rff_length_scale)


def _sample_calibrated(
    config: Preset,
    mechanism: str,
    families: tuple[str, ...],
    adjacency: np.ndarray,
    rng: np.random.Generator,
) -> CalibratedMechanisms:
    """Uncalibrated mechanisms of a calibrated kind: node families, functions, signal scales and biases."""
    num_nodes = adjacency.shape[0]
    if mechanism == "mixed":
        node_families = [families[i] for i in rng.integers(len(families), size=num_nodes)]
    else:
        node_families = [mechanism] * num_nodes
    num_parents = (np.asarray(adjacency) != 0).sum(axis=0)  # [d]
    functions: list[NodeFunction | None] = []
    scale_functions: list[NodeFunction | None] = []
    for node, family in enumerate(node_families):
        count = int(num_parents[node])
        base = family.removesuffix(HETERO_SUFFIX)
        functions.append(_sample_function(config, base, count, rng) if count else None)
        hetero = count > 0 and family.endswith(HETERO_SUFFIX)
        scale_functions.append(_sample_function(config, base, count, rng) if hetero else None)
    return CalibratedMechanisms(
        adjacency,
        kind=mechanism,
        families=node_families,
        functions=functions,
        scale_functions=scale_functions,
        output_scales=rng.uniform(*config.signal_scale, size=num_nodes),
        bias=rng.uniform(*config.signal_bias, size=num_nodes),
    )
