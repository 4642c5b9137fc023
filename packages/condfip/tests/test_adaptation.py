"""The closed-form adaptation (``condfip.model.adaptation``) against least squares, a direct ridge and brute
force, on synthetic features (no network)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from condfip.model.adaptation import (
    LEVERAGE_CAP,
    LEVERAGE_CAP_QUANTILE,
    LINEAR_CLAMP_EVIDENCE,
    LOW_SIGNAL_RIDGE,
    NETWORK_EVIDENCE_MARGIN,
    evaluate,
    fit_adaptation,
    leverage_caps,
    merge_adaptations,
    reduced_design,
)
from condfip.model.evidence import GROUPS, schur_evidence
from condfip.model.model_weights import (
    EVIDENCE_MARGIN,
    MIN_MODEL_WEIGHT,
    PRIOR_NODES,
    QUADRATIC_MIN_WEIGHT,
    averaged,
    averages,
    clear_counts,
    nonlinear_weights,
    quadratic_shares,
    shared_log_odds,
)
from condfip.model.parent_basis import (
    ADDITIVE_SCALES,
    LENGTH_SCALES,
    SHORT_SCALE,
    SHORT_SCALE_MARGIN,
    SHORT_SCALE_PARENTS,
    ParentBasis,
    product_pairs,
)
from condfip.model.weighted_refit import WeightedRefit

D = 5  # nodes: 0, 1 roots; 2 <- 0; 3 <- 0, 1; 4 <- 2, 3
EDGES = [(0, 2), (0, 3), (1, 3), (2, 4), (3, 4)]
F = 6  # decoder features


def _parents() -> torch.Tensor:
    parents = torch.zeros(D, D, dtype=torch.bool)  # parents[i, j]: j -> i
    for source, target in EDGES:
        parents[target, source] = True
    return parents


def _decoder_features(z: torch.Tensor, projection: torch.Tensor, parents: torch.Tensor) -> torch.Tensor:
    """A stand-in for the decoder's features: a fixed nonlinear map of each node's parents. [m, d, f]."""
    masked = z[:, None, :] * parents[None].double()  # [m, d, d]
    return torch.tanh(torch.einsum("mdj,jf->mdf", masked, projection))


def _linear_data(rows: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    generator = np.random.default_rng(seed)
    z = np.zeros((rows, D))
    noise = generator.normal(size=(rows, D)) * 0.5
    z[:, 0] = noise[:, 0]
    z[:, 1] = noise[:, 1]
    z[:, 2] = 1.5 * z[:, 0] + noise[:, 2]
    z[:, 3] = -z[:, 0] + 0.7 * z[:, 1] + noise[:, 3]
    z[:, 4] = 0.5 * z[:, 2] - 1.2 * z[:, 3] + 0.3 + noise[:, 4]
    return torch.as_tensor(z), torch.as_tensor(noise)


def _fit(
    z: torch.Tensor,
    *,
    decoder: bool = True,
    chunk: int = 97,
    length_scales: tuple[float, ...] = LENGTH_SCALES,
    additive_scales: tuple[float, ...] = ADDITIVE_SCALES,
    steps: bool = False,
    **options,
):
    parents = _parents()
    basis = ParentBasis(
        parents,
        z,
        length_scales=length_scales,
        additive_scales=additive_scales,
        targets=z if steps else None,
    )
    projection = torch.randn(D, F, generator=torch.Generator().manual_seed(1), dtype=torch.float64)

    def features(rows: torch.Tensor) -> torch.Tensor:
        out = _decoder_features(rows, projection, parents)
        return out if decoder else torch.zeros_like(out)

    def chunks():
        for start in range(0, z.shape[0], chunk):
            rows = z[start : start + chunk]
            yield features(rows), rows

    prior_weights = torch.full((D, F), 0.1, dtype=torch.float64)
    prior_bias = torch.zeros(D, dtype=torch.float64)
    adaptation = fit_adaptation(chunks, prior_weights, prior_bias, basis, **options)
    return adaptation, basis.with_scale(adaptation.scale), features


def _least_squares(z: torch.Tensor) -> np.ndarray:
    """Per node, the least-squares fit of its column on a constant and its parents: [n, d]."""
    x = z.numpy()
    fitted = np.empty_like(x)
    parents = _parents().numpy()
    for node in range(D):
        design = np.column_stack([np.ones(len(x)), x[:, parents[node]]])
        coefficients, *_ = np.linalg.lstsq(design, x[:, node], rcond=None)
        fitted[:, node] = design @ coefficients
    return fitted


def test_linear_mechanisms_with_many_rows_match_least_squares():
    z, _ = _linear_data(20_000, seed=0)
    adaptation, basis, features = _fit(z, chunk=4096)
    assert not bool(adaptation.full_basis.any())  # the evidence keeps the linear model everywhere
    fitted = evaluate(adaptation, features(z), basis(z)).numpy()
    np.testing.assert_allclose(fitted, _least_squares(z), rtol=0, atol=1e-6)


def test_a_linear_node_its_parents_barely_explain_keeps_the_evidence_ridge():
    """Node 4's parents explain almost none of its column: its fit is the ridge regression at the penalty the
    evidence chose (at least LOW_SIGNAL_RIDGE of the rows), the constant unpenalized; the nodes of strong linear
    parents keep least squares."""
    z, noise = _linear_data(200, seed=6)
    z[:, 4] = 0.03 * z[:, 2] - 0.02 * z[:, 3] + 2.0 * noise[:, 4]
    adaptation, basis, features = _fit(z)
    assert not bool(adaptation.full_basis.any())
    penalties = adaptation.penalties[4, :3]  # the constant, then the parents 2 and 3
    assert bool((penalties[1:] >= LOW_SIGNAL_RIDGE * len(z)).all())
    design = torch.stack([torch.ones(len(z), dtype=torch.float64), z[:, 2], z[:, 3]], dim=1)  # [n, 3]
    weights = torch.linalg.solve(design.T @ design + torch.diag(penalties), design.T @ z[:, 4])
    fitted = evaluate(adaptation, features(z), basis(z))
    # float64 solves of the same system but for the fit's 1e-10 relative jitter
    np.testing.assert_allclose(fitted[:, 4], design @ weights, rtol=0, atol=1e-8)
    np.testing.assert_allclose(fitted[:, 2:4], _least_squares(z)[:, 2:4], rtol=0, atol=1e-8)
    least_squares = _least_squares(z)[:, 4]
    assert float(fitted[:, 4].std()) < 0.5 * float(least_squares.std())  # shrunk toward the mean


@pytest.mark.parametrize("noise_scale", [1e-4, 1e-6])
def test_a_column_nearly_determined_by_its_parents_keeps_the_linear_model(noise_scale: float):
    # heavy-tailed noise far below the parents' share: with a pruning precision that ignores the noise level,
    # the "pruned" kernel groups' log determinants made the nonlinear models win the evidence by many nats
    z, _ = _linear_data(400, seed=2)
    laplace = np.random.default_rng(3).laplace(size=(400, 2)) * noise_scale
    z[:, 3] = -z[:, 0] + 0.7 * z[:, 1] + torch.as_tensor(laplace[:, 0])
    z[:, 4] = 0.5 * z[:, 2] - 1.2 * z[:, 3] + 0.3 + torch.as_tensor(laplace[:, 1])
    adaptation, basis, features = _fit(z)
    assert not bool(adaptation.full_basis[3:].any())
    fitted = evaluate(adaptation, features(z), basis(z)).numpy()[:, 3:]
    # least squares up to the fit's jitter (1e-10 of the largest scatter diagonal: about 1e-10 of each weight)
    np.testing.assert_allclose(fitted, _least_squares(z)[:, 3:], rtol=0, atol=1e-9)


def test_nonlinear_mechanism_keeps_the_full_basis_and_beats_least_squares():
    z, noise = _linear_data(600, seed=1)
    z[:, 4] = torch.sin(2 * z[:, 2]) * 2 + z[:, 3] ** 2 + noise[:, 4] * 0.2
    adaptation, basis, features = _fit(z)
    assert bool(adaptation.full_basis[4])
    fitted = evaluate(adaptation, features(z), basis(z))[:, 4]
    adapted_error = float(((z[:, 4] - fitted) ** 2).mean())
    linear_error = float(((z[:, 4].numpy() - _least_squares(z)[:, 4]) ** 2).mean())
    assert adapted_error < 0.25 * linear_error


def test_the_evidence_gain_decides_the_basis_and_the_linear_clamp():
    z, noise = _linear_data(600, seed=1)
    z[:, 4] = torch.sin(2 * z[:, 2]) * 2 + z[:, 3] ** 2 + noise[:, 4] * 0.2
    adaptation, _, _ = _fit(z)
    has_parents = _parents().any(dim=1)
    odds = shared_log_odds(adaptation.evidence_gain, has_parents.long())
    assert torch.equal(adaptation.prior_log_odds, torch.full((D,), odds, dtype=torch.float64))
    expected = nonlinear_weights(adaptation.evidence_gain, odds, has_parents.long())
    assert torch.equal(adaptation.nonlinear_weight, expected)
    assert torch.equal(adaptation.full_basis, adaptation.nonlinear_weight > 0)
    # clearly nonlinear: flat beyond the rows
    assert float(adaptation.evidence_gain[4]) >= LINEAR_CLAMP_EVIDENCE
    assert torch.equal(
        adaptation.clamps_linear, adaptation.full_basis & (adaptation.evidence_gain >= LINEAR_CLAMP_EVIDENCE)
    )
    assert bool(adaptation.clamps_linear[4])
    # linear mechanisms forced onto the nonlinear basis: the evidence barely moves, so no node is clamped and
    # each extrapolates its linear part beyond the rows
    linear, _ = _linear_data(600, seed=2)
    forced, _, _ = _fit(linear, evidence_margin=-1e9)
    assert bool(forced.full_basis.all())
    assert not bool(forced.clamps_linear.any())


def test_the_nonlinear_weight_is_the_posterior_probability_near_the_prior_odds_and_one_model_elsewhere():
    gain = torch.tensor([-5.0, 0.0, 1.9, 2.0, 3.0, 4.0, 4.2, 9.0, 0.5, 3.5], dtype=torch.float64)
    parents = torch.tensor([1, 1, 1, 1, 2, 1, 3, 1, 0, 0])
    weight = nonlinear_weights(gain, 3.0, parents)
    posterior = torch.sigmoid(gain - 3.0)
    inside = (posterior >= MIN_MODEL_WEIGHT) & (posterior <= 1 - MIN_MODEL_WEIGHT) & (parents > 0)
    assert inside.tolist() == [False, False, False, True, True, True, False, False, False, False]
    torch.testing.assert_close(weight[inside], posterior[inside], rtol=0, atol=0)
    assert weight[~inside].tolist() == [0.0, 0.0, 0.0, 1.0, 1.0, 0.0, 1.0]  # a root: the likelier model whole


def test_the_quadratic_share_is_its_posterior_probability_near_even_odds_and_one_model_elsewhere():
    quadratic = torch.tensor([-3.0, -2.0, -1.0, 0.0, 1.5, 2.1, 2.3, 5.0, 0.0], dtype=torch.float64)
    kernel = torch.zeros_like(quadratic)
    eligible = torch.tensor([True] * 8 + [False])
    share = quadratic_shares(quadratic, kernel, eligible)
    posterior = torch.sigmoid(quadratic - kernel)
    inside = (posterior >= QUADRATIC_MIN_WEIGHT) & (posterior <= 1 - QUADRATIC_MIN_WEIGHT) & eligible
    assert inside.tolist() == [False, True, True, True, True, True, False, False, False]
    torch.testing.assert_close(share[inside], posterior[inside], rtol=0, atol=0)
    assert share[~inside].tolist() == [0.0, 1.0, 1.0, 0.0]  # not eligible: the kernel model


def test_averaged_keeps_a_single_model_bit_for_bit_and_sums_the_others():
    def tensor(values):
        return torch.tensor([values], dtype=torch.float64)

    parts = [tensor([0.1, 0.3]), tensor([0.7, 0.2]), tensor([1.0 / 3.0, 5.0])]
    weights = [tensor([1.0, 0.2]), tensor([0.0, 0.5]), tensor([0.0, 0.3])]
    out = averaged(parts, weights)
    assert out[0, 0] == parts[0][0, 0]
    assert math.isclose(float(out[0, 1]), 0.2 * 0.3 + 0.5 * 0.2 + 0.3 * 5.0, rel_tol=1e-15)
    assert averaged(parts[:1], weights[:1]) is parts[0]


def test_the_prior_odds_fall_only_in_a_table_of_clearly_nonlinear_nodes():
    """The nodes of one table share the prior share of nonlinear mechanisms: updated by the clearly nonlinear
    nodes (gain above CLEAR_NONLINEAR_GAIN), the prior counting as PRIOR_NODES nodes, never below the prior's."""
    base = 1 / (1 + math.exp(EVIDENCE_MARGIN))
    parents = torch.tensor([0, 1, 1, 2, 1, 1])
    # no clear node (roots never count, whatever their gain): the prior odds, for any number of nodes
    quiet = torch.tensor([50.0, 5.9, 2.0, -1.0, 0.0, 3.0], dtype=torch.float64)
    assert shared_log_odds(quiet, parents) == EVIDENCE_MARGIN
    assert shared_log_odds(torch.zeros(500, dtype=torch.float64), torch.ones(500)) == EVIDENCE_MARGIN
    # four clear nodes of five: share (4 + PRIOR_NODES base) / (5 + PRIOR_NODES)
    curved = torch.tensor([0.0, 9.0, 30.0, 7.0, 100.0, 2.0], dtype=torch.float64)
    share = (4 + PRIOR_NODES * base) / (5 + PRIOR_NODES)
    assert math.isclose(shared_log_odds(curved, parents), math.log((1 - share) / share), rel_tol=1e-12)
    assert shared_log_odds(curved, parents) < EVIDENCE_MARGIN
    # nodes of the same table fitted before count too (kernel tiers)
    assert clear_counts(curved, parents) == (4, 5)
    share = (6 + PRIOR_NODES * base) / (8 + PRIOR_NODES)
    assert math.isclose(
        shared_log_odds(curved, parents, counted=(2, 3)), math.log((1 - share) / share), rel_tol=1e-12
    )


def test_a_node_between_the_models_is_their_average_and_refits_as_one():
    """Where the evidence sits near the prior odds the node's F_hat is the nonlinear model's weight times its
    ridge fit plus the rest times the linear model's, each solved directly at its own penalties; a refit with
    every row once gives the same weights."""
    z, noise = _linear_data(60, seed=4)
    z[:, 4] = torch.sin(z[:, 2]) + noise[:, 4]
    adaptation, basis, features = _fit(z, chunk=17)
    share = float(adaptation.nonlinear_weight[4])
    assert MIN_MODEL_WEIGHT <= share <= 1 - MIN_MODEL_WEIGHT
    models = adaptation.models()
    assert torch.equal(models[-1][0], adaptation.linear_penalties)
    assert math.isclose(float(models[-1][2][4]), 1 - share, rel_tol=1e-15)
    _assert_direct_average_and_refit(adaptation, basis, features, z, [4])
    assert not bool(
        adaptation.linear_active[4, 1 + basis.max_parents :].any()
    )  # the linear model: 1 and parents


def test_a_node_between_the_quadratic_and_kernel_models_averages_them():
    """Where the quadratic model's evidence is near the kernels' the nonlinear model is their average, weighted by
    ``quadratic_shares``: F_hat is every model's ridge fit times its weight (the quadratic and the kernel model's
    sharing the nonlinear weight, the linear model the rest), and a refit with every row once is the same."""
    z, noise = _linear_data(100, seed=1)
    z[:, 2] = torch.nn.functional.softplus(3 * z[:, 0]) + noise[:, 2]
    adaptation, basis, features = _fit(z, decoder=False)
    shared = averages(adaptation.quadratic_share) & (adaptation.nonlinear_weight > 0)  # [d]
    assert bool(shared[2]) and float(adaptation.nonlinear_weight[2]) == 1.0
    nodes = torch.nonzero(shared).flatten().tolist()
    models = adaptation.models()
    total = sum(weight for _, _, weight in models)
    np.testing.assert_allclose(total.numpy(), 1.0, rtol=0, atol=1e-15)
    quadratic = [weight for penalties, _, weight in models if penalties is adaptation.quadratic_penalties][0]
    torch.testing.assert_close(
        quadratic[shared], (adaptation.nonlinear_weight * adaptation.quadratic_share)[shared]
    )
    # the quadratic model reads no kernel column, the kernel model (the node's chosen one) no product
    p, q = basis.max_parents, basis.num_products
    assert not bool(adaptation.quadratic_active[2, 2 + p + q :].any())
    assert not bool(adaptation.active[2, 1 + p : 1 + p + q].any())
    _assert_direct_average_and_refit(adaptation, basis, features, z, nodes)


def _assert_direct_average_and_refit(adaptation, basis, features, z, nodes) -> None:
    """The nodes' F_hat is the average of their models (``Adaptation.models``), each solved directly at its own
    penalties; a ``WeightedRefit`` with every row once gives the same."""
    designs = reduced_design(adaptation, features(z), basis(z))  # [n, d, r]
    adapted = evaluate(adaptation, features(z), basis(z))  # [n, d]
    for node in nodes:
        direct = torch.zeros(len(z), dtype=torch.float64)
        for penalties, active, weight in adaptation.models():
            penalties, active = penalties[node], active[node]
            x = torch.where(active, designs[:, node], 0.0)
            scatter = x.T @ x
            jitter = 1e-10 * float(torch.diagonal(scatter).max().clamp_min(1.0))
            system = scatter + torch.diag(penalties) + jitter * torch.eye(len(active), dtype=torch.float64)
            system = torch.where(active[:, None] & active[None, :], system, torch.diag((~active).double()))
            direct += float(weight[node]) * (x @ torch.linalg.solve(system, x.T @ z[:, node]))
        # float64 solves of systems conditioned up to ~1e10 (the jitter's bound)
        np.testing.assert_allclose(adapted[:, node].numpy(), direct.numpy(), rtol=1e-6, atol=1e-6)
    refit = WeightedRefit(adaptation, designs, z)(torch.ones(len(z)))
    np.testing.assert_allclose(
        evaluate(refit, features(z), basis(z)).numpy(), adapted.numpy(), rtol=0, atol=1e-9
    )


def test_a_fit_split_into_node_sets_and_merged_is_the_fit():
    """``merge_adaptations`` lays every per-node field out again, the linear model's penalties and the model
    average's weight included: parts of one fit (``Adaptation.select``) merge back to it exactly."""
    z, noise = _linear_data(60, seed=4)
    z[:, 4] = torch.sin(z[:, 2]) + noise[:, 4]
    adaptation, _, _ = _fit(z, chunk=17)
    assert 0 < float(adaptation.nonlinear_weight[4]) < 1
    parts = [torch.tensor([0, 2, 4]), torch.tensor([1, 3])]
    merged = merge_adaptations([(nodes, adaptation.select(nodes)) for nodes in parts], D)
    for name, value in adaptation.__dict__.items():
        if isinstance(value, torch.Tensor):
            assert torch.equal(getattr(merged, name), value), name
    assert all(torch.equal(a, b) for a, b in zip(merged.prior, adaptation.prior, strict=True))


def test_the_network_groups_stay_only_above_their_margin_over_the_kernel_alone():
    z, noise = _linear_data(400, seed=4)
    z[:, 4] = torch.tanh(2 * z[:, 2]) + 0.3 * z[:, 3] ** 2 + noise[:, 4] * 0.3
    adaptation, basis, features = _fit(z)
    network = [GROUPS.index("zero_shot"), GROUPS.index("decoder")]
    dropped = ~(adaptation.full_basis & (adaptation.network_gain > NETWORK_EVIDENCE_MARGIN))  # [d]
    # node 4 is nonlinear and the stand-in network's groups add nothing to its kernel: dropped
    assert bool(adaptation.full_basis[4]) and bool(dropped[4])
    assert not bool(adaptation.reads_decoder[dropped].any())
    assert bool((adaptation.group_scales[dropped][:, network] == 0).all())
    # the rule at its extremes: the network's groups always offered (the fit before the margin) or never
    always, _, _ = _fit(z, network_margin=-1e9)
    never, never_basis, _ = _fit(z, network_margin=1e9)
    assert not bool(never.reads_decoder.any())
    assert bool(always.reads_decoder[4])  # kept with a gain of ~0 nats
    torch.testing.assert_close(always.network_gain, adaptation.network_gain, rtol=0, atol=0)
    # without the network's groups the decoder's features barely matter: the same fit with them switched off, up
    # to the held-out columns' pull at the pruning precision (exp(25) against a scatter of about 1e3: ~1e-8 of each
    # fixed-point step, which the stopping rule's tolerance lets through to the penalties as ~1e-6)
    blind, blind_basis, blind_features = _fit(z, decoder=False, network_margin=1e9)
    torch.testing.assert_close(
        evaluate(never, features(z), never_basis(z)),
        evaluate(blind, blind_features(z), blind_basis(z)),
        rtol=0,
        atol=1e-5,
    )


def test_the_nonlinear_evidence_is_the_mean_over_the_kernels():
    """The nonlinear model's evidence is the mean of each kernel's under the kernels' prior: the evidence gain of a
    fit over all candidates equals the prior-weighted log mean exp of the gains of fits over one each."""
    z, noise = _linear_data(300, seed=3)
    z[:, 4] = torch.tanh(2 * z[:, 2]) + 0.3 * z[:, 3] ** 2 + noise[:, 4] * 0.3
    together, _, _ = _fit(z)
    alone = [_fit(z, length_scales=(scale,), additive_scales=())[0] for scale in LENGTH_SCALES]
    alone += [_fit(z, length_scales=(), additive_scales=(scale,))[0] for scale in ADDITIVE_SCALES]
    gains = torch.stack([fit.evidence_gain for fit in alone])  # [s, d]
    log_prior = ParentBasis(_parents(), z).log_prior[
        4
    ]  # [s]: the default kernels' prior of node 4 (2 parents)
    assert log_prior.shape == (len(alone),) and float(log_prior.exp().sum()) == pytest.approx(1.0, abs=1e-12)
    expected = torch.logsumexp(gains + log_prior[:, None], dim=0)
    # a node that takes the quadratic model (its products' group kept; the kernels' fits have none) is credited
    # with the quadratic model's evidence, above the kernels' mean: compare the others
    products = GROUPS.index("products")
    quadratic = together.group_scales[:, products] > 0
    for fit in alone:
        quadratic |= fit.group_scales[:, products] > 0
    # and only nodes the kernels clearly fit: near a gain of 0 (nodes 2 and 3 are linear) a kernel's fixed point
    # can settle on a pruned group or on a tiny one, from rounding that differs with the batch
    kernels = (gains.amin(dim=0) > 10.0) & ~quadratic
    assert bool(kernels[4])
    # the same per-kernel fixed points, their eigendecompositions batched with other kernels' (LAPACK may round
    # differently by batch): ~1e-10 relative of log evidences of ~1e3 nats
    torch.testing.assert_close(together.evidence_gain[kernels], expected[kernels], rtol=0, atol=1e-6)
    assert bool((together.evidence_gain < gains.amax(dim=0))[kernels].all())  # below the best kernel's
    took = together.group_scales[:, products] > 0
    assert bool((together.evidence_gain >= expected - 1e-6)[took].all())


def test_without_decoder_features_equals_a_direct_ridge_on_the_parent_basis():
    """With the decoder block switched off (zero features), the fit is a ridge regression on the columns of [1,
    parents, their products, kernel features] its model keeps, with the chosen penalties: solve it directly."""
    z, noise = _linear_data(300, seed=2)
    z[:, 4] = torch.tanh(z[:, 2]) * 2 - z[:, 3] * z[:, 2] + noise[:, 4] * 0.3
    adaptation, basis, features = _fit(z, decoder=False)
    v = basis.value_slots
    for node in range(2, D):
        # reduced: [1, parents and their products (v), zero-shot, decoder (k), kernel]
        penalties, active = adaptation.penalties[node], adaptation.active[node]
        k = penalties.numel() - 1 - v - 1 - (basis.size - v)
        network = torch.zeros_like(active)
        network[1 + v : 2 + v + k] = True  # the zero-feature columns drop out
        used = active[~network]  # the columns in the node's model (the others have a weight of exactly 0)
        keep = penalties[~network][used]
        design = torch.cat([torch.ones(len(z), 1, dtype=torch.float64), basis(z)[:, node]], dim=1)[:, used]
        scatter = design.T @ design
        jitter = 1e-10 * float(
            torch.diagonal(scatter).max().clamp_min(1.0)
        )  # the fit's guard, as in the module
        system = scatter + torch.diag(keep) + jitter * torch.eye(len(keep), dtype=torch.float64)
        weights = torch.linalg.solve(system, design.T @ z[:, node])
        direct = design @ weights
        adapted = evaluate(adaptation, features(z), basis(z))[:, node]
        # two float64 solves of the same system (conditioned up to ~1e10 by the jitter's bound)
        np.testing.assert_allclose(adapted.numpy(), direct.numpy(), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("mechanism", ["sine", "softplus"])
def test_held_out_errors_match_brute_force(mechanism):
    """The exact leave-one-out residuals of the final fit (penalties fixed) equal refitting without each row; for
    a node that averages its models (the linear and the nonlinear one, the quadratic and the kernel model),
    refitting each model without the row and averaging their predictions."""
    if mechanism == "sine":
        z, noise = _linear_data(60, seed=4)
        z[:, 4] = torch.sin(z[:, 2]) + noise[:, 4]
        adaptation, basis, features = _fit(z, chunk=17)
        assert (
            0 < float(adaptation.nonlinear_weight[4]) < 1
        )  # node 4 averages the linear and nonlinear models
        nodes = (2, 4)
    else:
        z, noise = _linear_data(100, seed=1)
        z[:, 2] = torch.nn.functional.softplus(3 * z[:, 0]) + noise[:, 2]
        adaptation, basis, features = _fit(z, decoder=False, chunk=37)
        assert 0 < float(adaptation.quadratic_share[2]) < 1  # node 2 averages the quadratic and kernel models
        nodes = (2,)
    averaged = adaptation.models()
    design = reduced_design(adaptation, features(z), basis(z))  # [n, d, r]
    scatter_full = torch.einsum("ndr,nds->drs", design, design)
    for node in nodes:
        models = [
            (penalties[node], active[node], float(weight[node])) for penalties, active, weight in averaged
        ]
        squares = []
        for row in range(len(z)):
            keep = torch.arange(len(z)) != row
            predicted = 0.0
            for penalties, active, weight in models:
                if weight == 0:
                    continue
                x = torch.where(active, design[:, node], 0.0)  # [n, r]
                # the fit's jitter is relative to the full scatter's diagonal over the model's columns
                kept = torch.where(active[:, None] & active[None, :], scatter_full[node], 0.0)
                jitter = 1e-10 * float(torch.diagonal(kept).max().clamp_min(1.0))
                system = (
                    x[keep].T @ x[keep]
                    + torch.diag(penalties)
                    + jitter * torch.eye(len(active), dtype=torch.float64)
                )
                system = torch.where(
                    active[:, None] & active[None, :], system, torch.diag((~active).double())
                )
                weights = torch.linalg.solve(system, x[keep].T @ z[keep, node])
                predicted = predicted + weight * float(x[row] @ weights)
            squares.append(float((z[row, node] - predicted) ** 2))
        # float64 solves of systems conditioned up to ~1e10 (the jitter's bound): agreement to 1e-6 relative
        np.testing.assert_allclose(float(adaptation.held_out_errors[node]), np.mean(squares), rtol=1e-6)


def test_the_degrees_of_freedom_are_the_traces_of_the_hat_matrices():
    """``degrees_of_freedom``, from the moments alone, is each node's hat-matrix trace: the held-out pass's
    leverages summed over the rows (a node averaging the linear and nonlinear models included); least squares on
    ``p`` parents and a constant takes exactly ``p + 1``."""
    z, noise = _linear_data(60, seed=4)
    z[:, 4] = torch.sin(z[:, 2]) + noise[:, 4]
    adaptation, _, _ = _fit(z, chunk=17)
    assert 0 < float(adaptation.nonlinear_weight[4]) < 1 and adaptation.num_rows == 60
    # float64 traces of systems conditioned up to ~1e10 (the jitter's bound)
    torch.testing.assert_close(adaptation.fitted_leverage, adaptation.mean_leverage, rtol=1e-9, atol=1e-12)
    linear, _ = _linear_data(200, seed=5)
    least_squares, _, _ = _fit(linear, chunk=64)
    assert not bool(least_squares.full_basis.any())
    parent_counts = _parents().sum(dim=1).double()  # [d]
    torch.testing.assert_close(least_squares.degrees_of_freedom, parent_counts + 1, rtol=1e-9, atol=0.0)


def test_capped_held_out_errors_match_the_hat_matrix():
    """The leave-one-out error with capped leverage equals its formula from the final ridge computed directly:
    residuals of the fitted F_hat over (1 - min(h_ii, cap)), h_ii the hat matrix's diagonal and the cap the larger
    of LEVERAGE_CAP and the node's LEVERAGE_CAP_QUANTILE of h_ii. A cap of 1
    would be the exact leave-one-out error; the capped one never exceeds it."""
    z, noise = _linear_data(80, seed=4)
    z[:, 4] = torch.sin(z[:, 2]) + noise[:, 4]
    z[:3, 2] = torch.tensor([6.0, -5.0, 7.0], dtype=torch.float64)  # rows of high leverage
    adaptation, basis, features = _fit(z, chunk=23)
    fitted = evaluate(adaptation, features(z), basis(z))  # [n, d]
    for node in (2, 3, 4):
        active = adaptation.active[node]
        design = torch.where(
            active, reduced_design(adaptation, features(z), basis(z))[:, node], 0.0
        )  # [n, r]
        scatter = design.T @ design
        jitter = 1e-10 * float(torch.diagonal(scatter).max().clamp_min(1.0))
        eye = torch.eye(len(active), dtype=torch.float64)
        system = scatter + torch.diag(adaptation.penalties[node]) + jitter * eye
        system = torch.where(active[:, None] & active[None, :], system, torch.diag((~active).double()))
        leverage = (design * torch.linalg.solve(system, design.T).T).sum(dim=1)  # [n]
        residual = z[:, node] - fitted[:, node]
        rank = math.ceil(LEVERAGE_CAP_QUANTILE * len(leverage))  # the cap: at least this quantile of leverage
        cap = max(LEVERAGE_CAP, float(torch.sort(leverage).values[rank - 1]))
        squares = (residual / (1.0 - leverage.clamp_max(cap))).pow(2)  # [n]
        expected = float(squares.mean())
        # float64 solves of systems conditioned up to ~1e10 (the jitter's bound): agreement to 1e-6 relative
        np.testing.assert_allclose(float(adaptation.capped_held_out_errors[node]), expected, rtol=1e-6)
        standard_error = float(squares.std(correction=0)) / math.sqrt(len(squares))  # of the mean over rows
        np.testing.assert_allclose(
            float(adaptation.capped_held_out_standard_errors[node]), standard_error, rtol=1e-5
        )
        capped, exact = (
            float(adaptation.capped_held_out_errors[node]),
            float(adaptation.held_out_errors[node]),
        )
        assert capped <= exact * (1 + 1e-9)
    # node 4 reads node 2's outlying rows through the kernel basis: there the cap bites
    assert float(adaptation.capped_held_out_errors[4]) < float(adaptation.held_out_errors[4]) * (1 - 1e-3)


def test_leverage_caps_rise_with_the_typical_leverage_of_the_rows():
    """A few rows of leverage near 1 leave the cap at LEVERAGE_CAP; a node whose rows mostly have high leverage
    (a near-interpolating fit) is capped at its LEVERAGE_CAP_QUANTILE, so its held-out error is not shrunk."""
    n = 20
    few_outliers = torch.full((n,), 0.1, dtype=torch.float64)
    few_outliers[:3] = 0.999
    mostly_high = torch.linspace(0.9, 0.99, n, dtype=torch.float64)
    leverage = torch.stack([few_outliers, mostly_high], dim=1)  # [n, 2]
    caps = leverage_caps(leverage)
    rank = math.ceil(LEVERAGE_CAP_QUANTILE * n)
    assert float(caps[0]) == LEVERAGE_CAP
    assert float(caps[1]) == float(mostly_high[rank - 1])
    assert float(caps[1]) > 0.95


def test_evidence_margin_zero_still_fits_and_roots_are_constant():
    z, _ = _linear_data(200, seed=5)
    adaptation, basis, features = _fit(z, evidence_margin=0.0)
    fitted = evaluate(adaptation, features(z), basis(z))
    for root in (0, 1):
        assert torch.allclose(fitted[:, root], z[:, root].mean().expand(len(z)), atol=1e-9)


def test_fewer_than_two_rows_is_an_error():
    z, _ = _linear_data(1, seed=6)
    with pytest.raises(ValueError, match="at least 2 rows"):
        _fit(z)


def test_constant_and_collinear_parents_stay_finite():
    z, _ = _linear_data(100, seed=7)
    z[:, 0] = 1.0  # a constant root: node 2's only parent is constant
    z[:, 1] = z[:, 0] * 2  # collinear parents of node 3
    adaptation, basis, features = _fit(z)
    fitted = evaluate(adaptation, features(z), basis(z))
    assert torch.isfinite(fitted).all()
    assert torch.isfinite(adaptation.held_out_errors).all()


def test_each_node_reads_only_its_parents():
    z, _ = _linear_data(200, seed=8)
    adaptation, basis, features = _fit(z)
    point = z[:3].clone().requires_grad_(True)
    with torch.enable_grad():
        out = evaluate(adaptation, features(point), basis(point))
        for node in range(D):
            (gradient,) = torch.autograd.grad(out[:, node].sum(), point, retain_graph=True)
            reads = gradient.abs().sum(0) > 0
            allowed = _parents()[node]
            assert not bool((reads & ~allowed).any()), (
                f"node {node} reads {reads.nonzero().flatten().tolist()}"
            )


def test_beyond_the_rows_range_the_nonlinear_part_stays_flat():
    """The kernel's inputs are clamped to the fitted rows' range; the parents' values too for the nodes that kept
    the nonlinear basis, while a linear node extrapolates linearly."""
    parents = _parents()
    lower, upper = -torch.ones(D, dtype=torch.float64), torch.ones(D, dtype=torch.float64)
    rows = torch.rand(50, D, generator=torch.Generator().manual_seed(0), dtype=torch.float64) * 2 - 1
    basis = ParentBasis(parents, rows, bounds=(lower, upper))
    basis.clamp_linear = torch.tensor([False, False, False, False, True])
    at_bound = torch.ones(1, D, dtype=torch.float64)
    beyond = torch.full((1, D), 5.0, dtype=torch.float64)
    inside, outside = basis(at_bound), basis(beyond)
    p = basis.max_parents
    torch.testing.assert_close(outside[:, :, p:], inside[:, :, p:], rtol=0, atol=0)  # kernel: flat
    torch.testing.assert_close(outside[:, 4], inside[:, 4], rtol=0, atol=0)  # node 4: flat entirely
    assert torch.equal(outside[0, 3, :2], torch.tensor([5.0, 5.0], dtype=torch.float64))  # node 3: linear


def _evidence_problem(seed: int, nodes: int = 3):
    """Moments of a random small block [d, n, a] and kernel block in its eigenbasis and of targets, the leading
    arguments of ``schur_evidence`` (every small column in a penalized group), its unpenalized and held-out
    masks (none), and the raw (small block, kernel block, targets)."""
    generator = torch.Generator().manual_seed(seed)
    n, a, m = 40, 4, 12
    small = torch.randn(nodes, n, a, generator=generator, dtype=torch.float64)
    kernel = torch.randn(nodes, n, m, generator=generator, dtype=torch.float64)
    y = torch.randn(nodes, n, generator=generator, dtype=torch.float64) + small[..., 1] * 2
    eigenvalues, eigenvectors = torch.linalg.eigh(kernel.transpose(1, 2) @ kernel)
    moments = (
        small.transpose(1, 2) @ small,
        small.transpose(1, 2) @ kernel @ eigenvectors,
        eigenvalues,
        (small.transpose(1, 2) @ y[..., None])[..., 0],
        (eigenvectors.transpose(1, 2) @ kernel.transpose(1, 2) @ y[..., None])[..., 0],
        (y * y).sum(-1),
        n,
        torch.tensor([0, 0, 1, 2]),
    )
    return moments, torch.zeros(nodes, a, dtype=torch.bool), (small, kernel, y)


def test_schur_evidence_equals_the_gaussian_marginal_likelihood():
    """The log evidence computed through the Schur complement (kernel block in its eigenbasis) equals log N(y;
    0, X diag(1 / alpha) X^T + I / beta) evaluated directly on the rows, at the precisions the fit reports."""
    moments, none, (small, kernel, y) = _evidence_problem(11, nodes=2)  # every small column penalized
    n = y.shape[1]  # rows
    fit = schur_evidence(*moments, none, none, kernel_excluded=False, iterations=5)
    assert fit.group_scales.shape == (2, len(GROUPS))
    for node in range(2):
        beta = float(fit.noise_scale[node]) ** -2
        precision = fit.penalties[node] * beta  # [a + M]
        design = torch.cat([small[node], kernel[node]], dim=1)  # [n, a + M]
        covariance = design @ torch.diag(1 / precision) @ design.T + torch.eye(n, dtype=torch.float64) / beta
        expected = torch.distributions.MultivariateNormal(torch.zeros(n, dtype=torch.float64), covariance)
        # both float64; the only difference is the fit's 1e-10 relative jitter on the scatter
        np.testing.assert_allclose(
            float(fit.log_evidence[node]), float(expected.log_prob(y[node])), rtol=1e-7
        )


def test_schur_evidence_steps_per_node_equal_separate_fits():
    """Nodes given different step counts in one call are fitted as calls with those counts one by one: each node
    stops on its own, and a node of one step updates its noise precision only."""
    moments, none, _ = _evidence_problem(5)
    together = schur_evidence(
        *moments, none, none, kernel_excluded=False, iterations=torch.tensor([12, 1, 3])
    )
    for node, steps in enumerate((12, 1, 3)):
        alone = schur_evidence(*moments, none, none, kernel_excluded=False, iterations=steps)
        for name in ("log_evidence", "penalties", "noise_scale", "group_scales"):
            torch.testing.assert_close(
                getattr(together, name)[node], getattr(alone, name)[node], rtol=1e-12, atol=0
            )
    one_step = schur_evidence(*moments, none, none, kernel_excluded=False, iterations=1)
    # its groups keep the prior precision 1 (scale 1); the products' group has no column here (scale 0)
    assert torch.equal(one_step.group_scales[:, :3], torch.ones(3, 3, dtype=torch.float64))


def test_the_candidate_models_fit_the_same_in_batches_of_any_size(monkeypatch: pytest.MonkeyPatch):
    """The candidate models of every node are fitted in batches by memory (``EVIDENCE_BATCH_BYTES``); a batch of
    one (candidate, node) pair gives the same fit as one batch of all (float64 rounding)."""
    z, noise = _linear_data(120, seed=6)
    z[:, 4] = torch.sin(2 * z[:, 2]) + z[:, 3] ** 2 * 0.3 + 0.2 * noise[:, 4]
    whole, _, _ = _fit(z)
    monkeypatch.setattr("condfip.model.candidates.EVIDENCE_BATCH_BYTES", 1)
    single, _, _ = _fit(z)
    for name, value in whole.__dict__.items():
        if name in ("evidence_gain", "network_gain"):
            # differences of two log evidences of a few hundred nats, each a float64 sum over the rows whose order
            # BLAS may change with the batch's shape and the threads: about 1e-12 of a few hundred, with margin
            torch.testing.assert_close(getattr(single, name), value, rtol=0, atol=1e-9, msg=name)
        elif isinstance(value, torch.Tensor) and value.is_floating_point():
            torch.testing.assert_close(getattr(single, name), value, rtol=1e-9, atol=1e-12, msg=name)
        elif isinstance(value, torch.Tensor):
            assert torch.equal(getattr(single, name), value), name


def test_each_node_keeps_the_length_scale_with_the_higher_evidence():
    """A wiggly mechanism takes the short length scale, a gentle one a longer scale; the chosen basis has one
    scale's kernel features per node."""
    z, noise = _linear_data(800, seed=9)
    z[:, 2] = torch.sin(4 * z[:, 0]) + 0.1 * noise[:, 2]
    z[:, 4] = torch.tanh(0.5 * z[:, 2] + 0.5 * z[:, 3]) + 0.5 * z[:, 2] ** 2 * 0.2 + 0.05 * noise[:, 4]
    adaptation, chosen, _ = _fit(z)
    assert bool(adaptation.full_basis[2]) and bool(adaptation.full_basis[4])
    assert int(adaptation.scale[2]) == 0 and int(adaptation.scale[4]) > 0
    full = ParentBasis(_parents(), z)
    m = full.num_kernel
    assert chosen.size == full.value_slots + m
    v = full.value_slots
    # the same float64 products, batched in tensors of another shape: BLAS may sum them in another order; the
    # whitened features (at most ~1e5 times a kernel value in [0, 1]) agree to ~1e-10
    for node in (2, 4):
        start = v + int(adaptation.scale[node]) * m
        torch.testing.assert_close(
            chosen(z)[:, node, v:], full(z)[:, node, start : start + m], rtol=0, atol=1e-9
        )


def test_an_additive_mechanism_keeps_the_additive_kernel_and_extrapolates_off_the_joint_support():
    """Node 4 is a sum of one function per parent, and its two parents are correlated: the evidence picks the
    additive kernel, which predicts the mechanism where each parent is within its own range but the pair is where
    no row was (what an intervention on one parent asks) closer than the best joint Gaussian kernel."""
    z, noise = _linear_data(400, seed=4)

    def mechanism(first: torch.Tensor, second: torch.Tensor) -> torch.Tensor:
        return torch.sin(2 * first) + torch.tanh(2 * second)

    z[:, 3] = -0.6 * z[:, 2] + 0.5 * noise[:, 3]  # correlation about -0.9
    z[:, 4] = mechanism(z[:, 2], z[:, 3]) + 0.1 * noise[:, 4]
    additive, additive_basis, features = _fit(z, decoder=False)
    joint, joint_basis, _ = _fit(z, decoder=False, additive_scales=())
    assert int(additive.scale[4]) >= len(LENGTH_SCALES) > int(joint.scale[4])
    # a grid over each parent's 5-95 % range, kept where the nearest row (in these two parents) is 0.4 away
    levels = torch.linspace(0.05, 0.95, 15, dtype=torch.float64)
    first, second = torch.quantile(z[:, 2], levels), torch.quantile(z[:, 3], levels)
    pairs = torch.cartesian_prod(first, second)  # [225, 2]
    off = torch.cdist(pairs, z[:, 2:4]).amin(dim=1) > 0.4
    assert int(off.sum()) >= 20
    queries = torch.zeros(int(off.sum()), D, dtype=torch.float64)
    queries[:, 2:4] = pairs[off]
    truth = mechanism(queries[:, 2], queries[:, 3])
    errors = [
        (evaluate(fit, features(queries), basis(queries))[:, 4] - truth).square().mean().sqrt()
        for fit, basis in ((additive, additive_basis), (joint, joint_basis))
    ]
    assert errors[0] < 0.5 * errors[1]


def test_a_weighted_refit_equals_the_refit_on_the_rows_repeated():
    """Refitting the chosen model with row weights (a bootstrap resample's counts) is the refit on the rows
    repeated that often; with unit weights it is the original fit."""
    z, noise = _linear_data(120, seed=12)
    z[:, 4] = torch.sin(2 * z[:, 2]) + z[:, 3] + 0.3 * noise[:, 4]
    adaptation, basis, features = _fit(z)
    design = reduced_design(adaptation, features(z), basis(z))  # [n, d, r]
    refit = WeightedRefit(adaptation, design, z)
    counts = torch.as_tensor(np.random.default_rng(0).integers(0, 3, size=len(z)), dtype=torch.float64)
    weighted = refit(counts)
    repeat = counts.long()
    repeated = WeightedRefit(adaptation, design.repeat_interleave(repeat, 0), z.repeat_interleave(repeat, 0))
    plain = repeated(torch.ones(int(repeat.sum()), dtype=torch.float64))
    # float64 solves of one system (conditioned up to ~1e10 by the jitter's bound), moments summed differently
    for name in ("decoder_weights", "basis_weights", "bias"):
        np.testing.assert_allclose(getattr(weighted, name), getattr(plain, name), rtol=1e-6, atol=1e-8)
    same = refit(torch.ones(len(z), dtype=torch.float64))
    np.testing.assert_allclose(
        evaluate(same, features(z), basis(z)),
        evaluate(adaptation, features(z), basis(z)),
        rtol=1e-6,
        atol=1e-8,
    )
    assert not torch.allclose(weighted.basis_weights, adaptation.basis_weights)


def test_an_interaction_is_fitted_by_the_products_and_keeps_its_shape_off_the_rows():
    """Node 4 the product of its two correlated parents, node 2 a parabola of its parent: their fits keep the
    products and drop the kernel (a kernel on top of a quadratic must earn the prior log odds), and predict the
    interaction where the parents never were jointly (opposite signs, within each one's range)."""
    z, noise = _linear_data(400, seed=12)
    z[:, 2] = 0.8 * z[:, 0] ** 2 + 0.1 * noise[:, 2]
    z[:, 3] = z[:, 0] + 0.3 * noise[:, 3]  # close to node 0, so node 4's parents move together
    z[:, 4] = 2.0 * z[:, 2] * z[:, 3] + 0.1 * noise[:, 4]
    adaptation, basis, features = _fit(z, decoder=False)
    products = GROUPS.index("products")
    p, v = basis.max_parents, basis.value_slots
    for node in (2, 4):
        assert bool(adaptation.full_basis[node]) and float(adaptation.group_scales[node, products]) > 0
        assert not bool(adaptation.basis_weights[node, v:].any())  # the kernel dropped: its weights exactly 0
    # node 4's weight on the product of its two parent slots (node 2 in slot 0, node 3 in slot 1)
    pair = product_pairs(p).tolist().index([0, 1])
    assert abs(float(adaptation.basis_weights[4, p + pair]) - 2.0) < 0.05
    off = torch.zeros(3, D, dtype=torch.float64)
    off[:, 2] = torch.tensor([0.5, 1.0, 0.2], dtype=torch.float64)  # inside node 2's range (it is a square)
    off[:, 3] = torch.tensor([-0.5, -0.3, -1.0], dtype=torch.float64)  # inside node 3's range, opposite signs
    predicted = evaluate(adaptation, features(off), basis(off))[:, 4]
    # the fit's own error off the rows: its weights' statistical error (noise 0.05 on 400 rows) times values up to 1,
    # and the weight its correlated terms trade (node 2 is nearly a square of node 3)
    torch.testing.assert_close(predicted, 2.0 * off[:, 2] * off[:, 3], rtol=0, atol=0.05)


def test_the_short_additive_scale_has_its_prior_margin():
    parents = torch.zeros(7, 7, dtype=torch.bool)
    parents[5, :SHORT_SCALE_PARENTS] = (
        True  # node 5: as many parents as may take the short scale; node 6: one more
    )
    parents[6, : SHORT_SCALE_PARENTS + 1] = True
    basis = ParentBasis(
        parents, torch.randn(50, 7, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    )
    short = [len(LENGTH_SCALES) + i for i, scale in enumerate(ADDITIVE_SCALES) if scale < SHORT_SCALE]
    assert short, "the default kernels include a short additive scale"
    others = [s for s in range(basis.num_scales) if s not in short]
    gaps = (
        basis.log_prior[:6, others][:, :, None] - basis.log_prior[:6, short][:, None, :]
    )  # roots and node 5
    torch.testing.assert_close(gaps, torch.full_like(gaps, SHORT_SCALE_MARGIN), rtol=0, atol=1e-12)
    assert bool(torch.isneginf(basis.log_prior[6, short]).all())
    total = basis.log_prior.exp().sum(dim=1)
    torch.testing.assert_close(total, torch.ones_like(total), rtol=0, atol=1e-12)


def test_a_threshold_takes_the_short_additive_scale_and_fits_it_better():
    """Node 4 steps by 2 where its first parent crosses 0.3: the evidence picks the short additive kernel, which
    predicts the mechanism on new rows with a fraction of the error of the best fit without it; a smooth
    mechanism of the same parents keeps a longer kernel (the short one's prior margin)."""
    z, noise = _linear_data(400, seed=6)

    def step(first: torch.Tensor, second: torch.Tensor) -> torch.Tensor:
        return 2.0 * (first > 0.3).double() + 0.5 * second

    z[:, 4] = step(z[:, 2], z[:, 3]) + 0.2 * noise[:, 4]
    with_short, short_basis, features = _fit(z, decoder=False)
    without, long_basis, _ = _fit(z, decoder=False, additive_scales=(SHORT_SCALE,))
    assert ADDITIVE_SCALES[int(with_short.scale[4]) - len(LENGTH_SCALES)] < SHORT_SCALE
    fresh, _ = _linear_data(2000, seed=7)
    truth = step(fresh[:, 2], fresh[:, 3])
    errors = [
        (evaluate(fit, features(fresh), basis(fresh))[:, 4] - truth).pow(2).mean().sqrt()
        for fit, basis in ((with_short, short_basis), (without, long_basis))
    ]
    assert float(errors[0]) < 0.8 * float(errors[1]), errors
    z[:, 4] = torch.tanh(z[:, 2]) + 0.5 * z[:, 3] + 0.2 * noise[:, 4]
    smooth, _, _ = _fit(z, decoder=False)
    chosen = int(smooth.scale[4])
    assert chosen < len(LENGTH_SCALES) or ADDITIVE_SCALES[chosen - len(LENGTH_SCALES)] >= SHORT_SCALE


def test_a_step_takes_the_step_kernel_and_fits_it_better():
    """Node 4 jumps by 2 where its first parent crosses 0.3: the evidence picks the step kernel (its threshold found
    from the rows), which predicts new rows with a fraction of the error of the best fit without it; a smooth
    mechanism of the same parents does not take it (the prior of its search over thresholds)."""
    z, noise = _linear_data(400, seed=6)

    def step(first: torch.Tensor, second: torch.Tensor) -> torch.Tensor:
        return 2.0 * (first > 0.3).double() + 0.5 * second

    z[:, 4] = step(z[:, 2], z[:, 3]) + 0.2 * noise[:, 4]
    with_step, step_basis, features = _fit(z, decoder=False, steps=True)
    without, kernel_basis, _ = _fit(z, decoder=False)
    assert bool(step_basis.steps[4, 0])
    torch.testing.assert_close(
        step_basis.thresholds[4, 0], torch.tensor(0.3, dtype=torch.float64), rtol=0, atol=0.05
    )
    fresh, _ = _linear_data(2000, seed=7)
    truth = step(fresh[:, 2], fresh[:, 3])
    errors = [
        (evaluate(fit, features(fresh), basis(fresh))[:, 4] - truth).pow(2).mean().sqrt()
        for fit, basis in ((with_step, step_basis), (without, kernel_basis))
    ]
    assert float(errors[0]) < 0.5 * float(errors[1]), errors
    z[:, 4] = torch.tanh(z[:, 2]) + 0.5 * z[:, 3] + 0.2 * noise[:, 4]
    _, smooth_basis, _ = _fit(z, decoder=False, steps=True)
    assert not bool(smooth_basis.steps[4, 0])
