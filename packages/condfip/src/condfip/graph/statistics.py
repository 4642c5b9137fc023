"""Pairwise statistics of a table: the graph model's second input channel, one feature vector per node pair.

A small network learns far faster from these than from raw rows, which is what lets a useful graph model
train on a CPU. For every ordered pair ``(i, j)`` (about the edge ``i -> j``), ``NUM_PAIR_FEATURES`` values:

====  ====================================================================================================
0, 1  correlation ``c_ij`` and its magnitude
2, 3  partial correlation given all other nodes and its magnitude
4     nonlinear evidence for ``i -> j``: ``log(1 + ΔRSS / RSS)`` where RSS is the residual of the ridge
      regression of ``x_j`` on a basis of every other node and ΔRSS its increase when ``i``'s basis is dropped
5     the same for ``j -> i``
6, 7  how well the other nodes explain ``x_i`` / ``x_j`` linearly: ``log P_ii = -log(1 - R²)``
8, 9  the same with the nonlinear basis: ``-log(RSS)``
10    collider evidence for ``i -> j``: ``max_k min(|pc_ij|, |pc_kj|) (1 - |c_ik|)``, large when some ``k`` is
      partially correlated with ``j`` as ``i`` is while ``i`` and ``k`` are marginally uncorrelated
      (``i -> j <- k``: the pattern that orients edges even in linear-Gaussian data)
11    the same for ``j -> i``
12, 13 how connected ``i`` / ``j`` look: the sum of squared partial correlations with every other node
====  ====================================================================================================

The basis of a node is ``(x, x², x³, sin x, cos x)``. Everything comes from the covariance of all bases, whose
sums are accumulated chunk by chunk (bounded memory for any number of rows) in float64; every regression is
read off one inverse ``Ω`` of that covariance, so there is no loop over nodes. Features are permutation
equivariant in the nodes; padded rows and nodes (masks) do not change the features of the real ones.

Axis legend: b datasets, n rows, d nodes, k and l basis functions.
"""

from __future__ import annotations

import torch
from einops import einsum, rearrange

NUM_BASIS = 5
NUM_PAIR_FEATURES = 14
RIDGE = 1e-5  # on the correlation scale; small enough to keep near-deterministic nodes (R² ~ 0.999) apart
LOG_SCALE = 0.2  # the log features grow to about 10-15 for nearly deterministic nodes; keep them near 1


def node_basis(x: torch.Tensor) -> torch.Tensor:
    """x: [..., d] -> [..., d, k], the basis ``(x, x², x³, sin x, cos x)`` of every node."""
    return torch.stack((x, x * x, x * x * x, torch.sin(x), torch.cos(x)), dim=-1)


def basis_covariance(
    data: torch.Tensor, *, sample_mask: torch.Tensor | None = None, chunk_size: int | None = None
) -> torch.Tensor:
    """data: [b, n, d] -> covariance of the node bases [b, d*k, d*k] in float64, summed chunk by chunk."""
    b, n, d = data.shape
    step = max(n if chunk_size is None else chunk_size, 1)
    count = torch.zeros(b, dtype=torch.float64, device=data.device)
    first = torch.zeros(b, d * NUM_BASIS, dtype=torch.float64, device=data.device)
    second = torch.zeros(b, d * NUM_BASIS, d * NUM_BASIS, dtype=torch.float64, device=data.device)
    for start in range(0, n, step):
        part = data[:, start : start + step].double()  # [b, n', d]
        features = rearrange(node_basis(part), "b n d k -> b n (d k)")
        weight = (
            torch.ones(part.shape[:2], dtype=torch.float64, device=data.device)
            if sample_mask is None
            else sample_mask[:, start : start + step].double()
        )  # [b, n']
        weighted = features * weight[..., None]
        count += weight.sum(1)
        first += weighted.sum(1)
        second += einsum(weighted, features, "b n p, b n q -> b p q")
    count = count.clamp(min=1.0)[:, None]
    mean = first / count  # [b, dk]
    return second / count[..., None] - mean[:, :, None] * mean[:, None, :]


def _correlation(covariance: torch.Tensor, real_columns: torch.Tensor) -> torch.Tensor:
    """Covariance [b, p, p] -> correlation, with the identity on the rows and columns of unreal or constant
    columns (so they decouple from the rest exactly)."""
    scale = covariance.diagonal(dim1=-2, dim2=-1).clamp(min=0).sqrt()  # [b, p]
    usable = real_columns & (scale > 1e-9)
    scale = torch.where(usable, scale, torch.ones_like(scale))
    correlation = covariance / (scale[:, :, None] * scale[:, None, :])
    keep = usable[:, :, None] & usable[:, None, :]
    identity = torch.eye(covariance.shape[-1], dtype=covariance.dtype, device=covariance.device)
    return torch.where(keep, correlation, identity.expand_as(correlation))


def _ridge_inverse(matrix: torch.Tensor) -> torch.Tensor:
    identity = torch.eye(matrix.shape[-1], dtype=matrix.dtype, device=matrix.device)
    return torch.linalg.inv(matrix + RIDGE * identity)


def pair_statistics(
    data: torch.Tensor,
    *,
    sample_mask: torch.Tensor | None = None,
    node_mask: torch.Tensor | None = None,
    chunk_size: int | None = None,
) -> torch.Tensor:
    """data: [b, n, d] -> features [b, d, d, NUM_PAIR_FEATURES] (float32) for the pairs ``i -> j``.

    The diagonal and the pairs with a padded node hold zeros.
    """
    b, _, d = data.shape
    real_nodes = (
        torch.ones(b, d, dtype=torch.bool, device=data.device) if node_mask is None else node_mask.bool()
    )
    with torch.autocast(device_type=data.device.type, enabled=False):
        covariance = basis_covariance(data, sample_mask=sample_mask, chunk_size=chunk_size)
        real_columns = real_nodes.repeat_interleave(NUM_BASIS, dim=1)  # [b, dk]
        correlation = _correlation(covariance, real_columns)  # [b, dk, dk]

        # Linear: partial correlations and -log(1 - R²) from the inverse correlation of the values alone.
        linear = correlation.view(b, d, NUM_BASIS, d, NUM_BASIS)[:, :, 0, :, 0]  # [b, d, d]
        precision = _ridge_inverse(linear)  # [b, d, d]
        precision_diagonal = precision.diagonal(dim1=-2, dim2=-1)  # [b, d]
        partial = -precision / (precision_diagonal[:, :, None] * precision_diagonal[:, None, :]).sqrt()
        linear_fit = precision_diagonal.log()  # [b, d]

        # Nonlinear: the regression of x_j on the bases of all other nodes, from Ω = inverse basis correlation.
        omega = _ridge_inverse(correlation).view(b, d, NUM_BASIS, d, NUM_BASIS)
        own_block = omega.diagonal(dim1=1, dim2=3)  # [b, k, l, d]: Ω_jj
        own_inverse = torch.linalg.inv(rearrange(own_block, "b k l d -> b d k l"))  # [b, d, k, l]
        residual = own_inverse[:, :, 0, 0].clamp(min=1e-12)  # [b, d]: RSS_j / Var(x_j)
        # Coefficients of i's basis in the regression of x_j: β_ij = -Ω_ij Ω_jj⁻¹ e_0.
        beta = -einsum(omega, own_inverse[:, :, :, 0], "b i k j l, b j l -> b i j k")  # [b, i, j, k]
        # Inverse Gram of the regressors, restricted to i's basis: Ω_ii - Ω_ij Ω_jj⁻¹ Ω_ji.
        through_j = einsum(omega, own_inverse, omega, "b i k j l, b j l m, b j m i q -> b i j k q")
        own_i = rearrange(omega.diagonal(dim1=1, dim2=3), "b k q d -> b d 1 k q")  # [b, i, 1, k, k]
        restricted = own_i - through_j  # [b, i, j, k, k]
        identity = torch.eye(NUM_BASIS, dtype=restricted.dtype, device=restricted.device)
        diagonal_pairs = torch.eye(d, dtype=torch.bool, device=data.device)[None, :, :, None, None]
        restricted = torch.where(diagonal_pairs, identity, restricted)  # i = j is not a regressor
        increase = einsum(
            beta, torch.linalg.solve(restricted, beta[..., None])[..., 0], "b i j k, b i j k -> b i j"
        )
        nonlinear = torch.log1p(increase.clamp(min=0) / residual[:, None, :])  # [b, i, j]: evidence i -> j
        nonlinear_fit = -residual.log()  # [b, d]

        pairs = (
            ~torch.eye(d, dtype=torch.bool, device=data.device)
            & real_nodes[:, :, None]
            & real_nodes[:, None, :]
        )
        partial = torch.where(pairs, partial, torch.zeros_like(partial))  # zero diagonal and padded pairs
        collider = collider_evidence(linear.abs(), partial.abs(), pairs)  # [b, i, j]
        connectedness = partial.square().sum(-1)  # [b, d]

        linear_correlation = linear
        features = torch.stack(
            (
                linear_correlation,
                linear_correlation.abs(),
                partial,
                partial.abs(),
                nonlinear * LOG_SCALE,
                nonlinear.transpose(1, 2) * LOG_SCALE,
                linear_fit[:, :, None].expand(b, d, d) * LOG_SCALE,
                linear_fit[:, None, :].expand(b, d, d) * LOG_SCALE,
                nonlinear_fit[:, :, None].expand(b, d, d) * LOG_SCALE,
                nonlinear_fit[:, None, :].expand(b, d, d) * LOG_SCALE,
                collider,
                collider.transpose(1, 2),
                connectedness[:, :, None].expand(b, d, d),
                connectedness[:, None, :].expand(b, d, d),
            ),
            dim=-1,
        )  # [b, d, d, F]
        pairs = (
            ~torch.eye(d, dtype=torch.bool, device=data.device)
            & real_nodes[:, :, None]
            & real_nodes[:, None, :]
        )
        return torch.where(pairs[..., None], features, torch.zeros_like(features)).float()


def collider_evidence(correlation: torch.Tensor, partial: torch.Tensor, pairs: torch.Tensor) -> torch.Tensor:
    """``max_k min(|pc_ij|, |pc_kj|) (1 - |c_ik|)`` over third nodes ``k``: [b, d, d] magnitudes -> [b, i, j].

    ``partial`` is zero on the diagonal and for padded nodes, so ``k = j`` and padded ``k`` contribute zero;
    ``k = i`` is excluded explicitly. Memory: [b, d, d, d].
    """
    d = partial.shape[-1]
    shared_child = torch.minimum(
        partial[:, :, :, None], partial.transpose(1, 2)[:, None, :, :]
    )  # [b, i, j, k]
    unrelated = 1.0 - correlation.clamp(max=1.0)  # [b, i, k]
    evidence = shared_child * unrelated[:, :, None, :]  # [b, i, j, k]
    not_i = ~torch.eye(d, dtype=torch.bool, device=partial.device)[:, None, :]  # [i, 1, k]
    evidence = torch.where(not_i, evidence, torch.zeros_like(evidence))
    return evidence.amax(-1) * pairs
