"""Closed-form adaptation of ``F_hat`` to the rows of one dataset (the default path of ``CondFiP.infer``).

Per node ``i``, ``F_hat_i(z) = x_i(z) . w_i`` over a basis ``x_i`` of functions of the node's parents only:

- a constant and the parents' standardized values (unpenalized when the rows are at least
  ``LINEAR_ROWS_PER_FEATURE`` times the node's parents plus two, so that a linear mechanism is fitted as least
  squares fits it; a penalized group otherwise);
- the pretrained network's own prediction ``F_zero_shot_i`` (the trained readout of the decoder's features);
- the decoder's features of the parents, compressed to their ``num_directions`` principal directions;
- random Fourier features of the parents at two length scales (``ParentBasis``): a kernel-ridge basis.

Each penalized group ``k`` has a Gaussian prior ``w_k ~ N(0, 1 / alpha_k)``; the precisions and the noise level
are chosen per node by maximizing the marginal likelihood (evidence) with MacKay's fixed point (group automatic
relevance determination): a group the data do not need gets an infinite precision and drops out. A node keeps
the full basis only when its evidence beats the linear model's by ``evidence_margin`` nats, so the simpler model
wins until the data insist. With few rows the data cannot move the pretrained group's weight far from what its
prediction explains; with many rows the data decide.

Everything is computed from moments accumulated chunk by chunk (memory flat in the number of rows), in float64.
``chunks()`` is called twice: the second pass gives the exact leave-one-out residuals of the final fit.

Axis legend: m rows, d nodes, f decoder features, q full basis, r reduced basis, g groups.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import torch

NUM_FOURIER = 50  # random Fourier features per length scale
LENGTH_SCALES = (0.5, 2.0)  # times sqrt(number of parents), on standardized parents
NUM_DIRECTIONS = 16  # principal directions of the decoder's features kept per node
EVIDENCE_MARGIN = 3.0  # nats the full basis must gain over the linear model to be kept
LINEAR_ROWS_PER_FEATURE = 4
ITERATIONS = 12  # at most; the fixed point stops once no group's log precision moves by more than TOLERANCE
TOLERANCE = 1e-2
KEPT_BASIS_BYTES = (
    64 * 2**20
)  # rows' basis kept from the first pass (instead of a second pass) up to this size
MAX_LOG_PRECISION = 25.0  # a group at this precision is pruned
FIXED_PRECISION = 1e-8  # the "precision" of an unpenalized column

AdaptationChunks = Callable[[], Iterable[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]]


class ParentBasis:
    """The parents' values and their random Fourier features, per node: ``z [m, d] -> [m, k, p + 2M]``.

    Padded parent slots are 0. The Fourier frequencies are drawn once from ``seed`` (a ``torch.Generator``), so
    the basis is a fixed function of the parents' values. ``bounds`` (lowest and highest value of every column
    [d], from the rows the fit sees) clamps the Fourier features' inputs: outside the rows' range the nonlinear
    part stays flat instead of extrapolating a wave it never saw, while the parents' values themselves (the
    linear part) are not clamped.
    """

    def __init__(
        self,
        parents: torch.Tensor,
        *,
        num_fourier: int = NUM_FOURIER,
        length_scales: tuple[float, ...] = LENGTH_SCALES,
        seed: int = 0,
        bounds: tuple[torch.Tensor, torch.Tensor] | None = None,
    ) -> None:
        parents = parents.reshape(parents.shape[-2:]).bool().cpu()  # [d, d]: parents[i, j] for j -> i
        d = parents.shape[0]
        counts = parents.sum(dim=1)  # [d]
        self.max_parents = max(1, int(counts.max()) if d else 1)
        index = torch.zeros(d, self.max_parents, dtype=torch.long)  # [d, p]
        valid = torch.zeros(d, self.max_parents, dtype=torch.bool)
        for node in range(d):
            found = torch.nonzero(parents[node]).flatten()
            index[node, : found.numel()] = found
            valid[node, : found.numel()] = True
        generator = torch.Generator().manual_seed(seed)
        frequencies = torch.randn(d, self.max_parents, num_fourier, generator=generator, dtype=torch.float64)
        phases = 2 * math.pi * torch.rand(d, num_fourier, generator=generator, dtype=torch.float64)
        width = torch.sqrt(counts.clamp_min(1).double())  # [d]
        self.index, self.valid = index, valid
        self.frequencies = torch.cat(
            [frequencies / (scale * width)[:, None, None] for scale in length_scales], dim=-1
        )  # [d, p, 2M]
        self.phases = torch.cat([phases] * len(length_scales), dim=-1)  # [d, 2M]
        self.num_fourier = num_fourier
        self.num_scales = len(length_scales)
        self.bounds = None if bounds is None else (bounds[0].double().cpu(), bounds[1].double().cpu())
        # nodes [d] whose parents' values are clamped to ``bounds`` in the linear part too: set after a fit to the
        # nodes that kept the nonlinear basis, so that a nonlinear mechanism stays flat beyond the rows' range
        # (as a kernel regression does) while a linear one extrapolates linearly
        self.clamp_linear: torch.Tensor | None = None

    @property
    def size(self) -> int:
        return self.max_parents + self.num_fourier * self.num_scales

    def __call__(self, z: torch.Tensor, nodes: torch.Tensor | None = None) -> torch.Tensor:
        """z: [m, d] float64 -> [m, k, p + 2M] (k = d, or the indices ``nodes``)."""
        index, valid, frequencies, phases = self.index, self.valid, self.frequencies, self.phases
        if nodes is not None:
            nodes = nodes.cpu()
            index, valid, frequencies, phases = index[nodes], valid[nodes], frequencies[nodes], phases[nodes]
        device = z.device
        # padded slots are 0 whatever node 0 holds (a product with the mask would turn inf into NaN)
        values = torch.where(valid.to(device), z.double()[:, index.to(device)], 0.0)  # [m, k, p]
        inside = values
        if self.bounds is not None:
            lower, upper = (bound[index].to(device) for bound in self.bounds)  # [k, p]
            inside = torch.where(valid.to(device), torch.minimum(torch.maximum(values, lower), upper), 0.0)
        angles = torch.einsum("mkp,kpf->mkf", inside, frequencies.to(device)) + phases.to(device)
        fourier = math.sqrt(2.0 / self.num_fourier) * torch.cos(angles)  # [m, k, 2M]
        if self.clamp_linear is not None:
            clamp = self.clamp_linear if nodes is None else self.clamp_linear[nodes]
            values = torch.where(clamp.to(device)[None, :, None], inside, values)
        return torch.cat([values, fourier], dim=-1)


@dataclass
class Adaptation:
    """The adapted readout: ``F_hat[:, i] = decoder_features[:, i] @ decoder_weights[i] + basis[:, i] @
    basis_weights[i] + bias[i]``, in float64, and what the fit found per node."""

    decoder_weights: torch.Tensor  # [d, f]
    basis_weights: torch.Tensor  # [d, p + 2M]
    bias: torch.Tensor  # [d]
    full_basis: torch.Tensor  # [d] bool: the full basis was kept (False: the linear model)
    noise_scale: torch.Tensor  # [d]: the fitted noise standard deviation
    group_scales: torch.Tensor  # [d, g]: prior standard deviation of each penalized group (0: pruned)
    mean_leverage: torch.Tensor  # [d]: mean diagonal of the hat matrix over the fitted rows
    held_out_errors: torch.Tensor  # [d]: mean squared exact leave-one-out residual
    penalties: torch.Tensor  # [d, r]: the ridge penalty of every column of the reduced basis
    reduction: (
        torch.Tensor
    )  # [d, 1 + f + q, r]: the full basis (1, decoder features, parent basis) -> reduced

    GROUPS = ("parents", "zero_shot", "decoder", "fourier_short", "fourier_long")


def evaluate(
    adaptation: Adaptation,
    decoder_features: torch.Tensor,
    basis: torch.Tensor,
    nodes: torch.Tensor | None = None,
) -> torch.Tensor:
    """The adapted ``F_hat`` of the nodes ``nodes`` (all when None): features [m, k, f], basis [m, k, q] -> [m, k]."""
    index = slice(None) if nodes is None else nodes
    return (
        torch.einsum("mkf,kf->mk", decoder_features.double(), adaptation.decoder_weights[index])
        + torch.einsum("mkq,kq->mk", basis.double(), adaptation.basis_weights[index])
        + adaptation.bias[index]
    )


def fit_adaptation(
    chunks: AdaptationChunks,
    prior_weights: torch.Tensor,
    prior_bias: torch.Tensor,
    basis: ParentBasis,
    *,
    num_directions: int = NUM_DIRECTIONS,
    evidence_margin: float = EVIDENCE_MARGIN,
    iterations: int = ITERATIONS,
) -> Adaptation:
    """Fit the adapted readout of every node (module docstring).

    ``chunks()`` yields ``(decoder_features [m, d, f], basis [m, d, q], targets [m, d])`` over the rows and is
    called twice with the same rows. ``prior_weights`` [d, f] and ``prior_bias`` [d] are the trained readout
    over the decoder's features (its prediction is the zero-shot ``F_hat``). Raises ValueError with fewer than
    2 rows.
    """
    moments = _Moments()
    kept: list[tuple[torch.Tensor, torch.Tensor]] | None = []  # the rows' basis, while it is small
    for features, values, targets in chunks():
        x, y = _full_basis(features, values), targets.double()
        moments.add(x, y)
        if kept is not None:
            kept.append((x, y))
            if sum(a.numel() + b.numel() for a, b in kept) * 8 > KEPT_BASIS_BYTES:
                kept = None

    def basis_rows() -> Iterable[tuple[torch.Tensor, torch.Tensor]]:
        if kept is not None:
            yield from kept
            return
        for features, values, targets in chunks():
            yield _full_basis(features, values), targets.double()

    if moments.count < 2:
        raise ValueError(f"adapting to the rows needs at least 2 rows, got {moments.count}")
    n = moments.count
    f = prior_weights.shape[1]
    q_basis = basis.size
    counts = basis.valid.sum(dim=1).to(moments.scatter.device)  # [d] parents per node
    reduce, groups = _reduction(
        moments, prior_weights.double(), prior_bias.double(), f, basis, num_directions
    )
    scatter = reduce.transpose(1, 2) @ moments.scatter @ reduce  # [d, r, r]
    cross = torch.einsum("dqr,dq->dr", reduce, moments.cross)  # [d, r]
    squares = moments.squares  # [d]
    # the parents' values are unpenalized when there are enough rows for least squares
    enough = n >= LINEAR_ROWS_PER_FEATURE * (counts + 2)  # [d]
    fixed = torch.zeros(scatter.shape[:2], dtype=torch.bool, device=scatter.device)  # [d, r]
    fixed[:, 0] = True
    linear = groups == 0  # [r]
    fixed[:, linear] = enough[:, None]
    unused = torch.zeros_like(fixed)
    unused[:, : 1 + basis.max_parents] = ~torch.cat(
        [torch.ones(len(counts), 1, dtype=torch.bool, device=counts.device), basis.valid.to(counts.device)], 1
    )
    full = _group_evidence(scatter, cross, squares, n, groups, fixed, unused, iterations, keep=None)
    linear_only = _group_evidence(scatter, cross, squares, n, groups, fixed, unused, 1, keep=linear)
    use_full = full.log_evidence > linear_only.log_evidence + evidence_margin  # [d]
    penalties = torch.where(use_full[:, None], full.penalties, linear_only.penalties)  # [d, r]
    noise_scale = torch.where(use_full, full.noise_scale, linear_only.noise_scale)
    group_scales = torch.where(use_full[:, None], full.group_scales, linear_only.group_scales)
    system = scatter + torch.diag_embed(penalties) + _jitter(scatter)
    factor = torch.linalg.cholesky(system)
    reduced = torch.cholesky_solve(cross[..., None], factor)[..., 0]  # [d, r]
    weights = torch.einsum("dqr,dr->dq", reduce, reduced)  # [d, q]: over (1, decoder features, basis)
    leverage, held_out = _held_out(basis_rows, reduce, factor, reduced)
    return Adaptation(
        decoder_weights=weights[:, 1 : 1 + f],
        basis_weights=weights[:, 1 + f : 1 + f + q_basis],
        bias=weights[:, 0],
        full_basis=use_full,
        noise_scale=noise_scale,
        group_scales=group_scales,
        mean_leverage=leverage / n,
        held_out_errors=held_out / n,
        penalties=penalties,
        reduction=reduce,
    )


def _full_basis(features: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    """(decoder features [m, d, f], parent basis [m, d, q]) -> [m, d, 1 + f + q] float64, a constant first."""
    constant = torch.ones(*features.shape[:2], 1, dtype=torch.float64, device=features.device)
    return torch.cat([constant, features.double(), values.double()], dim=-1)


class _Moments:
    """Row count, scatter [d, q, q], cross moments [d, q] and squared targets [d], chunk by chunk."""

    def __init__(self) -> None:
        self.count = 0
        self.scatter = self.cross = self.squares = None

    def add(self, x: torch.Tensor, y: torch.Tensor) -> None:
        """x: [m, d, q], y: [m, d], float64."""
        self.count += x.shape[0]
        by_node = x.transpose(0, 1)  # [d, m, q]: batched matrix products are BLAS calls, unlike the einsum
        scatter = by_node.transpose(1, 2) @ by_node  # [d, q, q]
        cross = (by_node.transpose(1, 2) @ y.T[:, :, None])[..., 0]  # [d, q]
        parts = (scatter, cross, (y * y).sum(dim=0))
        if self.scatter is None:
            self.scatter, self.cross, self.squares = parts
        else:
            self.scatter += parts[0]
            self.cross += parts[1]
            self.squares += parts[2]


def _reduction(
    moments: _Moments,
    prior_weights: torch.Tensor,
    prior_bias: torch.Tensor,
    f: int,
    basis: ParentBasis,
    num_directions: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The linear map from the full basis (1, decoder features, parents, Fourier) [q] to the reduced one
    (1, parents, zero-shot prediction, decoder directions, Fourier) [r], per node: [d, q, r]; and the group of
    every reduced column [r] (-1: the constant, 0: parents, 1: zero-shot, 2: decoder, 3 + s: Fourier scale s)."""
    d, q = moments.cross.shape
    device = moments.cross.device
    p, fourier = basis.max_parents, basis.num_fourier
    k = min(num_directions, f)
    # principal directions of the decoder's features, centred (from the moments)
    mean = moments.scatter[:, 0, 1 : 1 + f] / moments.count  # [d, f]
    centred = moments.scatter[:, 1 : 1 + f, 1 : 1 + f] - moments.count * mean[:, :, None] * mean[:, None, :]
    _, vectors = torch.linalg.eigh(centred)  # ascending
    directions = vectors[:, :, -k:]  # [d, f, k]
    r = 1 + p + 1 + k + fourier * basis.num_scales
    reduce = torch.zeros(d, q, r, dtype=torch.float64, device=device)
    reduce[:, 0, 0] = 1.0
    parents = slice(1 + f, 1 + f + p)
    reduce[:, parents, 1 : 1 + p] = torch.eye(p, dtype=torch.float64, device=device)
    reduce[:, 1 : 1 + f, 1 + p] = prior_weights  # the zero-shot prediction: trained readout ...
    reduce[:, 0, 1 + p] = prior_bias  # ... plus its bias
    reduce[:, 1 : 1 + f, 2 + p : 2 + p + k] = directions
    reduce[:, 1 + f + p :, 2 + p + k :] = torch.eye(
        fourier * basis.num_scales, dtype=torch.float64, device=device
    )
    groups = torch.cat(
        [
            torch.tensor([-1]),
            torch.zeros(p, dtype=torch.long),
            torch.tensor([1]),
            torch.full((k,), 2),
            torch.arange(basis.num_scales).repeat_interleave(fourier) + 3,
        ]
    ).to(device)
    return reduce, groups


@dataclass
class _Evidence:
    log_evidence: torch.Tensor  # [d]
    penalties: torch.Tensor  # [d, r]: ridge penalty per column (precision / noise precision)
    noise_scale: torch.Tensor  # [d]
    group_scales: torch.Tensor  # [d, g]


def _jitter(scatter: torch.Tensor) -> torch.Tensor:
    """A ridge far below rounding of the largest diagonal, so constant or collinear columns stay solvable."""
    size = scatter.shape[-1]
    scale = torch.diagonal(scatter, dim1=-2, dim2=-1).amax(dim=-1).clamp_min(1.0)  # [d]
    return (1e-10 * scale)[:, None, None] * torch.eye(size, dtype=scatter.dtype, device=scatter.device)


def _group_evidence(
    scatter: torch.Tensor,
    cross: torch.Tensor,
    squares: torch.Tensor,
    n: int,
    groups: torch.Tensor,
    fixed: torch.Tensor,
    unused: torch.Tensor,
    iterations: int,
    keep: torch.Tensor | None,
) -> _Evidence:
    """MacKay's fixed point for the precision of every penalized group and the noise precision, per node, then
    the log evidence of the result. ``fixed`` columns are unpenalized; ``unused`` columns (padded parents) and,
    when ``keep`` is given, the penalized columns outside it are held out of the model."""
    d, r = cross.shape
    device = cross.device
    num_groups = int(groups.max()) + 1
    member = torch.stack([groups == g for g in range(num_groups)], dim=1).double()  # [r, g]
    excluded = unused.clone()
    if keep is not None:
        excluded |= ~keep[None, :] & ~fixed
    log_precision = torch.zeros(d, num_groups, dtype=torch.float64, device=device)
    beta = n / squares.clamp_min(1e-12)  # [d]
    jitter = _jitter(scatter)
    for _ in range(max(iterations, 1)):
        precision = _column_precision(log_precision, groups, fixed, excluded)  # [d, r]
        system = beta[:, None, None] * (scatter + jitter) + torch.diag_embed(precision)
        factor = torch.linalg.cholesky(system)
        inverse = torch.cholesky_inverse(factor)
        mean = beta[:, None] * torch.cholesky_solve(cross[..., None], factor)[..., 0]  # [d, r]
        determined = 1.0 - precision * torch.diagonal(inverse, dim1=-2, dim2=-1)  # [d, r]
        determined = torch.where(excluded, 0.0, determined.clamp(0.0, 1.0))
        residual = squares - 2 * (mean * cross).sum(-1) + torch.einsum("dr,drs,ds->d", mean, scatter, mean)
        beta = ((n - determined.sum(-1)).clamp_min(1.0) / residual.clamp_min(1e-12 * squares + 1e-300)).clamp(
            max=1e12
        )
        if iterations <= 1:
            break
        used = determined @ member  # [d, g]
        size = (mean**2) @ member  # [d, g]
        updated = torch.log(used.clamp_min(1e-12) / size.clamp_min(1e-300)).clamp(
            -MAX_LOG_PRECISION, MAX_LOG_PRECISION
        )
        settled = bool(((updated - log_precision).abs() <= TOLERANCE).all())
        log_precision = updated
        if settled:
            break
    precision = _column_precision(log_precision, groups, fixed, excluded)
    system = beta[:, None, None] * (scatter + jitter) + torch.diag_embed(precision)
    factor = torch.linalg.cholesky(system)
    mean = beta[:, None] * torch.cholesky_solve(cross[..., None], factor)[..., 0]
    log_det = 2 * torch.log(torch.diagonal(factor, dim1=-2, dim2=-1)).sum(-1)
    residual = squares - 2 * (mean * cross).sum(-1) + torch.einsum("dr,drs,ds->d", mean, scatter, mean)
    quadratic = beta * residual + (precision * mean**2).sum(-1)
    log_evidence = -0.5 * (
        n * math.log(2 * math.pi) - n * torch.log(beta) - torch.log(precision).sum(-1) + log_det + quadratic
    )
    scales = torch.where(log_precision >= MAX_LOG_PRECISION, 0.0, torch.exp(-0.5 * log_precision))  # [d, g]
    return _Evidence(
        log_evidence=log_evidence,
        penalties=precision / beta[:, None],
        noise_scale=beta.rsqrt(),
        group_scales=scales,
    )


def _column_precision(
    log_precision: torch.Tensor, groups: torch.Tensor, fixed: torch.Tensor, excluded: torch.Tensor
) -> torch.Tensor:
    """The prior precision of every column [d, r] from its group's [d, g]; unpenalized columns get
    ``FIXED_PRECISION``, excluded ones the pruning precision."""
    precision = torch.exp(log_precision[:, groups.clamp_min(0)])  # [d, r]
    precision = torch.where(fixed, FIXED_PRECISION, precision)
    return torch.where(excluded, math.exp(MAX_LOG_PRECISION), precision)


def _held_out(
    rows: Callable[[], Iterable[tuple[torch.Tensor, torch.Tensor]]],
    reduce: torch.Tensor,
    factor: torch.Tensor,
    weights: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Summed leverage [d] and summed squared exact leave-one-out residual [d] of the final ridge (penalties
    fixed), from a second pass over the rows."""
    leverage_sum = torch.zeros(weights.shape[0], dtype=torch.float64, device=weights.device)
    held_out_sum = torch.zeros_like(leverage_sum)
    for full, targets in rows():
        x = (full.transpose(0, 1) @ reduce).transpose(0, 1)  # [m, d, r]
        solved = torch.cholesky_solve(x.permute(1, 2, 0), factor)  # [d, r, m]
        leverage = torch.einsum("mdr,drm->md", x, solved)  # [m, d]
        residual = targets - torch.einsum("mdr,dr->md", x, weights)
        held = residual / (1.0 - leverage).clamp_min(1e-12)
        leverage_sum += leverage.sum(0)
        held_out_sum += (held**2).sum(0)
    return leverage_sum, held_out_sum
