"""The adaptation's parent basis: Gaussian-kernel features at landmark rows (Nyström), whitened."""

from __future__ import annotations

import math

import pytest
import torch

import condfip.model.parent_basis as parent_basis_module
from condfip.model.kernels import STEP_SIDE_SHARE
from condfip.model.parent_basis import (
    ADDITIVE_SCALES,
    JITTER,
    LANDMARK_ROWS,
    LANDMARKS_PER_PARENT,
    LENGTH_SCALES,
    MAX_LANDMARKS,
    NUM_LANDMARKS,
    PRODUCT_PARENTS,
    SHORT_SCALE,
    SHORT_SCALE_PARENTS,
    STEP_PARENTS,
    ParentBasis,
    landmark_count,
    product_pairs,
    spread_landmarks,
)

D = 4  # 0, 1 roots; 2 <- 0; 3 <- 0, 1, 2


def _parents() -> torch.Tensor:
    parents = torch.zeros(D, D, dtype=torch.bool)  # parents[i, j] for j -> i
    parents[2, 0] = True
    parents[3, [0, 1, 2]] = True
    return parents


def _rows(n: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(n, D, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def _kernel(a: torch.Tensor, b: torch.Tensor, length: float) -> torch.Tensor:
    return torch.exp(-torch.cdist(a, b).square() / (2 * length**2))


def test_features_reproduce_the_kernel_on_the_landmarks() -> None:
    """Inner products of the whitened features equal the Gaussian kernel between landmark rows (node 3, every
    length scale), and between any row and a landmark (the Nyström approximation is exact on the span)."""
    rows = _rows(30)  # fewer rows than landmarks: every row is a landmark
    basis = ParentBasis(_parents(), rows)
    assert basis.num_kernel == 30
    v, m = basis.value_slots, basis.num_kernel
    features = basis(rows)[:, 3, v:]  # [n, sM]
    others = _rows(7, seed=1)
    queries = basis(others)[:, 3, v:]
    for scale, factor in enumerate(LENGTH_SCALES):
        length = factor * math.sqrt(3)  # node 3 has 3 parents
        block = slice(scale * m, (scale + 1) * m)
        gram = features[:, block] @ features[:, block].T
        # exact up to the JITTER ridge: K (K + JITTER)^-1 K differs from K by at most JITTER on the landmarks, and
        # a row's kernel against them by at most sqrt(JITTER) / 2 per landmark
        torch.testing.assert_close(gram, _kernel(rows[:, :3], rows[:, :3], length), rtol=0, atol=2 * JITTER)
        cross = queries[:, block] @ features[:, block].T
        expected = _kernel(others[:, :3], rows[:, :3], length)
        torch.testing.assert_close(cross, expected, rtol=0, atol=math.sqrt(JITTER))


def _additive_kernel(a: torch.Tensor, b: torch.Tensor, length: float) -> torch.Tensor:
    """The mean over the columns of a Gaussian kernel in each, by brute force."""
    return torch.stack([_kernel(a[:, [j]], b[:, [j]], length) for j in range(a.shape[1])]).mean(dim=0)


@pytest.mark.parametrize(("node", "parents"), [(3, [0, 1, 2]), (2, [0])])
def test_additive_features_reproduce_the_mean_of_one_kernel_per_parent(node, parents) -> None:
    """The additive scales' features reproduce ``mean_j k(x_j, z_j)`` over the node's own parents, also for a
    node with fewer parents than the basis has slots (its padded slots add nothing)."""
    rows = _rows(30)
    basis = ParentBasis(_parents(), rows)
    v, m = basis.value_slots, basis.num_kernel
    assert basis.num_scales == len(LENGTH_SCALES) + len(ADDITIVE_SCALES)
    features = basis(rows)[:, node, v:]  # [n, sM]
    others = _rows(7, seed=1) * 2
    queries = basis(others)[:, node, v:]
    for position, length in enumerate(ADDITIVE_SCALES):
        block = slice((len(LENGTH_SCALES) + position) * m, (len(LENGTH_SCALES) + position + 1) * m)
        if len(parents) == 1 and length in LENGTH_SCALES:
            # one parent: the additive kernel at a joint kernel's length is that kernel, not a candidate of its own
            assert not bool(basis.kernel_mask[node, len(LENGTH_SCALES) + position])
            assert not bool(features[:, block].any())
            continue
        gram = features[:, block] @ features[:, block].T
        expected = _additive_kernel(rows[:, parents], rows[:, parents], length)
        torch.testing.assert_close(gram, expected, rtol=0, atol=2 * JITTER)
        cross = queries[:, block] @ features[:, block].T
        expected = _additive_kernel(others[:, parents], rows[:, parents], length)
        torch.testing.assert_close(cross, expected, rtol=0, atol=math.sqrt(JITTER))


def test_far_from_every_landmark_the_kernel_features_vanish() -> None:
    """Without bounds, a row far from the data has kernel features of 0: the mechanism returns to its linear
    part (random Fourier features would keep oscillating there); the parents' values pass through."""
    basis = ParentBasis(_parents(), _rows(100))
    far = torch.full((1, D), 400.0, dtype=torch.float64)  # 50+ of the longest length scales away
    features = basis(far)
    p, v = basis.max_parents, basis.value_slots
    assert features[0, 2:, v:].abs().max() < 1e-12
    torch.testing.assert_close(features[0, 3, :p], far[0, :3])


def test_combine_equals_the_features_times_the_weights() -> None:
    """``combine`` folds the whitening into the weights; it equals ``basis(z) @ w`` per node."""
    rows = _rows(120)
    basis = ParentBasis(_parents(), rows, bounds=(rows.amin(0), rows.amax(0))).with_scale(
        torch.tensor([0, 1, 2, 1])
    )
    weights = torch.randn(D, basis.size, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    z = _rows(50, seed=3) * 2
    nodes = torch.tensor([3, 2])
    direct = torch.einsum("mkq,kq->mk", basis(z, nodes), weights[nodes])
    # the same float64 sums in another order, of whitened features up to ~1e4: agreement to ~1e-9 relative
    torch.testing.assert_close(basis.combine(z, weights[nodes], nodes), direct, rtol=1e-9, atol=1e-9)
    linear = weights.clone()
    linear[2, basis.value_slots :] = (
        0.0  # node 2 fitted without its kernel: its kernel is skipped, its value unchanged
    )
    expected = torch.einsum("mkq,kq->mk", basis(z, nodes), linear[nodes])
    torch.testing.assert_close(basis.combine(z, linear[nodes], nodes), expected, rtol=1e-9, atol=1e-9)
    # all nodes at once: the same sums batched over more nodes, equal to float64 rounding
    whole = basis.combine(z, linear)[:, [3, 2]]
    torch.testing.assert_close(whole, basis.combine(z, linear[nodes], nodes), rtol=1e-9, atol=1e-9)


def test_repeated_landmark_rows_stay_finite_and_reproduce_the_kernel() -> None:
    """A discrete parent repeats landmark rows: the whitening leaves the null directions out (no NaN, no huge
    features) and the kernel between the distinct values is still reproduced."""
    rows = _rows(60)
    rows[:, 0] = torch.tensor([-1.0, 0.0, 1.0]).repeat(20)  # node 2's only parent takes 3 values
    basis = ParentBasis(_parents(), rows)
    features = basis(rows)[:, 2, basis.value_slots :][:, : basis.num_kernel]  # node 2, shortest scale
    assert torch.isfinite(features).all()
    distinct = torch.tensor([[-1.0], [0.0], [1.0]], dtype=torch.float64)
    gram = features[:3] @ features[:3].T
    # repeated landmarks: (K + JITTER)^-1 splits each distinct value over its copies, still within ~JITTER
    torch.testing.assert_close(gram, _kernel(distinct, distinct, LENGTH_SCALES[0]), rtol=0, atol=2 * JITTER)


def test_a_basis_needs_a_landmark_row() -> None:
    with pytest.raises(ValueError, match="at least one landmark row"):
        ParentBasis(_parents(), torch.zeros(0, D, dtype=torch.float64))


def test_landmarks_grow_with_the_square_root_of_the_rows_beyond_landmark_rows_up_to_the_cap() -> None:
    assert [landmark_count(n) for n in (1, 50, 120, 400)] == [1, 50, NUM_LANDMARKS, NUM_LANDMARKS]
    assert landmark_count(4 * LANDMARK_ROWS) == 2 * NUM_LANDMARKS  # four times the rows: twice the landmarks
    assert landmark_count(10**6) == MAX_LANDMARKS
    counts = [landmark_count(n) for n in range(1, 6000, 7)]
    assert counts == sorted(counts)  # never fewer landmarks for more rows


def test_landmarks_grow_with_the_parents_of_the_most_parented_node_up_to_the_cap() -> None:
    rows = LANDMARK_ROWS
    assert landmark_count(rows, 1) == landmark_count(rows) == NUM_LANDMARKS
    assert (
        landmark_count(rows, NUM_LANDMARKS // LANDMARKS_PER_PARENT) == NUM_LANDMARKS
    )  # few parents: as before
    assert landmark_count(rows, 10) == 10 * LANDMARKS_PER_PARENT
    assert landmark_count(rows, 50) == MAX_LANDMARKS
    assert landmark_count(100, 10) == 100  # never more than the rows
    assert landmark_count(4 * rows, 10) == 10 * LANDMARKS_PER_PARENT  # the larger of the two rules
    assert landmark_count(4 * rows, 2) == 2 * NUM_LANDMARKS
    counts = [landmark_count(rows, p) for p in range(1, 40)]
    assert counts == sorted(counts)


def test_split_holds_the_same_features_node_major() -> None:
    rows = _rows(300)
    basis = ParentBasis(_parents(), rows, num_landmarks=50)
    z = _rows(37, seed=1)
    values, kernel = basis.split(z)  # [m, d, v], [d, s, m, M]
    v = basis.value_slots  # 3 parent slots and their 6 products
    assert (
        v == 9
        and values.shape == (37, D, v)
        and kernel.shape
        == (
            D,
            len(LENGTH_SCALES) + len(ADDITIVE_SCALES),
            37,
            50,
        )
    )
    together = basis(z)  # [m, d, v + sM]
    assert torch.equal(together[..., :v], values)
    assert torch.equal(together[..., v:], kernel.permute(2, 0, 1, 3).flatten(start_dim=2))
    nodes = torch.tensor([3, 2])
    assert torch.equal(basis.split(z, nodes)[1], kernel[nodes])
    # the pairs outside the kernel mask (a root's, whose features would be constants; node 2's additive kernel at a
    # joint length, which with one parent is that joint kernel) are exactly 0
    repeats = [len(LENGTH_SCALES) + i for i, scale in enumerate(ADDITIVE_SCALES) if scale in LENGTH_SCALES]
    expected = torch.zeros_like(basis.kernel_mask)
    expected[2:] = True
    expected[2, repeats] = False
    assert repeats and torch.equal(basis.kernel_mask, expected)
    assert not bool(kernel[~expected].any()) and bool((kernel[expected].abs().sum(dim=(1, 2)) > 0).all())


def test_kernel_blocks_hold_the_split_features_of_the_pairs_a_fit_may_take() -> None:
    """``kernel_blocks`` gives, per scale, the features ``split`` gives for the (node, scale) pairs of
    ``kernel_mask`` only: no root's, no short additive scale on a node of more than ``SHORT_SCALE_PARENTS``
    parents, and no short scale at all where no node may take it."""
    d = (
        SHORT_SCALE_PARENTS + 3
    )  # 0 .. SHORT_SCALE_PARENTS roots; then one node of them all, one of one parent
    parents = torch.zeros(d, d, dtype=torch.bool)
    parents[d - 2, : d - 2] = True
    parents[d - 1, 0] = True
    rows = torch.randn(200, d, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    basis = ParentBasis(parents, rows, num_landmarks=40)
    short = [len(LENGTH_SCALES) + i for i, scale in enumerate(ADDITIVE_SCALES) if scale < SHORT_SCALE]
    assert short and basis.num_scales == len(LENGTH_SCALES) + len(ADDITIVE_SCALES)
    expected = torch.zeros(d, basis.num_scales, dtype=torch.bool)
    expected[d - 2 :] = True
    expected[d - 2, short] = False  # too many parents for the short scale
    # one parent: the additive kernel at a joint kernel's length is that joint kernel
    expected[
        d - 1, [len(LENGTH_SCALES) + i for i, scale in enumerate(ADDITIVE_SCALES) if scale in LENGTH_SCALES]
    ] = False
    assert torch.equal(basis.kernel_mask, expected)
    z = torch.randn(23, d, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    values, kernel = basis.split(z)
    block_values, blocks = basis.kernel_blocks(z)
    assert torch.equal(block_values, values) and len(blocks) == basis.num_scales
    for scale, block in enumerate(blocks):
        torch.testing.assert_close(block, kernel[basis.kernel_mask[:, scale], scale], rtol=1e-12, atol=1e-12)
    assert not bool(kernel[~basis.kernel_mask].any())
    # given the columns, the step kernel joins as the last scale, for the node of one parent only
    stepped = ParentBasis(parents, rows, num_landmarks=40, targets=rows)
    assert bool(stepped.steps[:, -1].all()) and stepped.num_scales == basis.num_scales + 1
    assert stepped.kernel_mask[:, -1].tolist() == [False] * (d - 1) + [True]
    assert bool(torch.isneginf(stepped.log_prior[d - 2, -1]))  # more than STEP_PARENTS parents
    # with the one-parent node gone no node may take the short scale: it is left out of the basis
    fewer = ParentBasis(parents[:-1, :-1], rows[:, :-1], num_landmarks=40)
    assert fewer.num_scales == basis.num_scales - len(short)


def test_a_merged_basis_combines_each_node_over_its_own_landmarks(monkeypatch) -> None:
    """``ParentBasis.merge`` pads a node to the most landmarks of any part; ``combine`` equals the padded
    ``basis(z) @ w`` and evaluates each node's kernel against its own landmarks only, joint, additive or step
    (node 2, one parent in three slots, takes the additive kernel; node 3 the step kernel, its thresholds kept)."""
    rows = _rows(120)
    bounds = (rows.amin(0), rows.amax(0))
    parents = _parents()
    few, many = torch.tensor([0, 1, 2]), torch.tensor([3])
    additive = len(LENGTH_SCALES)  # the index of the first additive scale
    small = ParentBasis(parents[few], rows, num_landmarks=40, bounds=bounds).with_scale(
        torch.tensor([0, 1, additive])
    )
    stepped = ParentBasis(parents[many], rows, num_landmarks=100, bounds=bounds, targets=rows[:, many])
    assert bool(stepped.steps[0, -1]) and bool(stepped.kernel_mask[0, -1])
    large = stepped.with_scale(torch.tensor([stepped.num_scales - 1]))
    merged = ParentBasis.merge([(few, small), (many, large)], D)
    assert merged.num_kernel == 100 and merged.node_landmarks.tolist() == [40, 40, 40, 100]
    assert merged.additive[:, 0].tolist() == [False, False, True, False]
    assert merged.steps[:, 0].tolist() == [False, False, False, True]
    assert torch.equal(merged.thresholds[3], stepped.thresholds[0])
    assert merged.parent_counts.tolist() == [0, 0, 1, 3]
    weights = torch.randn(D, merged.size, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    for node in few.tolist():
        weights[node, merged.value_slots + 40 :] = 0.0  # what a merged fit holds in the padded landmarks
    z = _rows(30, seed=5) * 2
    # node 2's additive features are its own, whatever the padded parent slots and landmarks (the same products
    # with zeros added: equal to float64 rounding of features up to ~1e4)
    torch.testing.assert_close(
        merged(z)[:, 2, merged.value_slots : merged.value_slots + 40],
        small(z)[:, 2, small.value_slots :],
        rtol=0,
        atol=1e-9,
    )
    direct = torch.einsum("mkq,kq->mk", merged(z), weights)
    sizes = []
    kernel = ParentBasis._kernel
    monkeypatch.setattr(
        ParentBasis,
        "_kernel",
        lambda self, inside, nodes, size=None: sizes.append(size) or kernel(self, inside, nodes, size),
    )
    # the same float64 sums in another order (whitened features up to ~1e4): ~1e-9 relative
    torch.testing.assert_close(merged.combine(z, weights), direct, rtol=1e-9, atol=1e-9)
    assert sorted(sizes) == [40, 100]
    # the features of nodes of fewer landmarks than the merged basis: against their own landmarks only, the
    # padding exactly 0, the rest the whole basis's
    sizes.clear()
    values, features = merged.split(z, few)
    assert sizes == [40] and features.shape[-1] == 100 and not bool(features[..., 40:].any())
    whole_values, whole_features = merged.split(z)
    assert torch.equal(values, whole_values[:, few])
    torch.testing.assert_close(features, whole_features[few], rtol=1e-9, atol=1e-9)


def test_the_features_are_the_same_bits_with_and_without_autograd() -> None:
    """The kernel is built scale by scale into one tensor: with autograd on (what the Jacobian tests use) the
    same products as without, bit for bit, and differentiable."""
    rows = _rows(60)
    basis = ParentBasis(_parents(), rows)
    z = _rows(9, seed=2)
    tracked = z.clone().requires_grad_(True)
    with torch.enable_grad():
        with_grad = basis(tracked)
    assert with_grad.requires_grad
    with torch.inference_mode():
        without = basis(z)
    assert torch.equal(with_grad.detach(), without)


def test_products_are_the_clamped_parents_products_of_degree_two() -> None:
    """After the parents' values come their products of degree two (squares and pairs), from the inputs clamped
    to the bounds like the kernel's; a node's slots beyond its own parents are 0, and so are all of a node's with
    more than PRODUCT_PARENTS parents."""
    rows = _rows(40)
    bounds = (rows.amin(0), rows.amax(0))
    basis = ParentBasis(_parents(), rows, bounds=bounds)
    p, v = basis.max_parents, basis.value_slots
    assert basis.num_products == 6 and v == p + 6  # three parent slots: 3 squares and 3 pairs
    z = _rows(9, seed=6) * 3  # some rows beyond the bounds
    values = basis(z)
    clamped = torch.minimum(torch.maximum(z, bounds[0]), bounds[1])
    x = clamped[:, [0, 1, 2]]  # node 3's parents
    expected = torch.stack([x[:, a] * x[:, b] for a, b in product_pairs(3).tolist()], dim=1)
    assert torch.equal(values[:, 3, p:v], expected)
    torch.testing.assert_close(values[:, 3, :p], z[:, :3])  # the linear part is not clamped
    square = clamped[:, 0] ** 2  # node 2: one parent, one square; its other product slots are 0
    assert torch.equal(
        values[:, 2, p:v], torch.stack([square] + [torch.zeros(9, dtype=torch.float64)] * 5, 1)
    )
    assert not bool(values[:, :2, :v].any())  # roots: nothing
    many = torch.zeros(PRODUCT_PARENTS + 2, PRODUCT_PARENTS + 2, dtype=torch.bool)
    many[-1, :-1] = True  # one node of PRODUCT_PARENTS + 1 parents
    many[-2, :2] = True  # one of two
    wide = ParentBasis(many, torch.randn(30, PRODUCT_PARENTS + 2, dtype=torch.float64))
    assert wide.num_products == PRODUCT_PARENTS * (PRODUCT_PARENTS + 1) // 2
    assert not bool(wide.product_valid[-1].any()) and int(wide.product_valid[-2].sum()) == 3


def test_product_pairs_of_fewer_slots_are_a_prefix() -> None:
    assert product_pairs(2).tolist() == [[0, 0], [0, 1], [1, 1]]
    assert torch.equal(product_pairs(4)[:6], product_pairs(3))
    assert product_pairs(0).shape == (0, 2)


def test_a_merged_basis_keeps_each_parts_products_in_place() -> None:
    rows = _rows(60)
    bounds = (rows.amin(0), rows.amax(0))
    parents = _parents()
    few, many = torch.tensor([0, 1, 2]), torch.tensor([3])
    small = ParentBasis(parents[few], rows, num_landmarks=20, bounds=bounds).with_scale(
        torch.tensor([0, 0, 1])
    )
    large = ParentBasis(parents[many], rows, num_landmarks=30, bounds=bounds).with_scale(torch.tensor([2]))
    merged = ParentBasis.merge([(few, small), (many, large)], D)
    z = _rows(11, seed=7) * 2
    for nodes, part in ((few, small), (many, large)):
        own = part(z)[:, :, part.max_parents : part.value_slots]  # [m, k, q]
        placed = merged(z)[:, nodes, merged.max_parents : merged.value_slots]
        assert torch.equal(placed[..., : part.num_products], own)
        assert not bool(placed[..., part.num_products :].any())


def test_step_thresholds_split_each_parent_where_the_column_jumps(monkeypatch):
    """``targets`` give each node of at most ``STEP_PARENTS`` parents a threshold per parent, where its column
    splits best, between two rows and with ``STEP_SIDE_SHARE`` of the rows on either side; the step kernel is
    the share of the node's parents on the same side of theirs, reproduced on the landmarks by the features."""
    rows = _rows(300)
    targets = rows.clone()
    targets[:, 2] = 3.0 * (rows[:, 0] > -0.4).double() + 0.1 * rows[:, 2]
    targets[:, 3] = 2.0 * (rows[:, 1] > 0.5).double() - 2.0 * (rows[:, 2] > 0.0).double() + 0.1 * rows[:, 3]
    basis = ParentBasis(_parents(), rows, num_landmarks=300, targets=targets)
    step = int(torch.nonzero(basis.steps[0]).flatten()[0])
    assert bool(basis.kernel_mask[2:, step].all()) and not bool(basis.kernel_mask[:2, step].any())
    # node 2 <- 0; node 3 <- 0, 1, 2 (slots in that order); node 3's first parent does not move it: any threshold
    torch.testing.assert_close(
        basis.thresholds[2, 0], torch.tensor(-0.4, dtype=torch.float64), rtol=0, atol=0.05
    )
    torch.testing.assert_close(
        basis.thresholds[3, 1:], torch.tensor([0.5, 0.0], dtype=torch.float64), rtol=0, atol=0.08
    )
    for node, parents in ((2, [0]), (3, [0, 1, 2])):
        sorted_values = torch.sort(rows[:, parents], dim=0).values  # a threshold lies between two rows
        for slot, column in enumerate(sorted_values.T):
            t = basis.thresholds[node, slot]
            below = int((column < t).sum())
            assert below >= math.ceil(STEP_SIDE_SHARE * 300) and 300 - below >= math.ceil(
                STEP_SIDE_SHARE * 300
            )
    v, m = basis.value_slots, basis.num_kernel
    features = basis(rows)[:, 3, v + step * m : v + (step + 1) * m]  # [n, M]: every row is a landmark
    sides = rows[:, :3] > basis.thresholds[3]  # [n, 3]
    share = (sides[:, None, :] == sides[None, :, :]).double().mean(dim=-1)  # [n, n]
    torch.testing.assert_close(features @ features.T, share, rtol=0, atol=2 * JITTER)
    # the search in groups of one node (a bounded memory) finds the same thresholds
    monkeypatch.setattr("condfip.model.parent_basis.STEP_SEARCH_ELEMENTS", 1)
    grouped = ParentBasis(_parents(), rows, num_landmarks=300, targets=targets)
    assert torch.equal(grouped.thresholds, basis.thresholds) and torch.equal(
        grouped.log_prior, basis.log_prior
    )
    # without targets there is no step kernel, and nodes of more than STEP_PARENTS parents never take it
    assert not bool(ParentBasis(_parents(), rows).steps.any())
    assert STEP_PARENTS >= 3


def _squared_distances(values: torch.Tensor, landmarks: torch.Tensor) -> torch.Tensor:
    """values [n, p], landmarks [m, p] -> [n, m], by brute force."""
    return ((values[:, None, :] - landmarks[None, :, :]) ** 2).sum(dim=-1)


def test_spread_landmarks_are_evenly_spaced_rows_then_each_the_farthest_from_those_before() -> None:
    values = torch.randn(
        2, 300, 3, generator=torch.Generator().manual_seed(5), dtype=torch.float64
    )  # [k, n, p]
    picked = spread_landmarks(values, 41)  # [k, 41]
    assert picked.shape == (2, 41)
    even = torch.linspace(0, 299, 20).round().long()
    for node in range(2):
        assert picked[node, :20].tolist() == even.tolist()
        assert len(set(picked[node].tolist())) == 41  # distinct rows
        for step in range(20, 41):
            nearest = _squared_distances(values[node], values[node, picked[node, :step]]).amin(dim=1)  # [n]
            assert nearest[picked[node, step]] == nearest.max()
    # the farthest rows cover the cloud: every row is nearer to a landmark than with 41 evenly spaced rows
    spread = _squared_distances(values[0], values[0, picked[0]]).amin(dim=1).max()
    evenly = (
        _squared_distances(values[0], values[0, torch.linspace(0, 299, 41).round().long()]).amin(dim=1).max()
    )
    assert spread < 0.7 * evenly


def test_spread_landmarks_of_a_discrete_parent_take_each_value_then_repeat() -> None:
    values = torch.tensor([0.0, 1.0, 0.0, 1.0, 2.0, 0.0, 1.0, 0.0], dtype=torch.float64)[
        None, :, None
    ]  # [1, 8, 1]
    picked = spread_landmarks(values, 6)[0]  # three evenly spaced rows (0, 4, 7: values 0, 2, 0), then ...
    assert picked[:3].tolist() == [0, 4, 7]
    assert values[0, picked[3], 0] == 1.0  # ... the one value missing, then every row is at distance 0: row 0
    assert picked[4:].tolist() == [0, 0]


def test_landmarks_do_not_depend_on_how_the_nodes_are_grouped(monkeypatch) -> None:
    rows = _rows(200)
    whole = ParentBasis(_parents(), rows, num_landmarks=60)
    monkeypatch.setattr(parent_basis_module, "LANDMARK_SEARCH_ELEMENTS", 1)  # one node per group
    apart = ParentBasis(_parents(), rows, num_landmarks=60)
    assert torch.equal(whole.landmarks, apart.landmarks)
    # a node's landmarks are rows of its own parents' values
    parents_of_3 = rows[:, [0, 1, 2]]
    assert (_squared_distances(whole.landmarks[3], parents_of_3).amin(dim=1) == 0).all()


def test_a_fit_on_many_rows_takes_its_landmarks_among_evenly_spaced_candidates(monkeypatch) -> None:
    monkeypatch.setattr(parent_basis_module, "LANDMARK_CANDIDATE_ROWS", 50)
    rows = _rows(120)
    basis = ParentBasis(_parents(), rows, num_landmarks=30)
    candidates = rows[torch.linspace(0, 119, 50).round().long()][:, [0, 1, 2]]  # node 3's parents
    assert (_squared_distances(basis.landmarks[3], candidates).amin(dim=1) == 0).all()
    others = rows[[i for i in range(120) if i not in set(torch.linspace(0, 119, 50).round().long().tolist())]]
    assert (_squared_distances(basis.landmarks[3], others[:, [0, 1, 2]]).amin(dim=1) > 0).all()


def test_raw_kernel_moments_whitened_once_equal_the_whitened_features_moments() -> None:
    """``ScaleMoments`` of the raw kernel (``kernel_blocks(z, whiten=False)``), whitened once by
    ``kernel_whitening``, equal those of the whitened features chunk by chunk: the same sums in another order,
    the whitening's condition number (about 1 / JITTER) times float64 rounding apart."""
    from condfip.model.moments import ScaleMoments

    d = 4
    parents = torch.zeros(d, d, dtype=torch.bool)
    parents[2, :2] = True
    parents[3, [0, 2]] = True
    rows = torch.randn(300, d, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    basis = ParentBasis(parents, rows, num_landmarks=30, targets=rows)
    small = torch.randn(300, d, 3, generator=torch.Generator().manual_seed(6), dtype=torch.float64)
    whitened, raw = (
        ScaleMoments(basis.num_kernel, basis.kernel_mask),
        ScaleMoments(basis.num_kernel, basis.kernel_mask),
    )
    for chunk in (slice(0, 120), slice(120, 300)):
        whitened.add(small[chunk], basis.kernel_blocks(rows[chunk])[1], rows[chunk])
        raw.add(small[chunk], basis.kernel_blocks(rows[chunk], whiten=False)[1], rows[chunk])
    raw.whiten(basis.kernel_whitening())
    for moments in (whitened, raw):
        moments.lay_out()
    for name in (
        "scatter_small",
        "scatter_between",
        "scatter_kernel",
        "cross_small",
        "cross_kernel",
        "squares",
    ):
        expected, got = getattr(whitened, name), getattr(raw, name)
        scale = expected.abs().max()
        torch.testing.assert_close(got, expected, rtol=0.0, atol=float(scale) * 1e-16 / JITTER * 100)
