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


def reads_non_finite_brute_force(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, parents: torch.Tensor
) -> torch.Tensor:
    """[B, S, H, d_q] bool: the nodes whose output must be NaN, by a loop over nodes (tiny inputs only).

    Node ``i`` reads its own query when it has parents, and the key and value of each parent; it must be NaN
    when one of those holds a NaN or an infinity.
    """
    q_bad = ~torch.isfinite(q.detach()).all(-1).cpu()  # [B, S, H, d_q]
    kv_bad = ~(torch.isfinite(k.detach()).all(-1) & torch.isfinite(v.detach()).all(-1)).cpu()
    parents = parents.cpu()
    batch, rows, heads, num_queries = q_bad.shape
    out = torch.zeros(batch, rows, heads, num_queries, dtype=torch.bool)
    for b in range(batch):
        for i in range(num_queries):
            pa = [j for j in range(parents.shape[-1]) if bool(parents[b, i, j])]
            for s in range(rows):
                for h in range(heads):
                    out[b, s, h, i] = bool(pa) and (bool(q_bad[b, s, h, i]) or any(kv_bad[b, s, h, pa]))
    return out.to(q.device)


def check_non_finite_inputs_stay_local(
    fn,
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    parents: torch.Tensor,
    scale: float,
    *,
    seed: int = 0,
) -> torch.Tensor:
    """Check that ``fn(q, k, v, parents, scale)`` confines the NaN and infinities of its inputs to the nodes
    that read them, in the forward and the backward pass. Returns the [B, S, H, d] mask of those nodes.

    Against the same call on the inputs with every non-finite entry replaced by 0: the nodes that read one are
    NaN (``reads_non_finite_brute_force``), every other output is bitwise the same, and so are the three
    gradients of a loss on the finite outputs (a NaN output passes no gradient; the non-finite entries
    themselves get zero gradients, as the zeros that replace them do: only nodes that are NaN read them).
    """
    poisoned = reads_non_finite_brute_force(q, k, v, parents)
    assert poisoned.any(), "the inputs hold no non-finite value that a node reads"
    bad = [t.detach().clone().requires_grad_() for t in (q, k, v)]
    clean = [
        torch.nan_to_num(t.detach(), nan=0.0, posinf=0.0, neginf=0.0).requires_grad_() for t in (q, k, v)
    ]
    out_bad = fn(*bad, parents, scale)
    out_clean = fn(*clean, parents, scale)
    assert torch.isnan(out_bad[poisoned]).all(), "a node that reads a non-finite input is not NaN"
    assert torch.equal(out_bad[~poisoned], out_clean[~poisoned]), "a non-finite input reached another node"
    generator = torch.Generator(device=q.device).manual_seed(seed)
    grad_out = torch.randn(out_bad.shape, generator=generator, device=q.device).to(q.dtype)
    for out in (out_bad, out_clean):
        (torch.where(poisoned[..., None], 0.0, out) * grad_out).sum().backward()
    for name, got, want in zip("qkv", bad, clean, strict=True):
        assert torch.equal(got.grad, want.grad), f"d{name}: a non-finite input reached another gradient"
    return poisoned
