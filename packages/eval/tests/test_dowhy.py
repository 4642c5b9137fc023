import sys

import numpy as np
import pytest

from condfip_eval.methods.dowhy_gcm import DoWhyGCM, dowhy_available, seeded_global_random
from condfip_eval.metrics import rmse


def test_dowhy_quality_is_checked():
    with pytest.raises(ValueError, match="quality must be one of GOOD, BETTER, BEST"):
        DoWhyGCM(quality="SUPER")


def test_missing_dowhy_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "dowhy", None)  # makes "import dowhy" fail
    assert not dowhy_available()
    with pytest.raises(ImportError, match=r"pip install dowhy \(or pip install './packages/eval\[dowhy\]'"):
        DoWhyGCM()


@pytest.mark.skipif(not dowhy_available(), reason="optional extra dowhy (tested in its own venv)")
def test_dowhy_gcm_round_trip_interventions_and_counterfactuals(toy):
    context, _ = toy.sample(200, nonlinear=False, seed=0)
    query, true_noise = toy.sample(50, nonlinear=False, seed=1)
    fitted = DoWhyGCM().fit(context, toy.ADJACENCY)
    noise = fitted.noise(query)
    assert rmse(noise, true_noise) < 0.15
    np.testing.assert_allclose(noise[:, 3], query[:, 3] - context[:, 3].mean())  # a root: centred value
    np.testing.assert_allclose(fitted.generate(noise), query, atol=1e-8)
    values = np.linspace(0.0, 1.0, 50)
    counterfactual = fitted.counterfactual(query, {1: values})
    np.testing.assert_array_equal(counterfactual[:, 1], values)
    np.testing.assert_allclose(counterfactual[:, [0, 3]], query[:, [0, 3]], atol=1e-8)
    truth = toy.generate(true_noise, nonlinear=False, interventions={0: 0.5})
    assert rmse(fitted.generate(true_noise, {0: 0.5}), truth) < 0.15
    assert fitted.fit_seconds > 0 and fitted.sample_seconds > 0


@pytest.mark.skipif(not dowhy_available(), reason="optional extra dowhy (tested in its own venv)")
def test_dowhy_gcm_fits_are_reproducible_and_leave_the_global_random_state(toy):
    """DoWhy's model selection draws from numpy's global generator: a fit seeds it from its rows, so two fits of the
    same rows agree bit for bit, and the caller's global state is restored."""
    context, _ = toy.sample(200, nonlinear=True, seed=0)
    query, _ = toy.sample(50, nonlinear=True, seed=1)
    np.random.seed(123)  # noqa: NPY002
    before = np.random.get_state()[1].copy()  # noqa: NPY002
    first = DoWhyGCM().fit(context, toy.ADJACENCY).noise(query)
    assert np.array_equal(np.random.get_state()[1], before)  # noqa: NPY002
    np.random.rand(7)  # another state: the fit must not depend on it  # noqa: NPY002
    np.testing.assert_array_equal(DoWhyGCM().fit(context, toy.ADJACENCY).noise(query), first)


def test_the_seeded_global_random_state_is_restored():
    np.random.seed(5)  # noqa: NPY002
    expected = np.random.rand(3)  # noqa: NPY002
    np.random.seed(5)  # noqa: NPY002
    with seeded_global_random(99):
        inside = np.random.rand(3)  # noqa: NPY002
    np.testing.assert_array_equal(np.random.rand(3), expected)  # noqa: NPY002
    np.random.seed(99)  # noqa: NPY002
    np.testing.assert_array_equal(inside, np.random.rand(3))  # noqa: NPY002


@pytest.mark.skipif(not dowhy_available(), reason="optional extra dowhy (tested in its own venv)")
def test_dowhy_integer_context_gives_continuous_noise_models(toy):
    """DoWhy would pick a discrete noise model for integer-valued columns, then refuse non-integer rows."""
    context, _ = toy.sample(60, nonlinear=False, seed=0)
    query, _ = toy.sample(10, nonlinear=False, seed=1)
    fitted = DoWhyGCM().fit(np.round(context * 10).astype(int), toy.ADJACENCY)
    np.testing.assert_allclose(fitted.generate(fitted.noise(query)), query, atol=1e-8)


@pytest.mark.skipif(not dowhy_available(), reason="optional extra dowhy (tested in its own venv)")
def test_dowhy_needs_enough_rows_and_answers_no_rows_with_empty_results(toy):
    context, _ = toy.sample(7, nonlinear=False, seed=0)
    with pytest.raises(ValueError, match="context must hold at least 5 rows for method 'dowhy'; got 4"):
        DoWhyGCM().fit(context[:4], toy.ADJACENCY)
    with pytest.raises(ValueError, match="context must hold at least 7 rows for method 'dowhy'; got 6"):
        DoWhyGCM(quality="BETTER").fit(context[:6], toy.ADJACENCY)
    fitted = DoWhyGCM().fit(context[:5], toy.ADJACENCY)
    empty = np.zeros((0, 4))
    assert fitted.noise(empty).shape == (0, 4)
    assert fitted.generate(empty, {1: 2.0}).shape == (0, 4)
    assert fitted.counterfactual(empty, {1: 2.0}).shape == (0, 4)
