"""The local mode of graph inference: one neighborhood sub-table per node (``condfip.api.neighborhoods``)."""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

import networkx as nx
import numpy as np
import pandas as pd
import pytest
import torch

import scm_gen
from condfip import infer_graph
from condfip.api.graph_inference import nodes_within_training_range, resolve_neighborhood
from condfip.api.neighborhoods import local_edge_logits, neighborhoods, relatedness
from condfip.core.row_order import canonical_row_order
from condfip.core.standardization import Standardization

sys.path.insert(0, str(Path(__file__).parent))
from rounding import assert_close  # noqa: E402
from test_graph_model import OPERATIONS, tiny_model  # noqa: E402

NUM_NODES = 9


@pytest.fixture(scope="module")
def table() -> np.ndarray:
    """A standardized table [80, 9] of a linear SCM."""
    rng = np.random.default_rng(11)
    scm = scm_gen.sample_scm("in", "linear", NUM_NODES, rng=rng, graph="er")
    data = scm.sample(80, rng)[0]
    return (data - data.mean(0)) / data.std(0)


@pytest.fixture(scope="module")
def graph_model():
    model = tiny_model(seed=4)
    model.training_recipe = {"node_counts": [4, 5]}
    return model


def brute_force_partial_correlation(data: np.ndarray, i: int, j: int) -> float:
    """Correlation of the residuals of x_i and x_j after least squares on all the other columns."""
    others = np.delete(data, [i, j], axis=1)
    design = np.column_stack((np.ones(len(data)), others))
    residual_i = data[:, i] - design @ np.linalg.lstsq(design, data[:, i], rcond=None)[0]
    residual_j = data[:, j] - design @ np.linalg.lstsq(design, data[:, j], rcond=None)[0]
    return float(np.corrcoef(residual_i, residual_j)[0, 1])


def test_relatedness_is_the_absolute_partial_correlation(table, monkeypatch) -> None:
    scores = relatedness(table)
    assert scores.shape == (NUM_NODES, NUM_NODES) and (np.diagonal(scores) == 0).all()
    np.testing.assert_allclose(scores, scores.T, atol=1e-12)
    assert np.isfinite(relatedness(table[:5])).all()  # fewer rows than columns: the ridge keeps it defined
    monkeypatch.setattr("condfip.api.neighborhoods.RELATEDNESS_RIDGE", 0.0)  # exact without the ridge
    exact = relatedness(table)
    for i, j in [(0, 1), (2, 7), (3, 8), (5, 6)]:
        assert exact[i, j] == pytest.approx(abs(brute_force_partial_correlation(table, i, j)), abs=1e-9)


def test_neighborhoods_are_the_centre_and_its_most_related_nodes(table) -> None:
    """size 5: the centre, 2 nodes by partial correlation (floor(2/3 * 4)), 2 more by correlation."""
    members = neighborhoods(table, 5)
    assert members.shape == (NUM_NODES, 5) and members.dtype.kind == "i"
    np.testing.assert_array_equal(members[:, 0], np.arange(NUM_NODES))
    partial = relatedness(table)
    correlation = np.abs(np.corrcoef(table, rowvar=False))
    for centre, row in enumerate(members):
        assert len(set(row)) == 5
        by_partial, by_correlation = row[1:3], row[3:]
        outside = [node for node in range(NUM_NODES) if node not in row[:3]]
        assert (partial[centre, outside] <= partial[centre, by_partial].min()).all()
        assert partial[centre, by_partial[0]] >= partial[centre, by_partial[1]]
        outside = [node for node in range(NUM_NODES) if node not in row]
        assert (correlation[centre, outside] <= correlation[centre, by_correlation].min()).all()
        assert correlation[centre, by_correlation[0]] >= correlation[centre, by_correlation[1]]
    np.testing.assert_array_equal(neighborhoods(table, NUM_NODES)[:, 1:].shape, (NUM_NODES, NUM_NODES - 1))
    for size in (1, NUM_NODES + 1):
        with pytest.raises(ValueError, match=f"between 2 and d = {NUM_NODES} nodes, got {size}"):
            neighborhoods(table, size)


def test_local_logits_average_the_two_centred_tables(table, graph_model) -> None:
    size = 4
    logits = local_edge_logits(graph_model, table, size, device=torch.device("cpu"))
    members = neighborhoods(table, size)
    # brute force: score every neighborhood alone, collect each pair's logits from the tables centred on an end
    collected: dict[tuple[int, int], list[float]] = {}
    with torch.inference_mode():
        for row in members:
            sub = graph_model.edge_logits(torch.as_tensor(table[:, row], dtype=torch.float32)[None])[0]
            for position, node in enumerate(row[1:], start=1):
                collected.setdefault((int(node), int(row[0])), []).append(float(sub[position, 0]))
                collected.setdefault((int(row[0]), int(node)), []).append(float(sub[0, position]))
    expected = np.full((NUM_NODES, NUM_NODES), -np.inf)
    for (i, j), values in collected.items():
        expected[i, j] = np.mean(values)
    # the same sub-tables scored in batches and one by one: float32 logits on other shapes
    assert_close(logits, expected, dtype=torch.float32, operations=OPERATIONS, what="local logits")
    assert np.isneginf(np.diagonal(logits)).all()
    assert np.isneginf(logits).sum() > NUM_NODES  # some pairs share no neighborhood centred on an end


def test_infer_graph_scores_neighborhoods_beyond_the_training_range(table, graph_model) -> None:
    """The model was trained on at most 5 nodes: 'auto' scores 5-node neighborhoods of the 9 columns."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        automatic, dag = infer_graph(table, model=graph_model, device="cpu")
    explicit, _ = infer_graph(table, model=graph_model, device="cpu", neighborhood=5)
    np.testing.assert_array_equal(automatic, explicit)
    # infer_graph reads the rows in their canonical order (``condfip.core.row_order``)
    ordered = table[canonical_row_order(Standardization.fit(table).data_to_standard(table))]
    logits = local_edge_logits(graph_model, ordered, 5, device=torch.device("cpu"))
    np.testing.assert_allclose(automatic, 1.0 / (1.0 + np.exp(-logits)), rtol=1e-12)
    assert ((automatic == 0) == np.isneginf(logits)).all() and dag[automatic == 0].sum() == 0
    # the edges are the same whichever order the columns come in
    order = np.random.default_rng(0).permutation(NUM_NODES)
    permuted, _ = infer_graph(table[:, order], model=graph_model, device="cpu")
    np.testing.assert_allclose(permuted, automatic[np.ix_(order, order)], rtol=1e-4, atol=1e-6)
    # the whole table on request, with a warning
    with pytest.warns(UserWarning, match="trained on at most 5 nodes and the whole table is scored"):
        whole, _ = infer_graph(table, model=graph_model, device="cpu", neighborhood=None)
    assert not np.allclose(whole, automatic)
    # a neighborhood of the whole table is the whole table
    with pytest.warns(UserWarning, match="the whole table is scored"):
        wide, _ = infer_graph(table, model=graph_model, device="cpu", neighborhood=NUM_NODES)
    np.testing.assert_array_equal(wide, whole)


def test_within_the_training_range_auto_scores_the_whole_table(table, graph_model) -> None:
    small = pd.DataFrame(table[:, :5], columns=list("abcde"))
    automatic, _ = infer_graph(small, model=graph_model, device="cpu")
    whole, _ = infer_graph(small, model=graph_model, device="cpu", neighborhood=None)
    np.testing.assert_array_equal(automatic, whole)


@pytest.mark.parametrize("bad", [1, 0, -3, True, 2.5, "local"])
def test_bad_neighborhoods_are_refused(table, graph_model, bad) -> None:
    with pytest.raises(
        ValueError, match="neighborhood must be 'auto', None \\(the whole table\\) or a number"
    ):
        infer_graph(table, model=graph_model, device="cpu", neighborhood=bad)


def test_resolve_neighborhood() -> None:
    assert resolve_neighborhood("auto", 100, 30) == 30
    assert resolve_neighborhood("auto", 30, 30) is None
    assert resolve_neighborhood("auto", 100, None) is None  # no recipe: nothing to compare with
    assert resolve_neighborhood(None, 100, 30) is None
    assert resolve_neighborhood(12, 100, 30) == 12
    assert resolve_neighborhood(np.int64(12), 100, None) == 12
    assert resolve_neighborhood(100, 100, 30) is None


def test_resolve_neighborhood_keeps_the_rows_per_node_of_training() -> None:
    """graph-small saw 29 other nodes for 400 rows: 'auto' keeps that ratio, never below 3 nodes."""
    assert nodes_within_training_range(400, 30, 400) == 30
    assert nodes_within_training_range(120, 30, 400) == 9  # 1 + 29 * 120 // 400
    assert (
        nodes_within_training_range(120, 1, 400) is None
    )  # trained on single nodes: no pair to keep in range
    assert (
        nodes_within_training_range(120, 30, None) is None
        and nodes_within_training_range(120, None, 400) is None
    )
    assert resolve_neighborhood("auto", 20, 30, 120, 400) == 9
    assert resolve_neighborhood("auto", 100, 30, 120, 400) == 9
    assert resolve_neighborhood("auto", 100, 30, 4000, 400) == 30  # more rows than in training: still 30
    assert resolve_neighborhood("auto", 20, 30, 400, 400) is None  # within the range: the whole table
    assert resolve_neighborhood("auto", 20, 30, 10, 400) == 3  # too few rows even for 3: the smallest, 3
    assert resolve_neighborhood("auto", 3, 30, 10, 400) is None
    assert resolve_neighborhood("auto", 20, 30, 120, None) is None  # rows of training unknown: columns only
    assert (
        resolve_neighborhood(None, 20, 30, 10, 400) is None
        and resolve_neighborhood(12, 20, 30, 10, 400) == 12
    )


@pytest.fixture(scope="module")
def rows_model():
    """A model whose recipe records 80 rows for up to 5 nodes: 4 other nodes per 80 rows."""
    model = tiny_model(seed=4)
    model.training_recipe = {"node_counts": [4, 5], "num_samples": 80}
    return model


def test_auto_scores_smaller_neighborhoods_on_fewer_rows(table, rows_model) -> None:
    assert rows_model.trained_num_rows == 80
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the default stays in range: silent
        full, _ = infer_graph(table, model=rows_model, device="cpu")  # 80 rows: 5 nodes, as in training
        fewer, _ = infer_graph(table[:40], model=rows_model, device="cpu")  # 40 rows: 1 + 4 * 40 // 80 = 3
    np.testing.assert_array_equal(full, infer_graph(table, model=rows_model, device="cpu", neighborhood=5)[0])
    with pytest.warns(UserWarning, match="data has 40 rows, too few for tables of 5 nodes") as caught:
        explicit, _ = infer_graph(table[:40], model=rows_model, device="cpu", neighborhood=5)
    assert "the default neighborhood='auto' scores sub-tables of 3 nodes instead" in str(caught[0].message)
    assert not np.allclose(fewer, explicit)
    np.testing.assert_array_equal(
        fewer, infer_graph(table[:40], model=rows_model, device="cpu", neighborhood=3)[0]
    )
    with pytest.warns(UserWarning) as caught:  # the whole table: too many columns, and too few rows for them
        infer_graph(table[:40], model=rows_model, device="cpu", neighborhood=None)
    assert [str(warning.message)[:60] for warning in caught] == [
        "data has 9 columns but the graph model was trained on at mos",
        "data has 40 rows, too few for tables of 9 nodes: the graph m",
    ]


@pytest.mark.parametrize("rows", [2, 5, 9, 39])
def test_too_few_rows_for_any_table_warn(table, rows_model, rows) -> None:
    """Below 40 rows not even 3 nodes keep 4 other nodes per 80 rows: a warning, and still a finite DAG."""
    with pytest.warns(UserWarning, match=f"data has {rows} rows, too few for the graph model: it was trained on 80 "
                      "rows and needs at least 40 to score tables of 3 nodes") as caught:  # fmt: skip
        probabilities, dag = infer_graph(table[:rows], model=rows_model, device="cpu")
    assert len(caught) == 1  # not also the warning about the neighborhood size
    assert np.isfinite(probabilities).all() and probabilities.shape == dag.shape == (NUM_NODES, NUM_NODES)
    assert nx.is_directed_acyclic_graph(nx.from_numpy_array(dag, create_using=nx.DiGraph))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        infer_graph(
            table[:rows, :1], model=rows_model, device="cpu"
        )  # one column: nothing to infer, no warning
