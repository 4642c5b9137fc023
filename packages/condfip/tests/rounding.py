"""Tolerances of float comparisons, derived from the dtype and the number of roundings a result accumulates.

Two computations that are equal in exact arithmetic (another chunking, padding, batch size, node order, thread
count, or a CPU whose BLAS kernels sum in another order) differ by rounding alone. A result that went through
a chain of ``n`` roundings of relative size ``eps`` (the dtype's machine epsilon) differs by at most about
``n * eps`` times the magnitude of the terms (the classical bound for a sum or a dot product of length ``n``).
The tests compare against that bound: it holds on any x86-64 CPU and thread count, and it stays orders of
magnitude below the errors of a real bug (a leaked padding row or a wrong mask moves results by 1e-2 to 1).

``assert_close`` reports the worst element with both values, their difference and the tolerance.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from condfip.model.parent_basis import JITTER, NUM_LANDMARKS, NUM_SCALES


def tolerance(dtype: torch.dtype | np.dtype | type, operations: int, magnitude: float = 1.0) -> float:
    """``operations * eps(dtype) * magnitude``: the rounding bound of a result of that size."""
    eps = torch.finfo(dtype).eps if isinstance(dtype, torch.dtype) else float(np.finfo(dtype).eps)
    return operations * eps * magnitude


KERNEL_WEIGHT_BOUND = 10.0  # the adapted kernel weights of a standardized node stay below this


def adapted_round_trip() -> float:
    """The relative bound of a round trip through an adapted ``F_hat`` (noise abducted, then generated back): its
    whitened kernel features sum up to ``s * M`` terms of size up to ``|w| / sqrt(JITTER)``, so rounding moves
    the result by about ``s * M * eps * |w| / sqrt(JITTER)`` (1e-10 here; measured worst 2e-12)."""
    operations = NUM_SCALES * NUM_LANDMARKS
    return tolerance(torch.float64, operations, KERNEL_WEIGHT_BOUND / math.sqrt(JITTER))


def network_operations(*, dim: int, mlp_dim: int, rows: int, nodes: int, blocks: int) -> int:
    """The roundings along the longest chain of a network of ``blocks`` transformer blocks: per block, the sums
    of LayerNorm and the projections (``dim`` terms), of the MLP (``mlp_dim``) and of attention over ``rows``
    rows and ``nodes`` nodes, plus one for every add."""
    return blocks * (2 * dim + mlp_dim + rows + nodes + 8)


def assert_close(
    actual: object,
    expected: object,
    *,
    dtype: torch.dtype | np.dtype | type,
    operations: int,
    magnitude: float | None = None,
    what: str = "values",
) -> None:
    """Every ``|actual - expected| <= tolerance(dtype, operations, magnitude)``, where ``magnitude`` defaults to
    ``max(1, max |expected|)`` over the finite entries; infinite entries must be equal. On failure the message
    gives the numbers of the worst element."""
    got = _array(actual)
    want = _array(expected)
    assert got.shape == want.shape, f"{what}: shape {got.shape} != expected {want.shape}"
    finite = np.isfinite(want)
    if magnitude is None:
        magnitude = max(1.0, float(np.abs(want[finite]).max(initial=0.0)))
    bound = tolerance(dtype, operations, magnitude)
    with np.errstate(invalid="ignore"):
        difference = np.where(finite | (got != want), np.abs(got - want), 0.0)  # equal infinities: 0
    wrong = ~(difference <= bound)  # NaN counts as wrong
    if wrong.any():
        worst = np.unravel_index(
            np.argmax(np.where(wrong, np.nan_to_num(difference, nan=np.inf), -1.0)), got.shape
        )
        failing = int(wrong.sum())
        raise AssertionError(
            f"{what}: {failing} of {got.size} elements differ by more than {bound:.3g} "
            f"({operations} roundings of {dtype} at magnitude {magnitude:.3g}); worst at {tuple(map(int, worst))}: "
            f"{float(got[worst])!r} against {float(want[worst])!r}, difference {float(difference[worst]):.3g}"
        )


def _array(value: object) -> np.ndarray:
    if isinstance(value, torch.Tensor):
        return value.detach().double().cpu().numpy()
    if hasattr(value, "to_numpy"):
        return np.asarray(value.to_numpy(), dtype=np.float64)
    return np.asarray(value, dtype=np.float64)
