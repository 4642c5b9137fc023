"""Per-dataset standardization (docs/ARCHITECTURE.md, "Conventions"): `X <- (X - m) / s`, `N <- N / s` (scaled, not centred).

The mean and spread are computed on each column divided by a power of two near its largest magnitude, then
scaled back. Dividing by a power of two is exact, so ordinary columns get the same numbers as `mean` and `std`
of the raw column, while a column of magnitude 1e200 (whose squares overflow) gets its true spread.
"""

from __future__ import annotations

import numpy as np

from scm_gen._checks import check_finite_array


def standardize(
    data: np.ndarray, noise: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray | None, np.ndarray, np.ndarray]:
    """Standardize each dataset over its samples (axis -2).

    `data` `[..., n, d]` (n >= 1, finite), `noise` the same shape or None. Returns `(data_std, noise_std, mean,
    std)`, float64, with `mean`, `std` of shape `[..., 1, d]` (so `data == data_std * std + mean`). A column with
    zero spread gets `std = 1` (a guard: a constant column is only centred).
    """
    data = check_finite_array("data", data).astype(np.float64, copy=False)
    if data.ndim < 2 or data.shape[-2] == 0:
        raise ValueError(f"data must have shape [..., n, d] with at least one row, got {data.shape}")
    # max |x| = mantissa * 2^exponent with the mantissa in [0.5, 1): the scaled column lies in [-2, 2]
    _, exponent = np.frexp(np.abs(data).max(axis=-2, keepdims=True))
    scale = np.ldexp(1.0, exponent - 1)  # finite even for columns near the largest float64
    scaled = data / scale
    scaled_mean = scaled.mean(axis=-2, keepdims=True)
    scaled_std = scaled.std(axis=-2, keepdims=True)
    mean = scaled_mean * scale
    std = scaled_std * scale
    spread = std > 0  # also false for a spread too small for float64 (below 5e-324)
    std = np.where(spread, std, 1.0)
    centred = scaled - scaled_mean
    data_std = np.where(spread, centred / np.where(spread, scaled_std, 1.0), centred * scale)
    noise_std = None
    if noise is not None:
        noise = check_finite_array("noise", noise).astype(np.float64, copy=False)
        if noise.shape != data.shape:
            raise ValueError(f"noise must have the shape of data {data.shape}, got {noise.shape}")
        with np.errstate(over="ignore"):
            noise_std = noise / std
        if not np.all(np.isfinite(noise_std)):
            raise ValueError(
                "noise divided by the spread of data overflows float64; give noise on the scale of data"
            )
    return data_std, noise_std, mean, std
