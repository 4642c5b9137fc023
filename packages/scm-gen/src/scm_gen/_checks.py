"""Parameter checks shared by the public functions.

Every check raises `ValueError` that names the parameter, the value received and what is allowed, so a
caller (or the CLI, which prints the message as one line) can fix the call without reading the source.
"""

from __future__ import annotations

import numbers
from collections.abc import Iterable
from typing import Any

import numpy as np


def check_choice(name: str, value: Any, allowed: Iterable[Any]) -> Any:
    """`value` must be one of `allowed`."""
    allowed = tuple(allowed)
    if not isinstance(value, str | int) or value not in allowed:
        raise ValueError(f"{name}={value!r} is not supported; allowed: {', '.join(map(repr, allowed))}")
    return value


def check_sequence(name: str, value: Any, example: str) -> tuple:
    """`value` must be a list (any iterable but a string or bytes); a bare value is refused, not iterated."""
    if isinstance(value, str | bytes) or not isinstance(value, Iterable):
        raise ValueError(f"{name}={value!r} must be a list, e.g. {name}={example}")
    return tuple(value)


def check_int(name: str, value: Any, *, minimum: int | None = None, maximum: int | None = None) -> int:
    """`value` must be an integer (not a bool) within `[minimum, maximum]`."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ValueError(f"{name}={value!r} must be an integer")
    value = int(value)
    if minimum is not None and value < minimum:
        bound = f">= {minimum}" if maximum is None else f"between {minimum} and {maximum}"
        raise ValueError(f"{name}={value} must be {bound}")
    if maximum is not None and value > maximum:
        bound = f"<= {maximum}" if minimum is None else f"between {minimum} and {maximum}"
        raise ValueError(f"{name}={value} must be {bound}")
    return value


def check_real(name: str, value: Any, *, minimum: float | None = None, maximum: float | None = None) -> float:
    """`value` must be a finite real number within `[minimum, maximum]`."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not np.isfinite(value):
        raise ValueError(f"{name}={value!r} must be a finite real number")
    value = float(value)
    if minimum is not None and value < minimum:
        raise ValueError(f"{name}={value} must be >= {minimum}")
    if maximum is not None and value > maximum:
        raise ValueError(f"{name}={value} must be <= {maximum}")
    return value


def check_range(name: str, value: Any) -> tuple[float, float]:
    """`value` must be a pair `(low, high)` of finite reals with `low <= high`."""
    try:
        low, high = (float(v) for v in value)
    except (TypeError, ValueError):
        raise ValueError(f"{name}={value!r} must be a pair (low, high) of numbers") from None
    if not (np.isfinite(low) and np.isfinite(high) and low <= high):
        raise ValueError(f"{name}={value!r} must be a pair (low, high) of finite numbers with low <= high")
    return low, high


def check_finite_array(name: str, value: Any, *, ndim: int | None = None) -> np.ndarray:
    """`value` must be a real array without NaN or infinity (and with `ndim` axes when given)."""
    array = np.asarray(value)
    if array.dtype.kind not in "biuf":
        raise ValueError(f"{name} must hold real numbers, got dtype {array.dtype}")
    if ndim is not None and array.ndim != ndim:
        raise ValueError(f"{name} must have {ndim} axes, got shape {array.shape}")
    if not np.all(np.isfinite(array)):
        bad = int(np.size(array) - np.count_nonzero(np.isfinite(array)))
        raise ValueError(f"{name} holds {bad} NaN or infinite value(s); only finite values are allowed")
    return array
