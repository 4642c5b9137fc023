"""``positive=``: strictly positive columns modelled on the log scale, every answer in the user's units.

The reference is the same inference done by hand: the log of the table inferred without ``positive``, its
answers exponentiated. Both paths give the network the same standardized rows, so they agree to the rounding
of the network (float32 embedding, float64 adapted decoder).
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

import scm_gen
from condfip import CondFiP
from condfip.cli import main
from condfip.model import CondFiPConfig, CondFiPModel

sys.path.insert(0, str(Path(__file__).parent))
from rounding import adapted_round_trip, assert_close, network_operations  # noqa: E402

ROUND_TRIP = adapted_round_trip()  # rounding.adapted_round_trip: the kernel basis' conditioning

TINY = CondFiPConfig(
    dim=16, num_heads=2, mlp_dim=32, encoder_pairs=1, embedding_pairs=1, decoder_blocks=2, num_anchor_rows=32
)
NAMES = ["a", "b", "c", "d", "e"]
# float32 roundings along TINY's deepest path (encoder, embedding, decoder) on 5 nodes
OPERATIONS = network_operations(dim=16, mlp_dim=32, rows=32, nodes=5, blocks=2 * (1 + 1) + 2 + 2)


def same(actual: object, expected: object, what: str) -> None:
    """Equal in exact arithmetic; the two paths may round the network's float32 inputs differently."""
    assert_close(actual, expected, dtype=torch.float32, operations=OPERATIONS, what=what)


def same_relative(actual: object, expected: object, what: str) -> None:
    """Like ``same`` for positive values compared on the log scale (exp turns absolute into relative error)."""
    same(np.log(np.asarray(actual, dtype=np.float64)), np.log(np.asarray(expected, dtype=np.float64)), what)


def tiny_model(seed: int = 0) -> CondFiPModel:
    generator = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = CondFiPModel(TINY)
    with torch.no_grad():  # every parameter perturbed: the default init zeroes gates
        for parameter in model.parameters():
            parameter.add_(0.3 * torch.randn(parameter.shape, generator=generator))
    return model


@pytest.fixture(scope="module")
def setup():
    """A positive SCM: exp of a linear-Gaussian one (a log-normal table), its graph and query rows."""
    rng = np.random.default_rng(8)
    scm = scm_gen.sample_scm("in", "linear", 5, rng=rng, graph="er")
    log_context, _ = scm.sample(120, rng)
    log_query, _ = scm.sample(15, rng)
    scale = 0.5 / log_context.std(axis=0)  # log-normal columns of moderate spread, in (0, inf)
    table = pd.DataFrame(np.exp(log_context * scale), columns=NAMES)
    query = pd.DataFrame(np.exp(log_query * scale), columns=NAMES)
    return CondFiP(tiny_model(), device="cpu"), table, query, scm.adjacency


@pytest.fixture(scope="module")
def pair(setup):
    """The SCM inferred with positive=True and the one inferred from the log table by hand."""
    model, table, _, adjacency = setup
    return model.infer(table, adjacency, positive=True), model.infer(np.log(table), adjacency)


def source_and_child(adjacency: np.ndarray) -> tuple[str, str]:
    sources, targets = np.nonzero(adjacency)
    return NAMES[int(sources[0])], NAMES[int(targets[0])]


def test_samples_interventions_and_counterfactuals_stay_positive(setup, pair):
    _, table, query, adjacency = setup
    positive, _ = pair
    assert positive.positive == NAMES and "positive=5" in repr(positive)
    node, _ = source_and_child(adjacency)
    high = float(table[node].max() * 3)  # beyond the data: a linear model on raw values could go negative
    for frame in (
        positive.sample(3000, seed=0),
        positive.interventional_samples({node: high}, n=3000, seed=1),
        positive.interventional_samples({node: lambda x: x / 100}, n=3000, seed=1),
        positive.counterfactual_samples({node: high}, query),
    ):
        assert (frame.to_numpy() > 0).all()
    sampled = positive.interventional_samples({node: high}, n=10, seed=1)
    np.testing.assert_array_equal(sampled[node].to_numpy(), high)  # the requested value, exactly


def test_noise_then_generate_returns_the_rows(setup, pair):
    _, table, query, _ = setup
    positive, _ = pair
    # log, standardize, abduct; then generate, unstandardize, exp: float64 all the way
    np.testing.assert_allclose(
        positive.generate(positive.noise(method="decoder")).to_numpy(), table, rtol=ROUND_TRIP, atol=0
    )
    np.testing.assert_allclose(
        positive.generate(positive.noise(query, method="decoder")).to_numpy(), query, rtol=ROUND_TRIP, atol=0
    )
    np.testing.assert_allclose(positive.counterfactual_samples({}, query).to_numpy(), query, rtol=ROUND_TRIP)


def test_equals_inferring_the_log_table_by_hand(setup, pair):
    _, table, query, adjacency = setup
    positive, by_hand = pair
    node, child = source_and_child(adjacency)
    value = float(table[node].median())
    log_query = np.log(query)
    same(positive.mean, by_hand.mean, "mean (log scale)")
    same(positive.std, by_hand.std, "std (log scale)")
    same_relative(positive.sample(200, seed=3), np.exp(by_hand.sample(200, seed=3)), "samples")
    same_relative(
        positive.interventional_samples({node: value}, n=200, seed=4),
        np.exp(by_hand.interventional_samples({node: np.log(value)}, n=200, seed=4)),
        "interventional samples",
    )
    same_relative(
        positive.counterfactual_samples({node: value}, query),
        np.exp(by_hand.counterfactual_samples({node: np.log(value)}, log_query)),
        "counterfactuals",
    )
    same_relative(positive.predict(query), np.exp(by_hand.predict(log_query)), "predictions")
    same(positive.noise(query), by_hand.noise(log_query), "noise (log scale)")
    # the effect in the user's units: the difference of the exponentiated arms' means
    effect = positive.average_causal_effect(child, {node: value}, {}, n=500, seed=5)
    arms = (
        np.exp(by_hand.interventional_samples({node: np.log(value)}, n=500, seed=5)[child]).mean(),
        np.exp(by_hand.sample(500, seed=5)[child]).mean(),
    )
    same(effect, arms[0] - arms[1], "average causal effect")
    assert effect != 0.0


def test_a_list_of_columns_logs_only_those(setup):
    model, table, query, adjacency = setup
    chosen = ["b", "d"]
    some = model.infer(table, adjacency, positive=chosen)
    logged = table.assign(**{name: np.log(table[name]) for name in chosen})
    by_hand = model.infer(logged, adjacency)
    assert some.positive == chosen
    samples, expected = some.sample(100, seed=0), by_hand.sample(100, seed=0)
    expected[chosen] = np.exp(expected[chosen])
    same(np.log(samples[chosen]), np.log(expected[chosen]), "logged columns")
    same(samples[["a", "c", "e"]], expected[["a", "c", "e"]], "other columns")
    # a logged-out column may take any value, in rows and interventions
    shifted = query.assign(a=query["a"] - 10.0)
    assert some.counterfactual_samples({"a": -3.0}, shifted)["a"].eq(-3.0).all()


def test_batch_and_bootstrap_take_positive(setup, pair):
    model, table, query, adjacency = setup
    positive, _ = pair
    batched = model.infer_batch([(table, adjacency), (table.iloc[:80], adjacency)], positive=True)
    assert [scm.positive for scm in batched] == [NAMES, NAMES]
    same_relative(batched[0].sample(50, seed=1), positive.sample(50, seed=1), "infer_batch")
    result = model.bootstrap(
        table,
        adjacency,
        lambda scm: scm.sample(200, seed=0).min(),
        num_bootstraps=4,
        seed=0,
        positive=["a", "c"],
    )
    assert (result.samples[:, [0, 2]] > 0).all()


@pytest.mark.parametrize(
    ("positive", "message"),
    [
        ("a", r"positive must be True .* got 'a'; for one column write positive=\['a'\]"),
        (1, r"positive must be True \(every column\), False, or a list of column names, got 1"),
        (["a", "zz"], r"positive names unknown column\(s\) \['zz'\]"),
    ],
)
def test_bad_positive_arguments(setup, positive, message):
    model, table, _, adjacency = setup
    with pytest.raises(ValueError, match=message):
        model.infer(table, adjacency, positive=positive)


def test_non_positive_values_are_refused_with_the_column_and_its_minimum(setup, pair):
    model, table, query, adjacency = setup
    positive, _ = pair
    bad = table.assign(c=table["c"] - float(table["c"].min()) - 0.25)  # minimum -0.25
    with pytest.raises(ValueError, match=r"data column 'c' is declared positive .* its minimum is -0\.25"):
        model.infer(bad, adjacency, positive=True)
    with pytest.raises(ValueError, match=r"column 'c' .* minimum is -0\.25"):
        model.infer_batch([(table, adjacency), (bad, adjacency)], positive=["c"])
    zero = query.assign(b=0.0)
    for call in (
        lambda: positive.counterfactual_samples({"a": 1.0}, zero),
        lambda: positive.predict(zero),
        lambda: positive.noise(zero),
        lambda: positive.average_causal_effect("c", {"a": 1.0}, {}, data=zero),
    ):
        with pytest.raises(ValueError, match=r"data column 'b' is declared positive .* minimum is 0"):
            call()
    # noise is on the log scale: any sign is fine
    assert np.isfinite(positive.generate(-positive.noise(query, method="decoder")).to_numpy()).all()


@pytest.mark.parametrize(
    ("value", "shown"),
    [(0.0, "0"), (-2.0, "-2"), (np.array([1.0, -0.5]), "-0.5"), (lambda x: x - 1e9, "-1e+09")],
    ids=["zero", "negative", "array", "callable"],
)
def test_interventions_at_or_below_zero_are_refused(pair, setup, value, shown):
    _, table, query, _ = setup
    positive, _ = pair
    with pytest.raises(
        ValueError, match=rf"intervention value {re.escape(shown)} for 'b': that column is positive"
    ):
        if isinstance(value, np.ndarray):
            positive.counterfactual_samples({"b": value}, query.iloc[:2])
        else:
            positive.interventional_samples({"b": value}, n=5, seed=0)
    with pytest.raises(ValueError, match=r"intervention value .* for 'b'"):
        positive.average_causal_effect("e", {"b": value if not isinstance(value, np.ndarray) else -1.0}, {})


def test_cli_positive(setup, tmp_path, capsys):
    model, table, _, adjacency = setup
    model.save_pretrained(tmp_path / "model")
    table.to_csv(tmp_path / "data.csv", index=False)
    pd.DataFrame(adjacency, columns=NAMES).to_csv(tmp_path / "graph.csv", index=False)
    common = ["--data", str(tmp_path / "data.csv"), "--graph", str(tmp_path / "graph.csv")]
    common += ["--model", str(tmp_path / "model"), "--device", "cpu"]
    out = tmp_path / "samples.csv"
    assert main(["infer", *common, "--num-samples", "300", "--positive", "--out", str(out)]) == 0
    samples = pd.read_csv(out)
    assert (samples.to_numpy() > 0).all()
    expected = CondFiP.from_pretrained(tmp_path / "model", device="cpu").infer(
        table, adjacency, positive=True
    )
    same_relative(samples, expected.sample(300, seed=0), "CLI samples")  # CSV keeps 17 digits
    capsys.readouterr()
    assert main(["effect", *common, "--target", "e", "--alternative", "a=2", "--positive", "a", "b"]) == 0
    printed = float(capsys.readouterr().out)
    some = CondFiP.from_pretrained(tmp_path / "model", device="cpu").infer(
        table, adjacency, positive=["a", "b"]
    )
    assert printed == pytest.approx(some.average_causal_effect("e", {"a": 2.0}, {}, seed=0), rel=1e-5)
    with pytest.raises(SystemExit) as stopped:  # argparse exits, a refused input returns 2
        raise SystemExit(
            main(
                ["infer", *common, "--num-samples", "3", "--positive", "zz", "--out", str(tmp_path / "x.csv")]
            )
        )
    assert stopped.value.code == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "positive names unknown column(s) ['zz']" in error
    assert not (tmp_path / "x.csv").exists()


def test_a_generated_value_beyond_float64_is_refused_not_inf():
    """exp of a log-scale value above ~709.8 is inf: refused with the column's name."""
    from condfip.api.positive import ModelUnits

    context = np.exp(np.random.default_rng(0).normal(size=(50, 2)))
    units = ModelUnits.fit(context, np.array([True, False]), ["a", "b"])
    standard = np.array([[1e3, 0.0]])  # standardized log value far beyond the data
    with pytest.raises(ValueError, match="positive column 'a'"):
        units.data_from_standard(standard)


def test_a_generated_value_below_float64_is_refused_not_zero():
    """exp of a log-scale value below ~-708.4 is subnormal or 0, which a positive column must never return."""
    from condfip.api.positive import ModelUnits

    context = np.exp(np.random.default_rng(0).normal(size=(50, 2)))
    units = ModelUnits.fit(context, np.array([True, False]), ["a", "b"])
    log = units.mean[0] - 1e3 * units.std[0]  # the log of the value of -1,000 standardized units
    with pytest.raises(ValueError, match=re.escape(f"positive column 'a' would be exp({log:.4g}), outside")):
        units.data_from_standard(np.array([[-1e3, 0.0]]))
    inside = units.data_from_standard(np.array([[-300.0, 0.0]]))  # exp(-300 sd) of a unit-sd log: tiny, > 0
    assert inside[0, 0] > 0


def test_an_intervention_beyond_the_range_is_named_in_the_users_units(setup):
    """The allowed range of a positive column is given as values of the column, not of its log."""
    model = setup[0]
    rng = np.random.default_rng(3)
    log_a = 1e-4 * rng.normal(size=60)  # a log spread of 1e-4: the range is exp(mean +- 100) in user units
    table = pd.DataFrame({"a": np.exp(log_a), "b": np.exp(log_a + 1e-4 * rng.normal(size=60))})
    scm = model.infer(table, [("a", "b")], positive=True)
    low, high = np.exp(log_a.mean() - 1e6 * log_a.std()), np.exp(log_a.mean() + 1e6 * log_a.std())
    shown = re.escape(f"[{low:.6g}, {high:.6g}]")
    with pytest.raises(
        ValueError, match=r"intervention on column 'a': 1e-100 is outside the range .*" + shown
    ):
        scm.interventional_samples({"a": 1e-100}, n=2, seed=0)
    with pytest.raises(ValueError, match=r"data column 'a': 1e\+100 is outside .*" + shown):
        scm.counterfactual_samples({}, table.assign(a=1e100))
