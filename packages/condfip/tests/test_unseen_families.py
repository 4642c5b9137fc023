"""The generator of ``benchmarks/unseen_families.py``: its graphs, noises and mechanisms are what its tables say."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import networkx as nx
import numpy as np
import pytest

BENCHMARK = Path(__file__).resolve().parents[1] / "benchmarks" / "unseen_families.py"


@pytest.fixture(scope="module")
def unseen():
    spec = importlib.util.spec_from_file_location("unseen_families", BENCHMARK)
    module = importlib.util.module_from_spec(spec)
    sys.modules["unseen_families"] = module
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("num_nodes", [5, 12])
def test_graph_kinds_are_dags_of_their_shape(unseen, num_nodes):
    for seed in range(5):
        rng = np.random.default_rng(seed)
        chain = unseen.draw_graph("chain", num_nodes, 1.5, rng)
        order = list(nx.topological_sort(nx.DiGraph(chain)))
        assert all(chain[a, b] for a, b in zip(order, order[1:], strict=False))  # one path through every node
        assert chain.sum(axis=0).max() <= 2 and chain.sum() <= 2 * num_nodes - 3

        hubs = unseen.draw_graph("scale-free", num_nodes, 1.5, rng)
        assert nx.is_directed_acyclic_graph(nx.DiGraph(hubs))
        parents = hubs.sum(axis=0)
        assert (parents == 0).sum() == 1 and parents.max() <= 2  # one root, every other node reads 1 or 2
        assert nx.is_weakly_connected(nx.DiGraph(hubs))

        fan_in = unseen.draw_graph("fan-in", num_nodes, 1.5, rng)
        assert nx.is_directed_acyclic_graph(nx.DiGraph(fan_in))
        assert sorted(fan_in.sum(axis=0).tolist()) == [0] * (num_nodes - 2) + [2, num_nodes - 2]
        assert fan_in.sum() == num_nodes


def test_erdos_renyi_graph_is_the_draw_the_published_tables_used(unseen):
    """The ER graph draws from the generator exactly as before the other kinds existed, so the committed tables'
    SCMs are the same."""
    num_nodes, expected = 10, 1.5
    for seed in range(5):
        rng = np.random.default_rng(seed)
        probability = min(1.0, expected * 2.0 / (num_nodes - 1))
        upper = np.triu(rng.random((num_nodes, num_nodes)) < probability, k=1)
        order = rng.permutation(num_nodes)
        before = np.zeros((num_nodes, num_nodes), dtype=np.int64)
        before[np.ix_(order, order)] = upper
        np.testing.assert_array_equal(
            unseen.draw_graph("er", num_nodes, expected, np.random.default_rng(seed)), before
        )


def test_unknown_graph_kind_is_refused(unseen):
    with pytest.raises(ValueError, match="unknown graph kind 'tree'"):
        unseen.draw_graph("tree", 5, 1.5, np.random.default_rng(0))


@pytest.mark.parametrize("family", ["exponential", "lognormal", "bimodal", "gamma"])
def test_new_noises_have_mean_zero_and_unit_variance(unseen, family):
    draws = unseen.draw_noise(family, (400_000,), np.random.default_rng(3))
    n = draws.size
    centred = draws - draws.mean()
    variance = (centred**2).mean()
    # five standard errors of the mean and of the variance (from the sample's fourth moment)
    assert abs(draws.mean()) < 5 * np.sqrt(variance / n)
    assert abs(variance - 1.0) < 5 * np.sqrt(((centred**4).mean() - variance**2) / n)


def test_skewed_noises_are_skewed_and_bimodal_has_two_modes(unseen):
    rng = np.random.default_rng(4)
    for family in ("exponential", "lognormal", "gamma"):
        draws = unseen.draw_noise(family, (100_000,), rng)
        assert ((draws - draws.mean()) ** 3).mean() > 0.5  # a long right tail
    two = unseen.draw_noise("bimodal", (100_000,), rng)
    counts, edges = np.histogram(two, bins=np.linspace(-2.0, 2.0, 9))  # bins of 0.5
    middle = counts[3:5].mean()  # [-0.5, 0.5]
    assert counts[1:3].max() > 1.5 * middle and counts[5:7].max() > 1.5 * middle


@pytest.mark.parametrize("num_parents", [1, 2, 4])
def test_round_two_mechanisms_are_finite_and_not_constant(unseen, num_parents):
    rng = np.random.default_rng(num_parents)
    inputs = np.concatenate([rng.normal(size=(500, num_parents)), np.full((2, num_parents), 6.0)])
    inputs[-1] = -6.0  # far out on both sides
    for family in unseen.ROUND_TWO_MECHANISMS:
        values = unseen.draw_mechanism(family, num_parents, rng)(inputs)
        assert values.shape == (502,), family
        assert np.isfinite(values).all(), family
        assert values[:500].std() > 1e-3, family


@pytest.mark.parametrize("graph", ["er", "chain", "scale-free", "fan-in"])
def test_scm_of_round_two_family_is_additive_and_calibrated(unseen, graph):
    rng = np.random.default_rng(7)
    scm = unseen.UnseenSCM(8, "random-smooth", "bimodal", rng, graph=graph)
    noise = scm.noise(3000, rng)
    data = scm.generate(noise)
    for node in range(8):
        parents = scm.parents[node]
        if not parents.size:
            np.testing.assert_array_equal(data[:, node], noise[:, node])
            continue
        signal = data[:, node] - noise[:, node]  # the scaled mechanism, mean 0 and variance 1 on the pilot
        raw = scm.mechanisms[node](data[:, parents])
        np.testing.assert_allclose(signal, (raw - scm.offset[node]) / scm.scale[node], rtol=0, atol=1e-12)
        assert abs(signal.mean()) < 0.15 and abs(signal.std() - 1.0) < 0.15
