"""Which nonlinear nodes continue their mechanism beyond the fitted rows' range, decided by the rows at its edge.

Beyond the rows' range the adapted ``F_hat`` of a nonlinear node holds its kernel part (and, when the node is
clearly nonlinear, its linear part) at its value at the edge (``ParentBasis.bounds``): a wiggly mechanism (a sine,
a step) is not extrapolated into waves it never showed. A smooth curve that keeps rising (a quadratic, a cubic,
a growth) is then flat exactly where new rows and interventions just beyond the range ask, while the kernel
would continue its curvature for about a length scale.

The rows say which of the two a node needs. The rows beyond a column's ``EDGE_QUANTILE`` and ``1 -
EDGE_QUANTILE`` quantiles are that column's edge; a node's edge rows are those at the edge of any of its parents.
Each node's chosen model (its kernel, penalties and active groups, unchanged) is refitted on its other rows (one
weighted solve, ``WeightedRefit``) and predicts its edge rows twice: clamped at the inner rows' quantiles, as the
fitted model is at the rows' range, and clamped ``CONTINUE_LENGTHS`` of its kernel's length scale (at most
``MAX_CONTINUE``) beyond them. A node whose edge rows are predicted better the second way, by a squared error at
most ``CONTINUE_RATIO`` times the first, and which has at least ``MIN_EDGE_ROWS`` of them, is clamped that far
beyond the rows' range (``ParentBasis.margins``). Only a kernel at least ``MIN_CONTINUE_LENGTH`` long is a
candidate: a shorter one fits wiggles with landmark weights of alternating sign, and beyond its last landmark
their sum swings far from the rows (an absolute value of a heavy-tailed parent at 400 rows: one node's error on
new rows 0.25 -> 5.3 when continued at length 1). A node whose fit kept its parents' products of degree two is a
candidate too: continued, their inputs are clamped ``MAX_CONTINUE`` beyond the range (a quadratic keeps rising
there), its kernel's as above if it is long, else at the range. Inside the rows' range nothing changes: the fit is
the same.

Axis legend: n rows, d nodes, f decoder features, r reduced basis.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from condfip.model.adaptation import Adaptation, reduced_design
from condfip.model.parent_basis import ParentBasis
from condfip.model.weighted_refit import WeightedRefit

EDGE_QUANTILE = 0.05  # a column's rows below this quantile or above 1 minus it are its edge
# a continued node is clamped this many of its kernel's length scales beyond the range, at most MAX_CONTINUE
# standard deviations of each parent: a joint kernel of many parents is long, and that far beyond the rows its
# kernel part has decayed toward the linear part, far from any curve the rows showed (uncapped, one node's error
# 0.05 -> 7.5; a cap of two rather than one: rising curves at 100 rows 1-2 % lower, the paper grid within 0.4 %)
CONTINUE_LENGTHS = 1.0
MAX_CONTINUE = 2.0
MIN_CONTINUE_LENGTH = 2.0  # only a kernel at least this long (standardized parents) is continued (why: above)
MIN_EDGE_ROWS = 4  # a node with fewer edge rows stays clamped
# a node is continued only when its edge rows' squared error continued is at most this fraction of the clamped
# one: the clamp is the default, and a few edge rows are a noisy judge
CONTINUE_RATIO = 0.8
# the rows' reduced design used by the check stays under this (evenly spaced rows beyond it)
EDGE_CHECK_BYTES = 128 * 2**20

Features = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # (rows [n, d], nodes [k]) -> [n, k, f]


def continued_margins(
    adaptation: Adaptation,
    basis: ParentBasis,
    parents: torch.Tensor,
    rows: torch.Tensor,
    features: Features,
) -> tuple[torch.Tensor, torch.Tensor]:
    """[d] each: how far beyond the rows' range each node's kernel inputs and products' inputs are clamped
    (``ParentBasis.margins``, ``ParentBasis.product_margins``); for the nodes whose mechanism continues (else 0),
    ``CONTINUE_LENGTHS`` times a long kernel's length scale, at most ``MAX_CONTINUE``, and ``MAX_CONTINUE``
    for products the fit kept. ``adaptation`` and ``basis`` are a fit's (``PreparedDecoder.adapt``),
    ``parents`` [d, d] its graph (``parents[i, j]`` for ``j -> i``), ``rows`` [n, d] the standardized rows it
    was fitted on, ``features`` the decoder's features of rows for some nodes."""
    continued = continued_nodes(adaptation, basis, parents, rows, features)
    kernel, products = _margins(adaptation, basis)
    return torch.where(continued, kernel, 0.0), torch.where(continued, products, 0.0)


def _margins(adaptation: Adaptation, basis: ParentBasis) -> tuple[torch.Tensor, torch.Tensor]:
    """[d] each: how far beyond the range a continued node's kernel inputs and products' inputs are clamped, in
    standardized units (0: a short kernel, or no products in the fit)."""
    lengths = basis.lengths[:, 0]
    kernel = torch.where(
        lengths >= MIN_CONTINUE_LENGTH, (CONTINUE_LENGTHS * lengths).clamp_max(MAX_CONTINUE), 0.0
    )
    return kernel, torch.where(uses_products(adaptation).cpu(), MAX_CONTINUE, 0.0)


def uses_products(adaptation: Adaptation) -> torch.Tensor:
    """[d] bool: the node's fit gives a product of its parents a weight."""
    p, v = adaptation.parent_slots, adaptation.value_slots
    return (adaptation.basis_weights[:, p:v] != 0).any(dim=1)


def continued_nodes(
    adaptation: Adaptation,
    basis: ParentBasis,
    parents: torch.Tensor,
    rows: torch.Tensor,
    features: Features,
) -> torch.Tensor:
    """[d] bool: the nodes whose mechanism continues beyond the rows' range (arguments: ``continued_margins``)."""
    d = rows.shape[1]
    continued = torch.zeros(d, dtype=torch.bool)
    # [d]: only a nonlinear node's kernel part and products are clamped; only a long kernel continues smoothly
    kernel_margins, product_margins = _margins(adaptation, basis)
    candidates = adaptation.full_basis.cpu() & ((kernel_margins > 0) | (product_margins > 0))
    if not bool(candidates.any()) or rows.shape[0] < 2 * MIN_EDGE_ROWS:
        return continued
    z = rows.double()  # [n, d]
    quantiles = torch.tensor([EDGE_QUANTILE, 1.0 - EDGE_QUANTILE], dtype=torch.float64, device=z.device)
    lower, upper = torch.quantile(z, quantiles, dim=0)  # [d] each
    outside = (z < lower) | (z > upper)  # [n, d]
    edge = (outside.double() @ parents.to(z.device).double().T) > 0  # [n, d]: at the edge of a parent
    candidates &= edge.sum(dim=0).cpu() >= MIN_EDGE_ROWS
    count = int(candidates.sum())
    keep = max(2 * MIN_EDGE_ROWS, EDGE_CHECK_BYTES // (8 * max(count, 1) * adaptation.penalties.shape[-1]))
    if z.shape[0] > keep:  # evenly spaced rows
        picked = torch.linspace(0, z.shape[0] - 1, keep, device=z.device).round().long()
        z, edge = z[picked], edge[picked]
    # the candidates grouped by their own landmarks: in a merged basis (nodes fitted apart, ``kernel_tiers``) a
    # group's refit leaves out the columns that are padding for all of its nodes
    for size in torch.unique(basis.node_landmarks[candidates]).tolist():
        nodes = torch.nonzero(candidates & (basis.node_landmarks == size)).flatten()  # [k]
        continued[nodes] = _continues(adaptation, basis, nodes, z, edge, (lower, upper), features)
    return continued


def _continues(
    adaptation: Adaptation,
    basis: ParentBasis,
    nodes: torch.Tensor,
    z: torch.Tensor,
    edge: torch.Tensor,
    inner_bounds: tuple[torch.Tensor, torch.Tensor],
    features: Features,
) -> torch.Tensor:
    """[k] bool: whether each of the candidate ``nodes`` [k] continues, from the rows ``z`` [n, d], which of them
    are at each node's edge ``edge`` [n, d] and the inner rows' quantiles ``inner_bounds`` ([d] each)."""
    fit = adaptation.select(nodes)
    on_device = nodes.to(z.device)
    edge, targets = edge[:, on_device], z[:, on_device]  # [n, k]

    # [n, k, f]: the decoder's features of the nodes that read the network, 0 for the others
    decoder_features = torch.zeros(
        z.shape[0], nodes.numel(), fit.decoder_weights.shape[1], dtype=torch.float64
    )
    decoder_features = decoder_features.to(z.device)
    reads = fit.reads_decoder.to(z.device)  # [k]
    if bool(reads.any()):
        decoder_features[:, reads] = features(z, on_device[reads]).double()
    design = reduced_design(fit, decoder_features, basis(z, nodes))  # [n, k, r]
    inner = WeightedRefit(fit, design, targets)((~edge).T.double())  # each node fitted on its inner rows

    errors = []
    kernel_margins, product_margins = _margins(adaptation, basis)
    # clamped at the inner rows' quantiles, then as far beyond them as a continued node is
    for margins in ((None, None), (kernel_margins, product_margins)):
        bounded = basis.with_bounds(inner_bounds, *margins)
        # [n, k]: the basis part through ``combine`` (the whitening folded into the weights: the raw kernel only)
        predicted = (
            torch.einsum("nkf,kf->nk", decoder_features, inner.decoder_weights)
            + bounded.combine(z, inner.basis_weights, nodes)
            + inner.bias
        )
        errors.append(torch.where(edge, (predicted - targets).square(), 0.0).sum(dim=0).cpu())  # [k]
    clamped, beyond = errors
    return beyond <= CONTINUE_RATIO * clamped
