"""The metrics against independent references (brute force over pairs, closed forms, exact rational arithmetic)
and their invariants, on the inputs that broke earlier versions: samples far from the origin, magnitudes of
1e200 and 1e-200, constant columns, duplicated rows, NaN, DataFrames with their columns in another order.

Tolerances come from float64's machine epsilon and the operation: a sum of k terms loses at most about k eps
relative (numpy's pairwise summation much less), and the pairwise distances are computed so that each one is
accurate to ``(d + 2) eps / _CANCELLATION`` relative (the bound below which an entry is recomputed exactly).
"""

from __future__ import annotations

import math
import tracemalloc
from fractions import Fraction

import numpy as np
import pandas as pd
import pytest

from condfip_eval import metrics
from condfip_eval.metrics import (
    MAX_POOLED_ROWS,
    Standardizer,
    energy_distance,
    mean_and_standard_error,
    median_heuristic_bandwidth,
    mmd_squared,
    rmse,
)
from condfip_eval.tables import format_mean_error, summarize_records

EPS = float(np.finfo(np.float64).eps)


def distance_tolerance(d: int) -> float:
    """Relative error bound of one pairwise (squared) distance in d dimensions."""
    return (d + 2) * EPS / metrics._CANCELLATION


def brute_distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """|a_i - b_j| [n, m] one pair at a time with math.fsum (correctly rounded sums)."""
    return np.array(
        [[math.sqrt(math.fsum((p - q) ** 2 for p, q in zip(u, v, strict=True))) for v in b] for u in a]
    )


def brute_mmd(x: np.ndarray, y: np.ndarray, bandwidth: float) -> float:
    """Gretton et al. (2012), eq. 3: the unbiased MMD^2, pair by pair."""
    kernel = lambda a, b: np.exp(-(brute_distances(a, b) ** 2) / (2.0 * bandwidth**2))  # noqa: E731
    n, m = len(x), len(y)
    k_xx, k_yy, k_xy = kernel(x, x), kernel(y, y), kernel(x, y)
    within_x = math.fsum(k_xx[i, j] for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
    within_y = math.fsum(k_yy[i, j] for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    return within_x + within_y - 2.0 * math.fsum(k_xy.ravel()) / (n * m)


def brute_energy(x: np.ndarray, y: np.ndarray) -> float:
    mean = lambda a, b: math.fsum(brute_distances(a, b).ravel()) / (len(a) * len(b))  # noqa: E731
    return 2.0 * mean(x, y) - mean(x, x) - mean(y, y)


@pytest.fixture
def samples():
    rng = np.random.default_rng(7)
    return rng.normal(size=(9, 3)), rng.normal(loc=0.5, scale=1.5, size=(12, 3))


# ---------------------------------------------------------------------------------------------------------------
# Brute force and closed forms


def test_mmd_and_energy_match_brute_force(samples):
    x, y = samples
    pooled = np.concatenate([x, y])
    pairs = brute_distances(pooled, pooled)[np.triu_indices(len(pooled), k=1)]
    bandwidth = float(np.median(pairs))
    assert median_heuristic_bandwidth(x, y) == pytest.approx(bandwidth, rel=distance_tolerance(3))
    # each kernel value exp(-s) is off by at most s * (relative error of s); s <= (max distance / h)^2 / 2
    spread = float(pairs.max() / bandwidth) ** 2
    assert mmd_squared(x, y) == pytest.approx(
        brute_mmd(x, y, bandwidth), abs=4 * spread * distance_tolerance(3)
    )
    assert mmd_squared(x, y, bandwidth=0.7) == pytest.approx(
        brute_mmd(x, y, 0.7), abs=4 * float(pairs.max() / 0.7) ** 2 * distance_tolerance(3)
    )
    assert energy_distance(x, y) == pytest.approx(
        brute_energy(x, y), abs=8 * pairs.max() * distance_tolerance(3)
    )


def test_energy_distance_of_two_point_masses_is_twice_their_distance():
    # |a - b| = 5 (a 3-4-5 triangle), far from the origin and at extreme magnitudes
    for scale, offset in ((1.0, 0.0), (1.0, 1e8), (1e200, 0.0), (1e-200, 0.0)):
        a = np.full((3, 2), offset) + scale * np.array([4.0, 0.0])
        b = np.full((5, 2), offset) + scale * np.array([0.0, 3.0])
        assert energy_distance(a, b) == pytest.approx(10.0 * scale, rel=8 * EPS)
        assert energy_distance(a[:1], b[:1]) == pytest.approx(10.0 * scale, rel=8 * EPS)  # one row each


def test_mmd_squared_of_two_gaussians_matches_the_closed_form():
    """E[MMD^2_u] = E k(X, X') + E k(Y, Y') - 2 E k(X, Y): for N(mu, s^2 I_d) samples and the Gaussian kernel of
    bandwidth h, E exp(-|Z|^2 / 2h^2) for Z ~ N(m, v I_d) is (h^2 / (h^2 + v))^(d/2) exp(-|m|^2 / 2(h^2 + v))."""
    d, h, s_x, s_y = 2, 1.5, 1.0, 0.7
    shift = np.array([0.6, -0.3])

    def expected_kernel(mean_difference: np.ndarray, variance: float) -> float:
        ratio = h**2 / (h**2 + variance)
        return ratio ** (d / 2) * math.exp(
            -float(mean_difference @ mean_difference) / (2 * (h**2 + variance))
        )

    closed_form = (
        expected_kernel(np.zeros(d), 2 * s_x**2)
        + expected_kernel(np.zeros(d), 2 * s_y**2)
        - 2 * expected_kernel(shift, s_x**2 + s_y**2)
    )
    rng = np.random.default_rng(11)
    estimates = np.array(
        [
            mmd_squared(rng.normal(size=(200, d)) * s_x, shift + rng.normal(size=(150, d)) * s_y, bandwidth=h)
            for _ in range(40)
        ]
    )
    standard_error = estimates.std(ddof=1) / math.sqrt(len(estimates))
    assert abs(estimates.mean() - closed_form) < 4 * standard_error  # unbiased: only Monte Carlo error


def test_mmd_squared_is_unbiased_not_the_v_statistic():
    """Two samples of one distribution: the estimates average to 0 (the V-statistic, which keeps the diagonal's
    ones, would average about (2 - 2 E k) / n above it)."""
    rng = np.random.default_rng(3)
    n = 30
    estimates = np.array(
        [mmd_squared(rng.normal(size=(n, 2)), rng.normal(size=(n, 2)), bandwidth=1.0) for _ in range(300)]
    )
    standard_error = estimates.std(ddof=1) / math.sqrt(len(estimates))
    assert abs(estimates.mean()) < 4 * standard_error
    # E k(X, X') for N(0, I_2) and h = 1: (1 / 3); the V-statistic's bias (2 - 2/3) / n is many errors away
    assert (2 - 2 / 3) / n > 10 * standard_error


def test_rmse_and_standard_error_match_exact_rational_arithmetic():
    rng = np.random.default_rng(5)
    prediction, target = rng.normal(size=(6, 4)), rng.normal(size=(6, 4))
    per_row = [
        math.sqrt(float(sum((Fraction(p) - Fraction(t)) ** 2 for p, t in zip(a, b, strict=True)) / 4))
        for a, b in zip(prediction, target, strict=True)
    ]
    assert rmse(prediction, target) == pytest.approx(math.fsum(per_row) / 6, rel=8 * EPS)

    values = [0.1, 0.25, 0.4, 0.05]
    exact = [Fraction(v) for v in values]
    mean = sum(exact) / 4
    variance = sum((v - mean) ** 2 for v in exact) / 3  # ddof = 1, as documented
    got_mean, got_error = mean_and_standard_error(values)
    assert got_mean == pytest.approx(float(mean), rel=4 * EPS)
    assert got_error == pytest.approx(math.sqrt(float(variance) / 4), rel=8 * EPS)


def test_table_cells_are_mean_and_standard_error_with_n_minus_1():
    records = [
        {"rmse": {"noise": value}, "fit_seconds": 1.0, "sample_seconds": 1.0} for value in (0.1, 0.2, 0.4)
    ]
    summary = summarize_records(records, ["noise"])["noise"]
    # std(ddof=1) = sqrt(((0.1 - 7/30)^2 + (0.2 - 7/30)^2 + (0.4 - 7/30)^2) / 2) = 0.1528; / sqrt(3) = 0.0882
    assert format_mean_error(summary["mean"], summary["standard_error"]) == "0.233 (0.088)"
    one = summarize_records(records[:1], ["noise"])["noise"]  # one SCM: no spread to estimate
    assert format_mean_error(one["mean"], one["standard_error"]) == "0.100 (-)"


# ---------------------------------------------------------------------------------------------------------------
# Invariants


def test_symmetry_and_identical_samples(samples):
    x, y = samples
    assert mmd_squared(x, y) == pytest.approx(mmd_squared(y, x), rel=64 * EPS)
    assert energy_distance(x, y) == pytest.approx(energy_distance(y, x), rel=64 * EPS)
    assert median_heuristic_bandwidth(x, y) == median_heuristic_bandwidth(y, x)
    assert abs(energy_distance(x, x)) <= 8 * EPS  # the diagonal is exactly 0, not sqrt(rounding)
    # the unbiased MMD^2 of a sample with itself: 2 A / (n^2 (n - 1)) - 2 / n <= 0, A the off-diagonal kernel sum
    bandwidth = median_heuristic_bandwidth(x, x)
    kernel = np.exp(-(brute_distances(x, x) ** 2) / (2 * bandwidth**2))
    n = len(x)
    off_diagonal = math.fsum(kernel.ravel()) - n
    expected = 2 * off_diagonal / (n * n * (n - 1)) - 2 / n
    assert mmd_squared(x, x) == pytest.approx(expected, abs=64 * EPS) and expected < 0


@pytest.mark.parametrize("offset", [2.0**20, 2.0**30, -(2.0**40)])
def test_translation_far_from_the_origin_changes_nothing(offset):
    """Values on a grid of 2^-12 plus an offset of up to 2^40 are exact in float64, so the translated samples are
    the same point sets: the old |a|^2 + |b|^2 - 2ab expansion lost every digit there (energy off by 32%)."""
    rng = np.random.default_rng(2)
    x = np.round(rng.normal(size=(40, 3)) * 4096) / 4096
    y = np.round(rng.normal(loc=0.3, size=(50, 3)) * 4096) / 4096
    assert energy_distance(x + offset, y + offset) == pytest.approx(
        energy_distance(x, y), rel=16 * distance_tolerance(3)
    )
    assert mmd_squared(x + offset, y + offset) == pytest.approx(
        mmd_squared(x, y), abs=16 * distance_tolerance(3)
    )
    assert median_heuristic_bandwidth(x + offset, y + offset) == pytest.approx(
        median_heuristic_bandwidth(x, y), rel=16 * distance_tolerance(3)
    )


@pytest.mark.parametrize("scale", [1e200, 1e-200, 2.0**-1060])
def test_extreme_magnitudes_scale_exactly(samples, scale):
    """Distances of 1e200 overflow when squared, of 1e-200 underflow to 0: before, NaN and 0.0 came back."""
    x, y = samples
    scaled_x, scaled_y = x * scale, y * scale
    tolerance = 64 * distance_tolerance(3) + (1e-3 if scale < 1e-300 else 0.0)  # subnormals keep ~40 bits
    assert energy_distance(scaled_x, scaled_y) / scale == pytest.approx(energy_distance(x, y), rel=tolerance)
    assert mmd_squared(scaled_x, scaled_y) == pytest.approx(mmd_squared(x, y), rel=tolerance)
    assert median_heuristic_bandwidth(scaled_x, scaled_y) / scale == pytest.approx(
        median_heuristic_bandwidth(x, y), rel=tolerance
    )
    assert rmse(scaled_x[:9], scaled_y[:9]) / scale == pytest.approx(rmse(x[:9], y[:9]), rel=tolerance)


def test_rmse_near_the_float64_limit():
    # a difference of 2e308 overflows, but its RMSE over 4 nodes, 1e308, does not
    assert rmse([[1e308, 0, 0, 0]], [[-1e308, 0, 0, 0]]) == pytest.approx(1e308, rel=4 * EPS)
    with pytest.raises(ValueError, match="beyond float64's range"):
        rmse([[1e308]], [[-1e308]])
    mean, error = mean_and_standard_error([1e308, 1e308, -1e308])  # sums and squares of these overflow
    assert mean == pytest.approx(1e308 / 3, rel=8 * EPS)
    # deviations 2/3, 2/3, -4/3 (times 1e308): std(ddof=1) = sqrt(24/9 / 2), over sqrt(3): 2/3
    assert error == pytest.approx(1e308 / 3 * 2, rel=8 * EPS)


def test_float32_inputs_are_scored_in_float64(samples):
    x, y = (sample.astype(np.float32) for sample in samples)
    x64, y64 = x.astype(np.float64), y.astype(np.float64)
    assert mmd_squared(x, y) == mmd_squared(x64, y64)
    assert energy_distance(x, y) == energy_distance(x64, y64)
    assert rmse(x[:9], y[:9]) == rmse(x64[:9], y64[:9])


# ---------------------------------------------------------------------------------------------------------------
# The median heuristic with duplicated rows, and its memory bound


def test_bandwidth_with_duplicated_rows_keeps_the_data_scale():
    # 20 equal rows and 2 others at 1e-6: 191 of 231 pairwise distances are 0, the median too
    rows = np.vstack([np.zeros((20, 1)), np.full((2, 1), 1e-6)])
    assert median_heuristic_bandwidth(rows[:11], rows[11:]) == pytest.approx(1e-6, rel=4 * EPS)
    # before, the fallback was 1.0: a kernel of 1 - 5e-13 everywhere and an MMD^2 of ~1e-13 for such samples
    x, y = np.zeros((10, 1)), np.vstack([np.zeros((8, 1)), np.full((2, 1), 1e-6)])
    assert mmd_squared(x, y) == pytest.approx(brute_mmd(x, y, 1e-6), abs=8 * distance_tolerance(1))
    assert mmd_squared(x, y) > 0.017
    same = np.ones((5, 2))
    assert median_heuristic_bandwidth(same, same) == 1.0  # every row equal: any bandwidth gives one kernel
    assert mmd_squared(same, same) == 0.0 and energy_distance(same, same) == 0.0


def test_median_heuristic_refuses_too_many_rows_before_allocating():
    rows = np.zeros((MAX_POOLED_ROWS, 1))
    tracemalloc.start()
    try:
        with pytest.raises(
            ValueError, match=r"needs all 134,225,920 pairwise distances \(1\.0 GiB\).*bandwidth="
        ):
            median_heuristic_bandwidth(rows, rows[:1])
        with pytest.raises(ValueError, match="pass bandwidth="):
            mmd_squared(rows, rows[:2])
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 4 * rows.nbytes  # the inputs' own size, never the 1 GiB of distances
    # with a bandwidth there is no median: the sums go a block at a time
    assert mmd_squared(np.zeros((3, 1)), np.ones((3, 1)), bandwidth=1.0) == pytest.approx(
        2 - 2 * math.exp(-0.5), rel=8 * EPS
    )


# ---------------------------------------------------------------------------------------------------------------
# Bad input


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda x: rmse(np.where(x > 1, np.nan, x), x), r"prediction holds nan at row \d+, column \d+"),
        (lambda x: mmd_squared(x, np.where(x > 1, np.inf, x)), r"y holds inf at row \d+, column \d+"),
        (lambda x: energy_distance(x[:0], x), "x must hold at least one row; got 0 rows"),
        (lambda x: mmd_squared(x[:1], x), "x must hold at least 2 rows; got 1 rows"),
        (lambda x: rmse(x[:, :0], x[:, :0]), "must have at least one column"),
        (lambda x: energy_distance(x, x[:, :2]), "same number of columns; got 3 and 2"),
        (lambda x: median_heuristic_bandwidth(x, x[:, :2]), "same number of columns; got 3 and 2"),
        (lambda x: median_heuristic_bandwidth(x[:1], x[:0]), "at least 2 rows together"),
        (lambda x: rmse(x + 1j, x), "real numbers; got complex"),
        (lambda x: rmse(x.astype(str), x), "real numbers; got an array of <U"),
        (lambda x: mmd_squared(x, x, bandwidth=math.inf), "finite positive number; got inf"),
        (lambda x: mmd_squared(x, x, bandwidth="1"), "positive number; got str"),
        (lambda x: mean_and_standard_error([1.0, math.nan]), "values holds nan at index 1"),
        (lambda x: mean_and_standard_error([1.0, None]), "values holds nan at index 1"),
        (lambda x: Standardizer.fit(x[:0]), "observational must hold at least one row"),
        (lambda x: Standardizer.fit(x).data(x[:, :2]), "must have the 3 columns of the fitted"),
        (lambda x: Standardizer.fit(x).data(x[0]), "x must be a 2-d array"),
    ],
)
def test_bad_input_is_a_clear_value_error(samples, call, message):
    with pytest.raises(ValueError, match=message):
        call(samples[0] * 2.0)


def test_extreme_bandwidths_give_the_limits(samples):
    x, y = samples
    # far below every distance: only equal rows count (none here); far above: every kernel value is 1
    assert mmd_squared(x, y, bandwidth=1e-300) == 0.0
    assert mmd_squared(x, y, bandwidth=1e300) == 0.0


def test_dataframes_are_matched_by_column_name(samples):
    x, y = samples
    columns = ["a", "b", "c"]
    frame_x, frame_y = pd.DataFrame(x, columns=columns), pd.DataFrame(y, columns=columns)
    reordered = frame_y[["c", "a", "b"]]
    assert mmd_squared(frame_x, reordered) == mmd_squared(x, y)
    assert energy_distance(frame_x, reordered) == energy_distance(x, y)
    assert rmse(frame_x, pd.DataFrame(x[::-1].copy(), columns=columns)[["b", "c", "a"]]) == rmse(x, x[::-1])
    with pytest.raises(
        ValueError, match=r"y must have the columns of x \(matched by name\): missing \['c'\]"
    ):
        energy_distance(frame_x, frame_y.rename(columns={"c": "d"}))
    with pytest.raises(ValueError, match="different row labels"):
        rmse(frame_x, frame_x.set_axis(range(10, 19)))
    standardizer = Standardizer.fit(frame_x)
    np.testing.assert_array_equal(standardizer.data(frame_x[["c", "b", "a"]]), standardizer.data(x))
    with pytest.raises(ValueError, match=r"x must have the columns of the fitted observational rows"):
        standardizer.data(frame_x.rename(columns={"a": "z"}))


def test_constant_columns_keep_scale_one_exactly():
    """A column of 0.1s has a float64 mean of 0.1 + 1.4e-17 and so a 'std' of 1.4e-17: dividing by it turned
    an error of 1e-9 into 7e7 standard deviations. A constant column now keeps scale 1, as documented."""
    rows = np.column_stack([np.full(853, 0.1), np.linspace(0.0, 1.0, 853)])
    standardizer = Standardizer.fit(rows)
    assert standardizer.std[0] == 1.0 and standardizer.mean[0] == 0.1 and standardizer.constant == (0,)
    assert standardizer.data(np.array([[0.1 + 1e-9, 0.5]]))[0, 0] == pytest.approx(1e-9, rel=1e-6)
    with pytest.raises(ValueError, match=r"observational column 0 is constant .* drop the column"):
        Standardizer.fit(rows, allow_constant=False)
    with pytest.raises(ValueError, match=r"column p is constant"):
        Standardizer.fit(pd.DataFrame(rows, columns=["p", "q"]), allow_constant=False)
