"""Which nonlinear nodes continue beyond the fitted rows' range (``condfip.model.edge_check``), on synthetic
features (no network): a rising curve continues, a wiggle stays flat, a linear node is never touched, and inside
the range the fit is the same either way."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch

from condfip.model.adaptation import evaluate, reduced_design
from condfip.model.edge_check import (
    CONTINUE_LENGTHS,
    MAX_CONTINUE,
    MIN_CONTINUE_LENGTH,
    MIN_EDGE_ROWS,
    continued_margins,
    continued_nodes,
    uses_products,
)
from condfip.model.weighted_refit import WeightedRefit

sys.path.insert(0, str(Path(__file__).parent))
from test_adaptation import D, _fit, _linear_data, _parents  # noqa: E402


def _curve_and_wiggle(rows: int, seed: int) -> torch.Tensor:
    """Node 2 a parabola of node 0 (it keeps rising beyond the rows), node 3 a fast sine of node 0 plus a linear
    term of node 1, node 4 linear in 2 and 3."""
    z, noise = _linear_data(rows, seed=seed)
    z[:, 2] = 0.8 * z[:, 0] ** 2 + 0.1 * noise[:, 2]
    z[:, 3] = torch.sin(6 * z[:, 0]) + 0.5 * z[:, 1] + 0.1 * noise[:, 3]
    z[:, 4] = 0.5 * z[:, 2] - 1.2 * z[:, 3] + noise[:, 4]
    return z


def _fitted(z: torch.Tensor, **options):
    adaptation, basis, features = _fit(z, **options)
    basis = basis.with_bounds((z.amin(dim=0), z.amax(dim=0)))
    basis.clamp_linear = adaptation.clamps_linear
    continued = continued_nodes(
        adaptation, basis, _parents(), z, lambda rows, nodes: features(rows)[:, nodes]
    )
    return adaptation, basis, features, continued


def test_a_rising_curve_continues_and_a_wiggle_stays_flat():
    for seed in range(3):
        z = _curve_and_wiggle(200, seed)
        adaptation, basis, features, continued = _fitted(z)
        assert adaptation.full_basis[2:4].tolist() == [True, True]
        assert continued.tolist() == [False, False, True, False, False], f"seed {seed}"
    # just beyond the rows (up to the continued node's clamp), the continued parabola is closer to the truth
    margins, product_margins = continued_margins(
        adaptation, basis, _parents(), z, lambda rows, nodes: features(rows)[:, nodes]
    )
    reach = max(float(margins[2]), float(product_margins[2]))
    beyond = torch.zeros(20, D, dtype=torch.float64)
    beyond[:, 0] = z[:, 0].max() + torch.linspace(0.05, 1.0, 20, dtype=torch.float64) * reach
    flat = evaluate(adaptation, features(beyond), basis(beyond))[:, 2]
    basis.margins, basis.product_margins = margins, product_margins
    curve = evaluate(adaptation, features(beyond), basis(beyond))[:, 2]
    truth = 0.8 * beyond[:, 0] ** 2
    assert float((curve - truth).abs().mean()) < 0.5 * float((flat - truth).abs().mean())


def test_a_continued_node_is_clamped_a_length_scale_beyond_the_range_and_the_fit_is_the_same_inside():
    """A continued node's long kernel is clamped a length scale beyond the range (at most MAX_CONTINUE), the
    products its fit kept MAX_CONTINUE beyond it; a node not continued is clamped at the range."""
    z = _curve_and_wiggle(200, seed=0)
    adaptation, basis, features, continued = _fitted(z)
    clamped = basis(z)
    margins, product_margins = continued_margins(
        adaptation, basis, _parents(), z, lambda rows, nodes: features(rows)[:, nodes]
    )
    assert torch.equal((margins > 0) | (product_margins > 0), continued)
    long = continued & (basis.lengths[:, 0] >= MIN_CONTINUE_LENGTH)
    expected = (CONTINUE_LENGTHS * basis.lengths[long, 0]).clamp_max(MAX_CONTINUE)
    assert torch.equal(margins[long], expected) and not bool(margins[~long].any())
    with_products = continued & uses_products(adaptation)
    assert bool(with_products[2])  # the parabola: a square of its parent
    assert bool((product_margins[with_products] == MAX_CONTINUE).all())
    assert not bool(product_margins[~with_products].any())
    basis.margins, basis.product_margins = margins, product_margins
    assert torch.equal(basis(z), clamped)  # every fitted row lies inside its own range: bit for bit
    lower, upper = basis.bounds
    far = (upper + 10.0)[None, :]  # [1, d]: every column far beyond its range
    held = basis.with_bounds(basis.bounds)
    p, v = basis.max_parents, basis.value_slots
    for node in range(D):
        margin, product_margin = float(margins[node]), float(product_margins[node])
        edge = (upper + margin)[None, :]  # where the node's kernel clamp is
        # the kernel part (and the parents' values of a node clamped in its linear part) is flat beyond the
        # widened range, the products beyond theirs; a node not continued is the same as without margins
        assert torch.equal(basis(far)[:, node, v:], basis(edge)[:, node, v:])
        if bool(basis.clamp_linear[node]):
            assert torch.equal(basis(far)[:, node, :p], basis(edge)[:, node, :p])
        product_edge = (upper + product_margin)[None, :]
        assert torch.equal(basis(far)[:, node, p:v], basis(product_edge)[:, node, p:v])
        if margin == 0 and product_margin == 0:
            assert torch.equal(basis(far)[:, node], held(far)[:, node])
    # node 2 (one parent, node 0): between the range and the clamp its kernel part still moves
    between = lower.clone()[None, :]
    between[0, 0] = upper[0] + 0.5 * max(float(margins[2]), float(product_margins[2]))
    assert not torch.equal(basis(between)[:, 2, p:], held(between)[:, 2, p:])


def test_a_short_kernel_never_continues():
    """Only kernels at least MIN_CONTINUE_LENGTH long continue: with the kernels forced short, every kernel is
    clamped at the range whatever the edge rows say; only a node's products may continue."""
    z = _curve_and_wiggle(200, seed=0)
    short = MIN_CONTINUE_LENGTH / 4
    adaptation, basis, features, continued = _fitted(z, length_scales=(short,), additive_scales=())
    assert bool(adaptation.full_basis[2]) and float(basis.lengths[2, 0]) == short
    margins, product_margins = continued_margins(
        adaptation, basis, _parents(), z, lambda rows, nodes: features(rows)[:, nodes]
    )
    assert not bool(margins.any())
    assert torch.equal(continued, product_margins > 0)
    assert not bool((continued & ~uses_products(adaptation)).any())


def test_linear_mechanisms_and_too_few_rows_never_continue():
    z, _ = _linear_data(300, seed=5)
    assert not bool(_fitted(z)[3].any())  # no node kept the nonlinear basis
    z = _curve_and_wiggle(2 * MIN_EDGE_ROWS - 1, seed=1)
    adaptation, basis, features = _fit(z)
    assert not bool(
        continued_nodes(adaptation, basis, _parents(), z, lambda rows, nodes: features(rows)).any()
    )


def test_a_refit_per_node_equals_each_node_refitted_alone():
    """``WeightedRefit`` with one set of row weights per node ([d, n], what the edge check fits on) gives each node
    the weights it gets from a refit with its own weights for every node."""
    z = _curve_and_wiggle(150, seed=2)
    adaptation, basis, features = _fit(z)
    refit = WeightedRefit(adaptation, reduced_design(adaptation, features(z), basis(z)), z)
    counts = (torch.rand(D, len(z), generator=torch.Generator().manual_seed(3)) > 0.2).double()  # [d, n]
    per_node = refit(counts)
    for node in range(D):
        alone = refit(counts[node])
        for name in ("decoder_weights", "basis_weights", "bias"):
            # the same float64 system per node; shared weights leave the rows of weight 0 out of the moments, so
            # they are summed over other rows (the tolerance of test_a_weighted_refit_equals_the_refit_on_the_rows_
            # repeated, whose systems are conditioned up to ~1e10 by the jitter's bound)
            np.testing.assert_allclose(
                getattr(per_node, name)[node], getattr(alone, name)[node], rtol=1e-6, atol=1e-8, err_msg=name
            )


def test_the_fit_of_some_nodes_evaluates_as_those_nodes_of_the_whole_fit():
    """``Adaptation.select`` (what the edge check refits) keeps each selected node's fit exactly."""
    z = _curve_and_wiggle(150, seed=4)
    adaptation, basis, features = _fit(z)
    nodes = torch.tensor([4, 2])
    part = adaptation.select(nodes)
    whole = evaluate(adaptation, features(z), basis(z))[:, nodes]  # [n, 2]
    # the same float64 products in batches of another size: BLAS may order their sums differently (~1e-15)
    torch.testing.assert_close(
        evaluate(part, features(z)[:, nodes], basis(z, nodes)), whole, rtol=1e-12, atol=1e-12
    )
    assert torch.equal(part.full_basis, adaptation.full_basis[nodes]) and part.parent_slots == 2


def test_a_refit_leaves_out_the_columns_no_node_uses():
    """Columns inactive for every node (a merged layout's padding) are left out of the refit's solves: a design
    with such columns appended refits to the same weights, bit for bit, and 0 in them."""
    z = _curve_and_wiggle(150, seed=2)
    adaptation, basis, features = _fit(z)
    design = reduced_design(adaptation, features(z), basis(z))  # [n, d, r]
    extra = 7
    fields = dict(adaptation.__dict__)
    for name in ("penalties", "linear_penalties"):
        fields[name] = torch.cat([fields[name], torch.ones(D, extra, dtype=torch.float64)], dim=1)
    for name in ("active", "linear_active"):
        fields[name] = torch.cat([fields[name], torch.zeros(D, extra, dtype=torch.bool)], dim=1)
    fields["basis_weights"] = torch.cat(
        [fields["basis_weights"], torch.zeros(D, extra, dtype=torch.float64)], 1
    )
    padded = type(adaptation)(**fields)
    noise = torch.randn(len(z), D, extra, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    counts = (torch.rand(len(z), generator=torch.Generator().manual_seed(3)) > 0.2).double()  # [n]
    refit = WeightedRefit(adaptation, design, z)
    padded_refit = WeightedRefit(padded, torch.cat([design, noise], dim=-1), z)
    assert [columns.tolist() for _, columns, _, _ in padded_refit.groups] == [
        columns.tolist() for _, columns, _, _ in refit.groups
    ]
    ours, theirs = padded_refit(counts), refit(counts)
    assert torch.equal(ours.basis_weights[:, :-extra], theirs.basis_weights)
    assert not bool(ours.basis_weights[:, -extra:].any())
    assert torch.equal(ours.decoder_weights, theirs.decoder_weights) and torch.equal(ours.bias, theirs.bias)


def test_a_refit_solves_the_nodes_without_kernel_columns_apart():
    """The nodes that read no kernel column (roots, linear nodes) are refitted apart from those that do, over
    their own few columns; with every row once the refit is the fit."""
    z = _curve_and_wiggle(150, seed=2)
    adaptation, basis, features = _fit(z)
    design = reduced_design(adaptation, features(z), basis(z))  # [n, d, r]
    refit = WeightedRefit(adaptation, design, z)
    (narrow, narrow_columns, _, _), (wide, wide_columns, _, _) = refit.groups  # no kernel columns first
    assert sorted(wide.tolist() + narrow.tolist()) == list(range(D))
    kernel_start = design.shape[-1] - (adaptation.basis_weights.shape[1] - adaptation.value_slots)
    assert bool((narrow_columns < kernel_start).all()) and bool((wide_columns >= kernel_start).any())
    assert 0 in narrow.tolist() and 4 in narrow.tolist()  # a root and the linear node
    again = refit(torch.ones(len(z), dtype=torch.float64))
    # the same float64 system, its moments summed in another order (as the refit test of test_adaptation)
    torch.testing.assert_close(again.basis_weights, adaptation.basis_weights, rtol=0, atol=1e-9)
    torch.testing.assert_close(again.bias, adaptation.bias, rtol=0, atol=1e-9)
