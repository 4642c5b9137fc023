"""Working memory of a call, checked before anything is allocated: a call whose estimate exceeds what its device
has in all is refused with that estimate (an allocation that large would fail, or on Linux be killed after the
machine ran out of memory), instead of being started.

The reference materializes the scores of every (row, query node, key node): B·S·H·d_q·d_k floats per tensor.
Measured peaks (torch 2.13, CPU, peak resident memory): 2.4 such tensors in the forward, 6.5 in forward and
backward; the constants below are those, rounded up to a half. The Triton kernels need only the output and one float32 per (row, node), and
in backward the three gradients.
"""

from __future__ import annotations

import math
import os

import torch

REFERENCE_FORWARD_SCORES = 2.5  # score-sized tensors alive at the forward's peak
REFERENCE_BACKWARD_SCORES = 6.5  # the same, forward and backward (what autograd saves, plus the gradients)


def format_bytes(count: float) -> str:
    """``1536`` -> ``"1.5 KiB"``."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if count < 1024 or unit == "PiB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1024
    return f"{count:.1f} PiB"


def device_memory(device: torch.device) -> int | None:
    """Bytes of memory of ``device`` in all (physical memory for the CPU), or None when unknown (meta, ...)."""
    if device.type == "cpu":
        try:
            return int(os.sysconf("SC_PAGE_SIZE")) * int(os.sysconf("SC_PHYS_PAGES"))
        except (AttributeError, ValueError, OSError):
            return None
    if device.type == "cuda":
        return int(torch.cuda.get_device_properties(device).total_memory)
    return None


def _element_size(dtype: torch.dtype) -> int:
    return torch.empty((), dtype=dtype).element_size()


def working_memory(q: torch.Tensor, k: torch.Tensor, backend: str, *, backward: bool) -> tuple[int, str]:
    """Estimated peak bytes a call allocates beyond its inputs, and a few words on where they go.

    q: [B, S, H, d_q, e], k: [B, S, H, d_k, e] (5-D); backend: ``"reference"`` or ``"triton"``; backward:
    whether autograd will need the backward pass (its memory is counted too).
    """
    rows = math.prod(q.shape[:3])
    num_queries, num_keys = q.shape[-2], k.shape[-2]
    if backend == "triton":
        size = _element_size(q.dtype)
        tensors = 4 if backward else 1  # the output; in backward dQ, dK and dV
        statistics = 2 if backward else 1  # float32 per (row, node): lse; in backward delta
        needed = tensors * q.numel() * size + statistics * 4 * rows * num_queries
        return needed, f"{tensors} tensor(s) shaped like q and {statistics} float32 per (row, node)"
    compute = torch.float64 if q.dtype == torch.float64 else torch.float32
    size = _element_size(compute)
    count = REFERENCE_BACKWARD_SCORES if backward else REFERENCE_FORWARD_SCORES
    scores = rows * num_queries * num_keys
    inputs = (q.numel() + 2 * k.numel()) * size  # q, k and v in the compute dtype, non-finite entries zeroed
    words = "forward and backward" if backward else "forward"
    shape = " x ".join(str(n) for n in (*q.shape[:3], num_queries, num_keys))
    return int(count * scores * size + inputs), (
        f"the reference backend holds about {count:g} {compute} tensors of B x S x H x d_q x d_k = {shape} "
        f"scores at the peak of its {words}"
    )


def check_memory(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, backend: str) -> None:
    """Refuse the call when its working memory exceeds what the device of ``q`` has in all; the message gives
    both figures and how to split the call. q, k, v: the 5-D inputs of ``dag_attention``."""
    available = device_memory(q.device)
    if available is None:
        return
    backward = torch.is_grad_enabled() and any(t.requires_grad for t in (q, k, v))
    needed, where = working_memory(q, k, backend, backward=backward)
    if needed <= available:
        return
    rows = math.prod(q.shape[:3])
    if rows > 1 and needed / rows <= available:
        hint = "evaluate the datasets (axis B), rows (axis S) or heads in slices, one call per slice"
    else:  # even one row is too large: fewer query nodes per call (the rectangular form)
        hint = (
            "evaluate the query nodes in slices: q[..., nodes, :] with parents[:, nodes] (the rectangular "
            "form), one call per slice"
        )
    if backend == "reference" and k.shape[-2] == q.shape[-2]:
        hint += "; on a CUDA device the Triton kernels need only the inputs, the outputs and statistics"
    raise ValueError(
        f"dag_attention: this call needs about {format_bytes(needed)} of working memory ({where}), more than "
        f"the {format_bytes(available)} that {q.device} has in all; {hint}"
    )
