"""Fresh exogenous noise drawn from the noise abducted on the context, one node at a time.

Nodes are drawn independently (the noise of an SCM is independent across nodes). ``"empirical"`` inverts each
node's empirical CDF (linear interpolation between order statistics, so draws stay within the observed range);
``"gaussian"`` fits a normal distribution per node.

``stratified_noise`` draws the same distribution in blocks of Latin hypercube rows: within a block of ``b``
rows, every node's uniforms take one value in each of the ``b`` strata ``[k / b, (k + 1) / b)``, in a random
order of its own. Each row is still a draw of the noise, and the blocks are independent, but the rows of a block
are not: a block's mean of any function of the noise has the variance of independent rows at most (up to a factor
``b / (b - 1)``), and far less where the function is close to a sum of one function per node, whose part of the
variance a block nearly removes. ``average_causal_effect`` uses it for its Monte Carlo estimate, with the standard
error taken from the spread of the block means.
"""

from __future__ import annotations

import numpy as np
import torch

from condfip.api.arguments import is_integer
from condfip.io.memory import check_memory, table_bytes

NOISE_MODELS = ("empirical", "gaussian")
# Peak float64 tables [n, d] while n rows are drawn, generated and returned (measured: about 7, with the draw's
# intermediates, the user-unit copy, the DataFrame and a CSV written from it)
SAMPLE_COPIES = 8


def make_generator(seed: int | np.random.Generator | None) -> np.random.Generator:
    """``seed`` as a generator: an int or None seeds a fresh one; a Generator is used as given."""
    if isinstance(seed, np.random.Generator):
        return seed
    if seed is not None and (not is_integer(seed) or seed < 0):
        raise ValueError(f"seed must be a non-negative int, a numpy Generator or None, got {seed!r}")
    return np.random.default_rng(seed)


def check_noise_model(noise_model: object) -> str:
    if not isinstance(noise_model, str) or noise_model not in NOISE_MODELS:
        raise ValueError(f"noise_model must be one of {NOISE_MODELS}, got {noise_model!r}")
    return noise_model


def check_num_samples(num_samples: object, parameter: str = "n") -> int:
    if not is_integer(num_samples) or num_samples < 1:
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
    check_noise_model(noise_model)
    check_sample_memory(num_samples, abducted.shape[1])
    if noise_model == "empirical":
        return _empirical_quantiles(abducted, rng.random((num_samples, abducted.shape[1])))
    mean = abducted.mean(axis=0)  # "gaussian"
    std = abducted.std(axis=0)
    return mean + std * rng.standard_normal((num_samples, abducted.shape[1]))


def stratified_noise(
    abducted: np.ndarray,
    num_blocks: int,
    block_rows: int,
    rng: np.random.Generator,
    noise_model: str = "empirical",
) -> np.ndarray:
    """``num_blocks`` independent blocks of ``block_rows`` Latin hypercube rows of fresh noise shaped like
    ``abducted`` [n, d] (module docstring), block after block: [num_blocks * block_rows, d]. Refused before
    drawing when the rows cannot fit in memory."""
    check_noise_model(noise_model)
    if num_blocks < 1 or block_rows < 2:
        raise ValueError(f"need at least one block of at least 2 rows, got {num_blocks} of {block_rows}")
    d = abducted.shape[1]
    check_sample_memory(num_blocks * block_rows, d)
    # [blocks, b, d]: each block's column a random permutation of the strata, jittered within its stratum
    strata = np.argsort(rng.random((num_blocks, block_rows, d)), axis=1)
    uniforms = (strata + rng.random((num_blocks, block_rows, d))) / block_rows
    uniforms = uniforms.reshape(num_blocks * block_rows, d)  # [m, d] in [0, 1)
    if noise_model == "empirical":
        return _empirical_quantiles(abducted, uniforms)
    # the normal quantile of each uniform; 0 (probability 2^-53 a draw) moved inside so that it stays finite
    inside = np.clip(uniforms, 2.0**-53, 1.0 - 2.0**-53)
    normal = torch.special.ndtri(torch.from_numpy(inside)).numpy()  # [m, d]
    return abducted.mean(axis=0) + abducted.std(axis=0) * normal


def _empirical_quantiles(abducted: np.ndarray, uniforms: np.ndarray) -> np.ndarray:
    """Each column's empirical quantile function of ``abducted`` [n, d] (linear between order statistics) at
    ``uniforms`` [m, d] in [0, 1) -> [m, d]."""
    ordered = np.sort(abducted, axis=0)  # [n, d]
    num_rows = ordered.shape[0]
    position = uniforms * (num_rows - 1)  # [m, d] in [0, n - 1)
    below = np.floor(position).astype(np.int64)
    above = np.minimum(below + 1, num_rows - 1)
    weight = position - below
    low = np.take_along_axis(ordered, below, axis=0)
    high = np.take_along_axis(ordered, above, axis=0)
    return low + weight * (high - low)
