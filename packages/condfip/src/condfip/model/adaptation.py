"""Closed-form adaptation of ``F_hat`` to the rows of one dataset (the default path of ``CondFiP.infer``).

Per node ``i``, ``F_hat_i(z) = x_i(z) . w_i`` over a basis ``x_i`` of functions of the node's parents only:

- a constant and the parents' standardized values (unpenalized when the rows are at least
  ``LINEAR_ROWS_PER_FEATURE`` times the node's parents plus two, so that a linear mechanism is fitted as least
  squares fits it; a penalized group otherwise, and in a linear node whose parents explain so little of its
  column that the evidence's ridge on their values is at least ``LOW_SIGNAL_RIDGE`` times the rows: there least
  squares' variance costs more than the ridge's bias, and a strong linear mechanism, whose ridge is orders of
  magnitude below that, is still fitted as least squares fits it);
- the products of degree two of the parents' values (squares and pairwise interactions; nodes of at most
  ``PRODUCT_PARENTS`` parents), a penalized group of their own in the quadratic model (below): a quadratic or
  interaction mechanism is a few of their weights, and it keeps its shape where an intervention puts the parents
  where they never were jointly, where a kernel falls back to its linear part (``condfip.model.parent_basis``);
- the pretrained network's own prediction ``F_zero_shot_i`` (the trained readout of the decoder's features);
- the decoder's features of the parents, compressed to their ``num_directions`` principal directions;
- Gaussian-kernel features of the parents at landmark rows, of one kernel chosen per node among the joint
  kernel at ``LENGTH_SCALES``, the additive kernel (one per parent, averaged) at ``ADDITIVE_SCALES`` and the step
  kernel (a threshold per parent; ``condfip.model.parent_basis``): a kernel-ridge basis (Nyström).

Each penalized group ``k`` has a Gaussian prior ``w_k ~ N(0, 1 / alpha_k)``; the precisions and the noise
level are chosen per node by maximizing the marginal likelihood (evidence) with MacKay's fixed point (group
automatic relevance determination): a group the data do not need gets an infinite precision and drops out. The
kernel (joint or additive, and its length scale) is the one whose fit has the highest evidence. A node's fit
is the average of the nonlinear and the linear model weighted by their posterior probabilities, with prior log
odds of ``evidence_margin`` nats for the linear model, so the simpler model wins until the data insist; a
weight below ``MIN_MODEL_WEIGHT`` is 0, so a node whose evidence is clear either way has one model. Near the
prior odds the evidence is a noisy judge: a smooth curvature (a softplus of a bimodal parent, 400 rows) gains
2-3 nats while the linear model's squared error is ten times the kernel's, and a linear mechanism can gain 1.5
nats by chance; there picking one model costs the most, and the average costs least (CSuite's softplus chains:
RMSE 3-6 % lower; ``condfip.model.model_weights``). The nodes of one table share that prior
(``shared_log_odds``): the prior share of nonlinear mechanisms is updated by the nodes whose evidence is
clearly nonlinear, so an ambiguous node in a table of clearly curved ones leans nonlinear (an ambiguous
softplus link in a chain of them), while a table without such nodes keeps ``evidence_margin`` however many
nodes it has (a share updated by every node's posterior drifted up on linear tables of 100 nodes, from their
chance gains, and cost them up to 9 %). The nonlinear model's evidence is the mean of the kernels' under their prior
(uniform but for the short additive scale, ``ParentBasis.log_prior``), not the best: the winner of several
candidates is not credited for having been picked.
The quadratic model (the parents' values and their products, no kernel, no network) is one more candidate. Where a
node keeps some product and not the network's groups, its nonlinear model is the quadratic model, the best kernel's,
or their average weighted by their posterior probabilities at even odds, from the quadratic model's evidence against
the mean of the kernels' fits without the network's groups (``model_weights.quadratic_shares``; within
``QUADRATIC_MIN_WEIGHT`` of 0 or 1, one model). Taken alone, the quadratic model's evidence is also the nonlinear
model's against the linear one; an average keeps the kernels'. The two are often within a nat or two of each other
(a softplus or a cubic of one parent at 100 rows), where a hard pick is a coin flip between two different
extrapolations (CSuite's softplus chains: generation 4 % lower with the average; the unseen exponential and cubic
families at 100 rows 1-4 % lower, the quadratic one there 2-3 % higher). It is a model of its own rather than a
group beside the kernel: on top of an exact quadratic a short kernel gains a few nats from the noise (a parabola at
400 rows: 4 nats, and a bump in the fit where the rows had none), and beside the kernel the products shifted curved
mechanisms that are not polynomials (sigmoids, random networks at 50-100 rows: 3-12 % worse).
Each kernel is fitted twice, with the network's groups (zero-shot prediction, decoder directions) and without
them, and the network's groups stay in a node's nonlinear model only when its best fit with them beats its best
fit of the parents and kernel alone by ``network_margin`` nats: the network's features are a function of the
fitted rows themselves (through the dataset embedding), which the evidence, taking them as a fixed basis, does
not charge for, and away from the rows they extrapolate worse than the kernel (a cubic mechanism of 3 parents on
100 rows: error 0.0007 on the fitted rows and 0.015 on new rows within their range with the network's groups,
0.001 with the kernel alone). Where the network's groups stay, with few rows the data cannot move the pretrained
group's weight far from what its prediction explains; with many rows the data decide.

The candidate models' evidence fits are ``condfip.model.candidates``'s; the final fit is one direct solve of the
chosen model.

Everything is computed from moments accumulated chunk by chunk (memory flat in the number of rows), in float64
(``condfip.model.moments``). ``chunks()`` is called up to three times with the same rows (once while they fit in
``KEPT_ROWS_BYTES``): the decoder's principal directions, the moments of the reduced basis, the exact
leave-one-out residuals (deferred to their first reader while what that pass holds is small:
``condfip.model.held_out``). The kernel
features are computed from the rows where a pass needs them: every scale's for the moments, the chosen scale's
for the leave-one-out residuals (the kernel features of a large fit are most of its arithmetic).

Axis legend: m rows, d nodes, f decoder features, p parent slots, q product slots, v = p + q value slots, a small
block, M kernel features per scale, s length scales, r reduced basis of one model (a + M), g groups.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import torch

from condfip.model.candidates import candidate_fits
from condfip.model.evidence import GROUPS, ITERATIONS, ridge_solve
from condfip.model.held_out import DeferredHeldOut, HeldOut
from condfip.model.model_weights import (
    EVIDENCE_MARGIN,
    averaged,
    averages,
    nonlinear_weights,
    quadratic_shares,
    shared_log_odds,
)
from condfip.model.moments import (
    AdaptationChunks,
    FitRows,
    ScaleMoments,
    principal_directions,
    small_block,
)
from condfip.model.parent_basis import (
    ParentBasis,
)

NUM_DIRECTIONS = 16  # principal directions of the decoder's features kept per node
# nats the network's groups must add to the parents and kernel alone to be kept (why: the module docstring)
NETWORK_EVIDENCE_MARGIN = 3.0
# beyond the fitted rows' range a nonlinear node's parents are clamped in its linear part too (flat, as a kernel
# regression) only when its evidence gain is at least this; a node the data barely call nonlinear extrapolates as
# the linear model it nearly is (linear SCMs at 50-100 rows: interventional RMSE up to 9 % lower)
LINEAR_CLAMP_EVIDENCE = 10.0
LINEAR_ROWS_PER_FEATURE = 4
# from this many fitted rows, the kernel blocks' moments are accumulated from the raw kernel and whitened once
# (``ScaleMoments.whiten``) instead of whitening every chunk's features: d = 20, ``infer`` 15.8 -> 12.4 s at 10,000 rows and
# 4.1 -> 3.8 s at 2,000;
# on fewer rows the per-chunk whitening is as fast, and the fits of small tables stay as they were bit for bit
RAW_MOMENT_ROWS = 2_000
# a linear node keeps the evidence's ridge on its parents' values from this times the rows (module docstring)
LOW_SIGNAL_RIDGE = 0.01
# a fit's leave-one-out pass is deferred to its first use (``condfip.model.held_out``) while the rows' features and
# the models' factors it holds until then stay under this (d = 20 at 400 rows: about 15 MiB); recomputing the
# features instead would cost a reader of noise() 11 % more than the pass run in the fit
DEFERRED_HELD_OUT_BYTES = 32 * 2**20
# in capped_held_out_errors each row's leverage is capped at the larger of LEVERAGE_CAP and the node's
# LEVERAGE_CAP_QUANTILE of leverage over the rows: a few rows of leverage near 1 (the tails of a skewed parent)
# cannot dominate the mean, while a fit whose rows mostly have high leverage (few rows, a flexible basis, a node
# of small fitted noise) keeps its leave-one-out error, which a fixed cap would shrink by orders of magnitude
LEVERAGE_CAP = 0.8
LEVERAGE_CAP_QUANTILE = 0.75


def _held_out_statistic(name: str, meaning: str) -> property:
    """A read-only property of ``Adaptation``: the statistic ``name`` of its ``held_out`` ([d], computed on first
    read)."""
    return property(lambda self: getattr(self._held_out_statistics(), name), doc=f"[d]: {meaning}.")


@dataclass
class Adaptation:
    """The adapted readout: ``F_hat[:, i] = decoder_features[:, i] @ decoder_weights[i] + basis[:, i] @
    basis_weights[i] + bias[i]`` over the basis ``ParentBasis.with_scale(scale)``, in float64, and what the fit
    found per node."""

    decoder_weights: torch.Tensor  # [d, f]
    basis_weights: torch.Tensor  # [d, v + M]: over the parents' values, their products and the chosen kernel
    bias: torch.Tensor  # [d]
    scale: (
        torch.Tensor
    )  # [d] long: each node's kernel (an index into its basis's joint, then additive, then step scales)
    full_basis: torch.Tensor  # [d] bool: the nonlinear model is in the fit (False: the linear model alone)
    # [d]: the nonlinear model's weight in the node's model average (``nonlinear_weights``): 0 the linear model
    # alone, 1 the nonlinear one alone
    nonlinear_weight: torch.Tensor
    # [d]: the prior log odds of the linear model its weight used (``shared_log_odds``)
    prior_log_odds: torch.Tensor
    # [d]: log evidence of the nonlinear model (its kernels averaged) minus the linear model's
    evidence_gain: torch.Tensor
    # [d]: log evidence of the best nonlinear model with the network's groups minus the best without them
    network_gain: torch.Tensor
    noise_scale: torch.Tensor  # [d]: the fitted noise standard deviation
    group_scales: torch.Tensor  # [d, g]: prior standard deviation of each penalized group (0: pruned)
    # [d, r]: the ridge penalty of every column of the reduced basis, of the nonlinear model where it is in the
    # fit (``full_basis``), else of the linear one
    penalties: torch.Tensor
    active: torch.Tensor  # [d, r] bool: the column is in that model (a pruned one has a weight of exactly 0)
    linear_penalties: torch.Tensor  # [d, r]: the linear model's, averaged in where 0 < nonlinear_weight < 1
    linear_active: torch.Tensor  # [d, r] bool
    # [d]: the quadratic model's share of the nonlinear model (``quadratic_shares``): 1 where it is the nonlinear
    # model alone (``penalties`` are then its own), 0 where the kernel model is, between them an average of the two
    quadratic_share: torch.Tensor
    # [d, r]: the quadratic model's penalties and columns, averaged in where 0 < quadratic_share < 1
    quadratic_penalties: torch.Tensor
    quadratic_active: torch.Tensor
    directions: torch.Tensor  # [d, f, k]: the decoder's principal directions
    prior: tuple[torch.Tensor, torch.Tensor]  # the trained readout: weights [d, f], bias [d]
    parent_slots: int  # p
    product_slots: int  # q
    # the exact leave-one-out statistics of the fit (``_held_out``), computed when first read; set after the solve
    held_out: DeferredHeldOut | None = None
    # [d]: the effective number of parameters of each node's fit, the trace of its hat matrix (the models it averages
    # weighted as they are); set after the solve, from the moments alone (``hat_traces``)
    degrees_of_freedom: torch.Tensor | None = None
    num_rows: int = 0  # the rows the fit saw

    GROUPS = GROUPS

    def _held_out_statistics(self) -> HeldOut:
        if self.held_out is None:
            raise RuntimeError("the leave-one-out statistics of an adaptation are set after its solve")
        return self.held_out()

    mean_leverage = _held_out_statistic(
        "mean_leverage", "mean diagonal of the hat matrix over the fitted rows"
    )
    held_out_errors = _held_out_statistic("errors", "mean squared exact leave-one-out residual")
    capped_held_out_errors = _held_out_statistic(
        "capped_errors", "the same with each row's leverage capped (``leverage_caps``)"
    )
    capped_held_out_standard_errors = _held_out_statistic(
        "capped_standard_errors", "the standard error of that capped mean over the rows"
    )

    @property
    def value_slots(self) -> int:
        """v = p + q: the basis columns before the kernel features."""
        return self.parent_slots + self.product_slots

    @property
    def fitted_leverage(self) -> torch.Tensor:
        """[d]: the mean leverage of the fitted rows, ``degrees_of_freedom / num_rows``: the held-out statistics'
        ``mean_leverage`` without their pass over the rows. A node's in-sample residuals have about ``1 -`` this of
        its noise variance (exactly, for least squares)."""
        if self.degrees_of_freedom is None or self.num_rows < 1:
            raise RuntimeError("the degrees of freedom of an adaptation are set after its solve")
        return self.degrees_of_freedom / self.num_rows

    @property
    def clamps_linear(self) -> torch.Tensor:
        """[d] bool: beyond the fitted rows' range the node's linear part is held at its value at the edge (the
        nonlinear basis was kept, by at least ``LINEAR_CLAMP_EVIDENCE`` nats)."""
        return self.full_basis & (self.evidence_gain >= LINEAR_CLAMP_EVIDENCE)

    def select(self, nodes: torch.Tensor) -> Adaptation:
        """The fit of the nodes ``nodes`` ([k] long) only, in that order: every per-node field indexed."""
        index = nodes.to(self.bias.device)
        fields = {
            name: value[index] if isinstance(value, torch.Tensor) else value
            for name, value in self.__dict__.items()
        }
        fields["prior"] = (self.prior[0][index], self.prior[1][index])
        fields["held_out"] = None if self.held_out is None else self.held_out.select(index)
        return Adaptation(**fields)

    @property
    def reads_decoder(self) -> torch.Tensor:
        """[d] bool: the node's ``F_hat`` uses the decoder's features (the zero-shot or decoder group was kept)."""
        return (self.decoder_weights != 0).any(dim=1)

    def models(self) -> list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        """The models each node's fit averages, as ``(penalties [d, r], active [d, r], weight [d])`` over the
        reduced basis, the weights summing to 1 per node: the nonlinear model (its kernel model, or the quadratic
        model where that is the nonlinear model alone; the linear model's penalties where the node is linear), the
        quadratic model where it shares the nonlinear model's weight with the kernel model, and the linear model
        where the node averages it with the nonlinear one. A model no node weighs is left out."""
        nonlinear = self.nonlinear_weight  # [d]
        shared = averages(self.quadratic_share)  # [d]
        quadratic = torch.where(shared, nonlinear * self.quadratic_share, 0.0)  # [d]
        mixes = averages(nonlinear)  # [d]
        models = [(self.penalties, self.active, torch.where(nonlinear > 0, nonlinear - quadratic, 1.0))]
        if bool((shared & (nonlinear > 0)).any()):
            models.append((self.quadratic_penalties, self.quadratic_active, quadratic))
        if bool(mixes.any()):
            models.append(
                (self.linear_penalties, self.linear_active, torch.where(mixes, 1.0 - nonlinear, 0.0))
            )
        return models


def evaluate(
    adaptation: Adaptation,
    decoder_features: torch.Tensor,
    basis: torch.Tensor,
    nodes: torch.Tensor | None = None,
) -> torch.Tensor:
    """The adapted ``F_hat`` of the nodes ``nodes`` (all when None): features [m, k, f], basis [m, k, v + M]
    (``ParentBasis.with_scale(adaptation.scale)``) -> [m, k]."""
    index = slice(None) if nodes is None else nodes
    return (
        torch.einsum("mkf,kf->mk", decoder_features.double(), adaptation.decoder_weights[index])
        + torch.einsum("mkq,kq->mk", basis.double(), adaptation.basis_weights[index])
        + adaptation.bias[index]
    )


def reduced_design(
    adaptation: Adaptation, decoder_features: torch.Tensor, basis: torch.Tensor
) -> torch.Tensor:
    """The rows of the fitted regression, [m, d, r] = (1, parents, their products, zero-shot prediction, decoder
    directions, kernel features), from features [m, d, f] and the chosen basis [m, d, v + M]; ``penalties`` are per
    column of it."""
    v = adaptation.value_slots
    small = small_block(decoder_features, basis[..., :v], *adaptation.prior, adaptation.directions)
    return torch.cat([small, basis.double()[..., v:]], dim=-1)


def fit_adaptation(
    chunks: AdaptationChunks,
    prior_weights: torch.Tensor,
    prior_bias: torch.Tensor,
    basis: ParentBasis,
    *,
    num_directions: int = NUM_DIRECTIONS,
    evidence_margin: float = EVIDENCE_MARGIN,
    network_margin: float = NETWORK_EVIDENCE_MARGIN,
    iterations: int = ITERATIONS,
    nodes: torch.Tensor | None = None,
    counted: tuple[int, int] = (0, 0),
) -> Adaptation:
    """Fit the adapted readout of every node (module docstring), or of the nodes ``nodes`` [k] only.

    ``chunks()`` yields ``(decoder_features [m, k, f], rows [m, d])`` over the rows (the rows are the input of
    ``basis``, a basis of the k nodes, and their columns ``nodes`` the targets) and is called up to three times
    with the same rows. ``prior_weights`` [k, f] and ``prior_bias`` [k] are the trained readout over the
    decoder's features (its prediction is the zero-shot ``F_hat``). ``evidence_margin`` is the prior log odds of
    the linear model before the table's nodes update it, and ``counted`` the clearly nonlinear and non-root nodes of
    the same table fitted before (``clear_counts``). Raises ValueError with fewer than 2 rows.
    """
    prior_weights, prior_bias = prior_weights.detach().double(), prior_bias.detach().double()
    rows = FitRows(chunks)
    n, directions = principal_directions(rows, num_directions)
    if n < 2:
        raise ValueError(f"adapting to the rows needs at least 2 rows, got {n}")
    p, q, num_kernel, num_scales = basis.max_parents, basis.num_products, basis.num_kernel, basis.num_scales
    v = p + q
    # the kernel features of the (node, scale) pairs a fit may take (``ParentBasis.kernel_mask``: not a root's,
    # whose are constants, nor a scale of prior weight 0); the fit leaves the others' blocks empty (below)
    moments = ScaleMoments(num_kernel, basis.kernel_mask)
    # on many rows the raw kernel's moments, whitened once, cost far less than whitening every chunk's features
    raw = n >= RAW_MOMENT_ROWS
    for features, z in rows():
        values, blocks = basis.kernel_blocks(z, whiten=not raw)  # [m, d, v], per scale [k_s, m, M]
        targets = z if nodes is None else z[:, nodes]  # [m, d]
        moments.add(small_block(features, values, prior_weights, prior_bias, directions), blocks, targets)
    if raw:
        moments.whiten(basis.kernel_whitening())
    moments.lay_out()
    d, a = moments.cross_small.shape
    device = moments.cross_small.device
    k = directions.shape[-1]
    group = GROUPS.index
    groups = torch.cat(
        [
            torch.tensor([-1]),
            torch.full((p,), group("parents")),
            torch.full((q,), group("products")),
            torch.tensor([group("zero_shot")]),
            torch.full((k,), group("decoder")),
        ]
    ).to(device)  # [a]: -1 the constant, then the group of every small-block column
    counts = basis.valid.sum(dim=1).to(device)  # [d] parents per node
    enough = n >= LINEAR_ROWS_PER_FEATURE * (counts + 2)  # [d]: the parents' values are unpenalized
    fixed = torch.zeros(d, a, dtype=torch.bool, device=device)
    fixed[:, 0] = True
    fixed[:, 1 : 1 + p] = enough[:, None]
    unused = torch.zeros_like(fixed)
    unused[:, 1 : 1 + p] = ~basis.valid.to(device)
    unused[:, 1 + p : 1 + v] = ~basis.product_valid.to(device)

    fits, shrunk = candidate_fits(moments, basis.kernel_mask, n, groups, unused, fixed, iterations)
    quadratic = 2 * num_scales  # the index of the quadratic model
    # [d]: linear nodes whose parents explain so little that the evidence's ridge on their values is at least
    # LOW_SIGNAL_RIDGE of the rows keep it (least squares' variance costs them more than the ridge's bias)
    low_signal = enough & (counts > 0) & (shrunk.penalties[:, 1] >= LOW_SIGNAL_RIDGE * n)
    # [2s, d]: the kernels' fits with the network's groups, then without them
    # [2s, d]: with the kernels' prior log weights (``ParentBasis.log_prior``, uniform but for a short additive
    # scale), so the best is the most probable a posteriori and a mean over them is weighted by the prior
    log_prior = basis.log_prior.to(device).T.repeat(2, 1)  # [2s, d]
    candidates = torch.stack([fit.log_evidence for fit in fits[:quadratic]]) + log_prior
    with_network, network_scale = candidates[:num_scales].max(dim=0)  # [d]
    kernel_alone, kernel_scale = candidates[num_scales:].max(dim=0)
    # the nonlinear model: the best with the network's groups where they beat the kernel alone by the margin
    keeps_network = with_network > kernel_alone + network_margin  # [d]
    model = torch.where(keeps_network, network_scale, kernel_scale + num_scales)  # [d]: an index into fits
    # where it keeps some product and the network's groups were not kept, a node's nonlinear model is the quadratic
    # model, the kernel model, or their average, by the quadratic model's evidence against the kernels' (averaged,
    # as below; ``quadratic_shares``)
    kernel_family = torch.logsumexp(candidates[num_scales:], dim=0)  # [d]
    keeps_products = fits[quadratic].group_scales[:, group("products")] > 0  # [d]
    share = quadratic_shares(fits[quadratic].log_evidence, kernel_family, keeps_products & ~keeps_network)
    takes_quadratic = share == 1  # [d]: the quadratic model alone
    model = torch.where(takes_quadratic, quadratic, model)
    scale = model % num_scales  # [d]: its kernel (and length scale; any, for the quadratic model)
    nonlinear = candidates[:num_scales]  # [s, d]
    # the nonlinear hypothesis's evidence is the mean of its kernels' under their prior (``candidates`` hold the
    # prior's log weights), below the best one's: the best of s candidates is not credited for having been
    # picked (on a linear mechanism, a spurious winner among five would clear the margin more often)
    nonlinear_evidence = torch.logsumexp(nonlinear, dim=0)  # [d]
    # a node of the quadratic model alone, the quadratic model's (one that averages it with the kernel model keeps
    # the kernels')
    nonlinear_evidence = torch.where(takes_quadratic, fits[quadratic].log_evidence, nonlinear_evidence)
    gain = nonlinear_evidence - fits[-1].log_evidence  # [d]
    log_odds = shared_log_odds(gain, counts, evidence_margin, counted)
    mixture = nonlinear_weights(gain, log_odds, counts)  # [d]
    use_full = mixture > 0  # [d]: the nonlinear model is in the node's fit
    share = torch.where(use_full, share, 0.0)  # a linear node has no nonlinear model to share
    every_node = torch.arange(d, device=device)

    def linear(name: str) -> torch.Tensor:
        linear_value = getattr(fits[-1], name)
        shape = (-1, *([1] * (linear_value.dim() - 1)))
        return torch.where(low_signal.reshape(shape), getattr(shrunk, name), linear_value)

    def chosen(name: str, nonlinear_nodes: torch.Tensor) -> torch.Tensor:
        nonlinear_value = torch.stack([getattr(fit, name) for fit in fits[:-1]])[model, every_node]
        linear_value = linear(name)
        shape = (-1, *([1] * (linear_value.dim() - 1)))
        return torch.where(nonlinear_nodes.reshape(shape), nonlinear_value, linear_value)

    penalties = chosen("penalties", use_full)  # [d, a + M]
    # [d, r]: columns in the model (pruned ones get a weight of exactly 0)
    active = ~chosen("pruned", use_full)
    linear_penalties, linear_active = linear("penalties"), ~linear("pruned")  # [d, r]: the linear model's
    scale = torch.where(use_full, scale, 0)
    scatter, cross = moments.reduced_scatter(scale), moments.reduced_cross(scale)
    # the more probable model's noise level and group scales
    likelier = mixture >= 0.5  # [d]
    unsolved = torch.zeros(d, a + moments.num_kernel, dtype=torch.float64, device=device)  # [d, r]
    chosen_models = Adaptation(
        **readout_weights(unsolved, prior_weights, prior_bias, directions, v),  # solved below
        scale=scale,
        full_basis=use_full,
        nonlinear_weight=mixture,
        prior_log_odds=torch.full_like(gain, log_odds),
        evidence_gain=gain,
        network_gain=with_network - kernel_alone,
        noise_scale=chosen("noise_scale", likelier),
        group_scales=chosen("group_scales", likelier),
        penalties=penalties,
        active=active,
        linear_penalties=linear_penalties,
        linear_active=linear_active,
        quadratic_share=share,
        quadratic_penalties=fits[quadratic].penalties,
        quadratic_active=~fits[quadratic].pruned,
        directions=directions,
        prior=(prior_weights, prior_bias),
        parent_slots=p,
        product_slots=q,
    )
    # each model the nodes average, solved at its own penalties for the nodes that weigh it: ((those nodes [k], their
    # Cholesky factors [k, r, r], weights [d, r], 0 for the other nodes), active columns [d, r], weight [d])
    models = []
    for penalties, active, weight in chosen_models.models():
        weighed = torch.nonzero(weight > 0).flatten()  # [k]
        factor, solved = ridge_solve(scatter[weighed], cross[weighed], penalties[weighed], active[weighed])
        models.append(
            ((weighed, factor, torch.zeros_like(cross).index_copy_(0, weighed, solved)), active, weight)
        )
    weights = averaged(
        [weights for (_, _, weights), _, _ in models], [weight[:, None] for _, _, weight in models]
    )
    adaptation = replace(
        chosen_models,
        **readout_weights(weights, prior_weights, prior_bias, directions, v),
        degrees_of_freedom=averaged(hat_traces(scatter, models, d), [weight for _, _, weight in models]),
        num_rows=n,
    )
    chosen_basis = basis.with_scale(scale)
    adaptation.held_out = DeferredHeldOut(
        lambda: HeldOut(*_held_out(rows, adaptation, chosen_basis, models, nodes))
    )
    # deferred, its pass holds the rows' features and the models' factors until it runs: only while they are small
    # (else it runs now, and they are freed with the fit)
    factor_bytes = sum(factor.numel() for (_, factor, _), _, _ in models) * 8
    if rows.kept is None or rows.kept_bytes + factor_bytes > DEFERRED_HELD_OUT_BYTES:
        adaptation.held_out()
    return adaptation


def hat_traces(
    scatter: torch.Tensor,
    models: list[tuple[tuple[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor, torch.Tensor]],
    num_nodes: int,
) -> list[torch.Tensor]:
    """The trace of each model's hat matrix per node, ``tr((S + P)^-1 S)`` over its active columns (the sum of the
    rows' leverages, from the scatter S [d, r, r] alone), [d] per model of ``models`` (as in ``_held_out``; 0 for
    the nodes that do not weigh it)."""
    traces = []
    for (weighed, factor, _), active, _ in models:
        both = active[weighed, :, None] & active[weighed, None, :]  # [k, r, r]
        kept = torch.where(both, scatter[weighed], 0.0)
        trace = (torch.cholesky_inverse(factor) * kept).sum(dim=(1, 2))  # [k]: S symmetric
        traces.append(trace.new_zeros(num_nodes).index_copy_(0, weighed, trace))
    return traces


def merge_adaptations(parts: list[tuple[torch.Tensor, Adaptation]], num_nodes: int) -> Adaptation:
    """One ``Adaptation`` of ``num_nodes`` nodes from fits of disjoint node sets (``(nodes [k] long, fit)``), laid
    out over the most parent slots and kernel features of any part, as ``ParentBasis.merge`` lays out their
    bases: a node's padded columns are out of its model (weight 0, inactive)."""
    p = max(fit.parent_slots for _, fit in parts)
    # the parts' product slots are each a prefix of the most's (``product_pairs``)
    q = max(fit.product_slots for _, fit in parts)
    size = max(fit.basis_weights.shape[1] - fit.value_slots for _, fit in parts)
    k = parts[0][1].directions.shape[-1]
    small = 2 + p + q + k  # constant, parents, products, zero-shot, directions
    first = parts[0][1]
    device = first.bias.device

    def per_node(name: str) -> torch.Tensor:
        sample = getattr(first, name)
        out = torch.zeros(num_nodes, *sample.shape[1:], dtype=sample.dtype, device=device)
        for nodes, fit in parts:
            out[nodes.to(device)] = getattr(fit, name)
        return out

    basis_weights = torch.zeros(num_nodes, p + q + size, dtype=torch.float64, device=device)
    penalties = torch.ones(num_nodes, small + size, dtype=torch.float64, device=device)
    active = torch.zeros(num_nodes, small + size, dtype=torch.bool, device=device)
    linear_penalties, linear_active = torch.ones_like(penalties), torch.zeros_like(active)
    quadratic_penalties, quadratic_active = torch.ones_like(penalties), torch.zeros_like(active)
    prior_weights = torch.zeros(num_nodes, first.prior[0].shape[1], dtype=torch.float64, device=device)
    prior_bias = torch.zeros(num_nodes, dtype=torch.float64, device=device)
    for nodes, fit in parts:
        nodes = nodes.to(device)
        own_p, own_q = fit.parent_slots, fit.product_slots
        m = fit.basis_weights.shape[1] - fit.value_slots
        # the fit's columns (1, parents [own_p], products [own_q], zero-shot, directions [k], kernel [m]) -> the
        # merged layout
        columns = torch.cat(
            [
                torch.arange(1 + own_p),
                torch.arange(1 + p, 1 + p + own_q),
                torch.arange(1 + p + q, small),
                torch.arange(small, small + m),
            ]
        ).to(device)
        basis_columns = torch.cat(
            [torch.arange(own_p), torch.arange(p, p + own_q), torch.arange(p + q, p + q + m)]
        ).to(device)
        basis_weights[nodes[:, None], basis_columns] = fit.basis_weights
        penalties[nodes[:, None], columns] = fit.penalties
        active[nodes[:, None], columns] = fit.active
        linear_penalties[nodes[:, None], columns] = fit.linear_penalties
        linear_active[nodes[:, None], columns] = fit.linear_active
        quadratic_penalties[nodes[:, None], columns] = fit.quadratic_penalties
        quadratic_active[nodes[:, None], columns] = fit.quadratic_active
        prior_weights[nodes], prior_bias[nodes] = fit.prior
    return Adaptation(
        decoder_weights=per_node("decoder_weights"),
        basis_weights=basis_weights,
        bias=per_node("bias"),
        scale=per_node("scale"),
        full_basis=per_node("full_basis"),
        nonlinear_weight=per_node("nonlinear_weight"),
        prior_log_odds=per_node("prior_log_odds"),
        evidence_gain=per_node("evidence_gain"),
        network_gain=per_node("network_gain"),
        noise_scale=per_node("noise_scale"),
        group_scales=per_node("group_scales"),
        penalties=penalties,
        active=active,
        linear_penalties=linear_penalties,
        linear_active=linear_active,
        quadratic_share=per_node("quadratic_share"),
        quadratic_penalties=quadratic_penalties,
        quadratic_active=quadratic_active,
        directions=per_node("directions"),
        prior=(prior_weights, prior_bias),
        parent_slots=p,
        product_slots=q,
        held_out=DeferredHeldOut.merged([(nodes, fit.held_out) for nodes, fit in parts], num_nodes),
        degrees_of_freedom=per_node("degrees_of_freedom"),
        num_rows=first.num_rows,
    )


def readout_weights(
    weights: torch.Tensor,
    prior_weights: torch.Tensor,
    prior_bias: torch.Tensor,
    directions: torch.Tensor,
    v: int,
) -> dict[str, torch.Tensor]:
    """Reduced-basis weights [d, r] -> the ``Adaptation``'s decoder weights [d, f], basis weights [d, v + M] and
    bias [d] (``v`` value slots: the parents' values and their products)."""
    a = 2 + v + directions.shape[-1]
    return {
        "decoder_weights": weights[:, 1 + v, None] * prior_weights
        + torch.einsum("dfk,dk->df", directions, weights[:, 2 + v : a]),
        "basis_weights": torch.cat([weights[:, 1 : 1 + v], weights[:, a:]], dim=1),
        "bias": weights[:, 0] + weights[:, 1 + v] * prior_bias,
    }


def _held_out(
    rows: FitRows,
    adaptation: Adaptation,
    chosen_basis: ParentBasis,
    models: list[tuple[tuple[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor, torch.Tensor]],
    nodes: torch.Tensor | None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Mean leverage [d], mean squared exact leave-one-out residual [d], the same mean with each row's leverage
    capped (``leverage_caps``) [d] and its standard error over the rows [d], of the final fit (penalties fixed),
    from another pass over the rows; ``chosen_basis`` has each node's chosen length scale only; the targets are
    the columns ``nodes``. ``models`` are ``((nodes that weigh it [k], their Cholesky factors, weights), active
    columns, weight [d])`` of the models the nodes average (``Adaptation.models``): the average's leave-one-out
    residual is the same average of the models' (each a ridge, whose leave-one-out residual is exact), and its hat
    matrix the same average of theirs. The rows' leverages and residuals are kept ([n, d] each per model, like the
    rows) for the caps."""
    leverages: list[list[torch.Tensor]] = [[] for _ in models]
    residuals: list[list[torch.Tensor]] = [[] for _ in models]
    for features, z in rows():
        targets = z if nodes is None else z[:, nodes]  # [m, k]
        design = reduced_design(adaptation, features, chosen_basis(z))  # [m, k, r]
        for index, ((weighed, factor, weights), active, _) in enumerate(models):
            every = weighed.numel() == design.shape[1]
            x = (
                torch.where(active, design, 0.0)
                if every
                else torch.where(active[weighed], design[:, weighed], 0.0)
            )
            # [m, k, r]: the rows of the nodes that weigh the model. The hat matrix's diagonal x^T (L L^T)^-1 x =
            # |L^-1 x|^2: one triangular solve
            half = torch.linalg.solve_triangular(factor, x.permute(1, 2, 0), upper=False)  # [k, r, m]
            lever = half.square().sum(dim=1).T  # [m, k]
            residual = targets[:, weighed] - torch.einsum("mkr,kr->mk", x, weights[weighed])  # [m, k]
            if not every:  # 0 for the other nodes, whose average does not read this model
                lever = lever.new_zeros(targets.shape).index_copy_(1, weighed, lever)
                residual = residual.new_zeros(targets.shape).index_copy_(1, weighed, residual)
            leverages[index].append(lever)
            residuals[index].append(residual)
    held, capped, leverage = [], [], []
    for model_leverages, model_residuals in zip(leverages, residuals, strict=True):
        lever, residual = torch.cat(model_leverages), torch.cat(model_residuals)  # [n, d]
        held.append(residual / (1.0 - lever).clamp_min(1e-12))
        capped.append(residual / (1.0 - torch.minimum(lever, leverage_caps(lever))).clamp_min(1e-12))
        leverage.append(lever)
    shares = [weight[None, :] for _, _, weight in models]  # [1, d] each
    held_out, capped_out, leverage_out = (
        averaged(parts, shares) for parts in (held, capped, leverage)
    )  # [n, d]
    squared = capped_out.pow(2)
    standard_error = squared.std(dim=0, correction=0) / math.sqrt(squared.shape[0])  # [d]
    return leverage_out.mean(0), held_out.pow(2).mean(0), squared.mean(0), standard_error


def leverage_caps(leverage: torch.Tensor) -> torch.Tensor:
    """leverage: [n, d] the hat matrix's diagonal per row and node -> the cap of each node's leverage [d] in
    ``capped_held_out_errors``: the larger of ``LEVERAGE_CAP`` and the node's ``LEVERAGE_CAP_QUANTILE``."""
    rank = min(max(math.ceil(LEVERAGE_CAP_QUANTILE * leverage.shape[0]), 1), leverage.shape[0])
    return torch.kthvalue(leverage, rank, dim=0).values.clamp_min(LEVERAGE_CAP)  # [d]
