"""Exogenous noise distributions.

A `NoiseModel` draws the noise matrix `[n, d]` of an SCM: independent columns, column `j` drawn from a
standard distribution of its kind and multiplied by the node's scale (`U(0.2, 2)` in the presets).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from scm_gen._checks import check_choice, check_finite_array, check_int, check_range

NOISE_KINDS = ("gaussian", "laplace", "cauchy", "gaussian_mixture")
# Further unit-scale shapes used by the hand-written CSuite models (zero mean unless stated).
EXTRA_NOISE_KINDS = ("exponential", "student_t3", "tanh_gaussian", "softplus_gaussian")
ALL_NOISE_KINDS = NOISE_KINDS + EXTRA_NOISE_KINDS

# The standard Gaussian mixture: 50/50 of N(-1, 0.5^2) and N(+1, 0.5^2) (bimodal, variance 1.25).
MIXTURE_MEANS = (-1.0, 1.0)
MIXTURE_STD = 0.5


def standard_noise(kind: str, shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
    """Draws of the unit-scale distribution `kind` (float64)."""
    if kind == "gaussian":
        return rng.standard_normal(shape)
    if kind == "laplace":
        return rng.laplace(0.0, 1.0, shape)
    if kind == "cauchy":
        return rng.standard_cauchy(shape)
    if kind == "gaussian_mixture":
        means = np.asarray(MIXTURE_MEANS)[rng.integers(len(MIXTURE_MEANS), size=shape)]
        return means + MIXTURE_STD * rng.standard_normal(shape)
    if kind == "exponential":  # Exp(1) - 1: mean 0, variance 1, right-skewed
        return rng.standard_exponential(shape) - 1.0
    if kind == "student_t3":  # heavy tails, finite variance 3
        return rng.standard_t(3, shape)
    if kind == "tanh_gaussian":  # bounded in (-1, 1)
        return np.tanh(rng.standard_normal(shape))
    if kind == "softplus_gaussian":  # softplus(Z) - log 2: skewed, median 0
        return np.logaddexp(0.0, rng.standard_normal(shape)) - np.log(2.0)
    check_choice("noise", kind, ALL_NOISE_KINDS)
    raise AssertionError("unreachable")


@dataclass(frozen=True)
class NoiseModel:
    """Independent noise per node: `N[:, j] = scales[j] * standard draw of kinds[j]`."""

    kinds: tuple[str, ...]  # [d]
    scales: np.ndarray  # [d] float64, positive

    def __post_init__(self) -> None:
        for kind in self.kinds:
            check_choice("noise kind", kind, ALL_NOISE_KINDS)
        scales = check_finite_array("noise scales", self.scales, ndim=1).astype(np.float64)
        if scales.shape[0] != len(self.kinds) or np.any(scales <= 0):
            raise ValueError(
                f"noise scales must be {len(self.kinds)} positive numbers, got {scales.tolist()}"
            )
        object.__setattr__(self, "scales", scales)

    @classmethod
    def sample(
        cls,
        kind: str,
        num_nodes: int,
        rng: np.random.Generator,
        *,
        scale_range: tuple[float, float] = (0.2, 2.0),
    ) -> NoiseModel:
        """One `kind` for every node, per-node scales drawn from `U(scale_range)`."""
        check_choice("noise", kind, NOISE_KINDS)
        num_nodes = check_int("num_nodes", num_nodes, minimum=1)
        low, high = check_range("scale_range", scale_range)
        if low <= 0:
            raise ValueError(f"scale_range={scale_range!r} must be positive")
        return cls(kinds=(kind,) * num_nodes, scales=rng.uniform(low, high, size=num_nodes))

    @property
    def num_nodes(self) -> int:
        return len(self.kinds)

    def draw(self, num_samples: int, rng: np.random.Generator) -> np.ndarray:
        """Noise rows `[n, d]` (float64)."""
        num_samples = check_int("num_samples", num_samples, minimum=0)
        shape = (num_samples, self.num_nodes)
        first = self.kinds[0]
        if all(kind == first for kind in self.kinds):
            return standard_noise(first, shape, rng) * self.scales
        noise = np.empty(shape)
        for node, kind in enumerate(self.kinds):
            noise[:, node] = standard_noise(kind, (num_samples,), rng) * self.scales[node]
        return noise
