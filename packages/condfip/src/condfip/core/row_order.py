"""A canonical order of a table's rows that does not depend on the order they were given in.

The adapted path (``CondFiP.infer``'s default) reads its rows in this order: the network attends to at most
``num_anchor_rows`` evenly spaced rows of a larger table, the adaptation takes evenly spaced rows as kernel
landmarks and at most ``MAX_ADAPTATION_ROWS`` evenly spaced rows for its fit, and every sum runs in row order.
Given in the canonical order, the same rows in any order give the same fit, bit for bit.

The order sorts the rows by a 64-bit hash (splitmix64's finalizer) of their standardized values rounded to a
grid of ``RESOLUTION``, summed over the columns, so neither the rows' nor the columns' order matters. It is a
pseudo-random shuffle that depends on the rows' values only: evenly spaced rows of it are a random subset,
whatever order (sorted by time, by a column) the table came in. The grid makes the order survive rounding: the
same table in other units (standardized values equal to float64 rounding) keeps it, except where a value lies
within that rounding of a grid cell's boundary (about one value in 1e9). Rows of equal hash (repeated rows, or
rows whose values are a permutation of each other over columns that hold the same values) are ordered by their
exact bits, column by column; repeated rows are interchangeable.
"""

from __future__ import annotations

import numpy as np

RESOLUTION = 2.0**-20  # the grid the standardized values are rounded to before hashing (about 1e-6)
_SEED = np.uint64(0x9E3779B97F4A7C15)
_MULTIPLIERS = (np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB))


def _mixed(state: np.ndarray) -> np.ndarray:
    """splitmix64's finalizer of uint64 values [n] (wrapping arithmetic)."""
    state = (state ^ (state >> np.uint64(30))) * _MULTIPLIERS[0]
    state = (state ^ (state >> np.uint64(27))) * _MULTIPLIERS[1]
    return state ^ (state >> np.uint64(31))


def row_hashes(values: np.ndarray) -> np.ndarray:
    """A 64-bit hash [n] (uint64) of each row of ``values`` [n, d], rounded to multiples of ``RESOLUTION``; the
    same for the columns in any order.

    Each value is mixed with a fingerprint of its column (a hash of the column's values, whatever their order),
    and a row's hash is the wrapping sum of its values' mixes: a column is known by what it holds, not by where
    it stands."""
    values = np.asarray(values, dtype=np.float64)
    total = np.zeros(values.shape[0], dtype=np.uint64)  # [n]; column by column: memory of a few columns
    for column in range(values.shape[1]):
        # + 0.0: -0.0 -> 0.0; exact for any standardized value (|value| <= 1e6, below 2^40 grid steps)
        bits = (np.rint(values[:, column] / RESOLUTION) + 0.0).view(np.uint64)  # [n]
        # [1]: an array, whose arithmetic wraps silently (a numpy scalar's warns); the sum wraps, in any order
        fingerprint = _mixed(_mixed(bits ^ _SEED).sum(dtype=np.uint64, keepdims=True))
        total += _mixed(bits ^ fingerprint) ^ _SEED
    return _mixed(total)


def canonical_row_order(values: np.ndarray) -> np.ndarray:
    """The canonical order of the rows of a standardized table ``values`` [n, d]: indices [n] (int64) such that
    ``values[order]`` is the same array for any permutation of the rows (module docstring)."""
    values = np.asarray(values, dtype=np.float64)
    if values.ndim != 2:
        raise ValueError(f"values must be a table [rows, columns], got shape {values.shape}")
    hashes = row_hashes(values)  # [n]
    order = np.argsort(hashes, kind="stable")
    ordered = hashes[order]
    if not (ordered[1:] == ordered[:-1]).any():
        return order.astype(np.int64)
    # equal hashes (repeated rows, rows whose values are a permutation of each other over columns of equal
    # fingerprint, or a collision): break the ties by the rows' bits, first column first
    bits = np.ascontiguousarray(values).view(np.uint64)  # [n, d]
    keys = [bits[:, column] for column in reversed(range(bits.shape[1]))] + [hashes]
    return np.lexsort(keys).astype(np.int64)
