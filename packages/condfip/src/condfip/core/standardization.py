"""Per-column standardization of a table: ``x_std = (x - mean) / std``; noise is scaled, not centred.

One semantics everywhere: a column with zero spread gets ``std = 1`` (it is only centred). The public API
refuses constant columns, and columns whose scale float64 cannot carry through the network and back, before it
standardizes (``condfip.api.tables``); internal code (training data, validation sets) relies on the guard.

The mean and standard deviation are computed on each column divided by a power of two near its largest
magnitude, then scaled back. Dividing by a power of two is exact, so ordinary columns get the numbers of
``data.mean(axis=0)`` and ``data.std(axis=0)`` (to the rounding of the sum), while a column of magnitude 1e300
(whose squares overflow) or 1e-300 (whose squares underflow to 0) gets its true spread. The sums run over each
column's values sorted, so the same rows in any order give the same mean and standard deviation, bit for bit.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass

import numpy as np

STANDARD_LIMIT = 1e6
"""The largest magnitude, in standardized units (standard deviations of the context column), of a value the
networks take: rows to evaluate, given noise and intervention values. Far beyond any training value; the limit
keeps every intermediate of the float32 networks finite (a value near 3.4e38 overflows float32, and 0 * inf is
NaN in any masked product)."""


@dataclass(frozen=True)
class Standardization:
    """Per-column ``mean`` and ``std`` of a table [n, d].

    ``columns``: the column names of a user's table. With them, ``data_to_standard``, ``noise_to_standard`` and
    ``values_to_standard`` refuse values beyond ``STANDARD_LIMIT`` standardized units with a ValueError that
    names the column and its allowed range in the user's units.
    """

    mean: np.ndarray  # [d]
    std: np.ndarray  # [d], > 0
    columns: tuple[Hashable, ...] | None = None

    @classmethod
    def fit(cls, data: np.ndarray, columns: Sequence[Hashable] | None = None) -> Standardization:
        """Mean and population standard deviation over the rows of ``data`` [n, d], independent of their order;
        zero spread (every value of the column equal) gives 1, also where the rounding of the mean leaves a spread
        of ~1e-17 (a column of 0.1s)."""
        data = np.asarray(data, dtype=np.float64)
        scale = column_scale(data)  # [d], powers of two
        # exact: every |value| <= 1; sorted, so that the sums do not depend on the rows' order
        scaled = np.sort(data / scale, axis=0)
        mean = scaled.mean(axis=0) * scale
        std = scaled.std(axis=0) * scale
        constant = (data.max(axis=0) == data.min(axis=0)) if data.shape[0] else np.ones(data.shape[1], bool)
        names = None if columns is None else tuple(columns)
        return cls(mean=mean, std=np.where((std > 0) & ~constant, std, 1.0), columns=names)

    def data_to_standard(self, data: np.ndarray, *, parameter: str = "data") -> np.ndarray:
        """Rows [m, d] in standardized units (refused beyond ``STANDARD_LIMIT`` when ``columns`` is set)."""
        standard = (data - self.mean) / self.std
        self._check_range(standard, data, np.arange(self.mean.shape[0]), parameter, centred=True)
        return standard

    def values_to_standard(
        self, values: np.ndarray, nodes: np.ndarray, *, parameter: str = "intervention on"
    ) -> np.ndarray:
        """Values [m, k] of the columns ``nodes`` [k] in standardized units (refused like ``data_to_standard``)."""
        standard = (values - self.mean[nodes]) / self.std[nodes]
        self._check_range(standard, values, np.asarray(nodes), parameter, centred=True)
        return standard

    def data_from_standard(self, data: np.ndarray) -> np.ndarray:
        return data * self.std + self.mean

    def noise_to_standard(self, noise: np.ndarray, *, parameter: str = "noise") -> np.ndarray:
        """Noise [m, d] in standardized units: scaled, not centred (refused beyond ``STANDARD_LIMIT``)."""
        standard = noise / self.std
        self._check_range(standard, noise, np.arange(self.std.shape[0]), parameter, centred=False)
        return standard

    def noise_from_standard(self, noise: np.ndarray) -> np.ndarray:
        return noise * self.std

    def allowed_range(self, node: int, *, centred: bool = True) -> tuple[float, float]:
        """The user-unit interval of column ``node`` that maps inside ``[-STANDARD_LIMIT, STANDARD_LIMIT]``."""
        centre = float(self.mean[node]) if centred else 0.0
        spread = STANDARD_LIMIT * float(self.std[node])
        return centre - spread, centre + spread

    def _check_range(
        self, standard: np.ndarray, given: object, nodes: np.ndarray, parameter: str, *, centred: bool
    ) -> None:
        """standard: [..., k] standardized values of the columns ``nodes`` [k], from ``given`` (user units, same
        shape); raises on the first one beyond the limit."""
        if self.columns is None or standard.size == 0:
            return
        outside = ~(np.abs(standard) <= STANDARD_LIMIT)  # NaN counts as outside
        if not outside.any():
            return
        given = np.broadcast_to(np.asarray(given, dtype=np.float64), standard.shape)
        first = tuple(np.argwhere(outside)[0])  # row-major: the first row, then the first column
        node = int(nodes[first[-1]])
        value = float(given[first])
        low, high = self.allowed_range(node, centred=centred)
        raise ValueError(
            f"{parameter} column {self.columns[node]!r}: {value:.6g} is outside the range the network takes, "
            f"[{low:.6g}, {high:.6g}] ({STANDARD_LIMIT:g} standard deviations of the column around "
            f"{'its mean' if centred else '0'}); give values inside it"
        )


def column_scale(data: np.ndarray) -> np.ndarray:
    """Per column of ``data`` [n, d], the power of two ``2^k`` with ``max |x| <= 2^k < 2 max |x|`` (1 for an
    all-zero or empty column, and for non-finite entries, which the caller refuses)."""
    largest = np.abs(data).max(axis=0, initial=0.0) if data.size else np.zeros(data.shape[-1])
    usable = np.isfinite(largest) & (largest > 0)
    # largest = mantissa * 2^exponent with the mantissa in [0.5, 1)
    _, exponent = np.frexp(np.where(usable, largest, 1.0))
    return np.where(usable, np.ldexp(1.0, exponent), 1.0)


def standardized(data: np.ndarray) -> np.ndarray:
    """``data`` [n, d] in its own standardized units."""
    return Standardization.fit(data).data_to_standard(data)
