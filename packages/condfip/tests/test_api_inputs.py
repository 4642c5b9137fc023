"""Bad input gets a ValueError that names the problem and the fix; every accepted graph format agrees."""

from __future__ import annotations

import warnings

import networkx as nx
import numpy as np
import pandas as pd
import pytest
import torch

from condfip import CondFiP
from condfip.api.sampling import sample_noise, stratified_noise
from condfip.model import CondFiPConfig, CondFiPModel

TINY = dict(
    dim=8, num_heads=2, mlp_dim=16, encoder_pairs=1, embedding_pairs=1, decoder_blocks=1, num_anchor_rows=16
)
CHAIN = np.array([[0, 1, 0], [0, 0, 1], [0, 0, 0]])  # a -> b -> c


@pytest.fixture(scope="module")
def model() -> CondFiP:
    with torch.random.fork_rng():
        torch.manual_seed(0)
        return CondFiP(CondFiPModel(CondFiPConfig(**TINY)), device="cpu")


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    return pd.DataFrame(rng.normal(size=(30, 3)), columns=["a", "b", "c"])


@pytest.fixture(scope="module")
def inferred(model, frame):
    return model.infer(frame, CHAIN)


# ----------------------------------------------------------------------------------------------- the data
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_values(model, frame, bad):
    data = frame.copy()
    data.iloc[3, 1] = bad
    with pytest.raises(ValueError, match=r"1 NaN or infinite values, in columns 'b' \(1\).*dropna"):
        model.infer(data, CHAIN)
    with pytest.raises(ValueError, match="NaN or infinite"):
        model.infer(data.to_numpy(), CHAIN)


def test_non_numeric_column(model, frame):
    data = frame.assign(b=["low", "high"] * 15)
    with pytest.raises(ValueError, match=r"column 'b' has dtype \w+, not a real number.*pd.to_numeric"):
        model.infer(data, CHAIN)
    with pytest.raises(ValueError, match="not real numbers"):
        model.infer(data.to_numpy(), CHAIN)


def test_boolean_column(model, frame):
    data = frame.assign(c=frame["c"] > 0)
    with pytest.raises(ValueError, match=r"column 'c' is boolean.*astype\(float\)"):
        model.infer(data, CHAIN)
    with pytest.raises(ValueError, match="boolean array"):
        model.infer(frame.to_numpy() > 0, CHAIN)


def test_constant_column(model, frame):
    with pytest.raises(ValueError, match=r"columns \['a'\] are constant.*drop those columns"):
        model.infer(frame.assign(a=0.1), CHAIN)


@pytest.mark.parametrize("rows", [0, 1])
def test_fewer_than_two_rows(model, frame, rows):
    with pytest.raises(ValueError, match=f"data has {rows} row.*at least 2 rows"):
        model.infer(frame.iloc[:rows], CHAIN)


def test_array_shape_and_names(model, frame):
    with pytest.raises(ValueError, match=r"must be 2-D .* shape \(30,\).*reshape"):
        model.infer(frame["a"].to_numpy(), [])
    with pytest.raises(ValueError, match="columns has 2 names but data has 3 columns"):
        model.infer(frame.to_numpy(), CHAIN, columns=["a", "b"])
    with pytest.raises(ValueError, match=r"duplicate column names \['a'\]"):
        model.infer(frame.to_numpy(), CHAIN, columns=["a", "a", "c"])
    with pytest.raises(ValueError, match="DataFrame carries its own column names"):
        model.infer(frame, CHAIN, columns=["a", "b", "c"])


def test_two_rows_are_enough(model, frame):
    assert model.infer(frame.iloc[:2], CHAIN).noise().shape == (2, 3)


# ---------------------------------------------------------------------------------------------- the graph
def test_every_graph_format_gives_the_same_adjacency(model, frame):
    digraph = nx.DiGraph([("a", "b"), ("b", "c")])
    labelled = pd.DataFrame(CHAIN, index=["a", "b", "c"], columns=["a", "b", "c"]).loc[
        ["c", "a", "b"], ["b", "c", "a"]
    ]
    formats = [
        digraph,
        CHAIN,
        CHAIN.astype(bool),
        CHAIN.tolist(),
        labelled,
        pd.DataFrame(CHAIN, columns=["a", "b", "c"]),  # unlabelled rows: the column order
        [("a", "b"), ("b", "c")],
        np.array([["a", "b"], ["b", "c"]]),
        pd.DataFrame({"source": ["a", "b"], "target": ["b", "c"]}),
    ]
    for graph in formats:
        np.testing.assert_array_equal(model.infer(frame, graph).adjacency, CHAIN, err_msg=repr(graph))


def test_edge_list_leaves_other_columns_isolated(model, frame):
    assert model.infer(frame, [("a", "c")]).adjacency.sum() == 1
    assert model.infer(frame, []).adjacency.sum() == 0


def test_graph_nodes_not_in_columns(model, frame):
    with pytest.raises(ValueError, match=r"graph nodes \['z'\] are not columns of the data"):
        model.infer(frame, nx.DiGraph([("a", "b"), ("b", "c"), ("c", "z")]))
    with pytest.raises(ValueError, match=r"graph nodes \['z'\] are not columns"):
        model.infer(frame, [("a", "z")])


def test_columns_missing_from_the_graph(model, frame):
    with pytest.raises(ValueError, match=r"data columns \['c'\] are missing from the graph.*add_node"):
        model.infer(frame, nx.DiGraph([("a", "b")]))


def test_cycle_is_named(model, frame):
    with pytest.raises(ValueError, match=r"cycle 'a' -> 'b' -> 'c' -> 'a'.*remove one of these edges"):
        model.infer(frame, [("a", "b"), ("b", "c"), ("c", "a")])


def test_self_loop(model, frame):
    with pytest.raises(ValueError, match="self-loop on 'b'"):
        model.infer(frame, nx.DiGraph([("a", "b"), ("b", "b"), ("b", "c")]))


def test_non_square_adjacency(model, frame):
    with pytest.raises(ValueError, match=r"must be square \[d, d\], got shape \(3, 2\)"):
        model.infer(frame, np.zeros((3, 2)))
    with pytest.raises(ValueError, match=r"must be square, got shape \(3, 2\)"):
        model.infer(frame, pd.DataFrame(np.zeros((3, 2)), columns=["a", "b"]))
    with pytest.raises(ValueError, match="adjacency is 2x2 but the data has 3 columns"):
        model.infer(frame, np.zeros((2, 2)))


def test_other_graph_mistakes(model, frame):
    with pytest.raises(ValueError, match="undirected"):
        model.infer(frame, nx.Graph([("a", "b")]))
    with pytest.raises(ValueError, match="entry 1 is 'bc'"):
        model.infer(frame, [("a", "b"), "bc"])
    with pytest.raises(
        ValueError, match=r"entry \['a', 'a'\] \(row 0, column 0\) is nan; entries must be 0 or 1"
    ):
        model.infer(frame, np.full((3, 3), np.nan))
    with pytest.raises(ValueError, match="graph .a -> b. is not understood; pass .infer."):
        model.infer(frame, "a -> b")


def test_more_nodes_than_the_checkpoint_supports(frame):
    limited = CondFiP(CondFiPModel(CondFiPConfig(**TINY, max_nodes=2)))
    with pytest.raises(ValueError, match="data has 3 columns but this checkpoint supports at most 2 nodes"):
        limited.infer(frame, CHAIN)
    with pytest.raises(ValueError, match=r"datasets\[1\]: data has 3 columns"):
        limited.infer_batch([(frame[["a", "b"]], [("a", "b")]), (frame, CHAIN)])


# ----------------------------------------------------------------------------------------- interventions
def test_intervention_on_unknown_node(inferred, frame):
    with pytest.raises(
        ValueError, match=r"unknown node 'd'; intervene on one of the columns \['a', 'b', 'c'\]"
    ):
        inferred.interventional_samples({"d": 1.0}, n=5)
    with pytest.raises(ValueError, match="unknown node 0"):
        inferred.counterfactual_samples({0: 1.0}, frame)


@pytest.mark.parametrize("value", [np.nan, np.inf, [1.0, np.nan] * 15])
def test_non_finite_intervention_value(inferred, frame, value):
    with pytest.raises(ValueError, match="intervention value for 'b' is not finite"):
        inferred.counterfactual_samples({"b": value}, frame)


def test_bad_intervention_values(inferred, frame):
    with pytest.raises(ValueError, match="is not finite"):
        inferred.counterfactual_samples({"b": lambda current: current * np.inf}, frame)
    with pytest.raises(ValueError, match="has 3 entries but there are 30 rows"):
        inferred.counterfactual_samples({"b": [1.0, 2.0, 3.0]}, frame)
    with pytest.raises(ValueError, match="give a number, an array"):
        inferred.counterfactual_samples({"b": "high"}, frame)
    with pytest.raises(ValueError, match="must be a dict"):
        inferred.counterfactual_samples([("b", 1.0)], frame)


def test_sampling_arguments(inferred, frame):
    with pytest.raises(ValueError, match="exactly one of n .* or data"):
        inferred.interventional_samples({"a": 1.0})
    with pytest.raises(ValueError, match="exactly one of n"):
        inferred.interventional_samples({"a": 1.0}, n=3, data=frame)
    with pytest.raises(ValueError, match="n must be a positive int"):
        inferred.sample(0)
    with pytest.raises(ValueError, match="seed must be a non-negative int"):
        inferred.sample(3, seed=-1)
    with pytest.raises(ValueError, match="noise_model must be one of"):
        inferred.sample(3, noise_model="uniform")


def test_query_rows_must_match_the_columns(inferred, frame):
    with pytest.raises(ValueError, match=r"missing \['c'\], unexpected \['d'\]"):
        inferred.noise(frame.rename(columns={"c": "d"}))
    with pytest.raises(ValueError, match=r"noise must have shape \[rows, 3\]"):
        inferred.generate(np.zeros((4, 2)))
    with pytest.raises(ValueError, match="NaN or infinite"):
        inferred.predict(np.full((2, 3), np.nan))


def test_empirical_noise_matches_the_abducted_quantiles():
    rng = np.random.default_rng(0)
    abducted = np.column_stack([rng.exponential(size=500), rng.normal(size=500)])
    draws = sample_noise(abducted, 100_000, np.random.default_rng(1))
    quantiles = [0.05, 0.25, 0.5, 0.75, 0.95]
    np.testing.assert_allclose(
        np.quantile(draws, quantiles, axis=0), np.quantile(abducted, quantiles, axis=0), atol=0.03
    )
    assert (draws.min(axis=0) >= abducted.min(axis=0)).all() and (
        draws.max(axis=0) <= abducted.max(axis=0)
    ).all()
    gaussian = sample_noise(abducted, 100_000, np.random.default_rng(1), "gaussian")
    np.testing.assert_allclose(gaussian.std(axis=0), abducted.std(axis=0), rtol=0.02)


@pytest.mark.parametrize("noise_model", ["empirical", "gaussian"])
def test_stratified_noise_puts_one_draw_of_each_block_in_each_stratum(noise_model):
    rng = np.random.default_rng(0)
    # the first column's empirical quantile function is the identity on [0, 1]: its draws are the uniforms
    abducted = np.column_stack([np.linspace(0.0, 1.0, 201), rng.exponential(size=201), rng.normal(size=201)])
    blocks, rows = 4, 50
    draws = stratified_noise(abducted, blocks, rows, np.random.default_rng(3), noise_model)
    assert draws.shape == (blocks * rows, 3) and np.isfinite(draws).all()
    if noise_model == "empirical":  # the first column's draws are its uniforms; the others are within range
        uniforms = draws[:, :1]
        assert (draws.min(axis=0) >= abducted.min(axis=0)).all()
        assert (draws.max(axis=0) <= abducted.max(axis=0)).all()
    else:  # the normal distribution function of the standardized draws gives the uniforms back
        standardized = (draws - abducted.mean(axis=0)) / abducted.std(axis=0)
        uniforms = torch.special.ndtr(torch.from_numpy(standardized)).numpy()
    columns = uniforms.shape[1]
    strata = np.floor(uniforms * rows).astype(np.int64).reshape(blocks, rows, columns)
    for block in strata:  # every column of every block: each stratum exactly once
        np.testing.assert_array_equal(np.sort(block, axis=0), np.tile(np.arange(rows)[:, None], (1, columns)))
    # the blocks are drawn apart: no two share their order of the strata
    assert len({tuple(block[:, 0]) for block in strata}) == blocks
    again = stratified_noise(abducted, blocks, rows, np.random.default_rng(3), noise_model)
    np.testing.assert_array_equal(draws, again)


def test_stratified_noise_errors():
    abducted = np.zeros((10, 2))
    with pytest.raises(ValueError, match="noise_model must be one of"):
        stratified_noise(abducted, 1, 10, np.random.default_rng(0), "uniform")
    with pytest.raises(ValueError, match="at least one block of at least 2 rows"):
        stratified_noise(abducted, 1, 1, np.random.default_rng(0))
    with pytest.raises(ValueError, match="at least one block of at least 2 rows"):
        stratified_noise(abducted, 0, 10, np.random.default_rng(0))


# ------------------------------------------------------------------------ rows and values given by label
def test_a_series_row_is_matched_by_its_labels(inferred, frame):
    row = frame.iloc[3]
    shuffled = row[["c", "a", "b"]]
    expected = inferred.counterfactual_samples({}, frame.iloc[[3]])
    np.testing.assert_array_equal(
        inferred.counterfactual_samples({}, shuffled).to_numpy(), expected.to_numpy()
    )
    np.testing.assert_array_equal(
        inferred.noise(shuffled).to_numpy(), inferred.noise(frame.iloc[[3]]).to_numpy()
    )
    with pytest.raises(ValueError, match=r"missing \['c'\], unexpected \['d'\]"):
        inferred.predict(row.rename({"c": "d"}))


def test_a_masked_array_counts_its_masked_entries_as_missing(model, frame):
    values = frame.to_numpy().copy()
    values[:4, 0] = -999.0  # what is under the mask is not data
    masked = np.ma.masked_array(values, mask=np.zeros_like(values, dtype=bool))
    masked.mask[:4, 0] = True
    with pytest.raises(ValueError, match=r"4 NaN or infinite values, in columns 'x0' \(4\)"):
        model.infer(masked, [])
    unmasked = np.ma.masked_array(frame.to_numpy(), mask=False)  # nothing masked: the plain values
    np.testing.assert_array_equal(model.infer(unmasked, CHAIN).data.to_numpy(), frame.to_numpy())


def test_per_row_intervention_values_in_a_series_follow_the_rows_labels(inferred, frame):
    rows = frame.iloc[:6].set_axis([f"r{i}" for i in range(6)])
    values = pd.Series(np.linspace(-1.0, 1.0, 6), index=rows.index)
    expected = inferred.counterfactual_samples({"b": values.to_numpy()}, rows)
    reversed_values = values.iloc[::-1]  # the same labels in another order: matched by label
    got = inferred.counterfactual_samples({"b": reversed_values}, rows)
    np.testing.assert_array_equal(got.to_numpy(), expected.to_numpy())
    effect = inferred.average_causal_effect("c", {"b": reversed_values}, {}, data=rows)
    assert effect == inferred.average_causal_effect("c", {"b": values.to_numpy()}, {}, data=rows)
    with pytest.raises(ValueError, match="labels are not the rows' labels"):
        inferred.counterfactual_samples({"b": values.set_axis(range(6))}, rows)
    noise = inferred.noise(rows)
    np.testing.assert_array_equal(
        inferred.generate(noise, {"b": reversed_values}).to_numpy(),
        inferred.generate(noise, {"b": values.to_numpy()}).to_numpy(),
    )


# ------------------------------------------------------------------------------- numpy scalar arguments
def test_numpy_scalars_are_taken_like_python_numbers(model, frame, inferred):
    np.testing.assert_array_equal(
        inferred.sample(np.int64(5), seed=np.int64(2)).to_numpy(), inferred.sample(5, seed=2).to_numpy()
    )
    assert inferred.average_causal_effect("c", {"a": 1.0}, {}, seed=0, standard_error=np.float32(0.05)) == (
        inferred.average_causal_effect("c", {"a": 1.0}, {}, seed=0, standard_error=float(np.float32(0.05)))
    )
    zero_shot = model.infer(frame, CHAIN, zero_shot=np.True_)
    assert not zero_shot.adapted
    positive = frame - frame.min() + 1.0
    assert model.infer(positive, CHAIN, positive=np.True_).positive == ["a", "b", "c"]
    result = model.bootstrap(
        frame, CHAIN, lambda scm: 1.0, num_bootstraps=np.int64(3), batch_size=np.int64(1)
    )
    assert result.samples.shape == (3,)
    assert result.interval(np.float32(0.5)) == (1.0, 1.0)
    with pytest.raises(ValueError, match="zero_shot must be True or False"):
        model.infer(frame, CHAIN, zero_shot=np.int64(1))


def test_arguments_unused_with_data_are_still_checked(inferred, frame):
    with pytest.raises(ValueError, match="noise_model must be one of"):
        inferred.average_causal_effect("c", {"a": 1.0}, {}, data=frame, noise_model="bogus")
    with pytest.raises(ValueError, match="noise_model must be one of"):
        inferred.interventional_samples({"a": 1.0}, data=frame, noise_model="bogus")
    with pytest.raises(ValueError, match="seed must be a non-negative int"):
        inferred.interventional_samples({"a": 1.0}, data=frame, seed="x")
    with pytest.raises(ValueError, match="seed must be a non-negative int"):
        inferred.average_causal_effect("c", {"a": 1.0}, {}, data=frame, seed="x")


# ------------------------------------------------------------------------------ effects at extreme scales
@pytest.mark.parametrize("scale", [1e-200, 1e170])
def test_the_default_effect_stops_on_its_standard_error_at_any_scale(model, frame, scale):
    """The stopping rule's standard deviations and ratios stay finite: a column of values near 1e170 (whose
    squares overflow float64) or near 1e-200 (whose squares underflow) gets the same rows, and an effect equal to
    the unit-scale one times the scale, as the same table in units of 1."""
    unit = model.infer(frame, CHAIN)
    scaled = model.infer(frame * scale, CHAIN)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no overflow warning leaks out
        effect = scaled.average_causal_effect("c", {"a": 1.0 * scale}, {}, seed=0)
    reference = unit.average_causal_effect("c", {"a": 1.0}, {}, seed=0)
    assert effect / scale == pytest.approx(reference, rel=1e-9)


def test_a_tiny_standard_error_draws_the_most_rows_without_overflow(inferred):
    most = inferred.average_causal_effect("c", {"a": 1.0}, {}, n=10_000, seed=0)
    stratified = inferred.average_causal_effect("c", {"a": 1.0}, {}, seed=0, standard_error=1e-200)
    assert np.isfinite(stratified) and stratified == pytest.approx(most, abs=0.05)


# ----------------------------------------------------------------------------------------------- no rows
def test_queries_of_no_rows(inferred, frame):
    empty = frame.iloc[:0]
    for method in ("best", "encoder", "decoder"):
        noise = inferred.noise(empty, method=method)
        assert noise.shape == (0, 3) and list(noise.columns) == ["a", "b", "c"]
    assert inferred.counterfactual_samples({"a": 1.0}, empty).shape == (0, 3)
    with pytest.raises(ValueError, match="data has no rows"):
        inferred.average_causal_effect("c", {"a": 1.0}, {"a": 0.0}, data=empty)


def test_argument_kinds_named_in_their_errors(model, frame, inferred):
    with pytest.raises(ValueError, match="graph 'INFER' is not understood; pass 'infer'"):
        model.infer(frame, "INFER")
    with pytest.raises(ValueError, match=r"pass a list of pairs, \[\(data, graph\), \.\.\.\]"):
        model.infer_batch((frame, CHAIN))
    with pytest.raises(ValueError, match="method must be 'best', 'encoder' or 'decoder'"):
        inferred.noise(method=np.array(["best", "decoder"]))
