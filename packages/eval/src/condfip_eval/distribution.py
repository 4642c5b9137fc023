"""Scoring generated rows against held-out rows when no true noise is known (real data).

Every method samples the same way: the noise of each node is redrawn with replacement from the noise the
method's own sampler draws from, for the context rows (``FittedSCM.sampling_noise``), independently across nodes
(the product of the per-node empirical noise marginals), and pushed through the method's fitted model. That noise
is by default the one the method's generation maps back to the context rows (``FittedSCM.abducted_noise``); for
Cond-FiP it is what ``InferredSCM.sample`` draws from, ``x - F_hat(x)`` widened by each node's fit leverage
(``InferredSCM.sampling_noise``; its ``noise()`` default blends in the encoder's estimate, better row by row but
narrower). Distances are computed in the context rows' standardized units so that no column dominates by its
scale.
"""

from __future__ import annotations

import numpy as np

from condfip_eval.methods.base import FittedSCM
from condfip_eval.metrics import (
    MAX_POOLED_ROWS,
    Standardizer,
    check_median_heuristic_size,
    energy_distance,
    mmd_squared,
)
from condfip_eval.settings import check_integer

__all__ = ["GENERATED_ROWS", "check_generated_rows", "distribution_scores", "sample_from_context_noise"]

# rows each method generates to be scored against the held-out rows: many more than those (Sachs: 453), so that
# the generated sample's own Monte Carlo noise, which as many generated rows as held-out ones left dominating
# the paired differences between methods (Sachs: a standard error of 7e-5 on MMD^2 differences of the same
# size), stays small; the held-out rows' part of the noise is shared by every method
GENERATED_ROWS = 4_000


def check_generated_rows(generated_rows: int, *, held_out: int) -> int:
    """``generated_rows`` as an int: at least 2 (the unbiased MMD^2 needs 2 rows per sample), and with the
    ``held_out`` rows few enough for the median heuristic (refused before any row is generated)."""
    largest = MAX_POOLED_ROWS - held_out
    generated_rows = check_integer("generated_rows", generated_rows, 2)
    if generated_rows > largest:
        raise ValueError(
            f"generated_rows={generated_rows:,} with {held_out:,} held-out rows is more than the "
            f"{MAX_POOLED_ROWS:,} rows the median-heuristic bandwidth pools; use at most {largest:,}"
        )
    return generated_rows


def sample_from_context_noise(
    fitted: FittedSCM, context: np.ndarray, num_rows: int, rng: np.random.Generator
) -> np.ndarray:
    """``num_rows`` observational rows [num_rows, d] from the context's noise as the method samples it, resampled."""
    noise = fitted.sampling_noise(context)  # [n, d]
    num_context, num_nodes = noise.shape
    picks = rng.integers(0, num_context, size=(num_rows, num_nodes))  # per node, independent draws
    fresh = noise[picks, np.arange(num_nodes)]  # [num_rows, d]
    return fitted.generate(fresh)


def distribution_scores(
    generated: np.ndarray, held_out: np.ndarray, standardizer: Standardizer
) -> dict[str, float]:
    """Unbiased MMD^2 (Gaussian kernel, median-heuristic bandwidth) and energy distance, standardized units.

    ``generated`` [n, d] and ``held_out`` [m, d] need 2 rows each; together at most the rows the median
    heuristic pools (``metrics.check_median_heuristic_size``, refused before anything is allocated).
    """
    generated = np.asarray(generated, dtype=np.float64)
    if generated.ndim == 2 and not np.isfinite(generated).all():
        raise ValueError("the generated rows hold NaN or infinite values (the method's model diverged)")
    a, b = standardizer.data(generated), standardizer.data(held_out)
    if a.shape[0] >= 2 and b.shape[0] >= 2:
        check_median_heuristic_size(a.shape[0] + b.shape[0])
    return {"mmd2": mmd_squared(a, b), "energy": energy_distance(a, b)}
