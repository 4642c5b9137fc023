import math

import numpy as np
import pytest

from condfip_eval.metrics import (
    Standardizer,
    auprc,
    auroc,
    edge_f1,
    energy_distance,
    mean_and_standard_error,
    median_heuristic_bandwidth,
    mmd_squared,
    rmse,
    structural_hamming_distance,
)


def test_rmse_is_mean_over_rows_of_root_mean_over_nodes():
    prediction = np.array([[1.0, 2.0], [0.0, 0.0]])
    target = np.array([[1.0, 0.0], [3.0, 4.0]])
    # row errors (0, 2) -> sqrt(2); (3, 4) -> 5 / sqrt(2); mean of the two
    assert rmse(prediction, target) == pytest.approx(7.0 / (2.0 * math.sqrt(2.0)), rel=1e-12)
    assert rmse(target, target) == 0.0


def test_rmse_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match="same shape"):
        rmse(np.zeros((3, 2)), np.zeros((3, 3)))
    with pytest.raises(ValueError, match="2-d"):
        rmse(np.zeros(3), np.zeros(3))


def test_standardizer_centres_data_and_only_scales_noise():
    standardizer = Standardizer.fit(np.array([[0.0, 5.0], [2.0, 5.0]]))
    np.testing.assert_allclose(standardizer.mean, [1.0, 5.0])
    np.testing.assert_allclose(standardizer.std, [1.0, 1.0])  # the constant column keeps scale 1
    np.testing.assert_allclose(standardizer.data(np.array([[3.0, 7.0]])), [[2.0, 2.0]])
    np.testing.assert_allclose(standardizer.noise(np.array([[3.0, 7.0]])), [[3.0, 7.0]])
    scaled = Standardizer.fit(np.array([[0.0], [4.0]]))  # mean 2, population std 2
    np.testing.assert_allclose(scaled.data(np.array([[6.0]])), [[2.0]])
    np.testing.assert_allclose(scaled.noise(np.array([[6.0]])), [[3.0]])


def test_mean_and_standard_error():
    mean, error = mean_and_standard_error([1.0, 2.0, 3.0])
    assert mean == pytest.approx(2.0)
    assert error == pytest.approx(1.0 / math.sqrt(3.0))  # sample std 1
    mean, error = mean_and_standard_error([4.0])
    assert mean == 4.0 and math.isnan(error)
    with pytest.raises(ValueError, match="non-empty"):
        mean_and_standard_error([])


def test_mmd_squared_hand_computed():
    x = np.array([[0.0], [1.0]])
    y = np.array([[0.0], [2.0]])
    # pooled distances 1, 0, 2, 1, 1, 2 -> median 1
    assert median_heuristic_bandwidth(x, y) == 1.0
    # k(a, b) = exp(-(a - b)^2 / 2): within x e^-1/2, within y e^-2, between (1 + e^-2 + 2 e^-1/2) / 4
    expected = 0.5 * math.exp(-2.0) - 0.5
    assert mmd_squared(x, y) == pytest.approx(expected, rel=1e-12)
    assert mmd_squared(x, y, bandwidth=1.0) == pytest.approx(expected, rel=1e-12)


def test_mmd_squared_separates_distributions():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(300, 3)), rng.normal(size=(300, 3))
    shifted = rng.normal(loc=1.0, size=(300, 3))
    same, different = mmd_squared(a, b), mmd_squared(a, shifted)
    assert abs(same) < 0.01
    assert different > 0.1
    assert mmd_squared(a, shifted) == pytest.approx(mmd_squared(shifted, a), rel=1e-12)
    with pytest.raises(ValueError, match="bandwidth"):
        mmd_squared(a, b, bandwidth=0.0)
    with pytest.raises(ValueError, match="same number of columns"):
        mmd_squared(a, b[:, :2])


def test_energy_distance_hand_computed():
    x = np.array([[0.0], [1.0]])
    y = np.array([[0.0], [2.0]])
    # between: (0 + 2 + 1 + 1) / 4 = 1; within x: 2 / 4; within y: 4 / 4
    assert energy_distance(x, y) == pytest.approx(0.5, rel=1e-12)
    assert energy_distance(x, x) == 0.0
    two_d = np.array([[0.0, 0.0]]), np.array([[3.0, 4.0]])
    assert energy_distance(*two_d) == pytest.approx(10.0)  # 2 * 5 - 0 - 0


TRUE_GRAPH = np.array([[0, 1, 0], [0, 0, 1], [0, 0, 0]])  # 0 -> 1 -> 2


def test_shd_counts_reversal_once():
    predicted = np.array([[0, 0, 1], [1, 0, 1], [0, 0, 0]])  # 1 -> 0 (reversed), 1 -> 2, 0 -> 2 (extra)
    assert structural_hamming_distance(TRUE_GRAPH, predicted) == 2
    assert structural_hamming_distance(TRUE_GRAPH, TRUE_GRAPH) == 0
    assert structural_hamming_distance(TRUE_GRAPH, np.zeros((3, 3), int)) == 2
    both_ways = TRUE_GRAPH + TRUE_GRAPH.T  # each true edge also reversed: one mistake per pair
    assert structural_hamming_distance(TRUE_GRAPH, both_ways) == 2


def test_edge_f1_hand_computed():
    predicted = np.array([[0, 0, 1], [1, 0, 1], [0, 0, 0]])  # TP 1 (1->2), FP 2, FN 1 (0->1)
    assert edge_f1(TRUE_GRAPH, predicted) == pytest.approx(2.0 / 5.0)
    assert edge_f1(TRUE_GRAPH, TRUE_GRAPH) == 1.0
    assert edge_f1(np.zeros((3, 3), int), np.zeros((3, 3), int)) == 1.0
    with pytest.raises(ValueError, match="only 0 and 1"):
        edge_f1(TRUE_GRAPH, TRUE_GRAPH * 0.5)


SCORES = np.array([[0.0, 0.9, 0.8], [0.1, 0.0, 0.8], [0.3, 0.2, 0.0]])


def test_auroc_hand_computed_with_a_tie():
    # positives 0.9, 0.8; negatives 0.8, 0.1, 0.3, 0.2: 4 + 3 wins and one tie (1/2) of 8 pairs
    assert auroc(TRUE_GRAPH, SCORES) == pytest.approx(7.5 / 8.0)
    assert auroc(TRUE_GRAPH, TRUE_GRAPH.astype(float)) == 1.0
    assert auroc(TRUE_GRAPH, 1.0 - TRUE_GRAPH) == 0.0


def test_auprc_hand_computed_with_a_tie():
    # thresholds 0.9: precision 1, recall 1/2; 0.8 (one edge, one non-edge): precision 2/3, recall 1
    assert auprc(TRUE_GRAPH, SCORES) == pytest.approx(0.5 * 1.0 + 0.5 * 2.0 / 3.0)
    assert auprc(TRUE_GRAPH, TRUE_GRAPH.astype(float)) == 1.0
    # a constant score ranks everything together: precision = edge density (2 of 6)
    assert auprc(TRUE_GRAPH, np.ones((3, 3))) == pytest.approx(2.0 / 6.0)


def test_ranking_scores_need_both_classes():
    with pytest.raises(ValueError, match="both edges and non-edges"):
        auroc(np.zeros((3, 3), int), SCORES)
    with pytest.raises(ValueError, match="square"):
        auprc(TRUE_GRAPH, SCORES[:2])
