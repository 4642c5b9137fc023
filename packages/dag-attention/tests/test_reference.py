"""The reference path: semantics against a brute-force loop, gradients by gradcheck, masks and edge cases."""

from __future__ import annotations

import math
import re

import pytest
import torch

from dag_attention import dag_attention, dag_attention_reference, parents_from_adjacency
from dag_attention._testing import (
    MASK_KINDS,
    brute_force,
    check_non_finite_inputs_stay_local,
    make_parents,
)


def _inputs(shape, *, seed=0, dtype=torch.float32, spread=1.0):
    generator = torch.Generator().manual_seed(seed)
    return [spread * torch.randn(shape, generator=generator, dtype=torch.float64).to(dtype) for _ in range(3)]


@pytest.mark.parametrize("kind", MASK_KINDS)
@pytest.mark.parametrize("shape", [(2, 3, 2, 6, 4), (1, 5, 3, 13, 7), (3, 1, 1, 1, 5)])
def test_matches_brute_force(kind, shape):
    q, k, v = _inputs(shape)
    parents = make_parents(kind, shape[0], shape[3], generator=torch.Generator().manual_seed(1))
    scale = 1 / math.sqrt(shape[-1])
    out = dag_attention(q, k, v, parents, backend="reference")
    expected = brute_force(q, k, v, parents, scale)
    assert out.dtype == torch.float32 and out.shape == q.shape
    torch.testing.assert_close(out.double(), expected, rtol=1e-5, atol=1e-6)


def test_float64_inputs_are_computed_in_float64():
    q, k, v = _inputs((2, 3, 2, 9, 5), dtype=torch.float64)
    parents = make_parents("random", 2, 9, generator=torch.Generator().manual_seed(2))
    out = dag_attention(q, k, v, parents, scale=0.7, backend="reference")
    assert out.dtype == torch.float64
    torch.testing.assert_close(out, brute_force(q, k, v, parents, 0.7), rtol=1e-12, atol=1e-13)


@pytest.mark.parametrize("spread", [1e-3, 30.0])
def test_stable_for_large_and_tiny_scores(spread):
    # spread 30 gives scores of order +-900: exp overflows float32 without the max shift
    q, k, v = _inputs((1, 4, 2, 8, 4), spread=spread, seed=3)
    v = v / spread
    parents = make_parents("complete", 1, 8, generator=torch.Generator().manual_seed(4))
    out = dag_attention(q, k, v, parents, backend="reference")
    assert torch.isfinite(out).all()
    torch.testing.assert_close(out.double(), brute_force(q, k, v, parents, 0.5), rtol=1e-4, atol=1e-6)


def test_clipped_rows_sum_to_at_most_one_and_to_one_when_mass_exceeds_one():
    generator = torch.Generator().manual_seed(5)
    q, k = (torch.randn(2, 6, 3, 10, 8, generator=generator) for _ in range(2))
    v = torch.ones(2, 6, 3, 10, 8)  # out[..., i, :] = sum_j w_ij
    parents = make_parents("random", 2, 10, generator=generator)
    row_sums = dag_attention(q, k, v, parents, backend="reference")[..., 0]  # [B, S, H, d]
    scores = torch.einsum("bshie,bshje->bshij", q, k) / math.sqrt(8)
    mass = torch.where(parents[:, None, None], scores.exp(), torch.zeros(())).sum(-1)  # sum_j exp(s_ij)
    assert (row_sums <= 1 + 1e-6).all()
    torch.testing.assert_close(row_sums, torch.where(mass > 1, torch.ones(()), mass), rtol=1e-5, atol=1e-6)


def test_root_rows_are_exact_zeros_with_zero_gradients():
    q, k, v = (t.requires_grad_() for t in _inputs((2, 3, 2, 5, 4), spread=3.0))
    parents = torch.zeros(2, 5, 5, dtype=torch.bool)
    parents[0, 1, 0] = parents[0, 2, 1] = parents[1, 4, 3] = True  # all other nodes are roots
    out = dag_attention(q, k, v, parents, backend="reference")
    roots = ~parents.any(-1)  # [B, d]
    assert torch.equal(out[roots[:, None, None, :].expand(out.shape[:-1])], torch.zeros(roots.sum() * 6, 4))
    (out * torch.randn_like(out)).sum().backward()
    for grad in (q.grad, k.grad, v.grad):
        assert torch.isfinite(grad).all()
    assert torch.equal(q.grad[0, :, :, [0, 3, 4]], torch.zeros(3, 2, 3, 4))  # queries of roots
    childless = ~parents.any(-2)  # [B, d]: nodes that are nobody's parent
    assert torch.equal(
        k.grad[childless[:, None, None, :].expand(k.shape[:-1])].abs().sum(), torch.tensor(0.0)
    )
    assert torch.equal(
        v.grad[childless[:, None, None, :].expand(v.shape[:-1])].abs().sum(), torch.tensor(0.0)
    )


def test_empty_mask_gives_zeros_everywhere_and_no_nan():
    q, k, v = (t.requires_grad_() for t in _inputs((2, 2, 2, 4, 3)))
    out = dag_attention(q, k, v, torch.zeros(2, 4, 4, dtype=torch.bool), backend="reference")
    assert torch.equal(out, torch.zeros_like(out))
    out.sum().backward()
    assert torch.equal(q.grad, torch.zeros_like(q)) and torch.equal(v.grad, torch.zeros_like(v))


def test_single_node_graph():
    q, k, v = _inputs((3, 2, 2, 1, 4))
    out = dag_attention(q, k, v, torch.zeros(3, 1, 1, dtype=torch.bool), backend="reference")
    assert out.shape == (3, 2, 2, 1, 4) and torch.equal(out, torch.zeros_like(out))


def test_single_parent_weight_is_clipped_exponential():
    # one parent j: w = exp(s) / max(exp(s), 1) = min(exp(s), 1)
    q, k, v = _inputs((1, 50, 1, 2, 3), seed=7)
    parents = torch.tensor([[[False, False], [True, False]]])
    out = dag_attention(q, k, v, parents, scale=1.0, backend="reference")
    weight = torch.clamp((q[..., 1, :] * k[..., 0, :]).sum(-1).exp(), max=1.0)  # [1, 50, 1]
    torch.testing.assert_close(out[..., 1, :], weight[..., None] * v[..., 0, :])


def test_mask_is_per_dataset_and_shared_by_rows_and_heads():
    q, k, v = _inputs((3, 4, 2, 7, 5), seed=8)
    parents = make_parents("random", 3, 7, generator=torch.Generator().manual_seed(9))
    out = dag_attention(q, k, v, parents, backend="reference")
    for b in range(3):
        alone = dag_attention(
            q[b : b + 1], k[b : b + 1], v[b : b + 1], parents[b : b + 1], backend="reference"
        )
        torch.testing.assert_close(out[b : b + 1], alone, rtol=0, atol=0)
    # one graph shared by all datasets, passed as an expanded (stride-0) view
    shared = parents[:1].expand(3, 7, 7)
    torch.testing.assert_close(
        dag_attention(q, k, v, shared, backend="reference"),
        dag_attention(q, k, v, shared.contiguous(), backend="reference"),
        rtol=0,
        atol=0,
    )


def test_output_of_a_node_depends_only_on_its_parents():
    q, k, v = _inputs((1, 2, 2, 6, 4), seed=10)
    parents = make_parents("random", 1, 6, generator=torch.Generator().manual_seed(11))
    i = int(parents[0].sum(-1).argmax())  # a node with parents
    others = ~parents[0, i]
    others[i] = False  # its own key is not a parent either, keep q_i fixed
    k2, v2 = k.clone(), v.clone()
    k2[..., others, :] += 5.0
    v2[..., others, :] -= 3.0
    base = dag_attention(q, k, v, parents, backend="reference")[..., i, :]
    moved = dag_attention(q, k2, v2, parents, backend="reference")[..., i, :]
    torch.testing.assert_close(base, moved, rtol=0, atol=0)


def test_four_dim_form_equals_one_row():
    q, k, v = _inputs((2, 3, 6, 4), seed=12)
    parents = make_parents("complete", 2, 6, generator=torch.Generator().manual_seed(13))
    out = dag_attention(q, k, v, parents, backend="reference")
    assert out.shape == (2, 3, 6, 4)
    five = dag_attention(q[:, None], k[:, None], v[:, None], parents, backend="reference")
    torch.testing.assert_close(out, five[:, 0], rtol=0, atol=0)


def test_explicit_scale_is_used():
    q, k, v = _inputs((1, 2, 1, 5, 4), seed=14)
    parents = make_parents("complete", 1, 5, generator=torch.Generator().manual_seed(15))
    out = dag_attention(q, k, v, parents, scale=0.3, backend="reference")
    torch.testing.assert_close(out.double(), brute_force(q, k, v, parents, 0.3), rtol=1e-5, atol=1e-6)
    assert not torch.allclose(out, dag_attention(q, k, v, parents, backend="reference"))


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_inputs_return_their_dtype_and_agree_with_float32(dtype):
    q, k, v = _inputs((2, 3, 2, 9, 8), seed=16, dtype=dtype)
    parents = make_parents("random", 2, 9, generator=torch.Generator().manual_seed(17))
    out = dag_attention(q, k, v, parents, backend="reference")
    assert out.dtype == dtype
    full = dag_attention(q.float(), k.float(), v.float(), parents, backend="reference")
    tolerance = 1e-2 if dtype == torch.bfloat16 else 2e-3
    torch.testing.assert_close(out.float(), full, rtol=tolerance, atol=tolerance)


@pytest.mark.parametrize("shape", [(0, 3, 2, 4, 5), (2, 0, 2, 4, 5), (2, 3, 0, 4, 5)])
def test_empty_batch_axes(shape):
    q, k, v = _inputs(shape)
    out = dag_attention(q, k, v, torch.ones(shape[0], 4, 4, dtype=torch.bool).tril(-1), backend="reference")
    assert out.shape == shape


def test_gradcheck_float64():
    generator = torch.Generator().manual_seed(18)
    q, k, v = (
        torch.randn(2, 2, 2, 6, 3, generator=generator, dtype=torch.float64, requires_grad=True)
        for _ in range(3)
    )
    parents = make_parents("random", 2, 6, generator=generator)
    parents[0, :, :] = False
    parents[0, 3, 1] = parents[0, 5, 1] = parents[0, 5, 3] = True  # some roots and some children

    def op(q, k, v):
        return dag_attention(q, k, v, parents, backend="reference")

    assert torch.autograd.gradcheck(op, (q, k, v), eps=1e-6, atol=1e-8)
    assert torch.autograd.gradgradcheck(op, (q, k, v), eps=1e-6, atol=1e-7)


@pytest.mark.parametrize("kind", ["chain", "complete"])
def test_gradcheck_float64_in_both_regimes_of_the_clip(kind):
    # rows with sum_j exp(s_ij) < 1 (no normalization) and rows with > 1 (a softmax) in one input
    generator = torch.Generator().manual_seed(19)
    q, k, v = (1.5 * torch.randn(1, 3, 1, 5, 4, generator=generator, dtype=torch.float64) for _ in range(3))
    parents = make_parents(kind, 1, 5, generator=generator)
    scores = torch.einsum("bshie,bshje->bshij", q, k)
    mass = torch.where(parents[:, None, None], scores.exp(), torch.zeros(())).sum(-1)  # [B, S, H, d]
    mass = mass[parents.any(-1)[:, None, None].expand(mass.shape)]  # rows that have parents
    assert (mass < 0.9).any() and (mass > 1.1).any()
    assert torch.autograd.gradcheck(
        lambda q, k, v: dag_attention(q, k, v, parents, scale=1.0, backend="reference"),
        tuple(t.requires_grad_() for t in (q, k, v)),
    )


def test_reference_without_upcast_runs_in_the_input_dtype():
    q, k, v = _inputs((1, 2, 2, 5, 8), dtype=torch.float16, seed=20)
    parents = make_parents("complete", 1, 5, generator=torch.Generator().manual_seed(21))
    low = dag_attention_reference(q, k, v, parents, 0.35, upcast=False)
    high = dag_attention_reference(q, k, v, parents, 0.35)
    assert low.dtype == high.dtype == torch.float16
    torch.testing.assert_close(low.float(), high.float(), rtol=1e-2, atol=1e-2)


def test_parents_from_adjacency_transposes_the_project_convention():
    adjacency = torch.tensor([[0, 1, 1], [0, 0, 1], [0, 0, 0]], dtype=torch.int8)  # 0 -> 1, 0 -> 2, 1 -> 2
    parents = parents_from_adjacency(adjacency)
    assert parents.dtype == torch.bool
    assert parents.tolist() == [[False, False, False], [True, False, False], [True, True, False]]
    batched = parents_from_adjacency(torch.stack([adjacency, adjacency.T.contiguous()]))
    assert batched.shape == (2, 3, 3) and torch.equal(batched[0], parents)
    import numpy as np

    assert torch.equal(parents_from_adjacency(np.array(adjacency.numpy())), parents)
    with pytest.raises(ValueError, match=r"\[\.\.\., d, d\], got \(3, 2\)"):
        parents_from_adjacency(torch.zeros(3, 2))


@pytest.mark.parametrize(
    ("adjacency", "message"),
    [
        ("abc", "got a str"),
        (b"ab", "got a bytes"),
        ([["a", "b"], ["c", "d"]], "got list that torch cannot read as numbers"),
        ({"edges": 1}, "got dict that torch cannot read as numbers"),
    ],
)
def test_parents_from_adjacency_refuses_what_is_not_numbers(adjacency, message):
    with pytest.raises(ValueError, match=message):
        parents_from_adjacency(adjacency)


def test_a_nan_adjacency_entry_is_an_error_not_an_edge():
    adjacency = torch.zeros(2, 3, 3, dtype=torch.float64)
    adjacency[1, 0, 2] = float("nan")
    with pytest.raises(ValueError, match=r"NaN entry at index \(1, 0, 2\); use 1 for an edge, 0 for none"):
        parents_from_adjacency(adjacency)
    import numpy as np

    with pytest.raises(ValueError, match=r"NaN entry at index \(0, 1\)"):
        parents_from_adjacency(np.array([[0.0, np.nan], [0.0, 0.0]]))
    # infinities, booleans and plain lists are still read as "nonzero = edge"
    assert parents_from_adjacency([[0, 1], [0, 0]]).tolist() == [[False, False], [True, False]]
    assert parents_from_adjacency(np.array([[False, True], [False, False]])).tolist() == [
        [False, False],
        [True, False],
    ]


# ----- the rectangular form: a subset of query nodes against the keys of the nodes they read ------------------


def test_rectangular_form_equals_the_rows_of_the_square_call():
    generator = torch.Generator().manual_seed(3)
    q, k, v = (torch.randn(2, 3, 2, 7, 4, generator=generator, dtype=torch.float64) for _ in range(3))
    parents = torch.rand(2, 7, 7, generator=generator) < 0.5
    full = dag_attention(q, k, v, parents)  # [2, 3, 2, 7, 4]
    queries = torch.tensor([1, 4, 6])
    keys = torch.tensor([0, 2, 3, 5, 6])
    sub_parents = parents[:, queries][:, :, keys]  # [2, 3, 5]
    # the full call restricted to the same keys: drop the edges from other key nodes
    restricted = parents.clone()
    others = torch.ones(7, dtype=torch.bool)
    others[keys] = False
    restricted[:, :, others] = False
    expected = dag_attention(q, k, v, restricted)[..., queries, :]
    out = dag_attention(q[..., queries, :], k[..., keys, :], v[..., keys, :], sub_parents)
    assert out.shape == (2, 3, 2, 3, 4)
    torch.testing.assert_close(out, expected, rtol=0, atol=1e-12)
    assert not torch.equal(full[..., queries, :], expected)  # the dropped edges mattered


def test_rectangular_form_matches_brute_force_and_its_gradients():
    generator = torch.Generator().manual_seed(4)
    q = torch.randn(1, 2, 2, 3, 4, generator=generator, dtype=torch.float64, requires_grad=True)
    k, v = (
        torch.randn(1, 2, 2, 5, 4, generator=generator, dtype=torch.float64, requires_grad=True)
        for _ in range(2)
    )
    parents = torch.tensor([[[1, 0, 1, 0, 1], [0, 0, 0, 0, 0], [1, 1, 1, 1, 1]]], dtype=torch.bool)
    out = dag_attention(q, k, v, parents)
    scores = torch.einsum("bshie,bshje->bshij", q, k) / 2.0
    weights = torch.where(parents[:, None, None], scores.exp(), torch.zeros_like(scores))
    weights = weights / weights.sum(-1, keepdim=True).clamp(min=1.0)
    torch.testing.assert_close(out, torch.einsum("bshij,bshje->bshie", weights, v), rtol=1e-12, atol=1e-12)
    assert torch.equal(out[..., 1, :], torch.zeros_like(out[..., 1, :]))  # no parents: exact zeros
    assert torch.autograd.gradcheck(lambda q, k, v: dag_attention(q, k, v, parents), (q, k, v))


def test_rectangular_form_refuses_triton_and_mismatched_masks(monkeypatch):
    q, k, v = torch.randn(1, 2, 3, 4), torch.randn(1, 2, 5, 4), torch.randn(1, 2, 5, 4)
    with pytest.raises(ValueError, match="Triton kernels take square masks"):
        dag_attention(q, k, v, torch.ones(1, 3, 5, dtype=torch.bool), backend="triton")
    monkeypatch.setenv("DAG_ATTENTION_BACKEND", "triton")  # the override alone falls back to the reference
    assert dag_attention(q, k, v, torch.ones(1, 3, 5, dtype=torch.bool)).shape == (1, 2, 3, 4)
    with pytest.raises(
        ValueError,
        match=re.escape("parents must have shape [B, d_q, d_k] = (1, 3, 5) for q of shape (1, 2, 3, 4)"),
    ):
        dag_attention(q, k, v, torch.ones(1, 3, 3, dtype=torch.bool))
    with pytest.raises(ValueError, match=re.escape("k and v must have the same shape, got k (1, 2, 5, 4)")):
        dag_attention(q, k, v[..., :4, :], torch.ones(1, 3, 5, dtype=torch.bool))


# ----- non-finite inputs, overflowing scores, partial gradients, strided and empty inputs -------------------------

INF = float("inf")


def _reference(q, k, v, parents, scale):
    return dag_attention(q, k, v, parents, scale=scale, backend="reference")


def _small_dag():
    """5 nodes: 0 -> 1, 0 -> 3, 1 -> 2, 1 -> 3; node 4 is a root without children. Node 1 has a parent and two
    children, so a bad query of 1 is read by 1, a bad key or value of 1 by 2 and 3."""
    parents = torch.zeros(2, 5, 5, dtype=torch.bool)
    parents[:, 1, 0] = parents[:, 3, 0] = parents[:, 2, 1] = parents[:, 3, 1] = True
    return parents


@pytest.mark.parametrize(
    "dtype", [torch.float64, torch.float32, torch.bfloat16], ids=["fp64", "fp32", "bf16"]
)
@pytest.mark.parametrize("value", [float("nan"), INF, -INF], ids=["nan", "inf", "-inf"])
@pytest.mark.parametrize("name", ["q", "k", "v"])
def test_non_finite_inputs_reach_only_the_nodes_that_read_them(name, value, dtype):
    # a zero weight times NaN is NaN: through the dense products, one bad value reached every node of its row
    q, k, v = _inputs((2, 3, 2, 5, 4), dtype=dtype, seed=30)
    tensors = {"q": q, "k": k, "v": v}
    tensors[name][1, 2, 0, 1, 3] = value  # one entry of node 1, in dataset 1, row 2, head 0
    poisoned = check_non_finite_inputs_stay_local(_reference, q, k, v, _small_dag(), 0.5)
    expected = [[1, 2, 0, 1]] if name == "q" else [[1, 2, 0, 2], [1, 2, 0, 3]]
    assert poisoned.nonzero().tolist() == expected


def test_a_non_finite_query_of_a_root_changes_nothing():
    q, k, v = _inputs((1, 2, 1, 5, 4), seed=31)
    clean = dag_attention(q, k, v, _small_dag()[:1], backend="reference")
    q[0, 1, 0, 4] = float("nan")  # node 4 has no parent: its output does not read its query
    q[0, 0, 0, 0] = INF  # nor does root 0's
    out = dag_attention(q, k, v, _small_dag()[:1], backend="reference")
    assert torch.equal(out, clean) and torch.equal(out[..., [0, 4], :], torch.zeros_like(out[..., [0, 4], :]))


def test_non_finite_keys_in_the_rectangular_form_reach_only_their_children():
    q = torch.randn(1, 2, 2, 3, 4, generator=torch.Generator().manual_seed(32), dtype=torch.float64)
    k, v = (
        torch.randn(1, 2, 2, 6, 4, generator=torch.Generator().manual_seed(s), dtype=torch.float64)
        for s in (33, 34)
    )
    parents = torch.zeros(1, 3, 6, dtype=torch.bool)
    parents[0, 0, [1, 5]] = parents[0, 2, [0, 5]] = parents[0, 1, 2] = True
    v[0, 1, 1, 5, 0] = float("nan")  # key node 5, read by query nodes 0 and 2
    poisoned = check_non_finite_inputs_stay_local(_reference, q, k, v, parents, 0.5)
    assert poisoned.nonzero().tolist() == [[0, 1, 1, 0], [0, 1, 1, 2]]


@pytest.mark.parametrize(
    ("dtype", "huge"),
    [(torch.float32, 1e20), (torch.bfloat16, 1e20), (torch.float64, 1e160)],
    ids=["fp32", "bf16", "fp64"],
)
def test_scores_that_overflow_saturate_instead_of_giving_nan(dtype, huge):
    # s = q . k overflows the compute dtype (float32 for bfloat16 inputs) to +inf; exp(s - max) was inf - inf
    q, k, v = _inputs((1, 2, 1, 4, 8), dtype=dtype, seed=35)
    parents = torch.zeros(1, 4, 4, dtype=torch.bool)
    parents[0, 2, [0, 1]] = parents[0, 3, [0, 1]] = parents[0, 1, 0] = True
    q[..., 2:, :] = huge
    k[..., 0, :] = huge
    k[..., 1, :] = huge
    q[..., 3, :] = -huge  # node 3: both scores overflow to -inf, weights exp(-inf) = 0 (the clipped regime)
    q, k, v = (t.requires_grad_() for t in (q, k, v))
    out = dag_attention(q, k, v, parents, backend="reference")
    assert torch.isfinite(out).all()
    # node 2: two scores saturated at the same value share the weight
    v0, v1 = v[..., 0, :].detach().double(), v[..., 1, :].detach().double()
    compute_eps = torch.finfo(torch.float64 if dtype == torch.float64 else torch.float32).eps
    torch.testing.assert_close(
        out[..., 2, :].double(),
        (v0 + v1) / 2,
        rtol=torch.finfo(dtype).eps,  # rounding of the result to the input dtype
        atol=compute_eps * float((v0.abs() + v1.abs()).max()),  # a few operations in the compute dtype
    )
    assert torch.equal(out[..., 3, :], torch.zeros_like(out[..., 3, :]))
    out.sum().backward()
    assert all(torch.isfinite(t.grad).all() for t in (q, k, v))


@pytest.mark.parametrize(
    "needs", [(True, False, False), (False, True, False), (False, False, True), (True, False, True)], ids=str
)
def test_gradients_with_respect_to_some_inputs_only(needs):
    generator = torch.Generator().manual_seed(36)
    base = [torch.randn(1, 2, 2, 5, 3, generator=generator, dtype=torch.float64) for _ in range(3)]
    parents = make_parents("random", 1, 5, generator=generator)
    full = [t.clone().requires_grad_() for t in base]
    dag_attention(*full, parents, backend="reference").sum().backward()
    some = [t.clone().requires_grad_(need) for t, need in zip(base, needs, strict=True)]
    out = dag_attention(*some, parents, backend="reference")
    assert out.requires_grad
    out.sum().backward()
    for need, got, want in zip(needs, some, full, strict=True):
        assert (got.grad is None) != need
        if need:
            torch.testing.assert_close(got.grad, want.grad, rtol=0, atol=0)

    def op(*wanted):
        inputs = iter(wanted)
        return dag_attention(
            *(next(inputs) if need else t for t, need in zip(base, needs, strict=True)),
            parents,
            backend="reference",
        )

    wanted = tuple(t.clone().requires_grad_() for t, need in zip(base, needs, strict=True) if need)
    assert torch.autograd.gradcheck(op, wanted)


def test_no_input_requiring_gradients_gives_an_output_without_a_graph():
    q, k, v = _inputs((1, 2, 1, 4, 3), seed=37)
    out = dag_attention(
        q, k, v, make_parents("chain", 1, 4, generator=torch.Generator()), backend="reference"
    )
    assert not out.requires_grad and out.grad_fn is None


def test_strided_and_expanded_inputs_match_brute_force_and_gradcheck():
    generator = torch.Generator().manual_seed(38)
    q_base = torch.randn(
        2, 3, 6, 2, 4, generator=generator, dtype=torch.float64, requires_grad=True
    )  # [B, S, d, H, e]
    k_base = torch.randn(2, 1, 2, 6, 4, generator=generator, dtype=torch.float64, requires_grad=True)
    v_base = torch.randn(2, 3, 2, 6, 8, generator=generator, dtype=torch.float64, requires_grad=True)
    parents = make_parents("random", 2, 6, generator=generator)

    def views(q_base, k_base, v_base):
        # a head split (strided), one key per dataset shared by its rows (stride 0), every other feature
        return q_base.transpose(2, 3), k_base.expand(2, 3, 2, 6, 4), v_base[..., ::2]

    q, k, v = views(q_base, k_base, v_base)
    assert not q.is_contiguous() and k.stride(1) == 0 and v.stride(-1) == 2
    out = dag_attention(q, k, v, parents, scale=0.6, backend="reference")
    torch.testing.assert_close(out, brute_force(q, k, v, parents, 0.6), rtol=1e-12, atol=1e-13)
    assert torch.autograd.gradcheck(
        lambda *bases: dag_attention(*views(*bases), parents, scale=0.6, backend="reference"),
        (q_base, k_base, v_base),
    )


@pytest.mark.parametrize("shape", [(0, 3, 2, 4, 5), (2, 0, 2, 4, 5), (2, 3, 0, 4, 5)])
def test_empty_batch_axes_pass_empty_gradients(shape):
    q, k, v = (t.requires_grad_() for t in _inputs(shape))
    out = dag_attention(q, k, v, torch.ones(shape[0], 4, 4, dtype=torch.bool).tril(-1), backend="reference")
    out.sum().backward()
    assert all(t.grad is not None and t.grad.shape == shape for t in (q, k, v))
