"""Every bad input gets a ValueError that names the argument and quotes what was received."""

from __future__ import annotations

import re

import pytest
import torch

from dag_attention import _memory, dag_attention


def _good(shape=(2, 3, 2, 5, 4)):
    q, k, v = (torch.randn(shape) for _ in range(3))
    return q, k, v, torch.zeros(shape[0], shape[-2], shape[-2], dtype=torch.bool)


def _call(q, k, v, parents, **kwargs):
    return dag_attention(q, k, v, parents, backend="reference", **kwargs)


def test_rank():
    q, k, v, parents = _good()
    with pytest.raises(
        ValueError,
        match=re.escape(
            "q must have 5 dims [B, S, H, d, e] or 4 dims [B, H, d, e], got 3 dims with shape (2, 5, 4)"
        ),
    ):
        _call(q[:, 0, 0], k[:, 0, 0], v[:, 0, 0], parents)


@pytest.mark.parametrize("name", ["k", "v"])
def test_shapes_must_match(name):
    q, k, v, parents = _good()
    tensors = {"q": q, "k": k, "v": v}
    tensors[name] = tensors[name][..., :3]
    with pytest.raises(ValueError, match=re.escape(f"got q (2, 3, 2, 5, 4) and {name} (2, 3, 2, 5, 3)")):
        _call(tensors["q"], tensors["k"], tensors["v"], parents)


def test_not_a_tensor():
    q, k, v, parents = _good()
    with pytest.raises(ValueError, match="v must be a torch.Tensor, got list"):
        _call(q, k, v.tolist(), parents)


def test_integer_dtype():
    q, k, v, parents = _good()
    with pytest.raises(ValueError, match=r"q must have a floating dtype in \(.*\), got torch.int64"):
        _call(q.long(), k.long(), v.long(), parents)


def test_mixed_dtypes():
    q, k, v, parents = _good()
    with pytest.raises(
        ValueError, match=r"got q torch.float32 and k torch.float16; cast them with .to\(torch.float32\)"
    ):
        _call(q, k.half(), v, parents)


def test_mixed_devices():
    q, k, v, parents = _good()
    with pytest.raises(ValueError, match=r"got q on cpu and parents on meta; move it with .to\('cpu'\)"):
        _call(q, k, v, parents.to("meta"))


@pytest.mark.parametrize(
    "convert",
    [
        lambda p: p.to(torch.int8),
        lambda p: p.long(),  # 0/1 integers
        lambda p: p.to(torch.uint8),
        lambda p: p.float(),  # 0.0/1.0
        lambda p: torch.full(p.shape, float("nan")),
    ],
    ids=["int8", "int64", "uint8", "float32", "nan"],
)
def test_parents_dtype(convert):
    q, k, v, parents = _good()
    mask = convert(parents)
    with pytest.raises(
        ValueError,
        match=rf"parents must be a bool tensor, got dtype {mask.dtype}; .*parents_from_adjacency.*parents != 0",
    ):
        _call(q, k, v, mask)


@pytest.mark.parametrize("bad_shape", [(2, 5), (1, 5, 5), (2, 5, 4), (2, 1, 5, 5)])
def test_parents_shape(bad_shape):
    q, k, v, _ = _good()
    parents = torch.zeros(bad_shape, dtype=torch.bool)
    with pytest.raises(
        ValueError,
        match=re.escape(
            f"parents must have shape [B, d, d] = (2, 5, 5) for q of shape (2, 3, 2, 5, 4) [B, S, H, d, e], got {bad_shape}"
        ),
    ):
        _call(q, k, v, parents)


def test_parents_shape_in_the_four_dim_form():
    q, k, v, _ = _good((2, 3, 5, 4))
    with pytest.raises(
        ValueError, match=re.escape("(2, 5, 5) for q of shape (2, 3, 5, 4) [B, H, d, e], got (2, 3, 5, 5)")
    ):
        _call(q, k, v, torch.zeros(2, 3, 5, 5, dtype=torch.bool))


@pytest.mark.parametrize("shape", [(2, 3, 2, 0, 4), (2, 3, 2, 5, 0)])
def test_empty_node_or_head_axis(shape):
    q, k, v = (torch.randn(shape) for _ in range(3))
    with pytest.raises(ValueError, match=re.escape(f"must be at least 1, got q shape {shape}")):
        _call(q, k, v, torch.zeros(2, shape[-2], shape[-2], dtype=torch.bool))


@pytest.mark.parametrize("scale", [float("nan"), float("inf"), "0.5", True])
def test_scale(scale):
    with pytest.raises(
        ValueError, match=re.escape(f"scale must be a finite real number or None, got {scale!r}")
    ):
        _call(*_good(), scale=scale)


def test_backend_name():
    with pytest.raises(
        ValueError, match=re.escape("backend must be one of ('auto', 'reference', 'triton'), got 'cuda'")
    ):
        dag_attention(*_good(), backend="cuda")


def test_scale_that_float32_cannot_hold_is_refused_for_float32_arithmetic():
    q, k, v, parents = _good()
    with pytest.raises(
        ValueError,
        match=r"scale must be at most 1.7e\+38 in magnitude for torch.float32 inputs .* got 1e\+300",
    ):
        _call(q, k, v, parents, scale=1e300)
    with pytest.raises(ValueError, match=r"for torch.bfloat16 inputs"):
        _call(q.bfloat16(), k.bfloat16(), v.bfloat16(), parents, scale=-1e39)
    out = _call(q.double(), k.double(), v.double(), parents, scale=1e300)  # float64 arithmetic holds it
    assert torch.isfinite(out).all()


def test_a_tensor_scale_gets_a_hint():
    with pytest.raises(
        ValueError, match=r"got tensor\(0.5000\); pass float\(scale\) for a one-element tensor"
    ):
        _call(*_good(), scale=torch.tensor(0.5))


def _huge(num_nodes: int, *, rows: int = 1, requires_grad: bool = False):
    """Expanded (stride-0) inputs of a large logical size: nothing of that size is ever allocated."""
    q = torch.zeros(1, 1, 1, 1, 4).expand(1, rows, 1, num_nodes, 4).requires_grad_(requires_grad)
    parents = torch.zeros(1, 1, 1, dtype=torch.bool).expand(1, num_nodes, num_nodes)
    return q, q, q, parents


def test_a_call_that_cannot_fit_in_memory_is_refused_before_allocating():
    # 10^6 nodes: the reference's scores alone are 10^12 floats per row, terabytes on any machine; the inputs
    # are views of a few bytes, so a ValueError (not an allocation failure or a killed process) shows that the
    # call was refused before anything of that size was allocated
    with pytest.raises(
        ValueError,
        match=r"this call needs about [\d.]+ TiB of working memory \(the reference backend holds about 2.5 "
        r"torch.float32 tensors of B x S x H x d_q x d_k = 1 x 1 x 1 x 1000000 x 1000000 scores at the peak of "
        r"its forward\), more than the [\d.]+ [GT]iB that cpu has in all; evaluate the query nodes in slices",
    ):
        _call(*_huge(10**6))


def test_memory_estimate_and_hints(monkeypatch):
    monkeypatch.setattr(_memory, "device_memory", lambda device: 10 * 2**20)  # a 10 MiB device
    q, k, v, parents = _huge(200, rows=64)  # 64 rows x 200 x 200 float32 scores: 10 MiB each
    scores = 64 * 200 * 200 * 4
    inputs = 3 * 64 * 200 * 4 * 4  # q, k, v with non-finite entries zeroed, float32
    assert _memory.working_memory(q, k, "reference", backward=False)[0] == int(2.5 * scores + inputs)
    assert _memory.working_memory(q, k, "reference", backward=True)[0] == int(6.5 * scores + inputs)
    # the Triton kernels: the output and lse; in backward dQ, dK, dV and delta as well
    assert _memory.working_memory(q, k, "triton", backward=False)[0] == 64 * 200 * 4 * 4 + 64 * 200 * 4
    assert _memory.working_memory(q, k, "triton", backward=True)[0] == 4 * 64 * 200 * 4 * 4 + 2 * 64 * 200 * 4
    with pytest.raises(
        ValueError, match=r"about 25.0 MiB .* more than the 10.0 MiB .*rows \(axis S\) or heads in slices"
    ):
        _call(q, k, v, parents)
    q, k, v, parents = _huge(200, rows=16, requires_grad=True)  # fits without autograd, not with its backward
    with pytest.raises(
        ValueError, match=r"6.5 torch.float32 tensors .* at the peak of its forward and backward"
    ):
        _call(q, k, v, parents)
    with torch.no_grad():
        assert _call(q, k, v, parents).shape == q.shape
