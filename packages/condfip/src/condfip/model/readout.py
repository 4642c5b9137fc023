"""A per-node readout of the decoder, refitted on the rows of one dataset (``refit_readout=True`` in the API).

The decoder's state of node ``i`` after each block depends only on the values of ``i``'s parents (and on the
dataset embedding). Layer-normalized and concatenated over the blocks, those states are features of the
parents. The refitted readout is ``F_hat_i(z) = features_i(z) . w_i + b_i``, fitted by ridge regression of the
observed values ``x_i`` on the features over the given rows. Because the noise is independent of the parents,
the regression targets ``E[x_i | x_pa] = f_i(x_pa) + E[n_i]``. The ridge shrinks ``(w_i, b_i)`` toward the
trained readout (which weighs only the last block's state), so the largest penalties give back the trained
readout, and each node's penalty is the one with the smallest exact leave-one-out error over ``PENALTY_GRID``.

With more rows than features, two passes over the rows, each in chunks, so memory does not grow with the
number of rows: the first accumulates the moments of the features, the second the leave-one-out errors of
every penalty, from the eigendecomposition of each node's (f + 1)-square scatter. With fewer rows than
features (a large model on a small table), the rows' n-square Gram matrix per node gives the same readout
for less work (``solver``).

Axis legend: m (or n) rows, d nodes, f features (blocks x embedding), g eigen-directions, l penalties.
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
    *,
    solver: str = "auto",
) -> Readout:
    """Ridge regression per node of targets on features, toward the readout ``prior_weights`` ([d, f]),
    ``prior_bias`` ([d]); the bias is shrunk like the weights, so the largest penalties give back the prior.

    ``chunks()`` yields ``(features [m, d, f], targets [m, d])`` over the rows; it is called twice and must
    give the same rows both times. ``solver``: ``"primal"`` diagonalizes the features' scatter (f + 1 square
    per node, rows in chunks), ``"dual"`` the rows' Gram matrix (n square per node, all rows held at once);
    both give the same readout, and ``"auto"`` takes the dual when there are fewer rows than features plus
    one. Raises ValueError when it yields fewer than 2 rows.
    """
    if solver not in SOLVERS:
        raise ValueError(f"solver must be one of {SOLVERS}, got {solver!r}")
    # the bias is the weight of a constant feature: [d, f + 1]
    prior = torch.cat([prior_weights.double(), prior_bias.double()[:, None]], dim=1)
    keep_rows = {"auto": prior.shape[1] - 1, "primal": 0, "dual": None}[solver]
    moments = _Moments(keep_rows)
    for features, targets in chunks():
        moments.add(_with_constant(features), targets.double())
    if moments.count < 2:
        raise ValueError(f"refitting the readout needs at least 2 rows, got {moments.count}")
    penalties = torch.tensor(grid, dtype=torch.float64, device=prior.device)  # [l]
    if moments.rows is not None:
        x, y = _stacked(moments.rows)  # [n, d, f + 1], [n, d]
        shift, errors = _dual_fit(x, y - torch.einsum("ndf,df->nd", x, prior), penalties)
    else:
        shift, errors = _primal_fit(chunks, prior, moments.scatter, moments.cross, penalties)
    best = errors.argmin(dim=0)  # [d]
    weights = prior + shift[best, torch.arange(prior.shape[0])]  # [d, f + 1]
    return Readout(
        weights=weights[:, :-1],
        bias=weights[:, -1],
        penalty=penalties[best],
        held_out_errors=errors / moments.count,
    )


SOLVERS = ("auto", "primal", "dual")


class _Moments:
    """Row count, scatter [d, f + 1, f + 1] and cross moments [d, f + 1] of the features (with their constant)
    and targets, accumulated chunk by chunk. While at most ``keep_rows`` rows came (``None``: any number), the
    rows themselves are kept instead (``rows``), for the dual fit."""

    def __init__(self, keep_rows: int | None) -> None:
        self.keep_rows = keep_rows
        self.count = 0
        self.rows: list[tuple[torch.Tensor, torch.Tensor]] | None = [] if keep_rows != 0 else None
        self.scatter: torch.Tensor | None = None
        self.cross: torch.Tensor | None = None

    def add(self, x: torch.Tensor, y: torch.Tensor) -> None:
        """x: [m, d, f + 1] float64, y: [m, d] float64."""
        self.count += x.shape[0]
        if self.rows is not None:
            self.rows.append((x, y))
            if self.keep_rows is None or self.count <= self.keep_rows:
                return
            kept, self.rows = self.rows, None  # too many rows: the primal fit's moments from here on
            x, y = _stacked(kept)
        scatter = torch.einsum("mdf,mdh->dfh", x, x)
        cross = torch.einsum("mdf,md->df", x, y)
        self.scatter = scatter if self.scatter is None else self.scatter + scatter
        self.cross = cross if self.cross is None else self.cross + cross


def _stacked(rows: list[tuple[torch.Tensor, torch.Tensor]]) -> tuple[torch.Tensor, torch.Tensor]:
    """Chunks of (x [m, d, f + 1], y [m, d]) -> all rows (x [n, d, f + 1], y [n, d])."""
    return torch.cat([x for x, _ in rows]), torch.cat([y for _, y in rows])


def _primal_fit(
    chunks: FeatureChunks,
    prior: torch.Tensor,
    scatter: torch.Tensor,
    cross: torch.Tensor,
    penalties: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The shift from the prior [l, d, f + 1] and summed squared leave-one-out errors [l, d] of every penalty,
    from the eigendecomposition of the scatter; a second pass over the rows scores the held-out residuals."""
    eigenvalues, eigenvectors = torch.linalg.eigh(scatter)  # [d, g], [d, f, g]
    eigenvalues, kept = _significant(eigenvalues)
    # the shift w' = w - prior solves a plain ridge on the targets minus the prior's fit
    projected = torch.einsum("dfg,df->dg", eigenvectors, cross - torch.einsum("dfh,dh->df", scatter, prior))
    projected = torch.where(kept, projected, 0.0)
    shrink = 1.0 / (eigenvalues[None] + penalties[:, None, None])  # [l, d, g]
    errors = torch.zeros(len(penalties), prior.shape[0], dtype=torch.float64, device=prior.device)  # [l, d]
    for features, targets in chunks():
        x = _with_constant(features)  # [m, d, f + 1]
        residual = targets.double() - torch.einsum("mdf,df->md", x, prior)  # [m, d]
        rotated = torch.einsum("mdf,dfg->mdg", x, eigenvectors)  # [m, d, g]
        fitted = torch.einsum("mdg,ldg->lmd", rotated, shrink * projected)  # [l, m, d]
        leverage = torch.einsum("mdg,ldg->lmd", rotated**2, shrink)  # [l, m, d]
        errors += _held_out_squares(residual, fitted, leverage)
    shift = torch.einsum("dfg,ldg->ldf", eigenvectors, shrink * projected)  # [l, d, f + 1]
    return shift, errors


def _dual_fit(
    x: torch.Tensor, residual: torch.Tensor, penalties: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """The same from all rows at once, x [n, d, f + 1] and the prior's residuals [n, d], through each node's
    Gram matrix of the rows (cheaper than the scatter when n < f + 1): with ``x = U S V^T``, the fit of a
    penalty is ``U S^2 / (S^2 + l) U^T r`` and the shift ``x^T U / (S^2 + l) U^T r``."""
    gram = torch.einsum("mdf,ndf->dmn", x, x)  # [d, n, n]
    eigenvalues, eigenvectors = torch.linalg.eigh(gram)  # [d, g], [d, n, g]
    eigenvalues, kept = _significant(eigenvalues)
    projected = torch.where(kept, torch.einsum("dng,nd->dg", eigenvectors, residual), 0.0)  # [d, g]
    shrink = 1.0 / (eigenvalues[None] + penalties[:, None, None])  # [l, d, g]
    ratio = eigenvalues[None] * shrink  # [l, d, g]
    fitted = torch.einsum("dng,ldg->lnd", eigenvectors, ratio * projected)  # [l, n, d]
    leverage = torch.einsum("dng,ldg->lnd", eigenvectors**2, ratio)  # [l, n, d]
    errors = _held_out_squares(residual, fitted, leverage)  # [l, d]
    coefficients = torch.einsum("dng,ldg->ldn", eigenvectors, shrink * projected)  # [l, d, n]
    shift = torch.einsum("ndf,ldn->ldf", x, coefficients)  # [l, d, f + 1]
    return shift, errors


def _significant(eigenvalues: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Eigenvalues [d, g] clamped at 0, and which of them are variation across rows rather than rounding (a
    root's features are the same in every row): the readout does not move from the prior along the others."""
    tolerance = 1e-10 * eigenvalues.sum(dim=-1, keepdim=True).clamp_min(0.0)  # [d, 1]
    eigenvalues = eigenvalues.clamp_min(0.0)
    return eigenvalues, eigenvalues > tolerance


def _held_out_squares(residual: torch.Tensor, fitted: torch.Tensor, leverage: torch.Tensor) -> torch.Tensor:
    """Summed squared leave-one-out residuals [l, d] from residuals [m, d], fits and leverages [l, m, d]."""
    # a row the fit interpolates (leverage 1: penalty near 0 with few rows) has an undefined held-out residual
    # (0 / 0): count it as infinitely wrong, so such penalties are never chosen
    remaining = 1.0 - leverage
    held_out = torch.where(remaining > 1e-6, (residual - fitted) / remaining.clamp_min(1e-6), torch.inf)
    return (held_out**2).sum(dim=1)


def _with_constant(features: torch.Tensor) -> torch.Tensor:
    """[m, d, f] -> [m, d, f + 1] in float64, the last feature 1."""
    x = features.double()
    return torch.cat([x, torch.ones_like(x[..., :1])], dim=-1)


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
