"""Per-column standardization of a table: ``x_std = (x - mean) / std``; noise is scaled, not centred.

One semantics everywhere: a column with zero spread gets ``std = 1`` (it is only centred). The public API
refuses constant columns before it standardizes (``condfip.api.tables``); internal code (training data,
validation sets) relies on the guard.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Standardization:
    """Per-column ``mean`` and ``std`` of a table [n, d]."""

    mean: np.ndarray  # [d]
    std: np.ndarray  # [d], > 0

    @classmethod
    def fit(cls, data: np.ndarray) -> Standardization:
        """Mean and population standard deviation over the rows of ``data`` [n, d]; zero spread gives 1."""
        std = data.std(axis=0)
        return cls(mean=data.mean(axis=0), std=np.where(std > 0, std, 1.0))

    def data_to_standard(self, data: np.ndarray) -> np.ndarray:
        return (data - self.mean) / self.std

    def data_from_standard(self, data: np.ndarray) -> np.ndarray:
        return data * self.std + self.mean

    def noise_to_standard(self, noise: np.ndarray) -> np.ndarray:
        return noise / self.std

    def noise_from_standard(self, noise: np.ndarray) -> np.ndarray:
        return noise * self.std


def standardized(data: np.ndarray) -> np.ndarray:
    """``data`` [n, d] in its own standardized units."""
    return Standardization.fit(data).data_to_standard(data)
