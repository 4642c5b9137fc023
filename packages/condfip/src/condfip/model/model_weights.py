"""How much of each of a node's two models its adapted fit takes: the linear model (a regression on its
parents' values) and the nonlinear one (with the kernel and the network's groups), from their log evidences.

A node's fit is the average of the two weighted by their posterior probabilities (``nonlinear_weights``), with a
prior that favors the linear model by ``EVIDENCE_MARGIN`` nats; a weight below ``MIN_MODEL_WEIGHT`` is 0, so a
node whose evidence is clear either way has one model. The nodes of one table share that prior
(``shared_log_odds``): the prior share of nonlinear mechanisms is updated by the table's clearly nonlinear nodes.
Why, and what was measured: ``condfip.model.adaptation`` and the package's BENCHMARKS.md.
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


def averages(weight: torch.Tensor) -> torch.Tensor:
    """Where the nonlinear model's weight (any shape) puts both models in the fit: strictly between 0 and 1."""
    return (weight > 0) & (weight < 1)


def averaged(parts: list[torch.Tensor], share: torch.Tensor) -> torch.Tensor:
    """The model average of a quantity of the nonlinear model (``parts[0]``) and, when some node mixes, of the
    linear one (``parts[1]``), ``share`` the nonlinear model's weight broadcast to them (``[d, 1]`` against
    reduced-basis weights [d, r], ``[1, d]`` against rows [n, d]). A node of weight 0 or 1 keeps its one model's
    value bit for bit (``parts[0]`` is the linear model's where its weight is 0)."""
    if len(parts) == 1:
        return parts[0]
    nonlinear, linear = parts
    return torch.where(averages(share), share * nonlinear + (1 - share) * linear, nonlinear)
