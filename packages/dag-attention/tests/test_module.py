"""The multi-head DAGAttention module."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from dag_attention import DAGAttention, dag_attention
from dag_attention._testing import brute_force, make_parents


def _module(dim=12, heads=3, *, bias=True, seed=0):
    torch.manual_seed(seed)  # test-only: module init draws from the global generator
    return DAGAttention(dim, heads, bias=bias, backend="reference")


def test_shapes_and_parameters():
    module = _module()
    x = torch.randn(2, 5, 7, 12)
    parents = make_parents("random", 2, 7, generator=torch.Generator().manual_seed(1))
    assert module(x, parents).shape == (2, 5, 7, 12)
    assert module.head_dim == 4
    assert sum(p.numel() for p in module.parameters()) == 4 * (12 * 12 + 12)
    assert sum(p.numel() for p in _module(bias=False).parameters()) == 4 * 12 * 12


def test_equals_projections_around_the_brute_force_op():
    module = _module(dim=8, heads=2)
    generator = torch.Generator().manual_seed(2)
    x, context = torch.randn(2, 3, 5, 8, generator=generator), torch.randn(2, 3, 5, 8, generator=generator)
    parents = make_parents("random", 2, 5, generator=generator)
    with torch.no_grad():
        q = module.to_q(x).reshape(2, 3, 5, 2, 4).transpose(2, 3)  # [b, s, h, d, e]
        k, v = module.to_kv(context).reshape(2, 3, 5, 2, 2, 4).permute(3, 0, 1, 4, 2, 5)  # [2, b, s, h, d, e]
        heads = brute_force(q, k, v, parents, 1 / math.sqrt(4)).float()  # [b, s, h, d, e]
        expected = module.to_out(heads.transpose(2, 3).reshape(2, 3, 5, 8))
        torch.testing.assert_close(module(x, parents, context=context), expected, rtol=1e-5, atol=1e-6)


def test_self_attention_uses_x_as_context():
    module = _module()
    x = torch.randn(1, 4, 6, 12)
    parents = make_parents("chain", 1, 6, generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(module(x, parents), module(x, parents, context=x), rtol=0, atol=0)


def test_roots_see_only_the_output_bias_and_a_node_sees_only_its_parents():
    module = _module()
    x = torch.randn(1, 3, 5, 12)
    parents = torch.zeros(1, 5, 5, dtype=torch.bool)
    parents[0, 4, 1] = True  # 1 -> 4; every other node is a root
    out = module(x, parents)
    torch.testing.assert_close(out[:, :, 0], module.to_out.bias.expand(1, 3, 12), rtol=0, atol=0)
    moved = x.clone()
    moved[:, :, [0, 2, 3]] += 1.0  # neither node 4 nor its parent 1
    torch.testing.assert_close(module(moved, parents)[:, :, 4], out[:, :, 4], rtol=0, atol=0)


def test_gradients_reach_every_projection():
    module = _module()
    x = torch.randn(2, 3, 4, 12, requires_grad=True)
    parents = make_parents("complete", 2, 4, generator=torch.Generator().manual_seed(4))
    module(x, parents).square().sum().backward()
    for name, parameter in module.named_parameters():
        assert parameter.grad is not None and parameter.grad.abs().sum() > 0, name
    assert torch.isfinite(x.grad).all()


def test_matches_a_plain_dag_attention_call_in_half_precision():
    module = _module().to(torch.bfloat16)
    x = torch.randn(1, 2, 5, 12, dtype=torch.bfloat16)
    parents = make_parents("random", 1, 5, generator=torch.Generator().manual_seed(5))
    out = module(x, parents)
    assert out.dtype == torch.bfloat16
    q = module.to_q(x).unflatten(-1, (3, 4)).transpose(2, 3)
    k, v = module.to_kv(x).unflatten(-1, (2, 3, 4)).permute(3, 0, 1, 4, 2, 5)
    heads = dag_attention(q, k, v, parents, backend="reference").transpose(2, 3).flatten(-2)
    torch.testing.assert_close(out, module.to_out(heads), rtol=0, atol=0)


@pytest.mark.parametrize(
    ("dim", "heads", "message"),
    [
        (12, 5, "num_heads must be a positive int dividing dim = 12, got 5"),
        (0, 1, "dim must be a positive int, got 0"),
        (12, 0, "got 0"),
    ],
)
def test_bad_constructor_arguments(dim, heads, message):
    with pytest.raises(ValueError, match=message):
        DAGAttention(dim, heads)


def test_bad_forward_shapes():
    module = _module()
    parents = torch.zeros(1, 5, 5, dtype=torch.bool)
    with pytest.raises(ValueError, match=r"x must have shape \[B, S, d, 12\], got \(1, 3, 5, 10\)"):
        module(torch.randn(1, 3, 5, 10), parents)
    with pytest.raises(
        ValueError,
        match=r"context must have the shape of x, \(1, 3, 5, 12\), except perhaps its number of nodes "
        r"\(axis 2\), got \(1, 2, 5, 12\)",
    ):
        module(torch.randn(1, 3, 5, 12), parents, context=torch.randn(1, 2, 5, 12))
    with pytest.raises(ValueError, match=r"parents must have shape \[B, d, d\] = \(1, 5, 5\)"):
        module(torch.randn(1, 3, 5, 12), torch.zeros(1, 4, 4, dtype=torch.bool))


def test_is_an_nn_module_with_a_readable_repr():
    module = _module()
    assert isinstance(module, nn.Module)
    assert "to_q" in repr(module) and "to_kv" in repr(module) and "to_out" in repr(module)


def test_context_with_other_nodes_than_the_queries():
    module = _module()
    x, context = torch.randn(1, 3, 2, 12), torch.randn(1, 3, 5, 12)
    parents = torch.tensor([[[1, 0, 1, 0, 0], [0, 0, 0, 0, 0]]], dtype=torch.bool)
    out = module(x, parents, context=context)
    assert out.shape == (1, 3, 2, 12)
    # equals the square call on the union of nodes, restricted to the query rows
    square_x = torch.cat([x, torch.zeros(1, 3, 5, 12)], dim=2)
    square_context = torch.cat([torch.zeros(1, 3, 2, 12), context], dim=2)
    square_parents = torch.zeros(1, 7, 7, dtype=torch.bool)
    square_parents[:, :2, 2:] = parents
    expected = module(square_x, square_parents, context=square_context)[:, :, :2]
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-6)


def test_float64_layer_computes_in_float64_on_the_reference_path():
    module = _module(dim=8, heads=2).to(torch.float64)
    generator = torch.Generator().manual_seed(6)
    x = torch.randn(2, 3, 5, 8, generator=generator, dtype=torch.float64)
    parents = make_parents("random", 2, 5, generator=generator)
    out = module(x, parents)
    assert out.dtype == torch.float64
    with torch.no_grad():
        q = module.to_q(x).reshape(2, 3, 5, 2, 4).transpose(2, 3)  # [b, s, h, d, e]
        k, v = module.to_kv(x).reshape(2, 3, 5, 2, 2, 4).permute(3, 0, 1, 4, 2, 5)  # [2, b, s, h, d, e]
        heads = brute_force(q, k, v, parents, 1 / math.sqrt(4))  # float64 throughout
        expected = module.to_out(heads.transpose(2, 3).reshape(2, 3, 5, 8))
    # a handful of float64 operations per entry: agreement to float64 rounding, far below float32's
    torch.testing.assert_close(out, expected, rtol=1e-12, atol=1e-12)
    assert DAGAttention(8, 2, backend="auto").to(torch.float64)(x, parents).dtype == torch.float64


def test_input_dtype_other_than_the_parameters_is_a_clear_error():
    module = _module(dim=8, heads=2)  # float32 parameters
    parents = torch.zeros(1, 4, 4, dtype=torch.bool)
    with pytest.raises(
        ValueError,
        match=r"x has dtype torch.float64 but the layer's parameters are torch.float32; convert one of them: "
        r"layer.to\(torch.float64\)",
    ):
        module(torch.zeros(1, 2, 4, 8, dtype=torch.float64), parents)
    with pytest.raises(ValueError, match=r"context has dtype torch.float16"):
        module(torch.zeros(1, 2, 4, 8), parents, context=torch.zeros(1, 2, 4, 8, dtype=torch.float16))


def test_autocast_inputs_in_another_dtype_are_accepted():
    module = _module(dim=8, heads=2)  # float32 parameters
    parents = make_parents("chain", 1, 4, generator=torch.Generator().manual_seed(7))
    x = torch.randn(1, 2, 4, 8, generator=torch.Generator().manual_seed(8)).to(torch.bfloat16)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = module(x, parents)
    assert out.shape == (1, 2, 4, 8) and out.dtype == torch.bfloat16


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (dict(dim=True, num_heads=1), "dim must be a positive int, got True"),  # a bool is an int to Python
        (dict(dim=8, num_heads=True), "num_heads must be a positive int dividing dim = 8, got True"),
        (dict(dim=8, num_heads=2, bias="no"), "bias must be True or False, got 'no'"),  # was a bias, silently
        (dict(dim=8, num_heads=2, bias=None), "bias must be True or False, got None"),
        (
            dict(dim=8, num_heads=2, backend="cuda"),
            r"backend must be one of \('auto', 'reference', 'triton'\)",
        ),
    ],
)
def test_bad_options_are_refused_when_the_layer_is_built(kwargs, message):
    with pytest.raises(ValueError, match=message):
        DAGAttention(**kwargs)


def test_options_in_any_case_and_without_bias():
    layer = DAGAttention(8, 2, bias=False, backend="Reference")
    assert all(linear.bias is None for linear in (layer.to_q, layer.to_kv, layer.to_out))
    x = torch.randn(1, 2, 3, 8)
    assert layer(x, torch.zeros(1, 3, 3, dtype=torch.bool)).shape == (1, 2, 3, 8)


def test_parameters_that_cannot_fit_in_memory_are_refused_before_allocating():
    # 4 * 10^12 float32 parameters: 14.6 TiB; an attempt would fail to allocate or be killed
    with pytest.raises(
        ValueError,
        match=r"dim = 1000000 needs 14.6 TiB of parameters .* more than the .* that cpu has in all",
    ):
        DAGAttention(10**6, 1)


def test_bad_forward_inputs_get_the_layer_s_words():
    module = _module(dim=8, heads=2)
    parents = torch.zeros(1, 3, 3, dtype=torch.bool)
    with pytest.raises(
        ValueError, match=r"x must be a floating tensor, got dtype torch.int64; .*x.to\(torch.float32\)"
    ):
        module(torch.ones(1, 2, 3, 8, dtype=torch.long), parents)  # said "layer.to(torch.int64)" before
    with pytest.raises(
        ValueError,
        match=r"x is on meta but the layer's parameters are on cpu; move one of them: layer.to\('meta'\)",
    ):
        module(torch.zeros(1, 2, 3, 8, device="meta"), parents.to("meta"))
    with pytest.raises(
        ValueError, match=r"x must hold at least one node \(axis 2\), got shape \(1, 2, 0, 8\)"
    ):
        module(torch.zeros(1, 2, 0, 8), parents[:, :0, :0])
    with pytest.raises(
        ValueError, match=r"context must hold at least one node \(axis 2\), got shape \(1, 2, 0, 8\)"
    ):
        module(torch.zeros(1, 2, 3, 8), parents[:, :, :0], context=torch.zeros(1, 2, 0, 8))
    with pytest.raises(
        ValueError,
        match=r"parents must have shape \[B, d, d_k\] = \(1, 3, 5\) for x of shape \(1, 2, 3, 8\) and context of "
        r"shape \(1, 2, 5, 8\), got list",
    ):
        module(torch.zeros(1, 2, 3, 8), parents.tolist(), context=torch.zeros(1, 2, 5, 8))


def test_a_non_finite_context_node_reaches_only_its_children():
    module = _module(dim=8, heads=2)
    generator = torch.Generator().manual_seed(9)
    x, context = torch.randn(2, 3, 5, 8, generator=generator), torch.randn(2, 3, 5, 8, generator=generator)
    parents = torch.zeros(2, 5, 5, dtype=torch.bool)
    parents[:, 2, 0] = parents[:, 3, 0] = parents[:, 3, 1] = parents[:, 4, 3] = True
    clean = module(x, parents, context=context)
    context[1, 2, 0, 5] = float("nan")  # key and value of node 0 in dataset 1, row 2: read by nodes 2 and 3
    out = module(x, parents, context=context)
    reads = torch.zeros(2, 3, 5, dtype=torch.bool)
    reads[1, 2, [2, 3]] = True
    assert torch.isnan(out[reads]).all()
    assert torch.equal(out[~reads], clean[~reads])
