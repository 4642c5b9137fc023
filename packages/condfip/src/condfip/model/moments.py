"""The moments an adaptation fit is solved from, accumulated chunk by chunk over the fitted rows (memory flat in
the rows): the rows' passes (``FitRows``), the decoder's principal directions, the small block of each node's basis
and the scatter and cross moments of the small block and of every length scale's kernel block (``ScaleMoments``).
Everything in float64.

Axis legend: m rows, d nodes, f decoder features, a small block, M kernel features per scale, s length scales,
k principal directions.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import torch
import torch.nn.functional as F

# the rows' features kept from the first pass (instead of new passes) up to this
KEPT_ROWS_BYTES = 256 * 2**20

AdaptationChunks = Callable[[], Iterable[tuple[torch.Tensor, torch.Tensor]]]


class FitRows:
    """``chunks()`` as float64, with the rows kept from the first pass while they fit in ``KEPT_ROWS_BYTES``."""

    def __init__(self, chunks: AdaptationChunks) -> None:
        self.chunks = chunks
        self.kept: list[tuple[torch.Tensor, ...]] | None = None
        self.kept_bytes = 0
        self.passes = 0

    def __call__(self) -> Iterable[tuple[torch.Tensor, torch.Tensor]]:
        if self.kept is not None:
            yield from self.kept
            return
        keep: list[tuple[torch.Tensor, ...]] | None = [] if self.passes == 0 else None
        self.passes += 1
        size = 0
        for part in self.chunks():
            part = tuple(t.double() for t in part)
            if keep is not None:
                size += sum(t.numel() for t in part) * 8
                keep = keep if size <= KEPT_ROWS_BYTES else None
                if keep is not None:
                    keep.append(part)
            yield part
        self.kept, self.kept_bytes = keep, size if keep is not None else 0


def principal_directions(rows: FitRows, num_directions: int) -> tuple[int, torch.Tensor]:
    """The row count and the ``num_directions`` principal directions of the decoder's centred features per node,
    [d, f, k]."""
    count, total, scatter = 0, None, None
    for features, _ in rows():
        by_node = features.transpose(0, 1)  # [d, m, f]: batched products are BLAS calls, unlike the einsum
        part = (by_node.sum(dim=1), by_node.transpose(1, 2) @ by_node)
        count += features.shape[0]
        total = part[0] if total is None else total + part[0]
        scatter = part[1] if scatter is None else scatter + part[1]
    if count == 0:
        return 0, torch.zeros(0)
    mean = total / count  # [d, f]
    centred = scatter - count * mean[:, :, None] * mean[:, None, :]
    return count, leading_eigenvectors(centred, min(num_directions, centred.shape[-1]))


def leading_eigenvectors(
    matrix: torch.Tensor, k: int, oversampling: int = 8, power_steps: int = 4
) -> torch.Tensor:
    """The ``k`` leading eigenvectors of symmetric positive semi-definite matrices [d, f, f] -> [d, f, k], by
    subspace iteration from a fixed random start (a full eigendecomposition when f is small): the decoder's
    principal directions need the leading subspace, not the whole spectrum."""
    size = matrix.shape[-1]
    width = k + oversampling
    if size <= 2 * width:
        return torch.linalg.eigh(matrix)[1][:, :, size - k :]
    start = torch.randn(size, width, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    subspace = matrix @ start.to(matrix.device)  # [d, f, k + o]
    for _ in range(power_steps):
        subspace = matrix @ torch.linalg.qr(subspace).Q
    basis = torch.linalg.qr(subspace).Q  # [d, f, k + o]
    _, vectors = torch.linalg.eigh(basis.transpose(1, 2) @ matrix @ basis)  # ascending
    return basis @ vectors[:, :, -k:]


def small_block(
    features: torch.Tensor,
    parent_values: torch.Tensor,
    prior_weights: torch.Tensor,
    prior_bias: torch.Tensor,
    directions: torch.Tensor,
) -> torch.Tensor:
    """[m, d, a] = (1, parents' values and their products [v], zero-shot prediction, decoder directions [k]),
    float64."""
    features = features.double()
    constant = torch.ones(*features.shape[:2], 1, dtype=torch.float64, device=features.device)
    zero_shot = torch.einsum("mdf,df->md", features, prior_weights) + prior_bias  # [m, d]
    projected = (features.transpose(0, 1) @ directions).transpose(0, 1)  # [m, d, k]
    return torch.cat([constant, parent_values.double(), zero_shot[..., None], projected], dim=-1)


class ScaleMoments:
    """Moments of the small block and of each scale's kernel block, chunk by chunk: scatter_small [d, a, a],
    scatter_between [s, d, a, M], scatter_kernel [s, d, M, M], cross_small [d, a], cross_kernel [s, d, M],
    squares [d]. The kernel blocks' moments are accumulated for the pairs of ``mask`` [d, s] only
    (``ParentBasis.kernel_blocks``) and laid out over every node by ``lay_out`` (0 for the others)."""

    def __init__(self, num_kernel: int, mask: torch.Tensor) -> None:
        self.num_kernel, self.mask = num_kernel, mask
        self.nodes = [torch.nonzero(taken).flatten() for taken in mask.T]  # per scale [k_s]: its nodes
        self.parts: list | None = None

    def add(self, small: torch.Tensor, blocks: list[torch.Tensor], targets: torch.Tensor) -> None:
        """small [m, d, a], per scale the kernel features of its nodes in ``mask`` [k_s, m, M], targets [m, d],
        float64."""
        by_node = small.transpose(0, 1)  # [d, m, a]
        y = targets.T[:, :, None]  # [d, m, 1]
        kernel_parts = []
        for scale, kernel in enumerate(blocks):
            index = self.nodes[scale].to(small.device)  # [k_s]
            kernel_small, kernel_y = by_node[index], y[index]  # [k_s, m, a], [k_s, m, 1]
            kernel_parts.append(
                [
                    kernel_small.transpose(1, 2) @ kernel,  # [k_s, a, M]
                    kernel.transpose(1, 2) @ kernel,  # [k_s, M, M]
                    (kernel.transpose(1, 2) @ kernel_y)[..., 0],  # [k_s, M]
                ]
            )
        parts = [
            by_node.transpose(1, 2) @ by_node,
            (by_node.transpose(1, 2) @ y)[..., 0],
            (targets * targets).sum(dim=0),
            kernel_parts,
        ]
        if self.parts is None:
            self.parts = parts
            return
        for position in range(3):
            self.parts[position] = self.parts[position] + parts[position]
        for old, new in zip(self.parts[3], kernel_parts, strict=True):
            for position in range(3):
                old[position] = old[position] + new[position]

    def whiten(self, whitening: list[torch.Tensor]) -> None:
        """Moments accumulated from the raw kernel [k_s, m, M'] -> those of its whitened features ``K W``, per scale
        ``W`` [k_s, M', M'] (``ParentBasis.kernel_whitening``): ``small^T K W``, ``W^T K^T K W``, ``W^T K^T y``,
        padded to ``num_kernel`` columns. One product per moment instead of one per chunk of rows."""
        for moments, transform in zip(self.parts[3], whitening, strict=True):
            transform = transform.to(moments[0].device)  # [k_s, M', M']
            between, scatter, cross = moments
            whitened = [
                between @ transform,  # [k_s, a, M']
                transform.transpose(1, 2) @ scatter @ transform,  # [k_s, M', M']
                (transform.transpose(1, 2) @ cross[..., None])[..., 0],  # [k_s, M']
            ]
            pad = self.num_kernel - transform.shape[-1]
            moments[:] = [
                F.pad(whitened[0], (0, pad)),
                F.pad(whitened[1], (0, pad, 0, pad)),
                F.pad(whitened[2], (0, pad)),
            ]

    def lay_out(self) -> None:
        """The kernel blocks' moments over every node and scale, [s, d, ...], 0 outside ``mask``."""
        d, s = self.mask.shape
        small, cross_small, squares, kernel_parts = self.parts
        a, size = small.shape[-1], self.num_kernel
        laid = []
        for position, tail in enumerate([(a, size), (size, size), (size,)]):  # between, scatter, cross
            full = small.new_zeros(s, d, *tail)
            for scale, moments in enumerate(kernel_parts):
                full[scale, self.nodes[scale].to(small.device)] = moments[position]
            laid.append(full)
        self.parts = [small, laid[0], laid[1], cross_small, laid[2], squares]

    @property
    def scatter_small(self) -> torch.Tensor:
        return self.parts[0]

    @property
    def scatter_between(self) -> torch.Tensor:
        return self.parts[1]

    @property
    def scatter_kernel(self) -> torch.Tensor:
        return self.parts[2]

    @property
    def cross_small(self) -> torch.Tensor:
        return self.parts[3]

    @property
    def cross_kernel(self) -> torch.Tensor:
        return self.parts[4]

    @property
    def squares(self) -> torch.Tensor:
        return self.parts[5]

    def reduced_scatter(self, scale: torch.Tensor) -> torch.Tensor:
        """The scatter of (small block, kernel block of ``scale[i]``) per node i: [d, r, r]."""
        nodes = torch.arange(scale.shape[0], device=scale.device)
        between = self.scatter_between[scale, nodes]  # [d, a, M]
        top = torch.cat([self.scatter_small, between], dim=2)
        bottom = torch.cat([between.transpose(1, 2), self.scatter_kernel[scale, nodes]], dim=2)
        return torch.cat([top, bottom], dim=1)

    def reduced_cross(self, scale: torch.Tensor) -> torch.Tensor:
        nodes = torch.arange(scale.shape[0], device=scale.device)
        return torch.cat([self.cross_small, self.cross_kernel[scale, nodes]], dim=1)  # [d, r]
