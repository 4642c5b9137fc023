"""The evidence fit of the adaptation's models: MacKay's fixed point for each penalized group's precision and the
noise precision of one model per node, its log marginal likelihood (evidence), and the ridge solve of a model
whose penalties are fixed.

The groups are ``GROUPS``: the parents' values, the zero-shot prediction, the decoder's principal directions, the
products of degree two, and the kernel block last. A group whose precision reaches the pruning ceiling
(``pruning_ceiling``) is out of the model. Why the models are fitted this way: ``condfip.model.adaptation``.

Axis legend: d nodes, a small block (constant, parents, products, zero-shot, decoder directions), M kernel
features, g groups, k nodes of a batch, R rows of fits.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, fields

import torch

ITERATIONS = 12  # at most; a node stops once none of its log precisions moves by more than TOLERANCE
TOLERANCE = 1e-2
# a group is pruned when its precision reaches exp(MAX_LOG_PRECISION), or, for a node of tiny noise (a column
# nearly determined by its parents), exp(MIN_LOG_PENALTY) times the noise precision: its ridge penalty, what
# weighs against the data, is then large enough that the pruned columns' share of the evidence is negligible
MAX_LOG_PRECISION = 25.0
MIN_LOG_PENALTY = 15.0
FIXED_PRECISION = 1e-8  # the "precision" of an unpenalized column
GROUPS = ("parents", "zero_shot", "decoder", "products", "kernel")  # the kernel last (``schur_evidence``)


@dataclass
class Evidence:
    """One model's evidence fit per node."""

    log_evidence: torch.Tensor  # [d]
    penalties: torch.Tensor  # [d, a + M]: ridge penalty per column (precision / noise precision)
    pruned: torch.Tensor  # [d, a + M] bool: the column is out of the model (at the pruning precision)
    noise_scale: torch.Tensor  # [d]
    group_scales: torch.Tensor  # [d, g]

    def map(self, function: Callable[[torch.Tensor], torch.Tensor]) -> Evidence:
        """The same fit with ``function`` applied to every field (each indexed by node first)."""
        return Evidence(*(function(getattr(self, field.name)) for field in fields(self)))


def laid_out(evidence: Evidence, kept: torch.Tensor, num_kernel: int, has_kernel: bool) -> Evidence:
    """An ``Evidence`` of a model fitted on the small-block columns ``kept`` ([a] bool) and its kernel block (or,
    without ``has_kernel``, a held-out stand-in of one column), laid out over the whole reduced basis [a +
    num_kernel]: the other columns held out (pruned, at the pruning precision), as a fit that held them out would
    have them (its evidence is the same: a held-out column's prior and posterior terms cancel)."""
    rows = evidence.penalties.shape[0]
    num_small = int(kept.sum())
    full = torch.cat([kept, torch.full((num_kernel,), has_kernel, dtype=torch.bool, device=kept.device)])
    beta = evidence.noise_scale.pow(-2)  # [R]
    held_out = torch.exp(pruning_ceiling(beta)) / beta  # [R]: the pruning precision as a ridge penalty
    penalties = held_out[:, None].expand(rows, full.shape[0]).clone()  # [R, a + M]
    pruned = torch.ones(rows, full.shape[0], dtype=torch.bool, device=penalties.device)
    columns = slice(None) if has_kernel else slice(0, num_small)
    penalties[:, full] = evidence.penalties[:, columns]
    pruned[:, full] = evidence.pruned[:, columns]
    return Evidence(
        log_evidence=evidence.log_evidence,
        penalties=penalties,
        pruned=pruned,
        noise_scale=evidence.noise_scale,
        group_scales=evidence.group_scales,
    )


def jitter_ridge(scatter: torch.Tensor) -> torch.Tensor:
    """A ridge far below rounding of the largest diagonal, so constant or collinear columns stay solvable."""
    size = scatter.shape[-1]
    scale = torch.diagonal(scatter, dim1=-2, dim2=-1).amax(dim=-1).clamp_min(1.0)  # [d]
    return (1e-10 * scale)[:, None, None] * torch.eye(size, dtype=scatter.dtype, device=scatter.device)


def pruning_ceiling(beta: torch.Tensor) -> torch.Tensor:
    """The pruning log precision of each node [d] for noise precisions ``beta`` [d]: ``MAX_LOG_PRECISION``, or
    ``MIN_LOG_PENALTY`` above the log noise precision where that is higher. With a fixed ceiling, a node of noise
    standard deviation 1e-5 would hold a "pruned" group at a ridge penalty below 1, and the groups' log
    determinants would decide its model."""
    return torch.clamp_min(MIN_LOG_PENALTY + torch.log(beta), MAX_LOG_PRECISION)


def schur_evidence(
    scatter: torch.Tensor,
    coupling: torch.Tensor,
    eigenvalues: torch.Tensor,
    cross: torch.Tensor,
    rotated_cross: torch.Tensor,
    squares: torch.Tensor,
    n: int,
    groups: torch.Tensor,
    fixed: torch.Tensor,
    excluded: torch.Tensor,
    *,
    kernel_excluded: bool,
    iterations: int | torch.Tensor,
) -> Evidence:
    """MacKay's fixed point for the precision of every penalized group and the noise precision of one model per
    node, then its log evidence.

    The model's columns are the small block (scatter [d, a, a], cross moments [d, a]) and the kernel block in
    its scatter's eigenbasis (eigenvalues [d, M], coupling to the small block [d, a, M], cross moments [d, M]).
    ``fixed`` small columns [d, a] are unpenalized; ``excluded`` ones (padded parents, or groups outside the
    model) and, with ``kernel_excluded``, the kernel block are held out at the pruning precision (``pruning_ceiling``).
    The posterior is solved through the Schur complement on the small block: the kernel block is diagonal there.
    ``iterations`` (one number, or one per node [d]) bounds each node's steps; a node of one step updates its noise
    precision only.
    """
    d, a = cross.shape
    device = cross.device
    num_groups = len(GROUPS)
    member = torch.stack([groups == g for g in range(num_groups - 1)], dim=1).double()  # [a, g - 1]
    top = torch.maximum(torch.diagonal(scatter, dim1=-2, dim2=-1).amax(-1), eigenvalues.amax(-1))
    jitter = 1e-10 * top.clamp_min(1.0)  # [d]: as ``jitter_ridge`` on the model's whole scatter
    scatter_jittered = scatter + jitter[:, None, None] * torch.eye(a, dtype=scatter.dtype, device=device)
    eigenvalues_jittered = eigenvalues + jitter[:, None]
    log_precision = torch.zeros(d, num_groups, dtype=torch.float64, device=device)
    beta = n / squares.clamp_min(1e-12)  # [d]

    def posterior(log_precision: torch.Tensor, beta: torch.Tensor, rows: torch.Tensor | None = None):
        """The posterior of the nodes ``rows`` [k] (all when None) at their log precisions [k, g] and noise
        precisions [k]."""

        def pick(tensor: torch.Tensor) -> torch.Tensor:
            return tensor if rows is None else tensor[rows]

        # [k, a, M], [k, a], [k]: the nodes' coupling, cross moments and squares
        block_coupling, block_cross, block_squares = pick(coupling), pick(cross), pick(squares)
        ceiling = pruning_ceiling(beta)  # [k]
        pruning = torch.exp(ceiling)[:, None]  # [k, 1]
        small_precision = torch.exp(torch.minimum(log_precision[:, groups.clamp_min(0)], ceiling[:, None]))
        small_precision = torch.where(pick(fixed), FIXED_PRECISION, small_precision)  # [k, a]
        small_precision = torch.where(pick(excluded), pruning, small_precision)
        kernel_precision = torch.exp(
            ceiling if kernel_excluded else torch.minimum(log_precision[:, -1], ceiling)
        )
        diagonal = beta[:, None] * pick(eigenvalues_jittered) + kernel_precision[:, None]  # [k, M]
        scaled = block_coupling / diagonal[:, None, :]  # [k, a, M]
        schur = (
            beta[:, None, None] * pick(scatter_jittered)
            + torch.diag_embed(small_precision)
            - beta[:, None, None] ** 2 * (scaled @ block_coupling.transpose(1, 2))
        )
        factor = torch.linalg.cholesky(schur)
        kernel_cross = pick(rotated_cross)  # [k, M]
        target_small, target_kernel = beta[:, None] * block_cross, beta[:, None] * kernel_cross
        right = target_small - beta[:, None] * (scaled @ target_kernel[..., None])[..., 0]
        mean_small = torch.cholesky_solve(right[..., None], factor)[..., 0]  # [k, a]
        mean_kernel = (
            target_kernel - beta[:, None] * (block_coupling.transpose(1, 2) @ mean_small[..., None])[..., 0]
        ) / diagonal  # [k, M]
        residual = (
            block_squares
            - 2 * ((mean_small * block_cross).sum(-1) + (mean_kernel * kernel_cross).sum(-1))
            + torch.einsum("ka,kab,kb->k", mean_small, pick(scatter), mean_small)
            + 2 * torch.einsum("ka,kam,km->k", mean_small, block_coupling, mean_kernel)
            + (pick(eigenvalues) * mean_kernel**2).sum(-1)
        ).clamp_min(1e-12 * block_squares + 1e-300)
        return (
            small_precision,
            kernel_precision,
            diagonal,
            scaled,
            factor,
            mean_small,
            mean_kernel,
            residual,
        )

    steps = torch.as_tensor(iterations, device=device).expand(d)  # [d]
    most = max(int(steps.max()) if d else 1, 1)
    # [d]: a node whose fixed point was reached (or whose steps are over), frozen from then on; each step runs on
    # the other nodes only, so each node stops on its own: its fit does not depend on which nodes share the batch
    settled = torch.zeros(d, dtype=torch.bool, device=device)
    for step in range(most):
        rows = torch.nonzero(~(settled | (steps <= step))).flatten()  # [k]
        if not rows.numel():
            break
        row_beta = beta[rows]  # [k]
        small_precision, kernel_precision, diagonal, scaled, factor, mean_small, mean_kernel, residual = (
            posterior(log_precision[rows], row_beta, rows)
        )
        inverse = torch.cholesky_inverse(factor)  # [k, a, a]: the posterior covariance of the small block
        variance_small = torch.diagonal(inverse, dim1=-2, dim2=-1)
        # [k, M]: the kernel block's posterior variances
        variance_kernel = 1 / diagonal + row_beta[:, None] ** 2 * (scaled * (inverse @ scaled)).sum(1)
        determined_small = torch.where(
            excluded[rows], 0.0, (1 - small_precision * variance_small).clamp(0, 1)
        )  # [k, a]
        determined_kernel = (1 - kernel_precision[:, None] * variance_kernel).clamp(0, 1)
        if kernel_excluded:
            determined_kernel = torch.zeros_like(determined_kernel)
        determined = determined_small.sum(-1) + determined_kernel.sum(-1)
        row_beta = ((n - determined).clamp_min(1.0) / residual).clamp(max=1e12)
        beta[rows] = row_beta
        if most <= 1:
            break
        one_step = steps[rows] <= 1  # [k]: a node of one step keeps its prior precisions
        used = torch.cat([determined_small @ member, determined_kernel.sum(-1, keepdim=True)], dim=1)
        size = torch.cat([(mean_small**2) @ member, (mean_kernel**2).sum(-1, keepdim=True)], dim=1)
        updated = torch.log(used.clamp_min(1e-12) / size.clamp_min(1e-300))
        updated = torch.minimum(
            updated.clamp_min(-MAX_LOG_PRECISION), pruning_ceiling(row_beta)[:, None]
        )  # [k, g]
        reached = ((updated - log_precision[rows]).abs() <= TOLERANCE).all(dim=1)  # [k]
        log_precision[rows] = torch.where(one_step[:, None], log_precision[rows], updated)
        settled[rows] = one_step | reached
    small_precision, kernel_precision, diagonal, _, factor, mean_small, mean_kernel, residual = posterior(
        log_precision, beta
    )
    num_kernel = eigenvalues.shape[-1]
    log_det = 2 * torch.log(torch.diagonal(factor, dim1=-2, dim2=-1)).sum(-1) + torch.log(diagonal).sum(-1)
    log_prior = torch.log(small_precision).sum(-1) + num_kernel * torch.log(kernel_precision)
    quadratic = (
        beta * residual
        + (small_precision * mean_small**2).sum(-1)
        + kernel_precision * (mean_kernel**2).sum(-1)
    )
    log_evidence = -0.5 * (n * math.log(2 * math.pi) - n * torch.log(beta) - log_prior + log_det + quadratic)
    ceiling = pruning_ceiling(beta)[:, None]  # [d, 1]
    at_ceiling = log_precision >= ceiling  # [d, g]: pruned groups
    if kernel_excluded:
        at_ceiling[:, -1] = True
    scales = torch.where(at_ceiling, 0.0, torch.exp(-0.5 * log_precision))  # [d, g]
    held_out_groups = ((~excluded).double() @ member) == 0  # [d, g - 1]: no column of the group in the model
    scales[:, :-1] = torch.where(held_out_groups, 0.0, scales[:, :-1])
    penalties = torch.cat([small_precision, kernel_precision[:, None].expand(-1, num_kernel)], dim=1)
    return Evidence(
        log_evidence=log_evidence,
        penalties=penalties / beta[:, None],
        pruned=penalties >= torch.exp(ceiling) * (1 - 1e-9),
        noise_scale=beta.rsqrt(),
        group_scales=scales,
    )


def ridge_solve(
    scatter: torch.Tensor, cross: torch.Tensor, penalties: torch.Tensor, active: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """The ridge solution over the reduced basis: scatter [d, r, r], cross [d, r], penalties [d, r]; columns
    outside ``active`` [d, r] are solved out (weight exactly 0). Returns the Cholesky factor and weights [d, r].
    The jitter follows the active columns only, so a refit whose design zeroes the others (``WeightedRefit``)
    solves the same system."""
    both = active[:, :, None] & active[:, None, :]
    kept = torch.where(both, scatter, 0.0)
    system = kept + torch.diag_embed(penalties) + jitter_ridge(kept)
    system = torch.where(both, system, torch.diag_embed((~active).double()))  # pruned: an identity row
    factor = torch.linalg.cholesky(system)
    weights = torch.cholesky_solve(torch.where(active, cross, 0.0)[..., None], factor)[..., 0]
    return factor, weights
