"""Property: whatever finite input the API accepts, every answer is finite.

Random tables (columns of scales 1e-200 to 1e200, offsets, heavy tails and outliers), random DAGs, interventions
anywhere in the allowed range (up to its edges), both inference paths, every query. A tiny network with random
weights keeps it fast; its answers are meaningless, but finiteness must hold for any weights.
"""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from condfip import CondFiP, infer_graph
from condfip.core.standardization import STANDARD_LIMIT

sys.path.insert(0, str(Path(__file__).parent))
from test_reliability_inputs import tiny_model  # noqa: E402

NUM_CASES = 40


def random_case(rng: np.random.Generator) -> tuple[pd.DataFrame, np.ndarray]:
    """A table [n, d] of a random SCM on a random DAG, each column then given its own scale and offset."""
    d, n = int(rng.integers(2, 7)), int(rng.integers(12, 90))
    order = rng.permutation(d)
    adjacency = np.zeros((d, d), dtype=np.int8)
    for i in range(d):
        for j in range(i + 1, d):
            adjacency[order[i], order[j]] = rng.random() < 0.45
    values = np.zeros((n, d))
    for node in order:  # topological order
        parents = values[:, adjacency[:, node] == 1]
        noise = rng.standard_cauchy(n) if rng.random() < 0.25 else rng.normal(size=n)
        signal = parents @ rng.normal(size=parents.shape[1]) if parents.size else 0.0
        values[:, node] = (np.tanh(signal) if rng.random() < 0.5 else signal) + noise
    if rng.random() < 0.3:  # an outlier
        values[rng.integers(n), rng.integers(d)] *= 1e6
    scales = 10.0 ** rng.uniform(-200, 200, size=d)
    offsets = scales * rng.uniform(-1e3, 1e3, size=d) * (rng.random(d) < 0.5)
    names = [f"x{j}" for j in range(d)]
    return pd.DataFrame(values * scales + offsets, columns=names), adjacency


def edge_values(rng: np.random.Generator, mean: float, std: float, count: int) -> np.ndarray:
    """Intervention values across the allowed range, its edges included."""
    reach = 0.999 * STANDARD_LIMIT * std
    fractions = np.concatenate([[-1.0, 1.0, 0.0], rng.uniform(-1, 1, count), 10.0 ** rng.uniform(-9, 0, 3)])
    return mean + fractions * reach


def _finite(frame_or_value: object, what: str) -> None:
    array = np.asarray(frame_or_value.to_numpy() if hasattr(frame_or_value, "to_numpy") else frame_or_value)
    assert np.isfinite(array).all(), f"{what}: {int((~np.isfinite(array)).sum())} non-finite values"


@pytest.mark.parametrize("case", range(NUM_CASES))
def test_accepted_inputs_give_finite_answers(case: int) -> None:
    rng = np.random.default_rng([2024, case])
    frame, adjacency = random_case(rng)
    model = CondFiP(tiny_model(case % 4), device="cpu")
    zero_shot = bool(case % 2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # few rows warn about the adapted path; not what is tested here
        scm = model.infer(frame, adjacency, zero_shot=zero_shot)
    columns = list(frame.columns)
    _finite(scm.sample(64, seed=case), "sample")
    for method in ("best", "encoder", "decoder"):
        _finite(scm.noise(method=method), f"noise({method})")
    _finite(scm.predict(frame), "predict")
    _finite(scm.generate(scm.noise(method="decoder")), "generate")
    node = columns[int(rng.integers(len(columns)))]
    target = columns[int(rng.integers(len(columns)))]
    for value in edge_values(rng, float(scm.mean[node]), float(scm.std[node]), 3):
        _finite(scm.interventional_samples({node: value}, n=32, seed=case), f"do({node}={value:.3g})")
        _finite(scm.counterfactual_samples({node: value}, frame), f"counterfactual do({node}={value:.3g})")
        _finite(
            scm.average_causal_effect(target, {node: value}, {}, n=64, seed=case), "average causal effect"
        )
    if case % 6 == 0:
        with warnings.catch_warnings():
            warnings.simplefilter(
                "ignore"
            )  # fewer than 28 rows warn that the graph is unreliable; still finite
            probabilities, dag = infer_graph(frame, model="graph-small")
        _finite(probabilities, "edge probabilities")
        assert set(np.unique(dag)) <= {0, 1}


def test_the_random_cases_are_accepted_and_cover_the_scales() -> None:
    """The property above is not vacuous: every drawn table is accepted, and the scales span 1e-200..1e200."""
    scales = []
    for case in range(NUM_CASES):
        frame, adjacency = random_case(np.random.default_rng([2024, case]))
        model = CondFiP(tiny_model(0), device="cpu")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            scm = model.infer(frame, adjacency, zero_shot=True)  # raises if refused
        scales.extend(np.log10(scm.std.to_numpy()))
    assert min(scales) < -150 and max(scales) > 150
