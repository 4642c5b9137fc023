import networkx as nx
import numpy as np
import pytest

from scm_gen.csuite import CSUITE_NAMES, csuite_scm, make_csuite_dataset

EXPECTED_EDGES = {
    "lingauss": {(0, 1)},
    "linexp": {(0, 1)},
    "nonlingauss": {(0, 1)},
    "nonlin_simpson": {(0, 1), (0, 2), (1, 2), (2, 3)},
    "symprod_simpson": {(0, 1), (0, 2), (1, 2), (0, 3)},
    "large_backdoor": {(0, 1), (0, 2), (1, 3), (2, 4), (3, 5), (4, 6), (5, 7), (6, 8), (7, 8)},
    "weak_arrow": {(0, 1), (0, 2), (1, 3), (2, 4), (3, 5), (4, 6), (5, 7)} | {(i, 8) for i in range(8)},
}
EXPECTED_EDGES["large_backdoor_gm"] = EXPECTED_EDGES["large_backdoor"]
EXPECTED_EDGES["weak_arrow_gm"] = EXPECTED_EDGES["weak_arrow"]


@pytest.mark.parametrize("name", CSUITE_NAMES)
def test_graph_and_exact_additive_noise(name):
    scm = csuite_scm(name)
    assert {tuple(map(int, edge)) for edge in np.argwhere(scm.adjacency)} == EXPECTED_EDGES[name]
    assert nx.is_directed_acyclic_graph(nx.from_numpy_array(scm.adjacency, create_using=nx.DiGraph))
    x, noise = scm.sample(2000, np.random.default_rng(0))
    assert np.all(np.isfinite(x))
    np.testing.assert_array_equal(x, scm.mechanisms(x) + noise)
    np.testing.assert_allclose(scm.abduct(x), noise, atol=1e-12)
    assert 0.2 < x.std(axis=0).min() and x.std(axis=0).max() < 3  # every variable on a unit-ish scale


def test_mixture_variants_swap_only_the_noise():
    for base in ("large_backdoor", "weak_arrow"):
        plain, mixture = csuite_scm(base), csuite_scm(f"{base}_gm")
        assert mixture.noise_model.kinds == ("gaussian_mixture",) * 9
        np.testing.assert_array_equal(mixture.noise_model.scales, plain.noise_model.scales)
        x = np.random.default_rng(1).normal(size=(50, 9))
        np.testing.assert_array_equal(mixture.mechanisms(x), plain.mechanisms(x))


def test_nonlin_simpson_shows_the_paradox():
    # The observed slope of x2 on x1 is negative; the causal effect of x1 on x2 is positive.
    scm = csuite_scm("nonlin_simpson")
    rng = np.random.default_rng(2)
    x, _ = scm.sample(20_000, rng)
    assert np.corrcoef(x[:, 1], x[:, 2])[0, 1] < -0.3
    high, _ = scm.sample(20_000, rng, {1: 1.0})
    low, _ = scm.sample(20_000, rng, {1: -0.5})
    assert high[:, 2].mean() - low[:, 2].mean() > 0.5


def test_nonlingauss_has_no_linear_correlation():
    x, _ = csuite_scm("nonlingauss").sample(50_000, np.random.default_rng(3))
    assert abs(np.corrcoef(x[:, 0], x[:, 1])[0, 1]) < 0.02


def test_make_csuite_dataset_is_reproducible_and_labelled():
    first = make_csuite_dataset(
        "weak_arrow", num_context=50, num_query=30, num_interventional=20, seed=3, index=4
    )
    again = make_csuite_dataset(
        "weak_arrow", num_context=50, num_query=30, num_interventional=20, seed=3, index=4
    )
    np.testing.assert_array_equal(first.data, again.data)
    np.testing.assert_array_equal(first.counterfactual_data, again.counterfactual_data)
    assert first.data.shape == (80, 9) and first.interventional_data.shape == (20, 9)
    assert first.metadata["csuite"] == "weak_arrow" and first.metadata["preset"] == "csuite"
    assert first.metadata["seed"] == 3 and first.metadata["index"] == 4


def test_unknown_csuite_name_is_rejected():
    with pytest.raises(ValueError, match="name='sachs'"):
        csuite_scm("sachs")
