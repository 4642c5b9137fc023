"""A tiny hand-written additive-noise SCM for method tests (no dependency on scm-gen's generators)."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import torch

# Small tensors on a shared 2-core machine: one thread avoids oversubscription (several times faster).
torch.set_num_threads(1)

# 0 -> 1, 0 -> 2, 1 -> 2, 3 isolated; node order already topological
ADJACENCY = np.array(
    [
        [0, 1, 1, 0],
        [0, 0, 1, 0],
        [0, 0, 0, 0],
        [0, 0, 0, 0],
    ],
    dtype=np.int8,
)
NOISE_SCALES = np.array([1.0, 0.3, 0.2, 0.5])


def mechanisms(x: np.ndarray, *, nonlinear: bool) -> np.ndarray:
    """F(x) [n, 4] of the toy SCM (linear or with a sine)."""
    f = np.zeros_like(x)
    f[:, 0] = 1.0
    f[:, 1] = 2.0 * np.sin(1.5 * x[:, 0]) if nonlinear else 1.5 * x[:, 0] - 0.5
    f[:, 2] = (np.tanh(x[:, 1]) - 0.8 * x[:, 0]) if nonlinear else (0.7 * x[:, 1] - 0.8 * x[:, 0])
    f[:, 3] = -2.0
    return f


def generate(
    noise: np.ndarray, *, nonlinear: bool, interventions: dict[int, float] | None = None
) -> np.ndarray:
    x = np.zeros_like(noise)
    for node in range(4):
        if interventions and node in interventions:
            x[:, node] = interventions[node]
        else:
            x[:, node] = mechanisms(x, nonlinear=nonlinear)[:, node] + noise[:, node]
    return x


def sample(num_rows: int, *, nonlinear: bool, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    noise = np.random.default_rng(seed).normal(size=(num_rows, 4)) * NOISE_SCALES
    return generate(noise, nonlinear=nonlinear), noise


@pytest.fixture
def toy():
    """This module: ADJACENCY, NOISE_SCALES, mechanisms, generate, sample."""
    return sys.modules[__name__]
