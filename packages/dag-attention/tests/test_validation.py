"""Every bad input gets a ValueError that names the argument and quotes what was received."""

from __future__ import annotations

import re

import pytest
import torch

from dag_attention import dag_attention


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


def test_parents_dtype():
    q, k, v, parents = _good()
    with pytest.raises(
        ValueError, match=r"parents must be a bool tensor, got dtype torch.int8; .*parents_from_adjacency"
    ):
        _call(q, k, v, parents.to(torch.int8))


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
