"""Fresh exogenous noise drawn from the noise abducted on the context, one node at a time.

Nodes are drawn independently (the noise of an SCM is independent across nodes). ``"empirical"`` inverts each
node's empirical CDF (linear interpolation between order statistics, so draws stay within the observed range);
``"gaussian"`` fits a normal distribution per node.
"""

from __future__ import annotations

import numpy as np

from condfip.io.memory import check_memory, table_bytes

NOISE_MODELS = ("empirical", "gaussian")
# Peak float64 tables [n, d] while n rows are drawn, generated and returned (measured: about 7, with the draw's
# intermediates, the user-unit copy, the DataFrame and a CSV written from it)
SAMPLE_COPIES = 8


def make_generator(seed: int | np.random.Generator | None) -> np.random.Generator:
    """``seed`` as a generator: an int or None seeds a fresh one; a Generator is used as given."""
    if isinstance(seed, np.random.Generator):
        return seed
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0):
        raise ValueError(f"seed must be a non-negative int, a numpy Generator or None, got {seed!r}")
    return np.random.default_rng(seed)


def check_num_samples(num_samples: object, parameter: str = "n") -> int:
    if isinstance(num_samples, bool) or not isinstance(num_samples, int | np.integer) or num_samples < 1:
        raise ValueError(f"{parameter} must be a positive int (number of rows to draw), got {num_samples!r}")
    return int(num_samples)


def check_sample_memory(num_samples: int, num_nodes: int, parameter: str = "n") -> None:
    """Refuse drawing ``num_samples`` rows of ``num_nodes`` columns when they cannot fit in memory."""
    check_memory(
        table_bytes(num_samples, num_nodes, SAMPLE_COPIES),
        f"drawing {parameter}={num_samples:,} rows of {num_nodes} columns",
        hint="draw fewer rows at a time (several calls with different seeds)",
    )


def sample_noise(
    abducted: np.ndarray, num_samples: int, rng: np.random.Generator, noise_model: str = "empirical"
) -> np.ndarray:
    """``num_samples`` rows of fresh noise [num_samples, d] shaped like ``abducted`` [n, d] column by column;
    refused before drawing when the rows cannot fit in memory (``check_sample_memory``)."""
    check_sample_memory(num_samples, abducted.shape[1])
    if noise_model == "empirical":
        ordered = np.sort(abducted, axis=0)  # [n, d]
        num_rows = ordered.shape[0]
        position = rng.random((num_samples, ordered.shape[1])) * (num_rows - 1)  # [m, d] in [0, n - 1)
        below = np.floor(position).astype(np.int64)
        above = np.minimum(below + 1, num_rows - 1)
        weight = position - below
        low = np.take_along_axis(ordered, below, axis=0)
        high = np.take_along_axis(ordered, above, axis=0)
        return low + weight * (high - low)
    if noise_model == "gaussian":
        mean = abducted.mean(axis=0)
        std = abducted.std(axis=0)
        return mean + std * rng.standard_normal((num_samples, abducted.shape[1]))
    raise ValueError(f"noise_model must be one of {NOISE_MODELS}, got {noise_model!r}")
