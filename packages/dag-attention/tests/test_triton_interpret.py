"""The Triton kernels in Triton's CPU interpreter, against the reference: forward and all three gradients.

Runs in its own process with TRITON_INTERPRET=1 (the root noxfile does that):
    TRITON_INTERPRET=1 python -m pytest packages/dag-attention/tests -m triton_interpret
Shapes are tiny: the interpreter costs milliseconds per program and per operation.
"""

from __future__ import annotations

import functools
import math

import pytest
import torch

from dag_attention import DAGAttention, dag_attention
from dag_attention._dispatch import interpreter_enabled, load_triton_op
from dag_attention._testing import (
    check_against_reference,
    check_non_finite_inputs_stay_local,
    make_parents,
)

pytestmark = [
    pytest.mark.triton_interpret,
    pytest.mark.skipif(
        not interpreter_enabled(), reason="needs TRITON_INTERPRET=1 set before the first kernel"
    ),
]


@pytest.fixture(scope="module", autouse=True)
def one_cpu_thread():
    # the tensors are tiny: one thread avoids pathological spinning when the machine is shared and busy
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="module")
def triton_op():
    op = load_triton_op()
    if op is None:
        pytest.skip("triton is not installed")
    return op


def _inputs(shape, dtype, *, seed=0, spread=1.0):
    generator = torch.Generator().manual_seed(seed)
    return [(spread * torch.randn(shape, generator=generator)).to(dtype) for _ in range(3)]


def _fused(triton_op, **config):
    return functools.partial(triton_op.dag_attention_triton, **config)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16], ids=["fp32", "fp16"])
@pytest.mark.parametrize("head_dim", [16, 32])
@pytest.mark.parametrize("num_nodes", [1, 3, 7, 20])
def test_matches_reference(triton_op, num_nodes, head_dim, dtype):
    shape = (2, 3, 2, num_nodes, head_dim)  # 6 rows per dataset: the last pack is partly padding
    q, k, v = _inputs(shape, dtype, seed=num_nodes)
    parents = make_parents("random", 2, num_nodes, generator=torch.Generator().manual_seed(head_dim))
    check_against_reference(_fused(triton_op), q, k, v, parents, 1 / math.sqrt(head_dim))


@pytest.mark.parametrize(
    ("kind", "num_nodes", "pack", "block_nodes"),
    [
        ("random", 20, 1, 16),
        ("complete", 20, 2, 16),
        ("chain", 7, 4, 4),
        ("random", 13, 2, 8),
        ("empty", 13, 2, 8),
    ],
    ids=str,
)
def test_multi_block_paths_match_reference(triton_op, kind, num_nodes, pack, block_nodes):
    # several node blocks: online softmax across key blocks, skipped blocks, the split dQ / dK-dV backward
    q, k, v = _inputs((2, 3, 1, num_nodes, 16), torch.float32, seed=1)
    parents = make_parents(kind, 2, num_nodes, generator=torch.Generator().manual_seed(2))
    check_against_reference(_fused(triton_op, pack=pack, block_nodes=block_nodes), q, k, v, parents, 0.25)


@pytest.mark.parametrize("spread", [0.3, 3.0, 12.0])
@pytest.mark.parametrize("block_nodes", [None, 8])
def test_both_regimes_of_the_clip_and_large_scores(triton_op, spread, block_nodes):
    # spread 0.3: most rows have sum exp(s) < 1 (no normalization); 12: scores of several hundred
    q, k, v = _inputs((1, 4, 1, 11, 16), torch.float32, seed=3, spread=spread)
    v = v / spread
    parents = make_parents("complete", 1, 11, generator=torch.Generator().manual_seed(4))
    check_against_reference(_fused(triton_op, block_nodes=block_nodes, pack=2), q, k, v, parents, 1.0)


@pytest.mark.parametrize("block_nodes", [None, 8])
def test_root_rows_are_exact_zeros_with_zero_gradients(triton_op, block_nodes):
    q, k, v = (t.requires_grad_() for t in _inputs((2, 2, 2, 12, 16), torch.float32, seed=5, spread=3.0))
    parents = torch.zeros(2, 12, 12, dtype=torch.bool)
    parents[0, 5, 2] = parents[0, 11, 2] = parents[0, 11, 5] = parents[1, 9, 0] = True
    out = triton_op.dag_attention_triton(q, k, v, parents, 0.25, block_nodes=block_nodes)
    roots = ~parents.any(-1)[:, None, None, :].expand(out.shape[:-1])  # [B, S, H, d]
    assert torch.equal(out[roots], torch.zeros_like(out[roots]))
    out.backward(torch.randn_like(out))
    assert torch.equal(q.grad[roots], torch.zeros_like(q.grad[roots]))
    childless = ~parents.any(-2)[:, None, None, :].expand(out.shape[:-1])
    assert torch.equal(k.grad[childless], torch.zeros_like(k.grad[childless]))
    assert torch.equal(v.grad[childless], torch.zeros_like(v.grad[childless]))
    assert all(torch.isfinite(t.grad).all() for t in (q, k, v))


def test_public_function_four_dim_form_and_expanded_mask(triton_op):
    q, k, v = _inputs((3, 2, 9, 16), torch.float32, seed=6)
    shared = make_parents("random", 1, 9, generator=torch.Generator().manual_seed(7)).expand(3, 9, 9)
    out = dag_attention(q, k, v, shared, backend="triton")
    torch.testing.assert_close(out, dag_attention(q, k, v, shared, backend="reference"), rtol=1e-5, atol=1e-6)


def test_module_with_strided_head_views_and_sum_gradient(triton_op):
    torch.manual_seed(8)  # module initialization
    fused = DAGAttention(32, 2, backend="triton")
    plain = DAGAttention(32, 2, backend="reference")
    plain.load_state_dict(fused.state_dict())
    x = torch.randn(2, 3, 6, 32)
    context = torch.randn(2, 3, 6, 32)
    parents = make_parents("random", 2, 6, generator=torch.Generator().manual_seed(9))
    results = []
    for module in (fused, plain):
        out = module(x, parents, context=context)
        out.sum().backward()  # a stride-0 output gradient
        results.append((out, [p.grad.clone() for p in module.parameters()]))
    torch.testing.assert_close(results[0][0], results[1][0], rtol=1e-5, atol=1e-6)
    for got, want in zip(results[0][1], results[1][1], strict=True):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)


def test_deterministic(triton_op):
    q, k, v = (t.requires_grad_() for t in _inputs((1, 2, 2, 20, 16), torch.float32, seed=10))
    parents = make_parents("random", 1, 20, generator=torch.Generator().manual_seed(11))
    runs = []
    for _ in range(2):
        for t in (q, k, v):
            t.grad = None
        out = triton_op.dag_attention_triton(q, k, v, parents, 0.25, block_nodes=8)
        out.backward(torch.ones_like(out))
        runs.append([out.detach(), q.grad, k.grad, v.grad])
    for first, second in zip(*runs, strict=True):
        assert torch.equal(first, second)


def test_bad_tile_override(triton_op):
    q = torch.zeros(1, 1, 1, 4, 16)
    with pytest.raises(ValueError, match="block_nodes must be a power of two, got 6"):
        triton_op.dag_attention_triton(q, q, q, torch.zeros(1, 4, 4, dtype=torch.bool), 1.0, block_nodes=6)
    with pytest.raises(ValueError, match="pack \\* block_nodes must be at least 16, got 8"):
        triton_op.dag_attention_triton(
            q, q, q, torch.zeros(1, 4, 4, dtype=torch.bool), 1.0, pack=1, block_nodes=8
        )


def _twelve_node_dag(batch: int) -> torch.Tensor:
    """12 nodes: 0 -> 5, 2 -> 5, 5 -> 9, 5 -> 11, 9 -> 11, the others roots; with blocks of 8 nodes, node 5's
    children sit in the second block."""
    parents = torch.zeros(batch, 12, 12, dtype=torch.bool)
    parents[:, 5, [0, 2]] = parents[:, 9, 5] = parents[:, 11, [5, 9]] = True
    return parents


@pytest.mark.parametrize("block_nodes", [None, 8], ids=["one-block", "multi-block"])
@pytest.mark.parametrize("value", [float("nan"), float("inf")], ids=["nan", "inf"])
@pytest.mark.parametrize("name", ["q", "k", "v"])
def test_non_finite_inputs_reach_only_the_nodes_that_read_them(triton_op, name, value, block_nodes):
    # rows are packed into one tile: a zero weight times NaN in a key or value of one row made every row of
    # the tile NaN (other samples and heads), in the forward and the backward pass
    q, k, v = _inputs((2, 3, 2, 12, 16), torch.float32, seed=12)
    tensors = {"q": q, "k": k, "v": v}
    tensors[name][1, 0, 1, 5, 7] = value  # node 5 of dataset 1, row 0, head 1
    fused = _fused(triton_op, pack=2, block_nodes=block_nodes)
    poisoned = check_non_finite_inputs_stay_local(fused, q, k, v, _twelve_node_dag(2), 0.25)
    expected = [[1, 0, 1, 5]] if name == "q" else [[1, 0, 1, 9], [1, 0, 1, 11]]
    assert poisoned.nonzero().tolist() == expected


@pytest.mark.parametrize("block_nodes", [None, 8], ids=["one-block", "multi-block"])
def test_non_finite_output_gradient_reaches_only_what_that_output_read(triton_op, block_nodes):
    q, k, v = _inputs((2, 3, 2, 12, 16), torch.float32, seed=13)
    parents = _twelve_node_dag(2)
    grad_out = torch.randn(2, 3, 2, 12, 16, generator=torch.Generator().manual_seed(14))
    grad_out[0, 1, 0, 11, 3] = float("nan")  # output node 11 (parents 5 and 9) of dataset 0, row 1, head 0
    grads = []
    for gradient in (grad_out, torch.nan_to_num(grad_out, nan=0.0)):
        leaves = [t.clone().requires_grad_() for t in (q, k, v)]
        triton_op.dag_attention_triton(*leaves, parents, 0.25, pack=2, block_nodes=block_nodes).backward(
            gradient
        )
        grads.append([t.grad for t in leaves])
    reached = {"dq": [[0, 1, 0, 11]], "dk": [[0, 1, 0, 5], [0, 1, 0, 9]], "dv": [[0, 1, 0, 5], [0, 1, 0, 9]]}
    for name, got, want in zip(("dq", "dk", "dv"), *grads, strict=True):
        nan = torch.isnan(got)
        assert (nan.all(-1) == nan.any(-1)).all(), name  # whole vectors
        assert nan.any(-1).nonzero().tolist() == reached[name], name
        assert torch.equal(got[~nan], want[~nan]), name  # everything else as with that entry zero


@pytest.mark.filterwarnings(
    "ignore:overflow encountered:RuntimeWarning"
)  # the interpreter's NumPy, on purpose
def test_scores_that_overflow_saturate_instead_of_giving_nan(triton_op):
    q, k, v = _inputs((1, 2, 1, 4, 16), torch.float32, seed=15)
    parents = torch.zeros(1, 4, 4, dtype=torch.bool)
    parents[0, 2, [0, 1]] = parents[0, 3, [0, 1]] = parents[0, 1, 0] = True
    q[..., 2:, :], k[..., :2, :] = 1e20, 1e20  # q . k = 1.6e41: +inf in float32
    q[..., 3, :] = -1e20  # -inf: weights exp(-inf) = 0
    q, k, v = (t.requires_grad_() for t in (q, k, v))
    out = triton_op.dag_attention_triton(q, k, v, parents, 0.25)
    reference = dag_attention(q, k, v, parents, scale=0.25, backend="reference")
    assert torch.isfinite(out).all()
    v0, v1 = v[..., 0, :].detach(), v[..., 1, :].detach()
    # node 2: two saturated scores share the weight (the kernel divides the sum by 2; the reference weighs by
    # 1/2): one float32 rounding apart, relative to the magnitude of the terms
    tolerance = torch.finfo(torch.float32).eps * float((v0.abs() + v1.abs()).max())
    torch.testing.assert_close(out[..., 2, :], (v0 + v1) / 2, rtol=0, atol=tolerance)
    torch.testing.assert_close(out, reference, rtol=0, atol=tolerance)
    assert torch.equal(out[..., 3, :], torch.zeros_like(out[..., 3, :]))
    out.backward(torch.ones_like(out))
    assert all(torch.isfinite(t.grad).all() for t in (q, k, v))


@pytest.mark.parametrize("block_nodes", [None, 8], ids=["one-block", "multi-block"])
def test_many_datasets_are_launched_in_chunks(triton_op, monkeypatch, block_nodes):
    # CUDA caps a grid's third axis (the datasets) at 65535: larger batches are launched in chunks of datasets
    q, k, v = (t.requires_grad_() for t in _inputs((5, 2, 1, 12, 16), torch.float32, seed=16))
    parents = make_parents("random", 5, 12, generator=torch.Generator().manual_seed(17))
    results = []
    for chunk in (triton_op.MAX_GRID_DATASETS, 2):  # one launch; then chunks of 2, 2 and 1 datasets
        monkeypatch.setattr(triton_op, "MAX_GRID_DATASETS", chunk)
        for t in (q, k, v):
            t.grad = None
        out = triton_op.dag_attention_triton(q, k, v, parents, 0.25, block_nodes=block_nodes)
        out.backward(torch.ones_like(out))
        results.append([out.detach(), q.grad, k.grad, v.grad])
    for whole, chunked in zip(*results, strict=True):
        assert torch.equal(whole, chunked)


def test_gradients_with_respect_to_some_inputs_only(triton_op):
    q, k, v = _inputs((1, 2, 2, 7, 16), torch.float32, seed=18)
    parents = make_parents("random", 1, 7, generator=torch.Generator().manual_seed(19))
    full = [t.clone().requires_grad_() for t in (q, k, v)]
    dag_attention(*full, parents, backend="triton").sum().backward()
    only_q = q.clone().requires_grad_()
    dag_attention(only_q, k, v, parents, backend="triton").sum().backward()
    assert torch.equal(only_q.grad, full[0].grad)


@pytest.mark.parametrize("shape", [(0, 2, 1, 5, 16), (1, 0, 1, 5, 16), (1, 2, 0, 5, 16)])
def test_empty_batch_axes(triton_op, shape):
    q, k, v = (t.requires_grad_() for t in _inputs(shape, torch.float32))
    out = dag_attention(q, k, v, torch.ones(shape[0], 5, 5, dtype=torch.bool).tril(-1), backend="triton")
    out.sum().backward()
    assert out.shape == shape and all(t.grad.shape == shape for t in (q, k, v))
