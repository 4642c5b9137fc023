"""Scores of the evaluation protocol (docs/ARCHITECTURE.md, "Evaluation protocol"), in plain numpy.

- RMSE in standardized units: ``mean over rows of sqrt(mean over nodes of (prediction - target)^2)``.
- Cell summaries: mean and standard error over the SCMs of a cell.
- Distribution distances for real data: unbiased MMD^2 with a Gaussian kernel and the energy distance.
- Graph scores: SHD, edge F1, AUROC and AUPRC (``condfip.core.graph_scores``; ``adjacency[i, j] = 1`` for ``i -> j``).

Every score takes arrays (or DataFrames) of finite real numbers, of any float dtype (computed in float64), and
refuses anything else with a ValueError naming the argument. Two DataFrames are matched by column name (the same
columns in another order are reordered; other columns are refused). The scores are computed without overflow or
underflow for any finite float64 input (values of 1e200 or 1e-200 get the same answer as values of 1, scaled),
and pairwise distances are exact to rounding however far the samples lie from the origin.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from condfip.api.arguments import is_real

# the graph scores have one implementation, in condfip; re-exported here with the other scores
from condfip.core.graph_scores import (
    auprc,
    auroc,
    edge_f1,
    has_edges_and_non_edges,
    structural_hamming_distance,
)
from condfip.core.standardization import Standardization

# pairwise distances have one implementation for the kernel regression in condfip; re-exported for callers of
# earlier versions (the distances below are computed by this module, translation- and scale-safe)
from condfip.demo.baseline import squared_distances

__all__ = [
    "MAX_MEDIAN_PAIRS",
    "MAX_POOLED_ROWS",
    "Standardizer",
    "auprc",
    "auroc",
    "check_median_heuristic_size",
    "edge_f1",
    "energy_distance",
    "has_edges_and_non_edges",
    "mean_and_standard_error",
    "median_heuristic_bandwidth",
    "mmd_squared",
    "rmse",
    "squared_distances",
    "structural_hamming_distance",
]

MAX_MEDIAN_PAIRS = 2**27
"""The most pairwise distances the median heuristic holds at once (1 GiB of float64). Larger samples are
refused before anything is allocated; pass an explicit bandwidth instead."""
MAX_POOLED_ROWS = (1 + math.isqrt(1 + 8 * MAX_MEDIAN_PAIRS)) // 2
"""The most rows (16,384) the median heuristic pools: ``n (n - 1) / 2 <= MAX_MEDIAN_PAIRS``."""

_BLOCK_CELLS = 2**20  # pairwise values computed at once (8 MiB of float64 per array)
# An entry of |a|^2 + |b|^2 - 2 a.b below this fraction of |a|^2 + |b|^2 may have lost more than about
# (d + 2) * 2^-53 / _CANCELLATION of its relative precision to cancellation; such entries (near-duplicate rows,
# and the diagonal) are recomputed from the differences, so every distance is accurate to ~1e-12 relative.
_CANCELLATION = 2.0**-10


# ---------------------------------------------------------------------------------------------------------------
# Input checks


def _column_names(value: object) -> list[Hashable] | None:
    return list(value.columns) if isinstance(value, pd.DataFrame) else None


def _real_array(name: str, value: object) -> np.ndarray:
    """``value`` as a float64 array; anything but real numbers is a ValueError naming ``name``."""
    if isinstance(value, pd.DataFrame):
        kinds = {dtype.kind for dtype in value.dtypes}
        if not kinds <= set("biuf"):
            odd = [str(c) for c, dtype in value.dtypes.items() if dtype.kind not in "biuf"][:3]
            raise ValueError(f"{name} must hold real numbers; its columns {odd} are not numeric")
        value = value.to_numpy(dtype=np.float64)
    array = np.asarray(value)
    if array.dtype.kind in "biuf":
        return array.astype(np.float64, copy=False)
    if array.dtype.kind == "c":
        raise ValueError(f"{name} must hold real numbers; got complex values")
    if array.dtype.kind == "O":
        try:
            return array.astype(np.float64)
        except (TypeError, ValueError):
            pass
    raise ValueError(f"{name} must hold real numbers; got an array of {array.dtype}")


def _require_finite(name: str, array: np.ndarray) -> None:
    bad = ~np.isfinite(array)
    if bad.any():
        position = tuple(int(i) for i in np.argwhere(bad)[0])
        where = f"row {position[0]}, column {position[1]}" if len(position) == 2 else f"index {position[0]}"
        raise ValueError(
            f"{name} holds {array[position]} at {where}; every value must be a finite number (drop or impute "
            "the rows with NaN or infinite values)"
        )


def _as_matrix(name: str, value: object, *, min_rows: int = 1) -> np.ndarray:
    """A 2-d float64 array [n, d] of finite numbers with n >= ``min_rows`` and d >= 1."""
    array = _real_array(name, value)
    if array.ndim != 2:
        raise ValueError(f"{name} must be a 2-d array [n, d]; got shape {array.shape}")
    if array.shape[1] == 0:
        raise ValueError(f"{name} must have at least one column; got shape {array.shape}")
    if array.shape[0] < min_rows:
        rows = "at least one row" if min_rows == 1 else f"at least {min_rows} rows"
        raise ValueError(f"{name} must hold {rows}; got {array.shape[0]} rows")
    _require_finite(name, array)
    return array


def _reordered(name: str, value: pd.DataFrame, columns: list[Hashable], reference: str) -> pd.DataFrame:
    """``value`` with its columns in the order ``columns`` (those of ``reference``), or a ValueError."""
    mine = list(value.columns)
    if mine == columns:
        return value
    if len(set(mine)) == len(mine) == len(columns) and set(mine) == set(columns):
        return value[columns]
    missing = [str(c) for c in columns if c not in mine][:5]
    extra = [str(c) for c in mine if c not in columns][:5]
    repeated = sorted({str(c) for c in mine if mine.count(c) > 1})[:5]
    raise ValueError(
        f"{name} must have the columns of {reference} (matched by name): missing {missing or 'none'}, "
        f"unexpected {extra or 'none'}" + (f", repeated {repeated}" if repeated else "")
    )


def _two_samples(
    x_name: str, x: object, y_name: str, y: object, *, min_rows: int
) -> tuple[np.ndarray, np.ndarray]:
    """Two samples [n, d] and [m, d]; two DataFrames are matched by column name."""
    x_columns, y_columns = _column_names(x), _column_names(y)
    if x_columns is not None and y_columns is not None:
        y = _reordered(y_name, y, x_columns, x_name)
    x_array = _as_matrix(x_name, x, min_rows=min_rows)
    y_array = _as_matrix(y_name, y, min_rows=min_rows)
    if x_array.shape[1] != y_array.shape[1]:
        raise ValueError(
            f"{x_name} and {y_name} must have the same number of columns; got {x_array.shape[1]} and "
            f"{y_array.shape[1]}"
        )
    return x_array, y_array


def _positive_number(name: str, value: object) -> float:
    if not is_real(value):
        raise ValueError(f"{name} must be a positive number; got {type(value).__name__} {value!r}")
    number = float(value)
    if not (math.isfinite(number) and number > 0):
        raise ValueError(f"{name} must be a finite positive number; got {number}")
    return number


def _exponent(largest: float) -> int:
    """k with ``largest < 2^k <= 2 largest`` (0 for 0): dividing by ``2^k`` maps ``[-largest, largest]`` into
    ``(-1, 1)`` exactly."""
    return int(np.frexp(largest)[1]) if largest > 0 else 0


# ---------------------------------------------------------------------------------------------------------------
# Standardization and RMSE


@dataclass(frozen=True)
class Standardizer(Standardization):
    """Per-column location and scale of a dataset's observational rows (``condfip.core.standardization``).

    Data are mapped to ``(x - mean) / std``; noise only to ``noise / std`` (noise is scaled, not centred).
    A constant column (every value equal) has no spread to divide by: it keeps scale 1 and its value as centre,
    and is listed in ``constant``; ``fit(..., allow_constant=False)`` refuses it instead. Fitted on a DataFrame,
    ``data`` and ``noise`` match DataFrames by column name (``names``).
    """

    names: tuple[Hashable, ...] | None = None
    constant: tuple[int, ...] = ()

    @classmethod
    def fit(cls, observational: object, *, allow_constant: bool = True) -> Standardizer:
        names = _column_names(observational)
        data = _as_matrix("observational", observational)
        fitted = Standardization.fit(data)
        # max == min exactly: the rounding of the mean leaves a spurious std of ~1e-17 relative in such columns
        constant = np.flatnonzero(data.max(axis=0) == data.min(axis=0))
        if constant.size and not allow_constant:
            shown = ", ".join(str(names[c]) if names else str(int(c)) for c in constant[:5])
            if constant.size == 1:
                what = f"observational column {shown} is constant (every value equal), so it has"
            else:
                what = f"observational columns {shown} are constant (every value equal), so they have"
            raise ValueError(f"{what} no standardized units to score in; drop the column")
        mean, std = fitted.mean.copy(), fitted.std.copy()
        mean[constant], std[constant] = data[0, constant], 1.0
        return cls(
            mean=mean,
            std=std,
            names=None if names is None else tuple(names),
            constant=tuple(int(c) for c in constant),
        )

    def _rows(self, name: str, value: object) -> np.ndarray:
        if self.names is not None and isinstance(value, pd.DataFrame):
            value = _reordered(name, value, list(self.names), "the fitted observational rows")
        array = _as_matrix(name, value, min_rows=0)
        if array.shape[1] != self.mean.shape[0]:
            raise ValueError(
                f"{name} must have the {self.mean.shape[0]} columns of the fitted observational rows; got "
                f"shape {array.shape}"
            )
        return array

    def _finite(self, name: str, standard: np.ndarray) -> np.ndarray:
        if not np.isfinite(standard).all():
            row, column = (int(i) for i in np.argwhere(~np.isfinite(standard))[0])
            raise ValueError(
                f"{name} at row {row}, column {column} is beyond float64's range in standardized units; "
                "rescale the data"
            )
        return standard

    def data(self, x: object) -> np.ndarray:
        with np.errstate(over="ignore"):
            return self._finite("x", self.data_to_standard(self._rows("x", x)))

    def noise(self, noise: object) -> np.ndarray:
        with np.errstate(over="ignore"):
            return self._finite("noise", self.noise_to_standard(self._rows("noise", noise)))


def rmse(prediction: object, target: object) -> float:
    """Mean over rows of the root mean squared error over nodes; both [n, d], paired row by row.

    Computed row by row in units of the row's largest difference, so neither squares nor sums overflow or
    underflow; an RMSE beyond float64's range (differences near 1e308) is a ValueError.
    """
    prediction_columns, target_columns = _column_names(prediction), _column_names(target)
    if prediction_columns is not None and target_columns is not None:
        if not prediction.index.equals(target.index):
            raise ValueError(
                "prediction and target are DataFrames with different row labels; rows are paired by position, "
                "so align them (or reset_index both) first"
            )
        target = _reordered("target", target, prediction_columns, "prediction")
    prediction = _as_matrix("prediction", prediction)
    target = _as_matrix("target", target)
    if prediction.shape != target.shape:
        raise ValueError(
            f"prediction and target must have the same shape; got {prediction.shape} and {target.shape}"
        )
    with np.errstate(over="ignore"):
        difference = prediction - target  # [n, d]
    halved = ~np.isfinite(difference).all(axis=1)  # rows whose difference overflows float64
    difference[halved] = prediction[halved] / 2.0 - target[halved] / 2.0
    _, exponents = np.frexp(np.abs(difference).max(axis=1))  # [n]: row r is below 2^exponents[r]
    per_row = np.sqrt(np.mean(np.ldexp(difference, -exponents[:, None]) ** 2, axis=1))  # [n], <= 1
    exponents = exponents + halved  # the halved rows count twice
    top = int(exponents.max())
    value = float(
        np.mean(np.ldexp(per_row, exponents - top))
    )  # rows far below the largest underflow: negligible
    try:
        return math.ldexp(value, top)
    except OverflowError:
        raise ValueError(
            "the RMSE of prediction and target is beyond float64's range (about 1.8e308); rescale both"
        ) from None


def mean_and_standard_error(values: Sequence[float]) -> tuple[float, float]:
    """Mean and standard error ``std(ddof=1) / sqrt(k)`` of k finite values; the error is NaN for a single value
    (no spread can be estimated from one)."""
    array = _real_array("values", values)
    if array.ndim != 1 or array.size == 0:
        raise ValueError(f"values must be a non-empty 1-d sequence; got shape {array.shape}")
    _require_finite("values", array)
    exponent = _exponent(float(np.abs(array).max()))
    scaled = np.ldexp(array, -exponent)  # |scaled| < 1: no overflow in sums or squares
    mean = math.ldexp(float(scaled.mean()), exponent)
    if array.size == 1:
        return float(array[0]), math.nan
    error = float(scaled.std(ddof=1)) / math.sqrt(array.size)
    return mean, math.ldexp(error, exponent)


# ---------------------------------------------------------------------------------------------------------------
# Pairwise distances


def _common_frame(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    """(a, b, k): x and y translated by their pooled mean and divided by a power of two, so that every value of
    a and b is below 1 in magnitude and ``|x_i - y_j| = 2^k |a_i - b_j|`` (the division is exact)."""
    first = _exponent(max(float(np.abs(x).max(initial=0.0)), float(np.abs(y).max(initial=0.0))))
    x, y = np.ldexp(x, -first), np.ldexp(y, -first)
    centre = (x.sum(axis=0) + y.sum(axis=0)) / (x.shape[0] + y.shape[0])
    x, y = x - centre, y - centre
    second = _exponent(max(float(np.abs(x).max(initial=0.0)), float(np.abs(y).max(initial=0.0))))
    return np.ldexp(x, -second), np.ldexp(y, -second), first + second


def _squared_block(a: np.ndarray, b: np.ndarray, a_norms: np.ndarray, b_norms: np.ndarray) -> np.ndarray:
    """Squared distances [n, m] between the rows of a [n, d] and b [m, d] (values below 1)."""
    norms = a_norms[:, None] + b_norms[None, :]
    squared = norms - 2.0 * (a @ b.T)
    np.maximum(squared, 0.0, out=squared)
    rows, columns = np.nonzero(squared <= _CANCELLATION * norms)
    step = max(1, _BLOCK_CELLS // a.shape[1])
    for start in range(0, rows.size, step):
        r, c = rows[start : start + step], columns[start : start + step]
        difference = a[r] - b[c]
        squared[r, c] = np.einsum("ij,ij->i", difference, difference)
    return squared


def _row_norms(a: np.ndarray) -> np.ndarray:
    return np.einsum("ij,ij->i", a, a)


def _pair_sum(a: np.ndarray, b: np.ndarray, function: Callable[[np.ndarray], np.ndarray]) -> float:
    """``sum over i, j of function(|a_i - b_j|^2)``, a block of pairs at a time (``a is b``: the diagonal is 0)."""
    same = a is b
    a_norms = _row_norms(a)
    b_norms = a_norms if same else _row_norms(b)
    n, m = a.shape[0], b.shape[0]
    width = min(m, _BLOCK_CELLS)
    height = max(1, _BLOCK_CELLS // width)
    total = 0.0
    for i in range(0, n, height):
        rows = slice(i, min(n, i + height))
        for j in range(0, m, width):
            columns = slice(j, min(m, j + width))
            squared = _squared_block(a[rows], b[columns], a_norms[rows], b_norms[columns])
            if same:  # the diagonal entries inside this block
                low, high = max(rows.start, columns.start), min(rows.stop, columns.stop)
                if low < high:
                    diagonal = np.arange(low, high)
                    squared[diagonal - rows.start, diagonal - columns.start] = 0.0
            total += float(function(squared).sum())
    return total


def check_median_heuristic_size(num_rows: int) -> None:
    """Refuse a pooled sample of ``num_rows`` whose pairwise distances would exceed ``MAX_MEDIAN_PAIRS``."""
    pairs = num_rows * (num_rows - 1) // 2
    if pairs > MAX_MEDIAN_PAIRS:
        raise ValueError(
            f"the median-heuristic bandwidth of {num_rows:,} pooled rows needs all {pairs:,} pairwise distances "
            f"({pairs * 8 / 2**30:.1f} GiB); at most {MAX_POOLED_ROWS:,} rows are pooled this "
            "way: use fewer rows, or pass bandwidth= (for example the median heuristic of a random subsample)"
        )


def _middle(values: np.ndarray) -> float:
    """The median of the square roots of ``values`` (non-negative; reordered in place), as ``np.median``."""
    half = values.size // 2
    if values.size % 2:
        values.partition(half)
        return math.sqrt(values[half])
    values.partition([half - 1, half])
    return (math.sqrt(values[half - 1]) + math.sqrt(values[half])) / 2.0


def _median_distance(pooled: np.ndarray) -> float:
    """The median distance between distinct rows of ``pooled`` [N, d] (N >= 2, values below 1); the median of
    the positive ones when at least half are 0 (duplicated rows); 0.0 when every row is the same."""
    num_rows = pooled.shape[0]
    check_median_heuristic_size(num_rows)
    squared = np.empty(num_rows * (num_rows - 1) // 2)
    norms = _row_norms(pooled)
    height = max(1, _BLOCK_CELLS // num_rows)
    position = 0
    for start in range(0, num_rows - 1, height):
        stop = min(num_rows - 1, start + height)
        # rows start..stop-1 against the rows after start; row i keeps its columns j > i
        block = _squared_block(pooled[start:stop], pooled[start + 1 :], norms[start:stop], norms[start + 1 :])
        upper = block[np.triu_indices(stop - start, k=0, m=num_rows - start - 1)]
        squared[position : position + upper.size] = upper
        position += upper.size
    median = _middle(squared)
    if median > 0:
        return median
    positive = squared[squared > 0]
    return _middle(positive) if positive.size else 0.0


def median_heuristic_bandwidth(x: object, y: object) -> float:
    """Median of the pairwise Euclidean distances between distinct rows of the pooled sample.

    When at least half of those distances are 0 (duplicated rows), the median of the positive ones, so that the
    bandwidth keeps the scale of the data; 1.0 when every row is the same (the kernel is then 1 for any
    bandwidth). At most ``MAX_MEDIAN_PAIRS`` distances: larger samples are refused before allocating.
    """
    x, y = _two_samples("x", x, "y", y, min_rows=0)
    if x.shape[0] + y.shape[0] < 2:
        raise ValueError(f"x and y must hold at least 2 rows together; got {x.shape[0]} and {y.shape[0]}")
    a, b, exponent = _common_frame(x, y)
    median = _median_distance(np.concatenate([a, b]))
    if median == 0:
        return 1.0
    try:
        return math.ldexp(median, exponent)
    except OverflowError:
        raise ValueError("the median distance of x and y is beyond float64's range; rescale both") from None


def mmd_squared(x: object, y: object, *, bandwidth: float | None = None) -> float:
    """Unbiased estimate of MMD^2 between samples x [n, d] and y [m, d] with the Gaussian kernel.

    ``k(a, b) = exp(-|a - b|^2 / (2 bandwidth^2))``; by default the bandwidth is the median heuristic over the
    pooled sample (:func:`median_heuristic_bandwidth`). The within-sample means leave out the diagonal (the
    U-statistic of Gretton et al. 2012), so the estimate is unbiased and can be slightly negative; in particular
    it is at most 0 for two identical samples. Needs at least 2 rows per sample.
    """
    x, y = _two_samples("x", x, "y", y, min_rows=2)
    if bandwidth is not None:
        bandwidth = _positive_number("bandwidth", bandwidth)
    a, b, exponent = _common_frame(x, y)
    if bandwidth is None:
        width = _median_distance(np.concatenate([a, b]))
        if width == 0:  # every row is the same: one point mass on both sides
            return 0.0
    else:
        try:
            width = math.ldexp(bandwidth, -exponent)  # the bandwidth in the frame's units
        except OverflowError:
            width = math.inf
    # 1 / (2 width^2): inf for a bandwidth far below the data's spread, 0 far above it (Python floats saturate)
    gamma = 0.5 / (width * width) if width * width > 0 else math.inf

    def kernel(squared: np.ndarray) -> np.ndarray:
        with np.errstate(over="ignore", under="ignore", invalid="ignore"):  # 0 * inf: not selected
            return np.exp(-np.where(squared > 0, squared * gamma, 0.0))

    n, m = a.shape[0], b.shape[0]
    within_x = (_pair_sum(a, a, kernel) - n) / (n * (n - 1))  # the diagonal holds n ones
    within_y = (_pair_sum(b, b, kernel) - m) / (m * (m - 1))
    between = _pair_sum(a, b, kernel) / (n * m)
    return float(within_x + within_y - 2.0 * between)


def energy_distance(x: object, y: object) -> float:
    """Energy distance ``2 E|X - Y| - E|X - X'| - E|Y - Y'|`` (Szekely and Rizzo) with the Euclidean norm.

    Computed between the two empirical distributions (V-statistic: every pair, diagonal included), so it is
    never negative and is zero for two samples of the same rows; ``2 |a - b|`` for two single rows a and b.
    """
    x, y = _two_samples("x", x, "y", y, min_rows=1)
    a, b, exponent = _common_frame(x, y)
    n, m = a.shape[0], b.shape[0]
    between = _pair_sum(a, b, np.sqrt) / (n * m)
    within_x = _pair_sum(a, a, np.sqrt) / (n * n)
    within_y = _pair_sum(b, b, np.sqrt) / (m * m)
    value = max(2.0 * between - within_x - within_y, 0.0)
    try:
        return math.ldexp(value, exponent)
    except OverflowError:
        raise ValueError(
            "the energy distance of x and y is beyond float64's range (about 1.8e308); rescale both"
        ) from None
