"""``CondFiP.bootstrap``: each resample is an inference on rows drawn with replacement; results, intervals, errors."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

import scm_gen
from condfip import BootstrapResult, CondFiP
from condfip.model import CondFiPConfig, CondFiPModel

sys.path.insert(0, str(Path(__file__).parent))
from rounding import assert_close, network_operations  # noqa: E402

TINY = CondFiPConfig(
    dim=16, num_heads=2, mlp_dim=32, encoder_pairs=1, embedding_pairs=1, decoder_blocks=2, num_anchor_rows=32
)


@pytest.fixture(scope="module")
def setup():
    generator = torch.Generator().manual_seed(1)
    with torch.random.fork_rng():
        torch.manual_seed(1)
        network = CondFiPModel(TINY)
    with torch.no_grad():  # every parameter perturbed: the default init zeroes gates
        for parameter in network.parameters():
            parameter.add_(0.3 * torch.randn(parameter.shape, generator=generator))
    rng = np.random.default_rng(3)
    scm = scm_gen.sample_scm("in", "rff", 5, rng=rng, graph="er")
    names = ["a", "b", "c", "d", "e"]
    table = pd.DataFrame(scm.sample(80, rng)[0], columns=names)
    query = pd.DataFrame(scm.sample(10, rng)[0], columns=names)
    return CondFiP(network, device="cpu"), table, scm.adjacency, query


def mean_prediction(query):
    return lambda scm: scm.predict(query).to_numpy().mean()


def test_with_reinfer_each_resample_is_an_inference_on_resampled_rows(setup):
    model, table, adjacency, query = setup
    result = model.bootstrap(
        table, adjacency, mean_prediction(query), num_bootstraps=5, seed=11, reinfer=True
    )
    assert isinstance(result, BootstrapResult) and result.samples.shape == (5,)
    assert result.estimate == pytest.approx(mean_prediction(query)(model.infer(table, adjacency)), rel=1e-12)
    # the draws pick positions in the rows' canonical order (the same rows in any order, the same resamples)
    order = model.infer(table, adjacency).row_order
    rows = order[np.random.default_rng(11).integers(0, len(table), size=(5, len(table)))]
    for b in (0, 4):
        again = model.infer(table.iloc[rows[b]].reset_index(drop=True), adjacency)
        assert result.samples[b] == pytest.approx(mean_prediction(query)(again), rel=1e-9)
    assert np.unique(result.samples).size == 5  # the resamples differ


def test_by_default_each_resample_refits_the_adapted_weights_on_its_rows(setup):
    """A resample holds exactly the drawn rows, and its F_hat is the full fit's adaptation refitted on them:
    with every row drawn once it is the full fit's F_hat; otherwise it differs from it and from the others."""
    model, table, adjacency, query = setup
    order = model.infer(table, adjacency).row_order
    rows = order[np.random.default_rng(11).integers(0, len(table), size=(4, len(table)))]
    drawn = model.bootstrap(table, adjacency, lambda scm: scm.data.to_numpy(), num_bootstraps=4, seed=11)
    for b in range(4):
        np.testing.assert_array_equal(drawn.samples[b], table.to_numpy()[rows[b]])
    full = model.infer(table, adjacency)
    refit = full._runner.weighted_refit(full._standard_context())
    once = full._runner.with_adaptation(refit(torch.ones(len(table), dtype=torch.float64)))
    same = full._refitted(np.arange(len(table)), once)
    # two float64 solves of one system, its moments summed in another order; the system's condition number is
    # at most about 1e10 (the fit's relative jitter bounds it), which multiplies the rounding of its moments
    assert_close(
        same.predict(query).to_numpy(), full.predict(query).to_numpy(), dtype=np.float64, operations=10**10
    )
    result = model.bootstrap(table, adjacency, mean_prediction(query), num_bootstraps=4, seed=11)
    assert np.unique(result.samples).size == 4 and not np.isclose(result.samples, result.estimate).any()


def test_same_seed_same_samples_in_batches_or_not(setup):
    model, table, adjacency, query = setup
    first = model.bootstrap(table, adjacency, mean_prediction(query), num_bootstraps=6, seed=2)
    batched = model.bootstrap(
        table, adjacency, mean_prediction(query), num_bootstraps=6, seed=2, batch_size=4
    )
    # padded batches and one dataset at a time: the same float32 network on other shapes
    operations = network_operations(dim=16, mlp_dim=32, rows=32, nodes=table.shape[1], blocks=2 * 2 + 2)
    assert_close(batched.samples, first.samples, dtype=torch.float32, operations=operations, what="samples")
    other = model.bootstrap(table, adjacency, mean_prediction(query), num_bootstraps=6, seed=3)
    assert not np.allclose(other.samples, first.samples)


def test_series_statistics_keep_their_labels_and_intervals_are_percentiles(setup):
    model, table, adjacency, _ = setup
    result = model.bootstrap(
        table, adjacency, lambda scm: scm.sample(200, seed=0).mean(), num_bootstraps=8, seed=0
    )
    assert isinstance(result.estimate, pd.Series) and list(result.estimate.index) == ["a", "b", "c", "d", "e"]
    assert result.samples.shape == (8, 5)
    lower, upper = result.interval(0.8)
    assert list(lower.index) == list(upper.index) == ["a", "b", "c", "d", "e"]
    np.testing.assert_allclose(lower.to_numpy(), np.quantile(result.samples, 0.1, axis=0))
    np.testing.assert_allclose(upper.to_numpy(), np.quantile(result.samples, 0.9, axis=0))
    assert (lower <= upper).all()
    np.testing.assert_allclose(result.standard_error.to_numpy(), result.samples.std(axis=0, ddof=1))


def test_an_inferred_graph_is_inferred_once_from_all_rows(setup):
    model, table, _, _ = setup
    full = model.infer(table, "infer")
    edges = float(full.adjacency.sum())
    result = model.bootstrap(table, "infer", lambda scm: scm.adjacency.sum(), num_bootstraps=3, seed=0)
    assert result.estimate == edges
    np.testing.assert_array_equal(result.samples, edges)


def test_bad_arguments(setup):
    model, table, adjacency, query = setup
    with pytest.raises(ValueError, match="num_bootstraps must be an int >= 2, got 1"):
        model.bootstrap(table, adjacency, mean_prediction(query), num_bootstraps=1)
    with pytest.raises(ValueError, match="statistic must be a callable"):
        model.bootstrap(table, adjacency, 3.0)
    with pytest.raises(ValueError, match="must give a number, an array or a Series"):
        model.bootstrap(table, adjacency, lambda scm: {"a": 1}, num_bootstraps=2)
    with pytest.raises(ValueError, match="must give finite numbers"):
        model.bootstrap(table, adjacency, lambda scm: float("nan"), num_bootstraps=2)
    calls = iter(range(100))
    with pytest.raises(ValueError, match=r"returned shape \(2,\) on a resample and \(\) on all rows"):
        model.bootstrap(
            table, adjacency, lambda scm: 1.0 if next(calls) == 0 else [1.0, 2.0], num_bootstraps=2
        )
    rare = table.assign(
        e=np.where(np.arange(len(table)) == 0, 1.0, 0.0)
    )  # one row differs: resamples miss it
    with pytest.raises(ValueError, match="a resample of the rows cannot be inferred: .*'e'.* constant"):
        model.bootstrap(rare, adjacency, mean_prediction(query), num_bootstraps=20, seed=0, reinfer=True)
    # a refit keeps the standardization of all rows: a resample without the rare row is still a fit
    refitted = model.bootstrap(rare, adjacency, mean_prediction(query), num_bootstraps=20, seed=0)
    assert np.isfinite(refitted.samples).all()
    with pytest.raises(ValueError, match="reinfer must be True or False"):
        model.bootstrap(table, adjacency, mean_prediction(query), num_bootstraps=2, reinfer="yes")
    result = model.bootstrap(table, adjacency, mean_prediction(query), num_bootstraps=2)
    for level in (0.0, 1.0, 1.5, True):
        with pytest.raises(ValueError, match="level must be a number strictly between 0 and 1"):
            result.interval(level)


def test_interval_covers_the_effect_of_a_linear_scm():
    """a -> b -> c, linear-Gaussian: the effect of do(a = 1) against do(a = 0) on c is the product of the two
    coefficients. With 300 rows the adapted path is a least-squares fit of each node on its parents, and the
    bootstrap interval of the effect (from the rows' own noise) holds the truth and is not vacuous."""
    rng = np.random.default_rng(5)
    a = rng.normal(size=300)
    b = 0.8 * a + 0.5 * rng.normal(size=300)
    c = -1.5 * b + 0.5 * rng.normal(size=300)
    table = pd.DataFrame({"a": a, "b": b, "c": c})
    truth = 0.8 * -1.5
    generator = torch.Generator().manual_seed(4)
    with torch.random.fork_rng():
        torch.manual_seed(4)
        network = CondFiPModel(TINY)
    with torch.no_grad():
        for parameter in network.parameters():
            parameter.add_(0.3 * torch.randn(parameter.shape, generator=generator))
    model = CondFiP(network, device="cpu")

    def effect(scm):
        return scm.average_causal_effect("c", {"a": 1.0}, {"a": 0.0}, data=scm.data)

    result = model.bootstrap(table, [("a", "b"), ("b", "c")], effect, num_bootstraps=40, seed=0)
    lower, upper = result.interval(0.95)
    assert lower <= truth <= upper, (lower, truth, upper)
    assert lower <= result.estimate <= upper
    # sampling error of a product of two least-squares slopes on 300 rows: a few hundredths
    assert 0.01 < result.standard_error < 0.2 and upper - lower < 0.5


def test_progress_bar_only_when_asked_or_on_a_terminal(setup, capsys):
    model, table, adjacency, query = setup
    model.bootstrap(table, adjacency, mean_prediction(query), num_bootstraps=3, seed=0)
    assert capsys.readouterr().err == ""  # stderr is not a terminal here
    model.bootstrap(table, adjacency, mean_prediction(query), num_bootstraps=3, seed=0, progress=True)
    assert "bootstrap" in capsys.readouterr().err
    with pytest.raises(ValueError, match="progress must be True, False or None"):
        model.bootstrap(table, adjacency, mean_prediction(query), num_bootstraps=3, progress="yes")
    model.infer_batch([(table, adjacency)] * 3)
    assert capsys.readouterr().err == ""
    model.infer_batch([(table, adjacency)] * 3, progress=True)
    assert "infer_batch" in capsys.readouterr().err


def test_series_statistics_are_matched_by_label_whatever_their_order(setup):
    model, table, adjacency, _ = setup
    ordered = model.bootstrap(
        table, adjacency, lambda scm: scm.sample(200, seed=0).mean(), num_bootstraps=4, seed=1
    )
    calls = iter(range(100))

    def shuffled(scm):  # the same statistic, its labels in another order on every resample
        mean = scm.sample(200, seed=0).mean()
        return mean if next(calls) == 0 else mean.iloc[::-1]

    result = model.bootstrap(table, adjacency, shuffled, num_bootstraps=4, seed=1)
    np.testing.assert_array_equal(result.samples, ordered.samples)
    pd.testing.assert_series_equal(result.interval()[0], ordered.interval()[0])
    fewer = iter(range(100))  # all five labels on all rows, two on the resamples
    with pytest.raises(
        ValueError, match=r"labelled \['a', 'b', 'c', 'd', 'e'\] on all rows but \['a', 'b'\]"
    ):
        model.bootstrap(
            table,
            adjacency,
            lambda scm: scm.data.mean().iloc[: 5 if next(fewer) == 0 else 2],
            num_bootstraps=2,
        )
    with pytest.raises(ValueError, match="repeated labels"):
        model.bootstrap(
            table, adjacency, lambda scm: pd.Series([1.0, 2.0], index=["x", "x"]), num_bootstraps=2
        )


def test_resamples_that_cannot_fit_in_memory_are_refused_before_drawing(setup, monkeypatch):
    from condfip.io import memory

    model, table, adjacency, _ = setup
    monkeypatch.setattr(memory, "physical_memory", lambda: 2**30)  # 1 GiB
    asked = []  # the statistic is first asked after the check: nothing of the resamples exists before it
    with pytest.raises(ValueError, match=r"drawing 10,000,000 resamples of 80 rows needs about 6\.0 GiB"):
        model.bootstrap(table, adjacency, lambda scm: asked.append(scm) or 1.0, num_bootstraps=10_000_000)
    assert not asked


def test_a_resample_that_cannot_be_inferred_is_named_as_such(setup):
    model, table, adjacency, query = setup
    with pytest.warns(UserWarning, match="too few to adapt"):
        with pytest.raises(ValueError) as refused:
            model.bootstrap(table.iloc[:2], adjacency, lambda scm: 1.0, num_bootstraps=3, seed=0)
    assert str(refused.value).startswith("a resample of the rows cannot be inferred: data columns")
