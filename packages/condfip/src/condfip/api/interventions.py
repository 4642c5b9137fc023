"""Hard interventions ``do(X_i = a)`` given by column name: a constant, one value per row, or a callable.

A callable receives the node's current value in each row (the value without any intervention, in user
units, as a float array [m]) and returns the intervened value: e.g. ``lambda x: x + 1`` shifts the node.
Values per row given as a pandas Series are matched to the rows by label where the rows have labels (the index of
a DataFrame of rows), and taken in order otherwise (fresh rows).
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping, Sequence

import numpy as np
import pandas as pd

InterventionValue = float | np.ndarray | Callable[[np.ndarray], object]


def check_interventions(
    interventions: Mapping[Hashable, InterventionValue] | None,
    columns: Sequence[Hashable],
    rows: pd.Index | None = None,
) -> dict[int, InterventionValue]:
    """Column index -> value, with names and constant/array values checked (callables are checked when run);
    a Series of values is put in the order of the labels ``rows`` of the rows it applies to, when given."""
    if interventions is None:
        return {}
    if not isinstance(interventions, Mapping):
        raise ValueError(
            f"interventions must be a dict {{column name: value}}, got {type(interventions).__name__}"
        )
    index = {name: j for j, name in enumerate(columns)}
    checked: dict[int, InterventionValue] = {}
    for name, value in interventions.items():
        if name not in index:
            raise ValueError(
                f"intervention on unknown node {name!r}; intervene on one of the columns {list(columns)!r}"
            )
        if isinstance(value, pd.Series) and rows is not None:
            value = _aligned(value, rows, name)
        if not callable(value):
            value = _finite_values(value, name)
        checked[index[name]] = value
    return checked


def _aligned(values: pd.Series, rows: pd.Index, name: Hashable) -> pd.Series:
    """A Series of intervention values in the order of the rows' labels ``rows``."""
    if values.index.has_duplicates or rows.has_duplicates or set(values.index) != set(rows):
        raise ValueError(
            f"intervention values for {name!r} are a Series whose labels are not the rows' labels; label it with "
            "the index of the rows (one value each), or pass a plain array in the rows' order"
        )
    return values.reindex(rows)


def _finite_values(value: object, name: Hashable) -> float | np.ndarray:
    try:
        array = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(
            f"intervention value for {name!r} is {value!r}; give a number, an array of one number per row, "
            "or a callable of the current value"
        ) from None
    if array.ndim > 1:
        raise ValueError(
            f"intervention value for {name!r} has shape {array.shape}; give a number or a 1-D array"
        )
    if not np.isfinite(array).all():
        raise ValueError(f"intervention value for {name!r} is not finite ({value!r}); give a finite number")
    return float(array) if array.ndim == 0 else array


def resolve_interventions(
    interventions: dict[int, InterventionValue],
    num_rows: int,
    current: Callable[[], np.ndarray],
    columns: Sequence[Hashable],
) -> tuple[np.ndarray, np.ndarray]:
    """Intervened node indices [k] and their values per row [num_rows, k], in user units.

    ``current()`` returns the rows without intervention [num_rows, d]; it is only called when a callable needs it.
    """
    nodes = np.array(sorted(interventions), dtype=np.int64)
    values = np.empty((num_rows, nodes.size), dtype=np.float64)
    current_rows = None
    for position, node in enumerate(nodes):
        value = interventions[int(node)]
        name = columns[node]
        if callable(value):
            if current_rows is None:
                current_rows = current()
            value = _finite_values(value(current_rows[:, node].copy()), name)
        if np.ndim(value) == 1 and len(value) != num_rows:
            raise ValueError(
                f"intervention value for {name!r} has {len(value)} entries but there are {num_rows} rows; "
                "give one value per row or a single number"
            )
        values[:, position] = value
    return nodes, values
