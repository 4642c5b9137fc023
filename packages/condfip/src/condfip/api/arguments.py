"""Checks of the API's scalar arguments. Python numbers and numpy scalars are taken alike (``np.int64(5)``,
``np.float32(0.01)``, ``np.True_``: what indexing an array or a DataFrame returns); a bool is not a number here."""

from __future__ import annotations

import numbers

import numpy as np


def is_integer(value: object) -> bool:
    """Whether ``value`` is an int or a numpy integer (not a bool)."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool | np.bool_)


def is_real(value: object) -> bool:
    """Whether ``value`` is a real number: an int, a float or a numpy one (not a bool)."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool | np.bool_)


def checked_flag(value: object, name: str) -> bool:
    """``value`` as a bool when it is True or False (numpy's too), else a ValueError naming ``name``."""
    if not isinstance(value, bool | np.bool_):
        raise ValueError(f"{name} must be True or False, got {value!r}")
    return bool(value)


def checked_progress(value: object, name: str = "progress") -> bool | None:
    """A progress option: True, False, or None (a bar when stderr is a terminal)."""
    if value is None:
        return None
    if not isinstance(value, bool | np.bool_):
        raise ValueError(f"{name} must be True, False or None (on a terminal), got {value!r}")
    return bool(value)
