"""The kernels of the adaptation's parent basis (``condfip.model.parent_basis``) between rows and landmarks: the
Gaussian kernel in all of a node's parents jointly, the additive one (a mean over the parents of a Gaussian kernel
in each), and the step kernel (the share of the parents on the same side of a threshold each), with the search for
the step kernel's thresholds.

Axis legend: k nodes, m rows, M landmarks, p parent slots, s kernels per node.
"""

from __future__ import annotations

import math

import torch

JOINT, ADDITIVE, STEP = 0, 1, 2  # the kinds of kernel (``ParentBasis.kinds``)
# a step kernel's threshold has at least this share of the rows on either side
STEP_SIDE_SHARE = 0.05


def gram_blocks(
    a: torch.Tensor, b: torch.Tensor, parameters: tuple[torch.Tensor, ...], mask: torch.Tensor
) -> list[torch.Tensor]:
    """The kernel between a [k, m, p] and b [k, M, p] at each scale of the nodes ``mask[:, s]`` (k_s of them) -> per
    scale [k_s, m, M]. ``parameters`` (``ParentBasis._kernel_parameters``): each (node, scale)'s kind [k, s] and
    length [k, s], each node's thresholds [k, p] and parent count [k]: Gaussian in all parents jointly (``JOINT``),
    the mean over the node's parents of a Gaussian kernel in each (``ADDITIVE``), or the share of its parents on
    the same side of their thresholds (``STEP``). Padded parent slots are 0 in both."""
    kinds, lengths, thresholds, counts = parameters
    blocks: list[torch.Tensor] = []
    joint = mask & (kinds == JOINT)  # [k, s]
    squared = None
    if bool(joint.any()):
        # [k', m, M]: |x - z|^2 per node that takes some joint scale, as |x|^2 + |z|^2 - 2 x.z (what cdist
        # computes before its square root, which a square would only undo), at least 0
        rows = joint.any(dim=1)  # [k]
        a_rows, b_rows = (a, b) if bool(rows.all()) else (a[rows], b[rows])
        norms = a_rows.square().sum(dim=-1)[:, :, None] + b_rows.square().sum(dim=-1)[:, None, :]
        squared = torch.baddbmm(norms, a_rows, b_rows.transpose(1, 2), alpha=-2.0).clamp_min_(0.0)
        position = torch.cumsum(rows, dim=0) - 1  # [k]: each node's row of ``squared``
    factors = -0.5 / lengths.square()  # [k, s]: -1 / (2 l^2) (inf for the step kernel, whose length is 0)
    for scale in range(lengths.shape[1]):
        column = mask[:, scale]  # [k]
        kind = kinds[column, scale]  # [k_s]: a merged basis mixes kinds in one scale
        factor = factors[column, scale, None, None]  # [k_s, 1, 1]
        parts = []
        if bool((kind == JOINT).any()):
            taken = joint[:, scale]  # [k]
            picked = squared if bool(taken[rows].all()) else squared[position[taken]]
            parts.append((kind == JOINT, (picked * factor[kind == JOINT]).exp_()))
        for code in (ADDITIVE, STEP):
            nodes = kind == code
            if bool(nodes.any()):
                inputs = a[column][nodes], b[column][nodes]
                if code == ADDITIVE:
                    parts.append((nodes, _additive_mean(*inputs, factor[nodes], counts[column][nodes])))
                else:
                    share = _step_share(*inputs, thresholds[column][nodes], counts[column][nodes])
                    parts.append((nodes, share))
        if len(parts) == 1:
            blocks.append(parts[0][1])
            continue
        block = a.new_empty(kind.shape[0], a.shape[1], b.shape[1])  # [k_s, m, M]
        for nodes, part in parts:
            block.index_copy_(0, _where(nodes), part)
        blocks.append(block)
    return blocks


def _step_share(
    a: torch.Tensor, b: torch.Tensor, thresholds: torch.Tensor, counts: torch.Tensor
) -> torch.Tensor:
    """The share of each node's ``counts`` [k] parents on which a [k, m, p] and b [k, M, p] are on the same side of
    the parent's threshold [k, p] (above, or not) -> [k, m, M]: one batched product of the sides' indicators."""
    valid = (torch.arange(a.shape[-1], device=a.device) < counts[:, None]).to(a.dtype)[
        :, None, :
    ]  # [k, 1, p]

    def sides(x: torch.Tensor) -> torch.Tensor:  # [k, n, p] -> [k, n, 2p]
        above = (x > thresholds[:, None, :]).to(x.dtype)
        return torch.cat([above * valid, (1.0 - above) * valid], dim=-1)

    shares = sides(a) @ sides(b).transpose(1, 2)  # [k, m, M]
    return shares / counts.clamp_min(1).to(a.dtype)[:, None, None]


def step_thresholds(
    rows: torch.Tensor, targets: torch.Tensor, index: torch.Tensor, valid: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Each node's threshold per parent: rows [n, d], the nodes' columns ``targets`` [n, k], their parents ``index``
    [k, p] (``valid`` [k, p]) -> thresholds [k, p] and how many candidates each was chosen from [k, p] (0 for a
    padded slot, or a parent of fewer than two values). A threshold is the midpoint between two consecutive
    distinct values of the parent, with at least ``STEP_SIDE_SHARE`` of the rows on either side, where the node's
    column splits best: the largest between-sides sum of squares ``n_low n_high / n (mean_high - mean_low)^2``
    (a regression tree's first split on that parent alone)."""
    n = rows.shape[0]
    if n < 2:
        return torch.zeros(index.shape, dtype=rows.dtype), torch.zeros(index.shape, dtype=torch.long)
    values = rows[:, index]  # [n, k, p]
    order = torch.argsort(values, dim=0)
    ordered = torch.gather(values, 0, order)  # [n, k, p] ascending
    y = torch.gather(targets[:, :, None].expand_as(values), 0, order)  # [n, k, p]: the column in that order
    low_sums = torch.cumsum(y, dim=0)[:-1]  # [n - 1, k, p]: the sum of the first i + 1 rows
    low_counts = torch.arange(1, n, dtype=rows.dtype)[:, None, None]  # [n - 1, 1, 1]
    total = low_sums[-1:] + y[-1:]  # [1, k, p]
    high_counts = n - low_counts
    gap = total / high_counts - low_sums * (1.0 / low_counts + 1.0 / high_counts)  # mean_high - mean_low
    score = low_counts * high_counts / n * gap.square()  # [n - 1, k, p]
    least = max(1, math.ceil(STEP_SIDE_SHARE * n))
    admissible = (ordered[1:] > ordered[:-1]) & (low_counts >= least) & (high_counts >= least) & valid
    score = torch.where(admissible, score, -math.inf)
    best = score.argmax(dim=0, keepdim=True)  # [1, k, p]
    thresholds = 0.5 * (torch.gather(ordered, 0, best) + torch.gather(ordered, 0, best + 1))[0]  # [k, p]
    choices = admissible.sum(dim=0)  # [k, p]
    return torch.where(valid & (choices > 0), thresholds, 0.0), choices


def _where(flags: torch.Tensor) -> torch.Tensor:
    """[k] bool -> the indices of its True entries [k'] long."""
    return torch.nonzero(flags).flatten()


def _additive_mean(
    a: torch.Tensor, b: torch.Tensor, factor: torch.Tensor, counts: torch.Tensor
) -> torch.Tensor:
    """The mean over each node's ``counts`` [k] parents of ``exp(factor (a_j - b_j)^2)``: a [k, m, p], b [k, M, p],
    factor [k, 1, 1] (negative) -> [k, m, M]. The nodes are taken in decreasing parent count, so that the nodes
    with a parent in slot j are a leading block: no term is computed for a padded slot. Each term is
    ``exp(-(s a_j - s b_j)^2)`` with ``s = sqrt(-factor)``, computed in place in the tensor of the differences
    (a fresh tensor per operation costs more than the operation)."""
    order = torch.argsort(counts, descending=True, stable=True)  # [k]
    in_order = bool((order == torch.arange(order.numel(), device=order.device)).all())
    if not in_order:
        a, b, factor, counts = a[order], b[order], factor[order], counts[order]
    scale = (-factor).sqrt()  # [k, 1, 1]
    total = a.new_zeros(a.shape[0], a.shape[1], b.shape[1])  # [k, m, M]
    for slot in range(int(counts[0]) if counts.numel() else 0):
        n = int((counts > slot).sum())  # the nodes with a parent in this slot: the first n
        x, z = a[:n, :, slot, None] * scale[:n], b[:n, None, :, slot] * scale[:n]  # [n, m, 1], [n, 1, M]
        term = (x - z).square_().neg_().exp_()  # [n, m, M]
        if slot == 0 and n == total.shape[0]:
            total = term
        else:
            total[:n] += term
    if bool((counts > 1).any()):
        total /= counts.clamp_min(1).to(total.dtype)[:, None, None]
    return total if in_order else total[torch.argsort(order)]  # back to the nodes' own order
