"""CSuite-style hand-written SCMs (after Geffner et al. 2022, "Deep End-to-end Causal Inference").

Each model keeps the graph and the character of the CSuite dataset of the same name (2 to 9 nodes, linear or
nonlinear, Gaussian or skewed / heavy-tailed / bounded noise, Simpson's paradoxes, a long backdoor chain,
many weak arrows), with structural equations written for this package. Every model is an additive noise
model `X_j = f_j(X_pa(j)) + N_j` whose noise columns have their own distribution, so abduction,
interventions and counterfactuals are exact. The `_gm` variants (as in Cond-FiP) replace every node's noise
by a 50/50 Gaussian mixture of the same scale. Node `i` is column `i`; `adjacency[i, j] = 1` for `i -> j`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from scm_gen._checks import check_choice
from scm_gen.benchmark import BenchmarkDataset, check_run_position, dataset_rng, sample_run_dataset
from scm_gen.mechanisms import FunctionalMechanisms
from scm_gen.noise import NoiseModel
from scm_gen.scm import SCM

CSUITE_NAMES = (
    "lingauss",
    "linexp",
    "nonlingauss",
    "nonlin_simpson",
    "symprod_simpson",
    "large_backdoor",
    "weak_arrow",
    "large_backdoor_gm",
    "weak_arrow_gm",
)


def _softplus(x: np.ndarray) -> np.ndarray:
    return np.logaddexp(0.0, x)


def _constant(value: float):
    def root(parents: np.ndarray) -> np.ndarray:
        return np.full(parents.shape[0], value)

    return root


def _linear_in_first(weight: float):
    def child(parents: np.ndarray) -> np.ndarray:
        return weight * parents[:, 0]

    return child


def _bump(parents: np.ndarray) -> np.ndarray:
    # Symmetric in x0: no linear correlation with the parent.
    return 0.5 * (parents[:, 0] ** 2 - 1.0)


def _simpson_treatment(parents: np.ndarray) -> np.ndarray:
    return 1.2 * _softplus(-parents[:, 0]) - 0.8


def _simpson_effect(parents: np.ndarray) -> np.ndarray:
    # parents: x0 (confounder), x1 (treatment). x0 pushes x1 down and x2 up: the confounded slope is negative
    # while the causal effect of x1 on x2 is positive.
    return np.tanh(1.5 * parents[:, 1]) + 1.4 * parents[:, 0] - 0.5


def _simpson_outcome(parents: np.ndarray) -> np.ndarray:
    return 4.0 * np.tanh((parents[:, 0] - 3.0) / 4.0) + 2.5


def _symprod_treatment(parents: np.ndarray) -> np.ndarray:
    return 1.8 * np.tanh(1.5 * parents[:, 0])


def _symprod_effect(parents: np.ndarray) -> np.ndarray:
    return 0.6 * parents[:, 0] * parents[:, 1]  # parents x0, x1: a symmetric product


def _symprod_side(parents: np.ndarray) -> np.ndarray:
    return np.tanh(1.2 * parents[:, 0])


def _softplus_layer(gain: float):
    """A smooth monotone step, `gain * (softplus(x + 1) - 1.3)`."""

    def layer(parents: np.ndarray) -> np.ndarray:
        return gain * (_softplus(parents[:, 0] + 1.0) - 1.3)

    return layer


def _backdoor_treatment(parents: np.ndarray) -> np.ndarray:
    return 1.4 * _softplus(parents[:, 0] + 1.0) - 1.1


def _backdoor_outcome(parents: np.ndarray) -> np.ndarray:
    # parents x6, x7 (treatment)
    return 2.0 - _softplus((parents[:, 1] - 1.2 * parents[:, 0]) / 3.0 + 1.0)


def _weak_outcome(parents: np.ndarray) -> np.ndarray:
    # parents x0..x7: six weak arrows and two stronger ones
    weights = np.array([0.12, 0.12, 0.12, 0.12, 0.12, 0.12, 0.55, 0.75])
    return _softplus(parents @ weights + 1.0) - 2.0


def _edges(num_nodes: int, edges: list[tuple[int, int]]) -> np.ndarray:
    adjacency = np.zeros((num_nodes, num_nodes), dtype=np.int8)
    for parent, child in edges:
        adjacency[parent, child] = 1
    return adjacency


@dataclass(frozen=True)
class _Model:
    adjacency: np.ndarray
    functions: tuple
    noise_kinds: tuple[str, ...]
    noise_scales: tuple[float, ...]


def _chain_edges() -> list[tuple[int, int]]:
    # x0 -> x1, x0 -> x2, x_i -> x_{i+2} for i = 1..5: two parallel chains from x0
    return [(0, 1), (0, 2)] + [(i, i + 2) for i in range(1, 6)]


def _model(name: str) -> _Model:
    if name == "lingauss":
        return _Model(
            _edges(2, [(0, 1)]), (_constant(0.0), _linear_in_first(0.6)), ("gaussian",) * 2, (1.0, 0.8)
        )
    if name == "linexp":
        return _Model(
            _edges(2, [(0, 1)]),
            (_constant(0.0), _linear_in_first(0.6)),
            ("gaussian", "exponential"),
            (1.0, 0.8),
        )
    if name == "nonlingauss":
        return _Model(
            _edges(2, [(0, 1)]), (_constant(0.0), _bump), ("gaussian",) * 2, (1.0, float(np.sqrt(0.5)))
        )
    if name == "nonlin_simpson":
        return _Model(
            _edges(4, [(0, 1), (0, 2), (1, 2), (2, 3)]),
            (_constant(0.0), _simpson_treatment, _simpson_effect, _simpson_outcome),
            ("gaussian", "gaussian", "tanh_gaussian", "laplace"),
            (1.0, 0.2, 0.6, 0.1),
        )
    if name == "symprod_simpson":
        return _Model(
            _edges(4, [(0, 1), (0, 2), (1, 2), (0, 3)]),
            (_constant(0.0), _symprod_treatment, _symprod_effect, _symprod_side),
            ("gaussian", "student_t3", "laplace", "gaussian"),
            (1.0, 0.1, 0.5, 0.3),
        )
    base = name.removesuffix("_gm")
    if base == "large_backdoor":
        adjacency = _edges(9, [*_chain_edges(), (6, 8), (7, 8)])
        functions = (
            _constant(-1.0),
            _softplus_layer(1.5),
            *(_softplus_layer(1.0) for _ in range(2, 7)),
            _backdoor_treatment,
            _backdoor_outcome,
        )
        kinds = ("softplus_gaussian", "gaussian", *("softplus_gaussian",) * 5, "gaussian", "laplace")
        scales = (1.5, 0.25, 1.0, 1.0, 1.0, 1.0, 1.0, 0.3, 0.6)
    elif base == "weak_arrow":
        adjacency = _edges(9, [*_chain_edges(), *((i, 8) for i in range(8))])
        functions = (
            _constant(-1.0),
            _softplus_layer(0.75),
            *(_softplus_layer(1.0) for _ in range(2, 7)),
            _backdoor_treatment,
            _weak_outcome,
        )
        kinds = ("softplus_gaussian", "gaussian", *("softplus_gaussian",) * 5, "gaussian", "laplace")
        scales = (1.5, 0.75, 1.0, 1.0, 1.0, 1.0, 1.0, 0.3, 0.5)
    else:
        check_choice("name", name, CSUITE_NAMES)
        raise AssertionError("unreachable")
    if name.endswith("_gm"):
        kinds = ("gaussian_mixture",) * 9
    return _Model(adjacency, functions, kinds, scales)


def csuite_scm(name: str) -> SCM:
    """The CSuite-style SCM `name` (one of `CSUITE_NAMES`)."""
    check_choice("name", name, CSUITE_NAMES)
    model = _model(name)
    mechanisms = FunctionalMechanisms(model.adjacency, model.functions, name=f"csuite_{name}")
    noise = NoiseModel(kinds=model.noise_kinds, scales=np.array(model.noise_scales))
    metadata = {
        "preset": "csuite",
        "mechanism": f"csuite_{name}",
        "graph": f"csuite_{name}",
        "noise": "/".join(model.noise_kinds),
    }
    return SCM(model.adjacency, mechanisms, noise, metadata=metadata)


def make_csuite_dataset(
    name: str,
    *,
    num_context: int = 400,
    num_query: int = 400,
    num_interventional: int = 400,
    seed: int = 0,
    index: int = 0,
) -> BenchmarkDataset:
    """Dataset `index` of CSuite model `name` in a run seeded `seed` (`SeedSequence(seed, spawn_key=(index,))`).

    One node, drawn uniformly, is intervened on with a value from `U(q10, q90)` of its observational rows.
    """
    scm = csuite_scm(name)
    seed, index = check_run_position(seed, index)
    return sample_run_dataset(
        scm,
        dataset_rng(seed, index),
        seed=seed,
        index=index,
        num_context=num_context,
        num_query=num_query,
        num_interventional=num_interventional,
        labels={"csuite": name},
    )
