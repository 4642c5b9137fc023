"""The DAG rule (always acyclic, greedy by probability, required first, forbidden never) and the graph scores."""

from __future__ import annotations

import networkx as nx
import numpy as np
import pytest

from condfip.core.dag_rule import dag_from_probabilities
from condfip.core.graph_scores import auprc, auroc, edge_f1, structural_hamming_distance


def closes_a_cycle(dag: np.ndarray, i: int, j: int) -> bool:
    graph = nx.from_numpy_array(dag, create_using=nx.DiGraph)
    return nx.has_path(graph, j, i)


def adversarial_probabilities() -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    cases = [np.ones((6, 6)), np.full((5, 5), 0.5 + 1e-9), np.zeros((4, 4)), np.ones((1, 1))]
    symmetric = rng.uniform(size=(8, 8))
    cases.append(np.maximum(symmetric, symmetric.T))  # both directions of every pair, equally likely
    ring = np.zeros((7, 7))
    ring[np.arange(7), (np.arange(7) + 1) % 7] = 0.99  # one long certain cycle
    cases.append(ring)
    cases.extend(rng.uniform(size=(d, d)) for d in (2, 3, 10, 25))
    cases.extend(rng.choice([0.2, 0.7, 0.9], size=(12, 12)) for _ in range(5))  # many exact ties
    return cases


@pytest.mark.parametrize("case", range(len(adversarial_probabilities())))
def test_the_rule_always_returns_a_maximal_dag(case: int) -> None:
    probabilities = adversarial_probabilities()[case]
    dag = dag_from_probabilities(probabilities, threshold=0.5)
    d = probabilities.shape[0]
    assert dag.dtype == np.int8 and dag.shape == (d, d)
    assert nx.is_directed_acyclic_graph(nx.from_numpy_array(dag, create_using=nx.DiGraph))
    above = (probabilities > 0.5) & ~np.eye(d, dtype=bool)
    assert not (dag.astype(bool) & ~above).any()  # only candidates are taken
    for i, j in np.argwhere(above & (dag == 0)):  # every candidate left out would have closed a cycle
        assert closes_a_cycle(dag, i, j), (i, j)
    np.testing.assert_array_equal(dag, dag_from_probabilities(probabilities.copy(), threshold=0.5))


def test_all_ones_gives_a_complete_dag() -> None:
    dag = dag_from_probabilities(np.ones((6, 6)))
    assert dag.sum() == 15  # every pair once: a total order
    np.testing.assert_array_equal(dag, np.triu(np.ones((6, 6), dtype=np.int8), k=1))  # ties by position


def test_highest_probabilities_win_a_cycle() -> None:
    probabilities = np.zeros((3, 3))
    probabilities[0, 1], probabilities[1, 2], probabilities[2, 0] = 0.9, 0.8, 0.95
    probabilities[1, 0] = 0.6  # the reverse of a more probable edge
    dag = dag_from_probabilities(probabilities)
    assert {tuple(e) for e in np.argwhere(dag)} == {(2, 0), (0, 1)}  # 1 -> 2 would close 2 -> 0 -> 1 -> 2


def test_threshold_is_strict_and_bounded() -> None:
    probabilities = np.array([[0.0, 0.5], [0.4, 0.0]])
    assert dag_from_probabilities(probabilities, threshold=0.5).sum() == 0
    assert dag_from_probabilities(probabilities, threshold=0.45).tolist() == [[0, 1], [0, 0]]
    assert dag_from_probabilities(probabilities, threshold=0.0).tolist() == [[0, 1], [0, 0]]
    for bad in (-0.1, 1.5, float("nan"), True):
        with pytest.raises(ValueError, match="threshold must be a number in \\[0, 1\\]"):
            dag_from_probabilities(probabilities, threshold=bad)


def test_required_edges_come_first_and_forbidden_never() -> None:
    probabilities = np.zeros((3, 3))
    probabilities[1, 0], probabilities[0, 2], probabilities[2, 1] = 0.99, 0.9, 0.8
    required = np.zeros((3, 3), dtype=int)
    required[0, 1] = 1  # against the model's 1 -> 0
    forbidden = np.zeros((3, 3), dtype=int)
    forbidden[0, 2] = 1
    dag = dag_from_probabilities(probabilities, required=required, forbidden=forbidden)
    assert {tuple(e) for e in np.argwhere(dag)} == {(0, 1), (2, 1)}
    dag = dag_from_probabilities(probabilities, required=required)
    assert {tuple(e) for e in np.argwhere(dag)} == {(0, 1), (0, 2), (2, 1)}


def test_bad_constraints_and_probabilities() -> None:
    p = np.full((3, 3), 0.7)
    both = np.zeros((3, 3), dtype=int)
    both[0, 1] = 1
    with pytest.raises(ValueError, match="edge 0 -> 1 is both required and forbidden"):
        dag_from_probabilities(p, required=both, forbidden=both)
    cycle = np.array([[0, 1, 0], [0, 0, 1], [1, 0, 0]])
    with pytest.raises(ValueError, match="required edges contain a cycle"):
        dag_from_probabilities(p, required=cycle)
    with pytest.raises(ValueError, match="required has a self-loop on node 2"):
        dag_from_probabilities(p, required=np.diag([0, 0, 1]))
    with pytest.raises(ValueError, match="forbidden must be a \\[d, d\\] adjacency with d = 3"):
        dag_from_probabilities(p, forbidden=np.zeros((2, 2)))
    with pytest.raises(ValueError, match="probabilities must be a square"):
        dag_from_probabilities(np.zeros((2, 3)))
    with pytest.raises(ValueError, match="NaN or infinite"):
        dag_from_probabilities(np.array([[0.0, np.nan], [0.2, 0.0]]))


# ----- scores -----------------------------------------------------------------------------------------------


def test_shd_counts_a_reversal_once_and_f1_directed_edges() -> None:
    truth = np.array([[0, 1, 0], [0, 0, 1], [0, 0, 0]])
    predicted = np.array([[0, 0, 0], [1, 0, 0], [1, 0, 0]])  # 0->1 reversed, 1->2 missing, 2->0 extra
    assert structural_hamming_distance(truth, predicted) == 3
    assert structural_hamming_distance(truth, truth) == 0
    assert structural_hamming_distance(truth, np.zeros((3, 3))) == 2  # the empty graph: one per true edge
    assert edge_f1(truth, truth) == 1.0 and edge_f1(truth, predicted) == 0.0
    half = np.array([[0, 1, 0], [0, 0, 0], [1, 0, 0]])  # TP 1, FP 1, FN 1
    assert edge_f1(truth, half) == pytest.approx(0.5)
    assert edge_f1(np.zeros((3, 3)), np.zeros((3, 3))) == 1.0


def test_auroc_and_auprc_by_hand() -> None:
    truth = np.array([[0, 1, 0], [0, 0, 1], [0, 0, 0]])
    perfect = truth * 0.9 + 0.05
    assert auroc(truth, perfect) == 1.0 and auprc(truth, perfect) == 1.0
    assert auroc(truth, 1 - perfect) == 0.0
    assert auroc(truth, np.full((3, 3), 0.3)) == 0.5  # all tied
    assert auprc(truth, np.full((3, 3), 0.3)) == pytest.approx(2 / 6)  # one threshold: precision = base rate
    # off-diagonal scores in row-major order: (0,1) .9  (0,2) .8  (1,0) .1  (1,2) .3  (2,0) .2  (2,1) .4
    scores = np.array([[0, 0.9, 0.8], [0.1, 0, 0.3], [0.2, 0.4, 0]])
    # positives .9 and .3; negatives .8 .4 .2 .1: pairs won = 4 + 2 of 8
    assert auroc(truth, scores) == pytest.approx(6 / 8)
    # ranking .9(+) .8 .4 .3(+): precision 1 at recall 1/2, then 2/4 at recall 1
    assert auprc(truth, scores) == pytest.approx(0.5 * 1 + 0.5 * 0.5)
    for score in (auroc, auprc):  # ranking is undefined without both edges and non-edges
        with pytest.raises(ValueError, match="both edges and non-edges"):
            score(np.zeros((3, 3)), scores)
