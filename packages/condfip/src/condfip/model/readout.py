"""A per-node readout of the decoder, refitted on the rows of one dataset (``refit_readout=True`` in the API).

The decoder's state of node ``i`` after each block depends only on the values of ``i``'s parents (and on the
dataset embedding). Layer-normalized and concatenated over the blocks, those states are features of the
parents. The refitted readout is ``F_hat_i(z) = features_i(z) . w_i + b_i``, fitted by ridge regression of the
observed values ``x_i`` on the features over the given rows. Because the noise is independent of the parents,
the regression targets ``E[x_i | x_pa] = f_i(x_pa) + E[n_i]``. The ridge shrinks ``(w_i, b_i)`` toward the
trained readout (which weighs only the last block's state), so the largest penalties give back the trained
readout, and each node's penalty is the one with the smallest exact leave-one-out error over ``PENALTY_GRID``.

Two passes over the rows, each in chunks, so memory does not grow with the number of rows: the first
accumulates the moments of the features, the second the leave-one-out errors of every penalty.

Axis legend: m rows, d nodes, f features (blocks x embedding), g eigen-directions, l penalties.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

import torch

PENALTY_GRID = tuple(10.0**exponent for exponent in torch.arange(-6.0, 4.01, 0.5).tolist())  # 1e-6 .. 1e4


@dataclass
class Readout:
    """Per-node readout weights, in float64: ``F_hat[:, i] = features[:, i] @ weights[i] + bias[i]``."""

    weights: torch.Tensor  # [d, f]
    bias: torch.Tensor  # [d]
    penalty: torch.Tensor  # [d]: the ridge penalty chosen for each node
    held_out_errors: torch.Tensor  # [l, d]: mean squared leave-one-out error of every penalty of the grid


FeatureChunks = Callable[[], Iterable[tuple[torch.Tensor, torch.Tensor]]]


def fit_readout(
    chunks: FeatureChunks,
    prior_weights: torch.Tensor,
    prior_bias: torch.Tensor,
    grid: tuple[float, ...] = PENALTY_GRID,
) -> Readout:
    """Ridge regression per node of targets on features, toward the readout ``prior_weights`` ([d, f]),
    ``prior_bias`` ([d]); the bias is shrunk like the weights, so the largest penalties give back the prior.

    ``chunks()`` yields ``(features [m, d, f], targets [m, d])`` over the rows; it is called twice and must
    give the same rows both times. Raises ValueError when it yields fewer than 2 rows.
    """
    # the bias is the weight of a constant feature: [d, f + 1]
    prior = torch.cat([prior_weights.double(), prior_bias.double()[:, None]], dim=1)
    count, scatter, cross = _moments(chunks)
    if count < 2:
        raise ValueError(f"refitting the readout needs at least 2 rows, got {count}")
    eigenvalues, eigenvectors = torch.linalg.eigh(scatter)  # [d, g], [d, f, g]
    # below this an eigenvalue is rounding, not variation across rows (a root's features are the same in every
    # row): the readout does not move from the prior along it
    tolerance = 1e-10 * eigenvalues.sum(dim=-1, keepdim=True).clamp_min(0.0)  # [d, 1]
    eigenvalues = eigenvalues.clamp_min(0.0)
    # the shift w' = w - prior solves a plain ridge on the targets minus the prior's fit
    projected = torch.einsum("dfg,df->dg", eigenvectors, cross - torch.einsum("dfh,dh->df", scatter, prior))
    projected = torch.where(eigenvalues > tolerance, projected, 0.0)
    penalties = torch.tensor(grid, dtype=torch.float64, device=prior.device)  # [l]
    shrink = 1.0 / (eigenvalues[None] + penalties[:, None, None])  # [l, d, g]
    errors = torch.zeros(len(grid), prior.shape[0], dtype=torch.float64, device=prior.device)  # [l, d]
    for features, targets in chunks():
        x = _with_constant(features)  # [m, d, f + 1]
        residual = targets.double() - torch.einsum("mdf,df->md", x, prior)  # [m, d]
        rotated = torch.einsum("mdf,dfg->mdg", x, eigenvectors)  # [m, d, g]
        fitted = torch.einsum("mdg,ldg->lmd", rotated, shrink * projected)  # [l, m, d]
        leverage = torch.einsum("mdg,ldg->lmd", rotated**2, shrink)  # [l, m, d]
        # a row the fit interpolates (leverage 1: penalty near 0 with few rows) has an undefined held-out
        # residual (0 / 0): count it as infinitely wrong, so such penalties are never chosen
        remaining = 1.0 - leverage
        held_out = torch.where(remaining > 1e-6, (residual - fitted) / remaining.clamp_min(1e-6), torch.inf)
        errors += (held_out**2).sum(dim=1)
    best = errors.argmin(dim=0)  # [d]
    chosen = shrink[best, torch.arange(prior.shape[0])]  # [d, g]
    weights = prior + torch.einsum("dfg,dg->df", eigenvectors, chosen * projected)  # [d, f + 1]
    return Readout(
        weights=weights[:, :-1],
        bias=weights[:, -1],
        penalty=penalties[best],
        held_out_errors=errors / count,
    )


def _with_constant(features: torch.Tensor) -> torch.Tensor:
    """[m, d, f] -> [m, d, f + 1] in float64, the last feature 1."""
    x = features.double()
    return torch.cat([x, torch.ones_like(x[..., :1])], dim=-1)


def _moments(chunks: FeatureChunks) -> tuple[int, torch.Tensor, torch.Tensor]:
    """Row count, scatter [d, f + 1, f + 1] and cross moments [d, f + 1] of the features with a constant."""
    count, scatter, cross = 0, None, None
    for features, targets in chunks():
        x, y = _with_constant(features), targets.double()  # [m, d, f + 1], [m, d]
        batch_scatter = torch.einsum("mdf,mdh->dfh", x, x)
        batch_cross = torch.einsum("mdf,md->df", x, y)
        scatter = batch_scatter if scatter is None else scatter + batch_scatter
        cross = batch_cross if cross is None else cross + batch_cross
        count += x.shape[0]
    if scatter is None:
        raise ValueError("refitting the readout needs at least 2 rows, got 0")
    return count, scatter, cross


def fit_readout_with_penalty(
    features: torch.Tensor,
    targets: torch.Tensor,
    prior_weights: torch.Tensor,
    prior_bias: torch.Tensor,
    penalty: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The same ridge with one fixed penalty, batched over datasets and differentiable (for training the decoder
    with a refitted readout): features [b, n, d, f], targets [b, n, d], prior_weights [f], prior_bias [] ->
    weights [b, d, f], bias [b, d], in float64."""
    x = _with_constant(features)  # [b, n, d, f + 1]
    prior = torch.cat([prior_weights.double(), prior_bias.double().reshape(1)])  # [f + 1]
    residual = targets.double() - x @ prior  # [b, n, d]
    identity = torch.eye(x.shape[-1], dtype=torch.float64, device=x.device)
    scatter = torch.einsum("bndf,bndg->bdfg", x, x) + penalty * identity  # [b, d, f + 1, f + 1]
    cross = torch.einsum("bndf,bnd->bdf", x, residual)  # [b, d, f + 1]
    factor = torch.linalg.cholesky(scatter.contiguous())  # positive definite: the penalty is > 0
    weights = prior + torch.cholesky_solve(cross.unsqueeze(-1), factor).squeeze(-1)  # [b, d, f + 1]
    return weights[..., :-1], weights[..., -1]
