"""How large an adaptation's fit is: its memory estimate, the kernel landmarks a fit can afford, and the groups of
nodes fitted apart by the landmarks their kernels need."""

from __future__ import annotations

import torch

from condfip.model.adaptation import NUM_DIRECTIONS
from condfip.model.parent_basis import NUM_LANDMARKS, NUM_SCALES, PRODUCT_PARENTS, landmark_count

# the landmarks grow with the rows (``landmark_count``) only while the fit's memory estimate stays under this
LANDMARK_GROWTH_BYTES = 2**30


def fit_bytes(
    num_nodes: int,
    max_parents: int,
    *,
    num_kernel: int = NUM_LANDMARKS,
    num_scales: int = NUM_SCALES,
) -> int:
    """An upper estimate of the memory (bytes) of the basis and of ``fit_adaptation``'s moments and solves for
    ``num_nodes`` nodes with at most ``max_parents`` parents (the rows' own memory is bounded apart): per node
    and scale the landmarks' kernel and its whitening (with the eigendecomposition's workspace), the kernel
    block's scatter, its eigenvectors and their workspace, the coupling to the small block, and the reduced
    system."""
    slots = min(max(max_parents, 1), PRODUCT_PARENTS)
    small = 2 + max(max_parents, 1) + slots * (slots + 1) // 2 + NUM_DIRECTIONS
    reduced = small + num_kernel
    per_node = num_scales * (7 * num_kernel**2 + 3 * small * num_kernel) + 3 * reduced**2
    return 8 * num_nodes * per_node


def kernel_size(num_rows: int, num_nodes: int, max_parents: int) -> int:
    """The landmarks of a fit of ``num_nodes`` nodes on ``num_rows`` rows whose most-parented node has
    ``max_parents`` parents (``landmark_count``), fewer (down to ``NUM_LANDMARKS``) while the fit's memory estimate
    (``fit_bytes``) would exceed ``LANDMARK_GROWTH_BYTES``."""
    size = landmark_count(num_rows, max_parents)
    floor = min(NUM_LANDMARKS, size)
    while size > floor and fit_bytes(num_nodes, max_parents, num_kernel=size) > LANDMARK_GROWTH_BYTES:
        size = max(floor, size - 8)
    return size


def kernel_tiers(num_rows: int, parent_counts: torch.Tensor) -> list[tuple[torch.Tensor, int]]:
    """The nodes grouped by the landmarks their kernel needs, from each node's parent count [d]: ``(nodes [k]
    long, landmarks)`` per group (``kernel_size`` of the group). First the nodes for which the rows decide the
    landmarks (``landmark_count(num_rows)``), then, if any, those whose parents ask for more
    (``LANDMARKS_PER_PARENT`` each), then the roots, on one landmark: a root's fit is a constant (its kernel
    features are constants that a fit leaves out), and apart from the others it costs no candidate fit over a
    kernel block, and no pass of the network over every row. The groups are fitted apart (each node's fit reads
    only its own moments), so only nodes of many parents pay for more landmarks."""
    counts = parent_counts.cpu().long()
    by_rows = landmark_count(num_rows)
    few = torch.tensor(
        [landmark_count(num_rows, int(c)) <= by_rows for c in counts.tolist()], dtype=torch.bool
    )
    roots = counts == 0
    tiers = []
    for members in (few & ~roots, ~few):
        nodes = torch.nonzero(members).flatten()
        if nodes.numel():
            tiers.append((nodes, kernel_size(num_rows, nodes.numel(), max(int(counts[nodes].max()), 1))))
    if bool(roots.any()):  # last: their shared prior odds then count every other node (``clear_counts``)
        tiers.append((torch.nonzero(roots).flatten(), 1))
    return tiers
