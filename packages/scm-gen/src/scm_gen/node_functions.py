"""Random functions of one node's standardized parents, for the calibrated mechanism families.

A `NodeFunction` maps the parents' values, standardized by the SCM's reference statistics (`z_i = (x_i - mu_i)
/ sigma_i`), to one raw value per row: `[n, p] -> [n]` float64, with `p >= 1`. `scm_gen.calibrated` then
shifts and scales the raw value so that the node's signal has a chosen mean and standard deviation.

Families:

- `nn_tanh`, `nn_sigmoid`, `nn_relu`: a random one-hidden-layer network `w2 . act(z W1 + b1)` with `H` hidden
  units, `W1 ~ N(0, g^2 / p)`, `b1 ~ N(0, g^2)` (`g` the gain, so pre-activations have spread about `g`),
  `w2 ~ N(0, 1 / H)`;
- `polynomial`: `sum_i a_i v_i + sum_t c_t prod_{i in S_t} v_i` over soft-clipped inputs `v = C tanh(z / C)`,
  with `p + 1` monomials `S_t` of degree 2 to `D` (`D` in {2, 3}; factors drawn with replacement, so squares,
  cubes and interactions), `a, c ~ N(0, 1)`;
- `multiplicative`: a product of positive parent effects `prod_i exp(a_i v_i)`, `|a_i| ~ U(range) / sqrt(p)`
  with a random sign (the `1 / sqrt(p)` keeps the product's spread independent of the number of parents);
- `linear`: `sum_i w_i z_i`, `|w_i| ~ U(range)` with a random sign;
- `rff`: `sum_m c_m cos(<w_m, z> / l + theta_m)`, `M = 100` features as in `RFFMechanisms`, `l ~ U(range)`,
  evaluated in float32 like `RFFMechanisms` (the function is defined as that computation).

The soft clip (`C = 3`: identity near 0, bounded by `C`) keeps polynomials and products of values many
standard deviations out bounded, so values stay finite through graphs of any depth.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np

from scm_gen._checks import check_range

SOFT_CLIP = 3.0
FOURIER_FEATURES = 100
ACTIVATIONS = ("tanh", "sigmoid", "relu")


def soft_clip(values: np.ndarray, limit: float = SOFT_CLIP) -> np.ndarray:
    """`limit * tanh(values / limit)`: about the identity for `|values| << limit`, bounded by `limit`."""
    return limit * np.tanh(values / limit)


def _activation(name: str, values: np.ndarray) -> np.ndarray:
    if name == "tanh":
        return np.tanh(values)
    if name == "sigmoid":  # 1 / (1 + exp(-x)), written without overflow
        return 0.5 + 0.5 * np.tanh(0.5 * values)
    return np.maximum(values, 0.0)


def _random_signs(rng: np.random.Generator, size: int) -> np.ndarray:
    return np.where(rng.random(size) < 0.5, -1.0, 1.0)


class NodeFunction(ABC):
    """A random function of one node's standardized parents."""

    family: str

    @abstractmethod
    def __call__(self, inputs: np.ndarray) -> np.ndarray:
        """Raw values `[n]` from standardized parent values `inputs` `[n, p]`."""

    def describe(self) -> dict:
        """JSON-friendly facts (no arrays)."""
        return {"family": self.family}


class MLPFunction(NodeFunction):
    """`w2 . act(z W1 + b1)`: `weights_in` `[p, H]`, `bias_in` `[H]`, `weights_out` `[H]`."""

    def __init__(
        self, activation: str, weights_in: np.ndarray, bias_in: np.ndarray, weights_out: np.ndarray
    ) -> None:
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation={activation!r} is not supported; allowed: {', '.join(ACTIVATIONS)}")
        self.activation = activation
        self.family = f"nn_{activation}"
        self.weights_in = np.asarray(weights_in, dtype=np.float64)  # [p, H]
        self.bias_in = np.asarray(bias_in, dtype=np.float64)  # [H]
        self.weights_out = np.asarray(weights_out, dtype=np.float64)  # [H]

    @classmethod
    def sample(
        cls,
        activation: str,
        num_parents: int,
        rng: np.random.Generator,
        *,
        hidden_range: tuple[int, int],
        gain_range: tuple[float, float],
    ) -> MLPFunction:
        """`H ~ U{hidden_range}` (inclusive), gain `g ~ U(gain_range)`, weights as in the module docstring."""
        low, high = (int(v) for v in hidden_range)
        if not 1 <= low <= high:
            raise ValueError(f"hidden_range={hidden_range!r} must be integers 1 <= low <= high")
        gain_low, gain_high = check_range("gain_range", gain_range)
        hidden = int(rng.integers(low, high + 1))
        gain = rng.uniform(gain_low, gain_high)
        weights_in = rng.standard_normal((num_parents, hidden)) * (gain / np.sqrt(num_parents))
        bias_in = rng.standard_normal(hidden) * gain
        weights_out = rng.standard_normal(hidden) / np.sqrt(hidden)
        return cls(activation, weights_in, bias_in, weights_out)

    def __call__(self, inputs: np.ndarray) -> np.ndarray:
        hidden = _activation(self.activation, inputs @ self.weights_in + self.bias_in)  # [n, H]
        return hidden @ self.weights_out  # [n]

    def describe(self) -> dict:
        return {"family": self.family, "hidden": int(self.weights_out.shape[0])}


class PolynomialFunction(NodeFunction):
    """`v @ linear + sum_t coefficients[t] prod_k v[:, terms[t, k]]` over `v = soft_clip(z)`.

    `terms` `[T, D]` holds parent indices; the index `p` (one past the last parent) stands for the factor 1, so
    rows of `terms` describe monomials of degree up to `D`.
    """

    family = "polynomial"

    def __init__(self, linear: np.ndarray, terms: np.ndarray, coefficients: np.ndarray) -> None:
        self.linear = np.asarray(linear, dtype=np.float64)  # [p]
        self.terms = np.asarray(terms, dtype=np.intp)  # [T, D]
        self.coefficients = np.asarray(coefficients, dtype=np.float64)  # [T]

    @classmethod
    def sample(
        cls, num_parents: int, rng: np.random.Generator, *, degree_range: tuple[int, int]
    ) -> PolynomialFunction:
        """Degree `D ~ U{degree_range}`, `p + 1` monomials of degree `U{2..D}`, coefficients `N(0, 1)`."""
        low, high = (int(v) for v in degree_range)
        if not 2 <= low <= high:
            raise ValueError(f"degree_range={degree_range!r} must be integers 2 <= low <= high")
        degree = int(rng.integers(low, high + 1))
        num_terms = num_parents + 1
        term_degrees = rng.integers(2, degree + 1, size=num_terms)  # [T]
        factors = rng.integers(num_parents, size=(num_terms, degree))  # [T, D]
        terms = np.where(np.arange(degree) < term_degrees[:, None], factors, num_parents)
        linear = rng.standard_normal(num_parents)
        coefficients = rng.standard_normal(num_terms)
        return cls(linear, terms, coefficients)

    def __call__(self, inputs: np.ndarray) -> np.ndarray:
        num_rows = inputs.shape[0]
        clipped = np.empty((num_rows, inputs.shape[1] + 1))  # [n, p + 1]: soft-clipped parents, then 1
        clipped[:, :-1] = soft_clip(inputs)
        clipped[:, -1] = 1.0
        monomials = clipped[:, self.terms].prod(axis=2)  # [n, T]
        return clipped[:, :-1] @ self.linear + monomials @ self.coefficients

    def describe(self) -> dict:
        return {"family": self.family, "degree": int(self.terms.shape[1]), "terms": int(self.terms.shape[0])}


class ProductFunction(NodeFunction):
    """`prod_i exp(exponents[i] v_i) = exp(v @ exponents)` over `v = soft_clip(z)`."""

    family = "multiplicative"

    def __init__(self, exponents: np.ndarray) -> None:
        self.exponents = np.asarray(exponents, dtype=np.float64)  # [p]

    @classmethod
    def sample(
        cls, num_parents: int, rng: np.random.Generator, *, exponent_range: tuple[float, float]
    ) -> ProductFunction:
        """`|a_i| ~ U(exponent_range) / sqrt(p)` with a random sign."""
        low, high = check_range("exponent_range", exponent_range)
        magnitude = rng.uniform(low, high, size=num_parents) / np.sqrt(num_parents)
        return cls(_random_signs(rng, num_parents) * magnitude)

    def __call__(self, inputs: np.ndarray) -> np.ndarray:
        return np.exp(soft_clip(inputs) @ self.exponents)


class LinearFunction(NodeFunction):
    """`z @ weights`."""

    family = "linear"

    def __init__(self, weights: np.ndarray) -> None:
        self.weights = np.asarray(weights, dtype=np.float64)  # [p]

    @classmethod
    def sample(
        cls, num_parents: int, rng: np.random.Generator, *, weight_range: tuple[float, float]
    ) -> LinearFunction:
        """`|w_i| ~ U(weight_range)` with a random sign."""
        low, high = check_range("weight_range", weight_range)
        magnitude = rng.uniform(low, high, size=num_parents)
        return cls(_random_signs(rng, num_parents) * magnitude)

    def __call__(self, inputs: np.ndarray) -> np.ndarray:
        return inputs @ self.weights


class FourierFunction(NodeFunction):
    """`cos(z @ frequencies / length_scale + phases) @ coefficients`: `frequencies` `[p, M]`."""

    family = "rff"

    def __init__(
        self, frequencies: np.ndarray, phases: np.ndarray, coefficients: np.ndarray, length_scale: float
    ) -> None:
        self.frequencies = np.asarray(frequencies, dtype=np.float64)  # [p, M]
        self.phases = np.asarray(phases, dtype=np.float64)  # [M]
        self.coefficients = np.asarray(coefficients, dtype=np.float64)  # [M]
        self.length_scale = float(length_scale)
        # float32 working copies, as in `RFFMechanisms`: `[w / l; theta]` `[p + 1, M]` and `c` `[M]`
        self._weights32 = np.vstack([self.frequencies / self.length_scale, self.phases]).astype(np.float32)
        self._coefficients32 = self.coefficients.astype(np.float32)

    @classmethod
    def sample(
        cls, num_parents: int, rng: np.random.Generator, *, length_scale_range: tuple[float, float]
    ) -> FourierFunction:
        """`w_m ~ N(0, I)`, `theta_m ~ U(0, 2 pi)`, `c_m ~ N(0, 1)`, `l ~ U(length_scale_range)`."""
        low, high = check_range("length_scale_range", length_scale_range)
        if low <= 0:
            raise ValueError(f"length_scale_range={length_scale_range!r} must be positive")
        frequencies = rng.standard_normal((num_parents, FOURIER_FEATURES))
        phases = rng.uniform(0.0, 2.0 * np.pi, size=FOURIER_FEATURES)
        coefficients = rng.standard_normal(FOURIER_FEATURES)
        return cls(frequencies, phases, coefficients, rng.uniform(low, high))

    def __call__(self, inputs: np.ndarray) -> np.ndarray:
        num_rows, num_parents = inputs.shape
        augmented = np.empty((num_rows, num_parents + 1), dtype=np.float32)  # [n, p + 1]: inputs, then 1
        augmented[:, :num_parents] = inputs
        augmented[:, num_parents] = 1.0
        phase = augmented @ self._weights32  # [n, M]
        np.cos(phase, out=phase)
        return (phase @ self._coefficients32).astype(np.float64)
