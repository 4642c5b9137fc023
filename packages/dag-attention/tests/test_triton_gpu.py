"""The Triton kernels on a CUDA device at realistic sizes, against the reference (skipped without CUDA).

python -m pytest packages/dag-attention/tests -m gpu
"""

from __future__ import annotations

import functools
import math

import pytest
import torch

from dag_attention import DAGAttention, dag_attention
from dag_attention._dispatch import load_triton_op, resolve_backend
from dag_attention._testing import (
    check_against_reference,
    check_non_finite_inputs_stay_local,
    make_parents,
)

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]
DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


@pytest.fixture(scope="module")
def triton_op():
    op = load_triton_op()
    if op is None:
        pytest.skip("triton is not installed")
    return op


def _inputs(shape, dtype, *, seed=0, spread=1.0):
    generator = torch.Generator(device="cuda").manual_seed(seed)
    return [(spread * torch.randn(shape, generator=generator, device="cuda")).to(dtype) for _ in range(3)]


def _random_parents(batch, num_nodes, *, seed, edge_probability=None):
    generator = torch.Generator().manual_seed(seed)
    return make_parents(
        "random", batch, num_nodes, generator=generator, edge_probability=edge_probability
    ).cuda()


@pytest.mark.parametrize("dtype", list(DTYPES), ids=list(DTYPES))
@pytest.mark.parametrize("head_dim", [32, 64])
@pytest.mark.parametrize("num_nodes", [10, 20, 50, 100, 200])
def test_matches_reference(triton_op, num_nodes, head_dim, dtype):
    shape = (3, 50, 8, num_nodes, head_dim)  # 400 rows per dataset
    q, k, v = _inputs(shape, DTYPES[dtype], seed=num_nodes)
    parents = _random_parents(3, num_nodes, seed=head_dim, edge_probability=min(1.0, 4 / num_nodes))
    check_against_reference(triton_op.dag_attention_triton, q, k, v, parents, 1 / math.sqrt(head_dim))


@pytest.mark.parametrize("kind", ["empty", "chain", "complete"])
@pytest.mark.parametrize("num_nodes", [7, 130])
def test_mask_kinds(triton_op, kind, num_nodes):
    q, k, v = _inputs((2, 16, 4, num_nodes, 32), torch.bfloat16, seed=1)
    parents = make_parents(kind, 2, num_nodes, generator=torch.Generator().manual_seed(2)).cuda()
    check_against_reference(triton_op.dag_attention_triton, q, k, v, parents, 0.2)


@pytest.mark.parametrize(
    "config", [dict(pack=1, block_nodes=16), dict(pack=8, block_nodes=16), dict(block_nodes=32)]
)
def test_other_tile_shapes(triton_op, config):
    q, k, v = _inputs((2, 40, 4, 45, 24), torch.float16, seed=3)  # odd e: masked lanes
    parents = _random_parents(2, 45, seed=4)
    check_against_reference(
        functools.partial(triton_op.dag_attention_triton, **config), q, k, v, parents, 0.2
    )


@pytest.mark.parametrize("dtype", list(DTYPES), ids=list(DTYPES))
def test_large_scores_and_root_rows(triton_op, dtype):
    q, k, v = _inputs((2, 64, 4, 30, 32), DTYPES[dtype], seed=5, spread=4.0)
    parents = _random_parents(2, 30, seed=6)
    parents[:, :5] = False  # some certain roots
    figures = check_against_reference(triton_op.dag_attention_triton, q, k, v, parents, 1.0)
    assert set(figures) == {"out", "dq", "dk", "dv"}
    q.requires_grad_()
    out = triton_op.dag_attention_triton(q, k, v, parents, 1.0)
    out.backward(torch.randn_like(out))
    assert torch.equal(out[:, :, :, :5], torch.zeros_like(out[:, :, :, :5]))
    assert torch.equal(q.grad[:, :, :, :5], torch.zeros_like(q.grad[:, :, :, :5]))


def test_auto_picks_triton_on_cuda(triton_op, monkeypatch):
    monkeypatch.delenv("DAG_ATTENTION_BACKEND", raising=False)
    q = torch.zeros(1, 1, 1, 2, 16, device="cuda")
    assert resolve_backend("auto", q) == "triton"
    assert resolve_backend("auto", q.double()) == "reference"


def test_module_with_strided_head_views(triton_op):
    torch.manual_seed(7)  # module initialization
    fused = DAGAttention(256, 8, backend="triton").cuda()
    plain = DAGAttention(256, 8, backend="reference").cuda()
    plain.load_state_dict(fused.state_dict())
    x = torch.randn(4, 100, 20, 256, device="cuda")
    parents = _random_parents(4, 20, seed=8)
    outs, grads = [], []
    for module in (fused, plain):
        with torch.autocast("cuda", dtype=torch.bfloat16):
            out = module(x, parents)
        out.float().square().mean().backward()
        outs.append(out.float())
        grads.append([p.grad.float() for p in module.parameters()])

    def relative_error(got, want):
        return float((got - want).norm() / want.norm())

    assert relative_error(outs[0], outs[1]) < 1e-2
    for got, want in zip(grads[0], grads[1], strict=True):
        assert relative_error(got, want) < 2e-2


def test_deterministic(triton_op):
    q, k, v = (t.requires_grad_() for t in _inputs((2, 64, 8, 100, 32), torch.bfloat16, seed=9))
    parents = _random_parents(2, 100, seed=10)
    runs = []
    for _ in range(2):
        for t in (q, k, v):
            t.grad = None
        out = dag_attention(q, k, v, parents, backend="triton")
        out.backward(torch.ones_like(out))
        runs.append([out.detach(), q.grad, k.grad, v.grad])
    for first, second in zip(*runs, strict=True):
        assert torch.equal(first, second)


@pytest.mark.parametrize("num_nodes", [20, 100])
def test_memory_is_inputs_outputs_and_row_statistics(triton_op, num_nodes):
    shape = (4, 400, 8, num_nodes, 32)
    q, k, v = (t.requires_grad_() for t in _inputs(shape, torch.bfloat16, seed=11))
    parents = _random_parents(4, num_nodes, seed=12)
    grad_out = torch.randn_like(q)
    tensor_bytes = q.numel() * q.element_size()
    statistics_bytes = q.numel() // shape[-1] * 4  # one float32 per (row, head, node)
    slack = 2**20
    torch.cuda.synchronize()
    before = torch.cuda.memory_allocated()
    torch.cuda.reset_peak_memory_stats()
    out = dag_attention(q, k, v, parents, backend="triton")
    torch.cuda.synchronize()
    assert torch.cuda.max_memory_allocated() - before <= tensor_bytes + statistics_bytes + slack
    out.backward(grad_out)
    torch.cuda.synchronize()
    # backward adds the three gradients and at most one more statistic (delta)
    assert torch.cuda.max_memory_allocated() - before <= 4 * tensor_bytes + 2 * statistics_bytes + slack


@pytest.mark.parametrize("dtype", ["fp32", "bf16"])
@pytest.mark.parametrize("num_nodes", [20, 130])  # one block of nodes; several
@pytest.mark.parametrize("name", ["q", "k", "v"])
def test_non_finite_inputs_reach_only_the_nodes_that_read_them(triton_op, name, num_nodes, dtype):
    q, k, v = _inputs((2, 8, 2, num_nodes, 32), DTYPES[dtype], seed=7)
    parents = _random_parents(2, num_nodes, seed=8, edge_probability=0.3)
    children, has_parent = parents[1].sum(0), parents[1].any(1)  # per node
    node = int((children * has_parent).argmax())  # the node with a parent and the most children
    assert bool(has_parent[node]) and int(children[node]) > 0
    {"q": q, "k": k, "v": v}[name][1, 3, 1, node, 5] = float("nan")
    check_non_finite_inputs_stay_local(triton_op.dag_attention_triton, q, k, v, parents, 0.2)


@pytest.mark.parametrize(("num_nodes", "block_nodes"), [(4, None), (20, 16)])
def test_more_datasets_than_a_grid_axis_holds(triton_op, num_nodes, block_nodes):
    # 65537 datasets: CUDA caps a grid's third axis at 65535, so the launches are split
    q, k, v = _inputs((65537, 1, 1, num_nodes, 16), torch.float32, seed=9)
    parents = _random_parents(65537, num_nodes, seed=10)
    fused = functools.partial(triton_op.dag_attention_triton, block_nodes=block_nodes, pack=1)
    check_against_reference(fused, q, k, v, parents, 0.25)


def test_a_call_that_cannot_fit_is_refused_before_allocating():
    q = torch.zeros(1, 1, 1, 1, 32, device="cuda").expand(1, 10**4, 8, 10**5, 32)  # a view of 128 bytes
    parents = torch.zeros(1, 1, 1, dtype=torch.bool, device="cuda").expand(1, 10**5, 10**5)
    with pytest.raises(ValueError, match=r"more than the [\d.]+ GiB that cuda(:0)? has in all"):
        dag_attention(q, q, q, parents)  # Triton: 8 * 10^9 outputs of 32 floats alone are 954 GiB
