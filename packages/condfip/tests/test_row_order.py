"""The adapted path reads the rows in a canonical order (``condfip.core.row_order``): the same rows in any order
give the same SCM; the zero-shot path reads them as given (the paper's method)."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

import scm_gen
from condfip import CondFiP, infer_graph
from condfip.cli import main
from condfip.core.row_order import RESOLUTION, canonical_row_order


def test_the_order_is_a_permutation_that_any_shuffle_of_the_rows_maps_to_the_same_table() -> None:
    rng = np.random.default_rng(0)
    values = rng.normal(size=(500, 4))
    values[10:20] = values[0]  # repeated rows
    values[30:40, :3] = values[1, :3]  # rows that differ in one column only
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the hash's arithmetic wraps on purpose, without overflow warnings
        order = canonical_row_order(values)
    assert order.dtype == np.int64 and np.array_equal(np.sort(order), np.arange(500))
    for seed in range(5):
        shuffled = values[np.random.default_rng(seed).permutation(500)]
        np.testing.assert_array_equal(shuffled[canonical_row_order(shuffled)], values[order])


def test_the_order_does_not_depend_on_the_order_of_the_columns() -> None:
    values = np.random.default_rng(3).normal(size=(400, 5))
    order = canonical_row_order(values)
    np.testing.assert_array_equal(canonical_row_order(values[:, [3, 0, 4, 2, 1]]), order)


def test_the_order_survives_rounding_and_ignores_the_sign_of_zero() -> None:
    rng = np.random.default_rng(1)
    values = rng.normal(size=(300, 3))
    values[5] = 0.0
    nudged = values * (1.0 + 4 * 2.0**-52)  # another unit's standardization: equal to float64 rounding
    nudged[5] = -0.0
    np.testing.assert_array_equal(canonical_row_order(nudged), canonical_row_order(values))
    # a change of one grid step in one value is another row, and moves it
    moved = values.copy()
    moved[7, 1] += 4 * RESOLUTION
    assert not np.array_equal(canonical_row_order(moved), canonical_row_order(values))


def test_the_order_is_not_the_given_one_and_refuses_a_vector() -> None:
    values = np.sort(np.random.default_rng(2).normal(size=(200, 2)), axis=0)  # a table sorted by its columns
    order = canonical_row_order(values)
    # evenly spaced rows of it are a random subset, not the first or the lowest rows
    assert abs(float(np.corrcoef(order, np.arange(200))[0, 1])) < 0.3
    with pytest.raises(ValueError, match="table"):
        canonical_row_order(np.zeros(5))


@pytest.fixture(scope="module")
def table() -> tuple[pd.DataFrame, np.ndarray, pd.DataFrame]:
    """300 rows (three times the shipped network's 100 anchors) of a nonlinear SCM, and 20 query rows."""
    rng = np.random.default_rng(4)
    scm = scm_gen.sample_scm("in", "rff", 6, rng=rng, graph="er")
    names = [f"x{i}" for i in range(6)]
    data = pd.DataFrame(scm.sample(300, rng)[0], columns=names)
    query = pd.DataFrame(scm.sample(20, rng)[0], columns=names)
    return data, scm.adjacency, query


def test_the_adapted_scm_does_not_depend_on_the_order_of_the_rows(table) -> None:
    data, adjacency, query = table
    model = CondFiP.from_pretrained("small")
    base = model.infer(data, adjacency)
    noise = base.noise(query)
    for seed in (1, 2):
        permutation = np.random.default_rng(seed).permutation(len(data))
        shuffled = model.infer(data.iloc[permutation], adjacency)
        np.testing.assert_array_equal(
            data.to_numpy()[base.row_order], shuffled.data.to_numpy()[shuffled.row_order]
        )
        # the fit reads the same rows in the same order: the same model and F_hat, bit for bit
        fit = base.adaptation.drop(columns="encoder_noise_weight")
        pd.testing.assert_frame_equal(
            shuffled.adaptation.drop(columns="encoder_noise_weight"), fit, check_exact=True
        )
        pd.testing.assert_frame_equal(shuffled.generate(noise), base.generate(noise), check_exact=True)
        # the encoder's weight in noise() reads the encoder's float32 noise of each context row, computed among
        # other rows in another order (equal on the CPUs measured; a float32 rounding allowed), and noise()
        # weighs that encoder's noise by it: a float32 step of values of order 1
        np.testing.assert_allclose(
            shuffled.adaptation["encoder_noise_weight"], base.adaptation["encoder_noise_weight"], rtol=1e-5
        )
        np.testing.assert_allclose(shuffled.noise(query), noise, rtol=0, atol=1e-5)
        # the context's own rows keep the user's order and labels
        pd.testing.assert_index_equal(shuffled.noise().index, data.index[permutation])
        np.testing.assert_allclose(shuffled.noise().loc[data.index], base.noise(), rtol=0, atol=1e-5)
        # fresh rows draw the columns' quantiles of the context's float64 abducted noise, each row's computed among
        # other rows in another order (equal on the CPUs measured; rounding allowed, amplified along the graph)
        np.testing.assert_allclose(shuffled.sample(50, seed=3), base.sample(50, seed=3), rtol=1e-9, atol=1e-9)
        statistic = lambda scm: scm.predict(query).to_numpy().mean(axis=0)  # noqa: E731
        np.testing.assert_array_equal(
            model.bootstrap(data.iloc[permutation], adjacency, statistic, num_bootstraps=3, seed=5).samples,
            model.bootstrap(data, adjacency, statistic, num_bootstraps=3, seed=5).samples,
        )


def test_zero_shot_reads_the_rows_as_given_and_so_depends_on_their_order(table) -> None:
    """The paper's method is unchanged: beyond its 100 anchors the network attends to evenly spaced rows of the
    table as given, so another order gives other answers; this is what the canonical order removes."""
    data, adjacency, query = table
    model = CondFiP.from_pretrained("small")
    base = model.infer(data, adjacency, zero_shot=True)
    np.testing.assert_array_equal(base.row_order, np.arange(len(data)))
    shuffled = model.infer(
        data.iloc[np.random.default_rng(1).permutation(len(data))], adjacency, zero_shot=True
    )
    assert np.abs(shuffled.noise(query).to_numpy() - base.noise(query).to_numpy()).max() > 1e-4


def test_the_inferred_graph_does_not_depend_on_the_order_of_the_rows(table) -> None:
    """Beyond graph-small's 64 anchor rows: the same probabilities bit for bit, and the same DAG, from the same
    rows in any order; and ``infer(..., graph="infer")`` gets that DAG."""
    data, _, _ = table
    probabilities, dag = infer_graph(data, device="cpu")
    for seed in (1, 2):
        shuffled = data.iloc[np.random.default_rng(seed).permutation(len(data))]
        again, again_dag = infer_graph(shuffled, device="cpu")
        np.testing.assert_array_equal(again, probabilities)
        np.testing.assert_array_equal(again_dag, dag)
    scm = CondFiP.from_pretrained("small").infer(shuffled, "infer")
    assert set(scm.graph.edges()) == {(data.columns[i], data.columns[j]) for i, j in np.argwhere(dag)}


def test_infer_batch_and_the_cli_read_the_rows_in_the_same_order(table, tmp_path) -> None:
    """``infer_batch`` and ``condfip infer`` go through the same preparation: shuffled rows give the same SCM."""
    data, adjacency, query = table
    model = CondFiP.from_pretrained("small")
    noise = model.infer(data, adjacency).noise(query)
    expected = model.infer(data, adjacency).generate(noise)
    shuffled = data.iloc[np.random.default_rng(7).permutation(len(data))]
    batch = model.infer_batch([(shuffled, adjacency), (data, adjacency)])
    for scm in batch:
        pd.testing.assert_frame_equal(scm.generate(noise), expected, check_exact=True)
    graph = pd.DataFrame(adjacency, index=data.columns, columns=data.columns)
    graph_path = tmp_path / "graph.csv"
    graph.to_csv(graph_path)
    outputs = []
    for name, frame in (("given", data), ("shuffled", shuffled)):
        path = tmp_path / f"{name}.csv"
        frame.to_csv(path, index=False)
        out = tmp_path / f"{name}-samples.csv"
        assert main(["infer", "--data", str(path), "--graph", str(graph_path), "--num-samples", "40", "--seed", "3",
                     "--out", str(out)]) == 0  # fmt: skip
        outputs.append(pd.read_csv(out))
    pd.testing.assert_frame_equal(outputs[1], outputs[0], check_exact=False, rtol=1e-9, atol=1e-9)
