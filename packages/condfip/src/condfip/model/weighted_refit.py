"""Refitting a chosen adaptation on weighted rows: a bootstrap resample is a weight per row, and its refit one
ridge solve per node over the rows' kept design, with every choice of the original fit held."""

from __future__ import annotations

import torch

from condfip.model.adaptation import Adaptation, readout_weights
from condfip.model.evidence import ridge_solve
from condfip.model.model_weights import averaged


class WeightedRefit:
    """The model a fit chose (length scale, the weights of the models it averages, every penalty) refitted on
    weighted rows: for a bootstrap, a resample is a weight per row (how often it was drawn), and refitting its
    weights is one solve per model.

    ``design`` [n, d, r] are the rows of the fitted regression (``reduced_design``) and ``targets`` [n, d] their
    values, float64. The refit keeps everything of ``adaptation`` but the weights: the noise scale, the
    leave-one-out errors and the groups' scales are those of the original fit.
    """

    def __init__(self, adaptation: Adaptation, design: torch.Tensor, targets: torch.Tensor) -> None:
        self.adaptation = adaptation
        # (penalties [d, r], active [d, r], weight [d]) of each model the nodes average
        self.models = adaptation.models()
        # the columns of the models a node weighs (``ridge_solve`` solves each on its own), per group of nodes: the
        # nodes that read no kernel column (roots, linear and quadratic nodes) and those that do, by how far their
        # kernel columns reach (a merged layout pads the nodes of fewer landmarks), each group solved over the
        # columns some node of it uses. A column no node of a group uses (or a model's that no node of it weighs)
        # would only get a weight of exactly 0 (or one multiplied by 0), at the cost of its rows in every solve.
        used = torch.stack([active & (weight > 0)[:, None] for _, active, weight in self.models]).any(dim=0)
        num_kernel = adaptation.basis_weights.shape[1] - adaptation.value_slots
        reads_kernel = used[:, used.shape[1] - num_kernel :].any(dim=1)  # [d]
        positions = torch.arange(1, used.shape[1] + 1, device=used.device)  # [r]
        reach = torch.where(reads_kernel, (used * positions).amax(dim=1), 0)  # [d]: 0 without kernel columns
        self.groups: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]] = []
        for extent in torch.unique(reach).tolist():
            nodes = torch.nonzero(reach == extent).flatten()  # [k]
            columns = torch.nonzero(used[nodes].any(dim=0)).flatten()  # [c]
            kept = design.double()[:, nodes[:, None], columns]  # [n, k, c]: a copy, zeroed in place
            kept.masked_fill_(~used[nodes][:, columns], 0.0)
            node_targets = targets.double().T[nodes][:, :, None]  # [k, n, 1]
            self.groups.append((nodes, columns, kept.transpose(0, 1), node_targets))

    def __call__(self, counts: torch.Tensor) -> Adaptation:
        """counts: [n] row weights (non-negative, at least 2 in total), or [d, n] one set per node -> the
        refitted ``Adaptation``."""
        original = self.adaptation
        counts = counts.double().to(original.penalties.device)
        # rows of weight 0 (a third of a bootstrap resample's) add exactly 0: shared weights leave them out
        drawn = torch.nonzero(counts).flatten() if counts.dim() == 1 else None  # [n'] or all rows
        weights = torch.zeros_like(original.penalties)  # [d, r]: the columns a node does not use stay 0
        for nodes, columns, by_node, node_targets in self.groups:
            # [1 or k, n', 1]: the rows' weights, shared (the drawn rows only) or each node's (every row)
            if drawn is None:
                per_node = counts[nodes][:, :, None]
            else:
                by_node, node_targets = by_node[:, drawn], node_targets[:, drawn]
                per_node = counts[None, drawn, None]
            weighted = by_node * per_node  # [k, n', c]
            scatter = weighted.transpose(1, 2) @ by_node  # [k, c, c]
            cross = (weighted.transpose(1, 2) @ node_targets)[..., 0]  # [k, c]
            solved = [
                ridge_solve(scatter, cross, penalties[nodes][:, columns], active[nodes][:, columns])[1]
                for penalties, active, _ in self.models
            ]
            shares = [weight[nodes][:, None] for _, _, weight in self.models]  # [k, 1] each
            weights[nodes[:, None], columns] = averaged(solved, shares)
        refitted = dict(original.__dict__)
        refitted.update(readout_weights(weights, *original.prior, original.directions, original.value_slots))
        return Adaptation(**refitted)
