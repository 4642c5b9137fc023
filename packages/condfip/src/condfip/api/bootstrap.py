"""Bootstrap intervals for any quantity of an inferred SCM: fit again on resampled rows, recompute.

A resample is either a refit of the adapted weights on the resampled rows (the default of ``CondFiP.bootstrap``
on the adapted path: the network's embedding and the fit's model choices stay those of all rows, and a resample
costs one solve per node) or a whole new inference (``reinfer=True``, and the zero-shot path); timings in
BENCHMARKS.md, "Bootstrap on Sachs, and DoWhy queries". The spread is the variability of the inferred answer
under resampling of the rows, given the graph and the pretrained network; it does not measure the network's own
bias.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from condfip.api.arguments import is_real
from condfip.api.inferred_scm import InferredSCM
from condfip.api.sampling import make_generator
from condfip.io.memory import check_memory

Statistic = Callable[[InferredSCM], Any]
InferResamples = Callable[[list[np.ndarray]], list[InferredSCM]]  # row indices [n] -> SCMs


@dataclass(frozen=True)
class BootstrapResult:
    """A statistic of the SCM inferred from all rows (``estimate``) and from each resample (``samples``,
    ``[num_bootstraps, *shape]``); a Series statistic keeps its labels in ``index``."""

    estimate: float | np.ndarray | pd.Series
    samples: np.ndarray
    index: pd.Index | None = None

    def interval(self, level: float = 0.95) -> tuple[Any, Any]:
        """The percentile interval ``(lower, upper)`` holding ``level`` of the resampled values."""
        if not is_real(level) or not 0 < level < 1:
            raise ValueError(f"level must be a number strictly between 0 and 1, got {level!r}")
        tail = (1 - level) / 2
        lower, upper = np.quantile(self.samples, [tail, 1 - tail], axis=0)
        return self._shaped(lower), self._shaped(upper)

    @property
    def standard_error(self) -> Any:
        """The standard deviation of the resampled values."""
        return self._shaped(self.samples.std(axis=0, ddof=1))

    def _shaped(self, values: np.ndarray) -> Any:
        if self.index is not None:
            return pd.Series(values, index=self.index)
        return float(values) if values.ndim == 0 else values


def bootstrap_statistic(
    full: InferredSCM,
    infer_resamples: InferResamples,
    statistic: Statistic,
    *,
    num_bootstraps: int,
    row_order: np.ndarray | None = None,
    seed: int | np.random.Generator | None = None,
    group_size: int = 1,
    progress: bool | None = None,
) -> BootstrapResult:
    """``statistic`` of the SCM ``full`` inferred from all rows and of the SCMs that ``infer_resamples`` fits on
    ``num_bootstraps`` resamples of its rows (drawn with replacement, ``seed`` fixes the draws), given as arrays of
    row indices, ``group_size`` at a time (each SCM is dropped once its statistic is taken). The draws pick
    positions in ``row_order`` ([n] row indices; default the rows as given), so with the rows' canonical order
    the same rows in any order give the same resamples.
    ``progress``: a progress bar on stderr (None: when stderr is a terminal)."""
    num_rows = len(full.data)
    check_memory(
        num_bootstraps * num_rows * np.dtype(np.int64).itemsize,
        f"drawing {num_bootstraps:,} resamples of {num_rows:,} rows",
        hint="ask for fewer resamples (a few hundred give a 95 % interval)",
    )
    estimate = _values(statistic(full), "statistic(scm)")
    index = estimate.index if isinstance(estimate, pd.Series) else None
    if index is not None and index.has_duplicates:
        raise ValueError(
            f"statistic returned a Series with repeated labels {sorted(set(index[index.duplicated()]), key=str)!r}; "
            "give each value its own label"
        )
    rng = make_generator(seed)
    rows = rng.integers(0, num_rows, size=(num_bootstraps, num_rows))  # [B, n] positions
    if row_order is not None:
        rows = np.asarray(row_order)[rows]  # [B, n] row indices
    samples = []
    bar = tqdm(
        total=num_bootstraps,
        desc="bootstrap",
        unit="resample",
        disable=None if progress is None else not progress,
        leave=False,
    )
    for start in range(0, num_bootstraps, max(group_size, 1)):
        try:
            scms = infer_resamples(list(rows[start : start + max(group_size, 1)]))
        except ValueError as error:  # e.g. a column with few distinct values is constant in a resample
            raise ValueError(f"a resample of the rows cannot be inferred: {error}") from None
        for scm in scms:
            value = _values(statistic(scm), "statistic(scm) on a resample")
            if index is not None:
                value = _aligned(value, index)
            value = np.asarray(value, dtype=np.float64)
            if value.shape != np.shape(estimate):
                raise ValueError(
                    f"statistic returned shape {value.shape} on a resample and {np.shape(estimate)} on all rows; "
                    "it must return the same shape every time"
                )
            samples.append(value)
            bar.update(1)
    bar.close()
    return BootstrapResult(
        estimate=estimate if index is not None else _plain(estimate),
        samples=np.stack(samples),
        index=index,
    )


def _values(value: Any, where: str) -> np.ndarray | pd.Series:
    if isinstance(value, pd.DataFrame):
        value = value.to_numpy()
    if isinstance(value, pd.Series):
        numbers = pd.to_numeric(value, errors="coerce")
        if numbers.isna().any() or not np.isfinite(numbers.to_numpy(dtype=np.float64)).all():
            raise ValueError(f"{where} must give finite numbers, got {value.tolist()!r}")
        return numbers.astype(np.float64)
    try:
        array = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(
            f"{where} must give a number, an array or a Series, got {type(value).__name__}"
        ) from None
    if not np.isfinite(array).all():
        raise ValueError(f"{where} must give finite numbers, got {value!r}")
    return array


def _aligned(value: np.ndarray | pd.Series, index: pd.Index) -> pd.Series:
    """A resample's Series statistic in the order of the labels ``index`` of the statistic on all rows."""
    if not isinstance(value, pd.Series) or value.index.has_duplicates or set(value.index) != set(index):
        got = list(value.index) if isinstance(value, pd.Series) else f"a {type(value).__name__}"
        raise ValueError(
            f"statistic returned a Series labelled {list(index)!r} on all rows but {got!r} on a resample; "
            "it must return the same labels every time (their order may differ)"
        )
    return value.reindex(index)


def _plain(value: np.ndarray) -> float | np.ndarray:
    return float(value) if value.ndim == 0 else value
