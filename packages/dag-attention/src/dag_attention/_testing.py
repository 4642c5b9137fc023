"""Helpers shared by the test suites and the benchmark: masks of known shape and a brute-force oracle.

Private: not part of the public interface.
"""

from __future__ import annotations

import math

import torch

from dag_attention.reference import dag_attention_reference

MASK_KINDS = ("empty", "chain", "complete", "random")


def make_parents(
    kind: str,
    batch: int,
    num_nodes: int,
    *,
    generator: torch.Generator,
    edge_probability: float | None = None,
) -> torch.Tensor:
    """[B, d, d] bool parent masks (``parents[b, i, j]`` for ``j -> i``) of one kind, nodes randomly permuted.

    empty: no edges; chain: a path through all nodes; complete: every earlier node is a parent;
    random: each earlier node is a parent with probability ``edge_probability`` (default 1/2; some rows
    are roots).
    """
    if kind not in MASK_KINDS:
        raise ValueError(f"make_parents: kind must be one of {MASK_KINDS}, got {kind!r}")
    order = torch.arange(num_nodes)
    earlier = order[None, :] < order[:, None]  # [d, d]: j earlier than i
    masks = []
    for _ in range(batch):
        if kind == "empty":
            lower = torch.zeros(num_nodes, num_nodes, dtype=torch.bool)
        elif kind == "chain":
            lower = order[None, :] == order[:, None] - 1
        elif kind == "complete":
            lower = earlier
        else:
            probability = 0.5 if edge_probability is None else edge_probability
            lower = earlier & (torch.rand(num_nodes, num_nodes, generator=generator) < probability)
        perm = torch.randperm(num_nodes, generator=generator)
        masks.append(lower[perm][:, perm])  # relabel nodes: still acyclic
    return torch.stack(masks) if masks else torch.zeros(0, num_nodes, num_nodes, dtype=torch.bool)


def brute_force(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, parents: torch.Tensor, scale: float
) -> torch.Tensor:
    """DAG attention by a loop over datasets, rows, heads and nodes, in float64 Python arithmetic.

    q, k, v: [B, S, H, d, e]; parents: [B, d, d] bool. Returns float64 [B, S, H, d, e]. Slow: tiny inputs only.
    """
    qd, kd, vd = (t.detach().to(torch.float64).cpu() for t in (q, k, v))
    batch, rows, heads, num_nodes, head_dim = q.shape
    out = torch.zeros(batch, rows, heads, num_nodes, head_dim, dtype=torch.float64)
    for b in range(batch):
        for i in range(num_nodes):
            pa = [j for j in range(num_nodes) if bool(parents[b, i, j])]
            if not pa:
                continue  # a root: exact zeros
            for s in range(rows):
                for h in range(heads):
                    scores = [scale * float(qd[b, s, h, i] @ kd[b, s, h, j]) for j in pa]
                    top = max(scores)
                    exps = [math.exp(x - top) for x in scores]
                    # exp(x) / max(sum exp, 1) = exp(x - top) / max(sum exp(x - top), exp(-top))
                    clip = math.exp(-top) if top > -700.0 else math.inf  # math.exp overflows past 709
                    denominator = max(sum(exps), clip)
                    for j, weight in zip(pa, exps, strict=True):
                        out[b, s, h, i] += (weight / denominator) * vd[b, s, h, j]
    return out


def _absolute_tolerance(dtype: torch.dtype, magnitude: float, max_score: float) -> float:
    """A small absolute term: a few units of the dtype's rounding, plus the float32 rounding of the scores
    amplified by exp (a relative error of about eps * |s| in every weight, as the kernel recomputes them)."""
    base = {torch.float32: 1e-6, torch.float16: 2e-3, torch.bfloat16: 1.6e-2}[dtype]
    conditioning = 2 * torch.finfo(torch.float32).eps * max_score
    return (base + conditioning) * max(1.0, magnitude)


def max_abs_score(q: torch.Tensor, k: torch.Tensor, parents: torch.Tensor, scale: float) -> float:
    """Largest |scale * q_i . k_j| over parent pairs (0 without any), computed in float64."""
    scores = torch.einsum("bshie,bshje->bshij", q.double(), k.double()).abs() * abs(scale)
    scores = torch.where(
        parents[:, None, None], scores, torch.zeros((), dtype=scores.dtype, device=scores.device)
    )
    return float(scores.max()) if scores.numel() else 0.0


def check_against_reference(
    fused,
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    parents: torch.Tensor,
    scale: float,
    *,
    seed: int = 0,
) -> dict[str, tuple[float, float]]:
    """Compare ``fused(q, k, v, parents, scale)`` and its three gradients with the reference.

    The tolerance is derived, not guessed: against the reference in float64 (on the same inputs), the fused
    result may err by at most twice what the reference computed in the input dtype errs, plus a small
    absolute term scaled by the magnitude of the values and by the largest score (see _absolute_tolerance). Raises AssertionError quoting every figure;
    returns {name: (error, allowed)}.
    """
    generator = torch.Generator(device=q.device).manual_seed(seed)
    inputs = [t.detach().clone().requires_grad_() for t in (q, k, v)]
    exact = [t.detach().double().requires_grad_() for t in (q, k, v)]  # float64 leaves, unrounded gradients
    low = [t.detach().clone().requires_grad_() for t in (q, k, v)]

    out = fused(*inputs, parents, scale)
    grad_out = torch.randn(out.shape, generator=generator, device=out.device).to(q.dtype)
    out.backward(grad_out)
    out_exact = dag_attention_reference(*exact, parents, scale)
    out_exact.backward(grad_out.double())
    out_low = dag_attention_reference(*low, parents, scale, upcast=False)  # arithmetic in the input dtype
    out_low.backward(grad_out)

    max_score = max_abs_score(q.detach(), k.detach(), parents, scale)
    figures: dict[str, tuple[float, float]] = {}
    names = ("out", "dq", "dk", "dv")
    results = zip(
        [out] + [t.grad for t in inputs],
        [out_low] + [t.grad for t in low],
        [out_exact] + [t.grad for t in exact],
        strict=True,
    )
    for name, (got, low_result, want) in zip(names, results, strict=True):
        assert got is not None and got.dtype == q.dtype and got.shape == q.shape, name
        got, low_result, want = (t.detach().double() for t in (got, low_result, want))
        assert torch.isfinite(got).all(), f"{name}: non-finite values"
        if not want.numel():
            continue
        error = float((got - want).abs().max())
        allowed = 2 * float((low_result - want).abs().max())
        assert math.isfinite(allowed), (
            f"{name}: the reference in {q.dtype} is not finite; no tolerance to derive"
        )
        allowed += _absolute_tolerance(q.dtype, float(want.abs().max()), max_score)
        figures[name] = (error, allowed)
    failed = {name: f for name, f in figures.items() if f[0] > f[1]}
    assert not failed, f"fused vs reference (error, allowed): {figures}"
    return figures
