"""Per-dataset standardization (docs/ARCHITECTURE.md, "Conventions"): `X <- (X - m) / s`, `N <- N / s` (scaled, not centred)."""

from __future__ import annotations

import numpy as np


def standardize(
    data: np.ndarray, noise: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray | None, np.ndarray, np.ndarray]:
    """Standardize each dataset over its samples (axis -2).

    `data` `[..., n, d]`, `noise` the same shape or None. Returns `(data_std, noise_std, mean, std)` with
    `mean`, `std` of shape `[..., 1, d]` (so `data == data_std * std + mean`). A column with zero spread gets
    `std = 1` (a guard: a constant column is only centred).
    """
    data = np.asarray(data)
    if data.ndim < 2:
        raise ValueError(f"data must have shape [..., n, d], got {data.shape}")
    mean = data.mean(axis=-2, keepdims=True)
    std = data.std(axis=-2, keepdims=True)
    std = np.where(std > 0, std, 1.0)
    data_std = (data - mean) / std
    noise_std = None
    if noise is not None:
        noise = np.asarray(noise)
        if noise.shape != data.shape:
            raise ValueError(f"noise must have the shape of data {data.shape}, got {noise.shape}")
        noise_std = noise / std
    return data_std, noise_std, mean, std
