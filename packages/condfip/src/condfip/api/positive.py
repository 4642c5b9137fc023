"""Strictly positive columns, modelled on the log scale: ``infer(..., positive=True | [names])``.

A positive column ``x`` enters the model as ``log x``, and every answer is mapped back with ``exp``, so samples,
interventions and counterfactuals of such a column stay positive and come back in the user's units. Its
mechanism is additive on the log scale, ``log x = f(parents) + n``: a multiplicative noise ``exp(n)`` in the
user's units, and its noise (``noise()``, ``generate``) is given on the log scale.

``ModelUnits`` maps between the user's units and the standardized units the network sees (log, then
per-column standardization); for a table without positive columns it is the plain standardization.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from condfip.core.standardization import STANDARD_LIMIT, Standardization

LARGEST_LOG = float(np.log(np.finfo(np.float64).max))  # about 709.8: exp of more is inf
SMALLEST_LOG = float(np.log(np.finfo(np.float64).tiny))  # about -708.4: exp of less is subnormal, then 0

PositiveColumns = bool | Sequence[Hashable]


def positive_mask(positive: object, columns: Sequence[Hashable]) -> np.ndarray:
    """``positive`` (True: every column, False or None: none, or a list of column names) as a mask [d]."""
    columns = list(columns)
    if positive is None or isinstance(positive, bool | np.bool_):
        return np.full(len(columns), bool(positive), dtype=bool)
    if isinstance(positive, str | bytes) or not isinstance(
        positive, list | tuple | set | frozenset | pd.Index | np.ndarray
    ):
        raise ValueError(
            f"positive must be True (every column), False, or a list of column names, got {positive!r}"
            + (f"; for one column write positive=[{positive!r}]" if isinstance(positive, str) else "")
        )
    names = list(positive)
    unknown = [name for name in names if name not in columns]
    if unknown:
        raise ValueError(
            f"positive names unknown column(s) {unknown!r}; choose among the columns {columns!r}"
        )
    return np.array([name in names for name in columns], dtype=bool)


def check_positive(values: np.ndarray, mask: np.ndarray, columns: Sequence[Hashable], parameter: str) -> None:
    """Refuse a non-positive value [m, d] in a column of ``mask`` [d], naming the column and its minimum."""
    if not mask.any() or values.shape[0] == 0:
        return
    minimum = values[:, mask].min(axis=0)  # [k]
    bad = np.flatnonzero(~(minimum > 0))
    if bad.size:
        name = [c for c, positive in zip(columns, mask, strict=True) if positive][bad[0]]
        raise ValueError(
            f"{parameter} column {name!r} is declared positive (modelled on the log scale) but its minimum is "
            f"{minimum[bad[0]]:.6g}; give strictly positive values, or leave the column out of positive="
        )


def check_positive_values(values: np.ndarray, name: Hashable) -> None:
    """Refuse an intervention value [m] <= 0 on a positive column, naming the column and the value."""
    bad = np.flatnonzero(~(np.asarray(values) > 0))
    if bad.size:
        raise ValueError(
            f"intervention value {float(values[bad[0]]):.6g} for {name!r}: that column is positive (modelled on "
            "the log scale), so an intervention must set it to a value > 0"
        )


@dataclass(frozen=True)
class ModelUnits:
    """User units <-> the network's standardized units: ``log`` of the ``positive`` columns, then the
    per-column ``standardization`` (fitted on the logged table). Noise is scaled by the standardization only, so
    a positive column's noise is on the log scale."""

    standardization: Standardization
    positive: np.ndarray  # [d] bool

    @classmethod
    def fit(cls, context: np.ndarray, positive: np.ndarray, columns: Sequence[Hashable]) -> ModelUnits:
        """The units of a context [n, d] in user units whose ``positive`` [d] columns were checked positive."""
        return cls(Standardization.fit(cls._log(context, positive), columns), positive)

    @property
    def mean(self) -> np.ndarray:
        """[d] mean of each column on the model's scale (of ``log x`` for a positive column)."""
        return self.standardization.mean

    @property
    def std(self) -> np.ndarray:
        """[d] standard deviation of each column on the model's scale (of ``log x`` for a positive column)."""
        return self.standardization.std

    @staticmethod
    def _log(values: np.ndarray, positive: np.ndarray) -> np.ndarray:
        if not positive.any():
            return values
        logged = np.array(values, dtype=np.float64, copy=True)
        logged[:, positive] = np.log(logged[:, positive])
        return logged

    def to_model_scale(self, values: np.ndarray) -> np.ndarray:
        """User units [m, d] -> the model's scale (log of the positive columns); values are checked by callers."""
        return self._log(values, self.positive)

    def data_to_standard(self, data: np.ndarray, *, parameter: str = "data") -> np.ndarray:
        nodes = np.arange(self.positive.shape[0])
        self._check_positive_range(data, nodes, parameter)
        return self.standardization.data_to_standard(self._log(data, self.positive), parameter=parameter)

    def data_from_standard(self, data: np.ndarray) -> np.ndarray:
        values = self.standardization.data_from_standard(data)
        if self.positive.any():
            logs = values[:, self.positive]
            outside = ~((logs >= SMALLEST_LOG) & (logs <= LARGEST_LOG))  # [m, k]
            if outside.any():
                row, slot = np.argwhere(outside)[0]
                column = self._name(int(np.flatnonzero(self.positive)[slot]))
                raise ValueError(
                    f"a value of the positive column {column!r} would be exp({float(logs[row, slot]):.4g}), outside "
                    f"what float64 holds (exp({SMALLEST_LOG:.4g}) to exp({LARGEST_LOG:.4g})): the answer leaves what "
                    "the model on the log scale can represent; choose intervention values closer to the data, or, "
                    "for a column that spans hundreds of orders of magnitude, leave it out of positive="
                )
            values[:, self.positive] = np.exp(logs)
        return values

    def values_to_standard(
        self, values: np.ndarray, nodes: np.ndarray, *, parameter: str = "intervention on"
    ) -> np.ndarray:
        """Values [m, k] of the columns ``nodes`` [k] (user units; positive in a positive column) -> standardized."""
        positive = self.positive[nodes]
        if positive.any():
            self._check_positive_range(values, nodes, parameter)
            values = np.array(values, dtype=np.float64, copy=True)
            values[:, positive] = np.log(values[:, positive])
        return self.standardization.values_to_standard(values, nodes, parameter=parameter)

    def _name(self, node: int) -> Hashable:
        names = self.standardization.columns
        return names[node] if names is not None else f"number {node}"

    def _check_positive_range(self, values: np.ndarray, nodes: np.ndarray, parameter: str) -> None:
        """Refuse a value [m, k] of a positive column among ``nodes`` [k] whose log is beyond the standardization's
        range (``STANDARD_LIMIT`` standard deviations of the log), naming it and the range in the user's units;
        the other columns are left to the standardization's own check."""
        positive = self.positive[nodes]
        if self.standardization.columns is None or not positive.any() or np.size(values) == 0:
            return
        given = np.asarray(values, dtype=np.float64)[:, positive]  # [m, k'], checked > 0 by callers
        logged = np.log(given)
        nodes = np.asarray(nodes)[positive]
        standard = (logged - self.mean[nodes]) / self.std[nodes]
        outside = ~(np.abs(standard) <= STANDARD_LIMIT)
        if not outside.any():
            return
        row, slot = np.argwhere(outside)[0]
        node = int(nodes[slot])
        low, high = self.standardization.allowed_range(node)
        raise ValueError(
            f"{parameter} column {self._name(node)!r}: {float(given[row, slot]):.6g} is outside the range the "
            f"network takes, [{_exp_text(low)}, {_exp_text(high)}] ({STANDARD_LIMIT:g} standard deviations of the "
            "column's log around its mean); give values inside it"
        )

    def noise_to_standard(self, noise: np.ndarray, *, parameter: str = "noise") -> np.ndarray:
        return self.standardization.noise_to_standard(noise, parameter=parameter)

    def noise_from_standard(self, noise: np.ndarray) -> np.ndarray:
        return self.standardization.noise_from_standard(noise)


def _exp_text(log_value: float) -> str:
    """``exp(log_value)`` written as a number, or as ``exp(...)`` where float64 would show it as 0 or inf."""
    if SMALLEST_LOG <= log_value <= LARGEST_LOG:
        return f"{np.exp(log_value):.6g}"
    return f"exp({log_value:.6g})"
