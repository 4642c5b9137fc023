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
from condfip_eval.metrics import Standardizer, energy_distance, mmd_squared

__all__ = ["GENERATED_ROWS", "distribution_scores", "sample_from_context_noise"]

# rows each method generates to be scored against the held-out rows: many more than those (Sachs: 453), so that
# the generated sample's own Monte Carlo noise, which as many generated rows as held-out ones left dominating
# the paired differences between methods (Sachs: a standard error of 7e-5 on MMD^2 differences of the same
# size), stays small; the held-out rows' part of the noise is shared by every method
GENERATED_ROWS = 4_000


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
    """Unbiased MMD^2 (Gaussian kernel, median-heuristic bandwidth) and energy distance, standardized units."""
    a, b = standardizer.data(generated), standardizer.data(held_out)
    return {"mmd2": mmd_squared(a, b), "energy": energy_distance(a, b)}
