"""Helpers shared by the test suites and the benchmark: masks of known shape and a brute-force oracle.

Private: not part of the public interface.
"""

from __future__ import annotations

import math

import torch

MASK_KINDS = ("empty", "chain", "complete", "random")


def make_parents(kind: str, batch: int, num_nodes: int, *, generator: torch.Generator) -> torch.Tensor:
    """[B, d, d] bool parent masks (``parents[b, i, j]`` for ``j -> i``) of one kind, nodes randomly permuted.

    empty: no edges; chain: a path through all nodes; complete: every earlier node is a parent;
    random: each earlier node is a parent with probability 1/2 (so some rows are roots).
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
            lower = earlier & (torch.rand(num_nodes, num_nodes, generator=generator) < 0.5)
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
