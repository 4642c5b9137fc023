"""The candidate models of the adaptation (``condfip.model.adaptation``) and their evidence fits, for every node.

Per kernel scale one model with the network's groups and one of the parents' values and the kernel alone, the
quadratic model (the parents' values and their products, no kernel), the linear model, and the linear model with
its parents' values penalized. The kernel block is large (``NUM_LANDMARKS`` columns) and has one precision, so each
fixed-point step works in the eigenbasis of its scatter, where that block is diagonal: the posterior is solved
through the Schur complement on the small block (constant, parents, zero-shot, decoder directions), at a cost linear
in the kernel block's size per step (``condfip.model.evidence``).

Axis legend: d nodes, a small block, M kernel features per scale, s length scales, R (candidate, node) pairs of a
batch.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import torch

from condfip.model.evidence import GROUPS, Evidence, laid_out, schur_evidence
from condfip.model.moments import ScaleMoments

# the candidate models' evidence fits run in batches of about this much memory
EVIDENCE_BATCH_BYTES = 64 * 2**20


def candidate_fits(
    moments: ScaleMoments,
    mask: torch.Tensor,
    n: int,
    groups: torch.Tensor,
    unused: torch.Tensor,
    fixed: torch.Tensor,
    iterations: int,
) -> tuple[list[Evidence], Evidence]:
    """The candidate models' evidence fits from ``moments`` of ``n`` rows (their kernel pairs ``mask`` [d, s]): per
    kernel scale one with the network's groups, then per scale one of the parents' values and the kernel alone, then
    the quadratic model (the parents' values and their products, no kernel), then the linear model (only the
    parents' group); and the linear model with the parents' values penalized (one group, its precision by the
    evidence). ``groups`` [a] is each small-block column's group (-1 the constant), ``unused`` [d, a] a node's
    padded columns, ``fixed`` [d, a] its unpenalized ones."""
    device = moments.cross_small.device
    num_scales = mask.shape[1]
    group = GROUPS.index
    # the kernel block of every scale in the eigenbasis of its scatter: [s, d, M], [s, d, M, M]
    # (the block of a pair outside ``mask`` is left empty, so the fit prunes it)
    eigenvalues = torch.zeros(moments.cross_kernel.shape, dtype=torch.float64, device=device)  # [s, d, M]
    eigenvectors = torch.zeros_like(moments.scatter_kernel)  # [s, d, M, M]
    for scale, taken in enumerate(mask.to(device).T):  # [d] each
        if bool(taken.any()):
            values, vectors = torch.linalg.eigh(moments.scatter_kernel[scale, taken])
            eigenvalues[scale, taken], eigenvectors[scale, taken] = values.clamp_min(0.0), vectors
    rotated_cross = eigenvectors.transpose(-1, -2) @ moments.cross_kernel[..., None]  # [s, d, M, 1]
    coupling = moments.scatter_between @ eigenvectors  # [s, d, a, M]
    linear_columns = groups <= 0  # [a]
    products = groups == group("products")  # [a]
    models = [(scale, ~products, True) for scale in range(num_scales)]
    models += [(scale, linear_columns, True) for scale in range(num_scales)]
    models += [(0, linear_columns | products, False), (0, linear_columns, False)]
    quadratic = 2 * num_scales  # the index of the quadratic model
    # the models without a kernel take one step (their noise level), but the quadratic one
    specs = [
        _Candidate(scale, keep, fixed, with_kernel, iterations if with_kernel or index == quadratic else 1)
        for index, (scale, keep, with_kernel) in enumerate(models)
    ]
    constant_only = torch.zeros_like(fixed)
    constant_only[:, 0] = True
    specs.append(_Candidate(0, linear_columns, constant_only, False, iterations))
    fits = _fit_candidates(
        specs, moments, (eigenvalues, coupling, rotated_cross[..., 0]), n, groups, unused, products
    )
    shrunk = fits.pop()
    return fits, shrunk


@dataclass(frozen=True)
class _Candidate:
    """One model fitted for every node: its kernel (an index into the scales; any without one), the small-block
    columns it keeps ([a] bool; the others held out), its unpenalized columns ([d, a] bool), whether the kernel
    block is in it, and its fixed-point steps."""

    scale: int
    keep: torch.Tensor
    pinned: torch.Tensor
    with_kernel: bool
    steps: int


def _fit_candidates(
    candidates: list[_Candidate],
    moments: ScaleMoments,
    kernel_block: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
    n: int,
    groups: torch.Tensor,
    unused: torch.Tensor,
    products: torch.Tensor,
) -> list[Evidence]:
    """The evidence fit (``schur_evidence``) of every candidate model of every node, laid out over the whole
    reduced basis [a + M] (``laid_out``). ``kernel_block`` is every scale's kernel block in its eigenbasis
    (eigenvalues [s, d, M], coupling to the small block [s, d, a, M], cross moments [s, d, M]); ``unused`` [d, a]
    the padded columns, ``products`` [a] the products' columns.

    Each model is fitted on the columns it can use: a model without products on the small block without their
    columns (what the quadratic model would add to every other model's cost), a model without a kernel on a
    one-column stand-in of the kernel block (of its largest eigenvalue and no coupling: the same jitter; a
    held-out column's terms cancel), so its fixed point costs the small block's alone. The (candidate, node)
    pairs of the same columns and kernel are fitted together, in batches of at most ``EVIDENCE_BATCH_BYTES``;
    ``schur_evidence`` stops each pair on its own, so a fit does not depend on the others in its batch."""
    eigenvalues, coupling, rotated_cross = kernel_block
    d = moments.cross_small.shape[0]
    device = moments.cross_small.device
    num_kernel = eigenvalues.shape[-1]
    batches: dict[tuple[bool, tuple[bool, ...]], list[int]] = {}
    for index, candidate in enumerate(candidates):
        # the quadratic model every column, the others all but the products'
        columns = candidate.keep | ~products
        batches.setdefault((candidate.with_kernel, tuple(columns.tolist())), []).append(index)
    fits: list[Evidence | None] = [None] * len(candidates)
    for (with_kernel, kept), members in batches.items():
        columns = torch.tensor(kept, device=device)  # [a] bool
        width, size = int(columns.sum()), num_kernel if with_kernel else 1
        chosen = [candidates[index] for index in members]
        scales = torch.tensor([c.scale for c in chosen], device=device)  # [c]
        keep = torch.stack([c.keep for c in chosen])[:, columns]  # [c, a']
        pinned = torch.stack([c.pinned for c in chosen])[:, :, columns]  # [c, d, a']
        steps = torch.tensor([c.steps for c in chosen], device=device)  # [c]
        batch = max(1, EVIDENCE_BATCH_BYTES // (8 * (6 * width * size + 4 * width * width + 8 * size)))
        parts = []
        for start in range(0, len(chosen) * d, batch):
            rows = torch.arange(start, min(start + batch, len(chosen) * d), device=device)  # [R]
            model, node = rows // d, rows % d  # [R] each
            picked = scales[model], node
            if with_kernel:  # [R, a', M], [R, M], [R, M]
                block = coupling[picked][:, columns], eigenvalues[picked], rotated_cross[picked]
            else:  # the stand-in column: the block's largest eigenvalue, no coupling
                stand_in = torch.zeros(rows.shape[0], 1, dtype=torch.float64, device=device)
                largest = eigenvalues[picked].amax(-1, keepdim=True)  # [R, 1]
                block = stand_in[:, None].expand(-1, width, 1), largest, stand_in
            fixed = pinned[model, node]  # [R, a']
            parts.append(
                schur_evidence(
                    moments.scatter_small[node][:, columns][:, :, columns],
                    block[0],
                    block[1],
                    moments.cross_small[node][:, columns],
                    block[2],
                    moments.squares[node],
                    n,
                    groups[columns],
                    fixed,
                    unused[node][:, columns] | (~keep[model] & ~fixed),
                    kernel_excluded=not with_kernel,
                    iterations=steps[model],
                )
            )
        joined = laid_out(
            Evidence(
                *(torch.cat([getattr(part, field.name) for part in parts]) for field in fields(Evidence))
            ),
            columns,
            num_kernel,
            with_kernel,
        )
        for position, index in enumerate(members):
            rows = slice(position * d, (position + 1) * d)
            fits[index] = joined.map(lambda value, rows=rows: value[rows])
    return fits
