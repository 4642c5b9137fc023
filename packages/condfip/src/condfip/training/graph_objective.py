"""The training objective of the graph network: edge-wise binary cross-entropy plus AVICI's acyclicity penalty.

``loss = BCE(logits, true adjacency) + weight(step) * h(A)`` where ``A = sigmoid(logits)`` is the expected
adjacency (zero diagonal) and ``h(A) = (tr exp(A) - d) / d`` (NOTEARS' measure, divided by d so datasets of
different sizes weigh alike). ``h`` is zero exactly for acyclic weighted graphs and grows with every cycle's
weight. As in AVICI, the penalty starts at zero and grows during training; here the weight is a fixed
schedule instead of dual ascent, so a resumed run reproduces it exactly: linear from 0 at step 0 to
``acyclicity_weight`` at the last step.

Axis legend: b datasets, d nodes.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from condfip.graph import allowed_pairs


def acyclicity_weight(step: int, *, total_steps: int, final_weight: float) -> float:
    """The penalty weight at optimizer step ``step`` (0-based): linear from 0 to ``final_weight``."""
    return final_weight * min(max(step, 0) / max(total_steps - 1, 1), 1.0)


def acyclicity(probabilities: torch.Tensor, node_mask: torch.Tensor | None = None) -> torch.Tensor:
    """``(tr exp(A) - d_real) / d_real`` per dataset: [b, d, d] with zero diagonal -> [b], in float32.

    Padded nodes have zero rows and columns, so each adds exactly 1 to the trace and is subtracted back.
    """
    a = probabilities.float()
    d = a.shape[-1]
    real = (
        torch.full(a.shape[:1], float(d), device=a.device) if node_mask is None else node_mask.sum(-1).float()
    )
    with torch.autocast(device_type=a.device.type, enabled=False):  # matrix_exp has no bfloat16 kernel
        trace = torch.linalg.matrix_exp(a).diagonal(dim1=-2, dim2=-1).sum(-1)  # [b]
    return (trace - d) / real.clamp(min=1.0)


def edge_cross_entropy(
    logits: torch.Tensor, adjacency: torch.Tensor, node_mask: torch.Tensor | None = None
) -> torch.Tensor:
    """Mean binary cross-entropy over the possible edges (off-diagonal pairs of real nodes) of the batch."""
    allowed = allowed_pairs(node_mask, logits.shape[0], logits.shape[-1], logits.device)
    return F.binary_cross_entropy_with_logits(logits[allowed], adjacency[allowed].float())


def graph_loss(
    logits: torch.Tensor, adjacency: torch.Tensor, *, weight: float, node_mask: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(loss, cross-entropy, mean acyclicity); logits [b, d, d] (-inf where no edge is possible)."""
    cross_entropy = edge_cross_entropy(logits, adjacency, node_mask)
    penalty = acyclicity(torch.sigmoid(logits), node_mask).mean()
    return cross_entropy + weight * penalty, cross_entropy, penalty
