"""The one parser of user tables: numeric, finite, at least two rows, no constant column, a usable scale.

Everything here returns float64 numpy arrays in the user's units plus the column names; the errors say what
was received and how to fix it, before anything reaches torch.

Usable scale: every context value within ``MAX_MAGNITUDE`` and every column's standard deviation at least
``MIN_SPREAD``. Inside that range every answer is finite in float64: samples, interventions (whose values are
bounded to ``STANDARD_LIMIT`` standard deviations, ``condfip.core.standardization``), noise and effects stay
many orders of magnitude below float64's largest number (1.8e308) and above its smallest normal one (2.2e-308).
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence

import numpy as np
import pandas as pd

from condfip.core.standardization import Standardization
from condfip.io.memory import check_memory, table_bytes

MAX_MAGNITUDE = 1e250  # largest |value| of a context column
MIN_SPREAD = 1e-250  # smallest standard deviation of a context column
# float64 tables [n, d] that inference on n context rows holds at its peak beyond fixed costs (measured: about
# 4.4 with adaptation and the context's noise: the array, its standardized copy, the network's input, the noise)
INFER_COPIES = 6


def _check_columns(columns: Sequence[Hashable], parameter: str) -> list[Hashable]:
    columns = list(columns)
    duplicates = sorted({str(c) for c in columns if columns.count(c) > 1})
    if duplicates:
        raise ValueError(
            f"{parameter} has duplicate column names {duplicates}; every column needs its own name"
        )
    return columns


def _check_numeric_frame(frame: pd.DataFrame, parameter: str) -> np.ndarray:
    for name, dtype in frame.dtypes.items():
        if pd.api.types.is_bool_dtype(dtype):
            raise ValueError(
                f"{parameter} column {name!r} is boolean; a causal model needs real-valued columns "
                f"(convert it with data[{name!r}].astype(float) if 0/1 is meant, or drop it)"
            )
        if not pd.api.types.is_numeric_dtype(dtype) and frame.shape[0] == 0:
            # what a CSV with a header only reads as: say that, not "dtype object"
            raise ValueError(
                f"{parameter} has columns {list(frame.columns)[:5]!r}{'...' if frame.shape[1] > 5 else ''} but no "
                "rows; pass a table with data rows"
            )
        if not pd.api.types.is_numeric_dtype(dtype) or pd.api.types.is_complex_dtype(dtype):
            raise ValueError(
                f"{parameter} column {name!r} has dtype {dtype}, not a real number; "
                "convert it to float (pd.to_numeric) or drop it"
            )
    return frame.to_numpy(dtype=np.float64)


def _check_numeric_array(values: object, parameter: str) -> np.ndarray:
    if np.ma.isMaskedArray(values):
        # a masked entry is a missing value: NaN, which _check_finite names (its value underneath is not data)
        masked = np.ma.getmaskarray(values)
        array = np.asarray(np.ma.getdata(values))
        if masked.any() and (
            np.issubdtype(array.dtype, np.integer) or np.issubdtype(array.dtype, np.floating)
        ):
            return np.where(masked, np.nan, array.astype(np.float64))
        values = array
    array = np.asarray(values)
    if array.dtype == np.bool_:
        raise ValueError(
            f"{parameter} is a boolean array; a causal model needs real values (use {parameter}.astype(float))"
        )
    if not (np.issubdtype(array.dtype, np.integer) or np.issubdtype(array.dtype, np.floating)):
        raise ValueError(
            f"{parameter} has dtype {array.dtype}, not real numbers; pass a float array or a DataFrame "
            "with numeric columns"
        )
    return array.astype(np.float64)


def _check_finite(values: np.ndarray, columns: Sequence[Hashable], parameter: str) -> None:
    bad = ~np.isfinite(values)
    if bad.any():
        counts = bad.sum(axis=0)
        named = ", ".join(f"{columns[j]!r} ({counts[j]})" for j in np.flatnonzero(counts)[:5])
        raise ValueError(
            f"{parameter} has {int(bad.sum())} NaN or infinite values, in columns {named}; "
            "drop or impute those rows first (e.g. data.dropna())"
        )


def table_from_user(
    data: object, columns: Sequence[Hashable] | None = None, *, parameter: str = "data"
) -> tuple[np.ndarray, list[Hashable]]:
    """A finite float64 array [n, d] and its column names from a DataFrame or a 2-D array.

    ``columns`` names the columns of an array (default ``x0, x1, ...``); for a DataFrame it must be None.
    """
    if isinstance(data, pd.DataFrame):
        if columns is not None:
            raise ValueError(
                f"columns={list(columns)!r} was given with a DataFrame; a DataFrame carries its own column "
                "names (rename them with data.rename(columns=...))"
            )
        names = _check_columns(data.columns, parameter)
        values = _check_numeric_frame(data, parameter)
    else:
        if isinstance(data, pd.Series):
            raise ValueError(f"{parameter} is a Series; pass a DataFrame with one column per variable")
        values = _check_numeric_array(data, parameter)
        if values.ndim != 2:
            raise ValueError(
                f"{parameter} must be 2-D [rows, columns], got an array of shape {values.shape}; "
                "reshape it (a single variable is array.reshape(-1, 1))"
            )
        if columns is None:
            names = [f"x{j}" for j in range(values.shape[1])]
        else:
            names = _check_columns(columns, "columns")
            if len(names) != values.shape[1]:
                raise ValueError(
                    f"columns has {len(names)} names but {parameter} has {values.shape[1]} columns; "
                    "give one name per column"
                )
    if values.shape[1] == 0:
        raise ValueError(f"{parameter} has no columns; pass at least one variable")
    _check_finite(values, names, parameter)
    return np.ascontiguousarray(values), names


def context_from_user(
    data: object, columns: Sequence[Hashable] | None = None
) -> tuple[np.ndarray, list[Hashable], Standardization]:
    """The context table, its names and its standardization; rejects < 2 rows and constant columns."""
    values, names = table_from_user(data, columns, parameter="data")
    check_context_memory(values.shape[0], values.shape[1])
    if values.shape[0] < 2:
        raise ValueError(
            f"data has {values.shape[0]} row(s); inferring a causal model needs at least 2 rows "
            "(hundreds for good results)"
        )
    constant = [names[j] for j in np.flatnonzero(np.ptp(values, axis=0) == 0)]
    if constant:
        raise ValueError(
            f"data columns {constant!r} are constant; a constant has no causal variation to model, "
            "drop those columns (and their nodes from the graph)"
        )
    standardization = Standardization.fit(values, names)
    _check_scale(values, names, standardization)
    return values, names, standardization


def check_context_memory(
    num_rows: int,
    num_columns: int,
    what: str = "inferring from",
    hint: str = "infer from a random subset of the rows",
) -> None:
    """Refuse a context of ``num_rows`` x ``num_columns`` whose inference cannot fit in memory."""
    check_memory(
        table_bytes(num_rows, num_columns, INFER_COPIES),
        f"{what} {num_rows:,} rows of {num_columns} columns",
        hint=hint,
    )


def _check_scale(values: np.ndarray, names: Sequence[Hashable], standardization: Standardization) -> None:
    """Refuse the first column whose magnitude or spread is outside the usable scale (module docstring)."""
    largest = np.abs(values).max(axis=0)  # [d]
    for j, name in enumerate(names):
        std = float(standardization.std[j])
        if largest[j] > MAX_MAGNITUDE or std < MIN_SPREAD:
            found = (
                f"values up to {largest[j]:.3g} in magnitude"
                if largest[j] > MAX_MAGNITUDE
                else f"a standard deviation of {std:.3g}"
            )
            raise ValueError(
                f"data column {name!r} has {found}; condfip takes columns whose values stay within "
                f"±{MAX_MAGNITUDE:g} and whose standard deviation is at least {MIN_SPREAD:g}, so that every "
                f"answer stays finite in float64: rescale that column (e.g. divide it by {std:.3g}, its "
                "standard deviation) and read the answers in those units"
            )


def rows_like_context(data: object, columns: Sequence[Hashable], *, parameter: str) -> np.ndarray:
    """Rows to evaluate on an inferred SCM, as float64 [m, d] in the order of ``columns``.

    A DataFrame is matched by column name (any order), and so is a Series (one row, labelled by column name); an
    array must have the context's column order.
    """
    if isinstance(data, pd.Series):
        data = data.to_frame().T  # one row whose labels are the column names
    if isinstance(data, pd.DataFrame):
        received = _check_columns(data.columns, parameter)
        missing = [c for c in columns if c not in received]
        extra = [c for c in received if c not in columns]
        if missing or extra:
            raise ValueError(
                f"{parameter} columns do not match the inferred SCM: missing {missing!r}, unexpected {extra!r}; "
                f"expected the columns {list(columns)!r}"
            )
        values = _check_numeric_frame(data[list(columns)], parameter)
    else:
        values = _check_numeric_array(data, parameter)
        if values.ndim == 1 and values.shape[0] == len(columns):
            values = values[None, :]
        if values.ndim != 2 or values.shape[1] != len(columns):
            raise ValueError(
                f"{parameter} must have shape [rows, {len(columns)}] (columns {list(columns)!r}), "
                f"got {values.shape}"
            )
    _check_finite(values, columns, parameter)
    return np.ascontiguousarray(values)
