"""How much of each of a node's models its adapted fit takes: the linear model (a regression on its parents'
values) and the nonlinear one (with the kernel and the network's groups, or the quadratic model), from their log
evidences.

A node's fit is the average of the linear and the nonlinear model weighted by their posterior probabilities
(``nonlinear_weights``), with a prior that favors the linear model by ``EVIDENCE_MARGIN`` nats; a weight below
``MIN_MODEL_WEIGHT`` is 0, so a node whose evidence is clear either way has one model. The nodes of one table
share that prior (``shared_log_odds``): the prior share of nonlinear mechanisms is updated by the table's clearly
nonlinear nodes. Within the nonlinear model, the quadratic model (the parents' values and their products) and the
kernel model are averaged the same way (``quadratic_shares``), at even prior odds. Why, and what was measured:
``condfip.model.adaptation`` and the package's BENCHMARKS.md.
"""

from __future__ import annotations

import math

import torch

# prior log odds of the linear model against the nonlinear one (nats the nonlinear model's evidence must gain over
# the linear model's to weigh more in the node's model average)
EVIDENCE_MARGIN = 3.0
MIN_MODEL_WEIGHT = 0.25  # a model's weight in the average below this is 0: the other model alone
# the nodes of one table share their prior: the prior share of nonlinear mechanisms, sigmoid(-EVIDENCE_MARGIN), is
# updated by the nodes whose evidence gain exceeds CLEAR_NONLINEAR_GAIN (clearly nonlinear), the prior counting as
# PRIOR_NODES nodes; the share never falls below the prior's (``shared_log_odds``)
CLEAR_NONLINEAR_GAIN = 6.0
PRIOR_NODES = 10.0
# the quadratic model's share of a node's nonlinear model below this is 0 (the kernel model alone), above one minus
# it 1 (the quadratic model alone): an average within 2.2 nats of even odds (CSuite over 10 datasets, generation /
# interventions of large_backdoor_gm: a hard pick 0.0847 / 0.0744, this 0.0813 / 0.0723, 0.25 as for
# MIN_MODEL_WEIGHT 0.0822 / 0.0730)
QUADRATIC_MIN_WEIGHT = 0.1


def clear_counts(gain: torch.Tensor, parent_counts: torch.Tensor) -> tuple[int, int]:
    """The clearly nonlinear nodes (evidence gain [d] above ``CLEAR_NONLINEAR_GAIN``) and the non-root nodes."""
    has_parents = parent_counts > 0
    return int((has_parents & (gain > CLEAR_NONLINEAR_GAIN)).sum()), int(has_parents.sum())


def shared_log_odds(
    gain: torch.Tensor,
    parent_counts: torch.Tensor,
    prior_log_odds: float = EVIDENCE_MARGIN,
    counted: tuple[int, int] = (0, 0),
) -> float:
    """The prior log odds of the linear model shared by the nodes of one table, from their evidence gains [d] and
    parent counts [d]: ``log((1 - s) / s)`` with ``s`` the share of nonlinear mechanisms, ``(clear + PRIOR_NODES
    s0) / (nodes + PRIOR_NODES)``, ``clear`` the non-root nodes clearly nonlinear (``clear_counts``, plus those of
    ``counted``, the same table's nodes fitted before), ``s0 = sigmoid(-prior_log_odds)``, and ``s`` at least
    ``s0``. A node's mechanism is likelier nonlinear in a table where many clearly are (a softplus chain: an
    ambiguous link among clearly curved ones); a table without such nodes keeps ``prior_log_odds``, so its linear
    mechanisms keep their protection against chance gains however many nodes it has."""
    clear, nodes = clear_counts(gain, parent_counts)
    prior_share = 1.0 / (1.0 + math.exp(prior_log_odds))
    share = (clear + counted[0] + PRIOR_NODES * prior_share) / (nodes + counted[1] + PRIOR_NODES)
    if share <= prior_share:
        return float(prior_log_odds)
    return math.log((1.0 - share) / share)


def nonlinear_weights(gain: torch.Tensor, prior_log_odds: float, parent_counts: torch.Tensor) -> torch.Tensor:
    """[d]: each node's posterior probability of the nonlinear model against the linear one, from the log evidence
    gain [d] of the nonlinear model and the prior log odds of the linear one, ``sigmoid(gain - prior_log_odds)``;
    within ``MIN_MODEL_WEIGHT`` of 0 or 1 it is exactly 0 or 1 (one model, and no kernel for a linear node to
    evaluate). A root's two models are the same constant: it takes the likelier one whole."""
    weight = torch.sigmoid(gain - prior_log_odds)
    weight = torch.where(
        weight < MIN_MODEL_WEIGHT, 0.0, torch.where(weight > 1 - MIN_MODEL_WEIGHT, 1.0, weight)
    )
    return torch.where(parent_counts > 0, weight, (gain > prior_log_odds).double())


def quadratic_shares(
    quadratic_evidence: torch.Tensor, kernel_evidence: torch.Tensor, eligible: torch.Tensor
) -> torch.Tensor:
    """[d]: the quadratic model's share of each node's nonlinear model against the kernel model, its posterior
    probability at even prior odds, ``sigmoid(quadratic_evidence - kernel_evidence)`` (log evidences [d]); within
    ``QUADRATIC_MIN_WEIGHT`` of 0 or 1 it is exactly 0 or 1, and it is 0 where not ``eligible`` [d] (a node
    without products in its quadratic fit, or whose nonlinear model keeps the network's groups)."""
    share = torch.sigmoid(quadratic_evidence - kernel_evidence)
    share = torch.where(
        share < QUADRATIC_MIN_WEIGHT, 0.0, torch.where(share > 1 - QUADRATIC_MIN_WEIGHT, 1.0, share)
    )
    return torch.where(eligible, share, 0.0)


def averages(weight: torch.Tensor) -> torch.Tensor:
    """Where a model's weight (any shape) puts it in an average with another: strictly between 0 and 1."""
    return (weight > 0) & (weight < 1)


def averaged(parts: list[torch.Tensor], weights: list[torch.Tensor]) -> torch.Tensor:
    """The model average ``sum_c weights[c] * parts[c]`` of a quantity of a node's models, the weights broadcast to
    the parts (``[d, 1]`` against reduced-basis weights [d, r], ``[1, d]`` against rows [n, d]) and summing to 1. A
    node whose weight is all on one model keeps that model's value bit for bit."""
    if len(parts) == 1:
        return parts[0]
    total = sum(weight * part for part, weight in zip(parts, weights, strict=True))
    for part, weight in zip(parts, weights, strict=True):
        total = torch.where(weight == 1, part, total)
    return total
