"""Accuracy on mechanism and noise families that scm-gen does not have, beside regressions fitted per dataset.

scm-gen's families (linear, random Fourier features, random networks, polynomials, multiplicative) are what the
pretrained network saw or could have seen. This benchmark draws SCMs from a small generator of its own, written
to be unlike them: per edge a sine, a steep step (tanh of 6x), a quadratic, an absolute value or a sigmoid of the
parent, summed over the parents, or a product of the parents' tanh plus a linear term; or, of all parents jointly,
a random one-hidden-layer tanh network or a sum of Gaussian bumps (with ``--mechanisms``, more: exponential
growth, thresholds, a fast sine, a pure product of the parents, ReLU, cubic, saturating ``x / (1 + |x|)``, a mix
of some of these and linear per node, or pairwise interactions: half the weighted sum of the parents plus every
product of two of them; and a second round, ``ROUND_TWO_MECHANISMS``: piecewise linear with kinks, sign(x)
log(1 + 3|x|), a wavelet x exp(-x^2), a sawtooth, a softplus of a projection, a sine of the parents' product, a
ratio, max plus min, sinc, and a random smooth function of all parents); noise Gaussian, Laplace, Student-t with
3 degrees of freedom, uniform, Cauchy clipped at 20 (outliers), or skewed or bimodal (exponential, lognormal,
gamma, two modes). Every non-root mechanism is scaled to unit variance on a pilot sample; the noise of a non-root
node has standard deviation 0.3-0.8 (times ``--noise-factor``), a root's 1 (or, with ``--binary-roots``, a root
takes -1 or 1). Graphs (``--graph``): Erdos-Renyi DAGs with 1.5 expected parents per node (``--parents``),
chains, scale-free graphs with hubs, or one collider of many parents (``draw_graph``).

For each family it reports the standardized RMSE (the context's per-column std) of noise (held-out rows), of
generation (held-out rows from their true noise) and of one intervention per SCM (``do(x_j = q)``, ``j`` a node
with parents and children, ``q`` its context 10 % or 90 % quantile, the same noise), for Cond-FiP's default
(adapted) path, zero-shot, and the linear and kernel-ridge ANMs of ``condfip.demo.baseline``; with ``--dowhy``
(needs ``condfip[dowhy]``) also DoWhy-GCM, ``gcm.auto.assign_causal_mechanisms`` (quality GOOD) and ``gcm.fit``
on the context rows. DoWhy's noise of a root is its value: here, as for the other methods, it is the value minus
the context's mean (and generation adds the mean back).

    python packages/condfip/benchmarks/unseen_families.py --nodes 10 --context 400 --datasets 4
"""

from __future__ import annotations

import argparse
import zlib
from collections.abc import Callable, Sequence

import networkx as nx
import numpy as np

from condfip import CondFiP
from condfip.demo.baseline import KernelANM, LinearANM

MECHANISMS = ("sine", "step", "quadratic", "absolute", "sigmoid", "product", "network", "bumps")
# more families, run with --mechanisms: growth and shapes a kernel's flat extrapolation or smoothness handles badly
MORE_MECHANISMS = (
    "exponential",
    "threshold",
    "fast-sine",
    "pure-product",
    "relu",
    "cubic",
    "saturating",
    "mixed",
    "interaction",
)
# the families of a second round, unlike both lists above: kinks, slow growth, wavelets, discontinuities, joint
# interactions and random smooth functions of all parents
SMOOTH_FEATURES = 50  # cosine features of a "random-smooth" mechanism
ROUND_TWO_MECHANISMS = (
    "piecewise",
    "log-abs",
    "wavelet",
    "sawtooth",
    "softplus",
    "sine-product",
    "ratio",
    "max-min",
    "sinc",
    "random-smooth",
)
NUM_KINKS = 3  # kinks per parent of a "piecewise" mechanism
MIXED_FAMILIES = (
    "exponential",
    "threshold",
    "relu",
    "cubic",
    "saturating",
    "linear",
)  # drawn per node by "mixed"
NOISES = ("gauss", "laplace", "student3", "uniform", "cauchy", "exponential", "lognormal", "bimodal", "gamma")
GRAPHS = ("er", "chain", "scale-free", "fan-in")
LOGNORMAL_SIGMA = 0.6  # of the log of "lognormal" noise
BIMODAL_CENTRE = 0.9  # "bimodal" noise: +-this plus a normal of the rest of the unit variance
NETWORK_UNITS = 16  # hidden tanh units of a "network" mechanism
NUM_BUMPS = 6  # Gaussian bumps of a "bumps" mechanism
METHODS = ("default", "zero-shot", "linear ANM", "kernel ANM")
Mechanism = Callable[[np.ndarray], np.ndarray]  # parents' values [n, p] -> [n]


def draw_mechanism(family: str, num_parents: int, rng: np.random.Generator) -> Mechanism:
    """A random mechanism of ``family`` over ``num_parents`` parents (unscaled)."""
    amplitude = rng.uniform(0.5, 1.5, num_parents) * rng.choice([-1.0, 1.0], num_parents)  # [p]
    rate = rng.uniform(0.5, 2.0, num_parents)
    shift = rng.normal(0.0, 0.5, num_parents)
    if family == "sine":
        return lambda x: (amplitude * np.sin(1.5 * rate * x + shift)).sum(axis=1)
    if family == "step":
        return lambda x: (amplitude * np.tanh(6.0 * (x - shift))).sum(axis=1)
    if family == "quadratic":
        return lambda x: (amplitude * (x - shift) ** 2).sum(axis=1)
    if family == "absolute":
        return lambda x: (amplitude * np.abs(x - shift)).sum(axis=1)
    if family == "sigmoid":
        return lambda x: (amplitude / (1.0 + np.exp(-2.0 * rate * x - shift))).sum(axis=1)
    if family == "product":
        return lambda x: (
            2.0 * amplitude[0] * np.prod(np.tanh(x + shift), axis=1) + 0.5 * (amplitude * x).sum(axis=1)
        )
    if family == "network":
        hidden = rng.normal(0.0, 1.5 / np.sqrt(num_parents), (num_parents, NETWORK_UNITS))  # [p, u]
        hidden_bias = rng.normal(0.0, 1.0, NETWORK_UNITS)
        output = rng.normal(0.0, 1.0, NETWORK_UNITS)
        return lambda x: np.tanh(x @ hidden + hidden_bias) @ output
    if family == "bumps":
        centres = rng.normal(0.0, 1.0, (NUM_BUMPS, num_parents))  # [b, p]
        heights = rng.normal(0.0, 1.0, NUM_BUMPS)
        return lambda x: np.exp(-((x[:, None, :] - centres) ** 2).sum(axis=2)) @ heights
    if family == "exponential":  # exponential growth; the clip only keeps far interventions finite
        return lambda x: (amplitude * np.exp(0.8 * np.clip(x, -6.0, 6.0))).sum(axis=1)
    if family == "threshold":
        return lambda x: (amplitude * (x > shift)).sum(axis=1)
    if family == "fast-sine":
        return lambda x: (amplitude * np.sin(4.0 * x + shift)).sum(axis=1)
    if family == "pure-product":  # no additive part at all (one parent: a square)
        return lambda x: amplitude[0] * np.prod(x - shift, axis=1)
    if family == "relu":
        return lambda x: (amplitude * np.maximum(x - shift, 0.0)).sum(axis=1)
    if family == "cubic":
        return lambda x: (amplitude * (x - shift) ** 3).sum(axis=1)
    if family == "saturating":
        return lambda x: (amplitude * x / (1.0 + np.abs(x))).sum(axis=1)
    if family == "linear":
        return lambda x: (amplitude * x).sum(axis=1)
    if family == "interaction":  # half the weighted sum plus every pairwise product (one parent: linear)
        pairs = [(a, b) for b in range(num_parents) for a in range(b)]
        return lambda x: (
            0.5 * (amplitude * x).sum(axis=1) + sum(amplitude[a] * x[:, a] * x[:, b] for a, b in pairs)
        )
    if family == "mixed":
        return draw_mechanism(str(rng.choice(MIXED_FAMILIES)), num_parents, rng)
    if family in ROUND_TWO_MECHANISMS:
        return _draw_round_two(family, num_parents, amplitude, rate, shift, rng)
    raise ValueError(
        f"unknown mechanism family {family!r}; choose from {MECHANISMS + MORE_MECHANISMS + ROUND_TWO_MECHANISMS}"
    )


def _draw_round_two(
    family: str,
    num_parents: int,
    amplitude: np.ndarray,
    rate: np.ndarray,
    shift: np.ndarray,
    rng: np.random.Generator,
) -> Mechanism:
    """A mechanism of one of ``ROUND_TWO_MECHANISMS`` (``amplitude``, ``rate``, ``shift``: [p] per parent)."""
    if family == "piecewise":  # linear plus NUM_KINKS hinges per parent
        kinks = rng.normal(0.0, 1.0, (NUM_KINKS, num_parents))  # [k, p]
        slopes = rng.normal(0.0, 1.5, (NUM_KINKS, num_parents))
        return lambda x: (amplitude * x + (slopes * np.maximum(x[:, None, :] - kinks, 0.0)).sum(axis=1)).sum(
            1
        )
    if family == "log-abs":  # slow growth both ways: sign(x) log(1 + 3 |x|)
        return lambda x: (amplitude * np.sign(x - shift) * np.log1p(3.0 * np.abs(x - shift))).sum(axis=1)
    if family == "wavelet":  # x exp(-x^2): a bump up and one down, flat far out
        return lambda x: (amplitude * (x - shift) * np.exp(-((x - shift) ** 2))).sum(axis=1)
    if family == "sawtooth":  # a jump every 2 / rate
        return lambda x: (amplitude * (((rate * x + shift) % 2.0) - 1.0)).sum(axis=1)
    if family == "softplus":  # softplus of a random projection of the parents, plus a small linear term
        projection = rng.normal(0.0, 1.0, num_parents)
        return lambda x: np.logaddexp(0.0, x @ projection + shift[0]) + 0.3 * (amplitude * x).sum(axis=1)
    if (
        family == "sine-product"
    ):  # a sine of the parents' product (one parent: sin(2x)) plus half a linear term
        if num_parents == 1:
            return lambda x: amplitude[0] * np.sin(2.0 * x[:, 0])
        return lambda x: np.sin(1.5 * np.prod(x, axis=1) + shift[0]) + 0.5 * (amplitude * x).sum(axis=1)
    if family == "ratio":  # the first parent over 1 + the others' squares (one parent: a square)
        if num_parents == 1:
            return lambda x: amplitude[0] * x[:, 0] + 0.5 * x[:, 0] ** 2
        return lambda x: amplitude[0] * x[:, 0] / (1.0 + (x[:, 1:] ** 2).sum(axis=1))
    if family == "max-min":  # the largest shifted parent plus half the smallest
        return lambda x: amplitude[0] * np.max(x - shift, axis=1) + 0.5 * amplitude[-1] * np.min(x, axis=1)
    if family == "sinc":
        return lambda x: (amplitude * np.sinc(rate * (x - shift))).sum(axis=1)
    # "random-smooth": a random smooth function of all parents (cosine features of one random length scale)
    length = rng.uniform(0.5, 2.0)
    frequencies = rng.normal(0.0, 1.0 / length, (num_parents, SMOOTH_FEATURES))  # [p, f]
    phases = rng.uniform(0.0, 2.0 * np.pi, SMOOTH_FEATURES)
    weights = rng.normal(0.0, 1.0, SMOOTH_FEATURES)
    return lambda x: np.cos(x @ frequencies + phases) @ weights


def draw_noise(family: str, shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
    """Noise of unit variance and mean 0 from ``family`` (``cauchy``: median 0, heavy tails)."""
    if family == "gauss":
        return rng.normal(size=shape)
    if family == "laplace":
        return rng.laplace(size=shape) / np.sqrt(2.0)
    if family == "student3":
        return rng.standard_t(3, size=shape) / np.sqrt(3.0)
    if family == "uniform":
        return rng.uniform(-np.sqrt(3.0), np.sqrt(3.0), size=shape)
    if family == "cauchy":  # no variance: clipped at 20 and scaled by 0.3 (most rows like the others)
        return 0.3 * np.clip(rng.standard_cauchy(size=shape), -20.0, 20.0)
    if family == "exponential":  # skewed, bounded below
        return rng.exponential(size=shape) - 1.0
    if family == "lognormal":  # skewed, a long right tail
        variance = LOGNORMAL_SIGMA**2
        mean, spread = np.exp(variance / 2.0), np.sqrt((np.exp(variance) - 1.0) * np.exp(variance))
        return (rng.lognormal(0.0, LOGNORMAL_SIGMA, size=shape) - mean) / spread
    if family == "bimodal":  # two modes at +-BIMODAL_CENTRE
        centre = BIMODAL_CENTRE * rng.choice([-1.0, 1.0], size=shape)
        return centre + np.sqrt(1.0 - BIMODAL_CENTRE**2) * rng.normal(size=shape)
    if family == "gamma":  # shape 2: skewed, bounded below
        return (rng.gamma(2.0, size=shape) - 2.0) / np.sqrt(2.0)
    raise ValueError(f"unknown noise family {family!r}; choose from {NOISES}")


def draw_graph(kind: str, num_nodes: int, expected_parents: float, rng: np.random.Generator) -> np.ndarray:
    """A random DAG [d, d] (``[i, j] = 1`` for ``i -> j``) whose nodes are in a random order: ``er``, Erdos-Renyi
    with ``expected_parents`` parents per node on average; ``chain``, each node reads the one before it and, one
    time in three, the one before that; ``scale-free``, each node reads 1 or 2 earlier nodes chosen by their degree
    (hubs); ``fan-in``, one collider reads all nodes but the last two and the last node reads it and the first."""
    upper = np.zeros((num_nodes, num_nodes), dtype=bool)  # [d, d] over the topological order
    if kind == "er":
        probability = min(1.0, expected_parents * 2.0 / (num_nodes - 1))
        upper = np.triu(rng.random((num_nodes, num_nodes)) < probability, k=1)
    elif kind == "chain":
        for node in range(1, num_nodes):
            upper[node - 1, node] = True
            if node > 1 and rng.random() < 1.0 / 3.0:
                upper[node - 2, node] = True
    elif kind == "scale-free":
        degree = np.ones(num_nodes)
        for node in range(1, num_nodes):
            count = min(node, int(rng.choice([1, 2])))
            chosen = rng.choice(node, size=count, replace=False, p=degree[:node] / degree[:node].sum())
            upper[chosen, node] = True
            degree[chosen] += 1
    elif kind == "fan-in":
        upper[: num_nodes - 2, num_nodes - 2] = True
        upper[[num_nodes - 2, 0], num_nodes - 1] = True
    else:
        raise ValueError(f"unknown graph kind {kind!r}; choose from {GRAPHS}")
    order = rng.permutation(num_nodes)
    adjacency = np.zeros((num_nodes, num_nodes), dtype=np.int64)
    adjacency[np.ix_(order, order)] = upper
    return adjacency


class UnseenSCM:
    """An additive-noise SCM ``x_j = f_j(x_pa(j)) + s_j n_j`` with ``f_j`` scaled to mean 0, variance 1."""

    def __init__(
        self,
        num_nodes: int,
        mechanism: str,
        noise: str,
        rng: np.random.Generator,
        expected_parents: float = 1.5,
        *,
        binary_roots: bool = False,
        noise_factor: float = 1.0,
        graph: str = "er",
    ) -> None:
        self.adjacency = draw_graph(graph, num_nodes, expected_parents, rng)  # [d, d]: i -> j
        self.order = list(nx.topological_sort(nx.DiGraph(self.adjacency)))
        self.parents = [np.flatnonzero(self.adjacency[:, node]) for node in range(num_nodes)]
        self.mechanisms = [draw_mechanism(mechanism, len(p), rng) if len(p) else None for p in self.parents]
        self.noise_family = noise
        self.noise_scale = np.where([len(p) > 0 for p in self.parents], rng.uniform(0.3, 0.8, num_nodes), 1.0)
        self.binary_roots, self.noise_factor = binary_roots, noise_factor
        self.offset, self.scale = np.zeros(num_nodes), np.ones(num_nodes)
        self.generate(self.noise(5000, np.random.default_rng(0)), calibrate=True)  # sets offset and scale

    def noise(self, num_rows: int, rng: np.random.Generator) -> np.ndarray:
        noise = draw_noise(self.noise_family, (num_rows, len(self.parents)), rng) * self.noise_scale  # [n, d]
        roots = np.array([len(p) == 0 for p in self.parents])  # [d]
        if self.binary_roots:  # a root takes -1 or 1 (a switch, a treatment arm)
            noise[:, roots] = rng.choice([-1.0, 1.0], size=(num_rows, int(roots.sum())))
        noise[:, ~roots] *= self.noise_factor
        return noise

    def generate(
        self,
        noise: np.ndarray,
        interventions: dict[int, float] | None = None,
        *,
        calibrate: bool = False,
    ) -> np.ndarray:
        interventions = interventions or {}
        data = np.zeros_like(noise)
        for node in self.order:
            if node in interventions:
                data[:, node] = interventions[node]
                continue
            mechanism = self.mechanisms[node]
            if mechanism is None:
                data[:, node] = noise[:, node]
                continue
            raw = mechanism(data[:, self.parents[node]])
            if calibrate:
                self.offset[node], self.scale[node] = raw.mean(), raw.std() + 1e-12
            data[:, node] = (raw - self.offset[node]) / self.scale[node] + noise[:, node]
        return data


def dowhy_answers(
    context: np.ndarray,
    adjacency: np.ndarray,
    query: np.ndarray,
    query_noise: np.ndarray,
    interventions: dict[int, float],
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """DoWhy-GCM (auto-assigned, quality GOOD) fitted on ``context``: the noise of the ``query`` rows, and the rows
    of ``query_noise`` pushed through it without and with ``interventions``."""
    import pandas as pd
    from dowhy import gcm

    from condfip.dowhy import mechanism_noise

    gcm.config.disable_progress_bars()
    nodes = list(range(adjacency.shape[0]))
    causal_model = gcm.InvertibleStructuralCausalModel(nx.DiGraph(adjacency))
    causal_model.graph.add_nodes_from(nodes)
    data = pd.DataFrame(context, columns=nodes)
    gcm.auto.assign_causal_mechanisms(causal_model, data, quality=gcm.auto.AssignmentQuality.GOOD)
    gcm.fit(causal_model, data)
    roots = [node for node in nodes if not adjacency[:, node].any()]
    mean = context.mean(axis=0)
    noise = mechanism_noise(causal_model, pd.DataFrame(query, columns=nodes), dict(enumerate(mean)))
    dowhy_noise = pd.DataFrame(query_noise, columns=nodes)
    dowhy_noise[roots] += mean[roots]  # a root's DoWhy noise is its value

    def pushed(clamped: dict[int, float]) -> np.ndarray:
        fixed = {node: (lambda _, value=value: value) for node, value in clamped.items()}
        return gcm.counterfactual_samples(causal_model, fixed, noise_data=dowhy_noise)[nodes].to_numpy()

    return noise.to_numpy(), pushed({}), pushed(interventions)


def standardized_rmse(estimate: np.ndarray, truth: np.ndarray, std: np.ndarray) -> float:
    """Mean over rows of the root mean square over nodes of the error in units of the context's std."""
    return float(np.sqrt((((estimate - truth) / std) ** 2).mean(axis=1)).mean())


def scores(model: CondFiP, mechanism: str, noise: str, args: argparse.Namespace) -> dict[str, np.ndarray]:
    """Mean (noise, generation, intervention) RMSE [3] of each method over ``args.datasets`` SCMs."""
    methods = METHODS + (("DoWhy-GCM",) if args.dowhy else ())
    results: dict[str, list[tuple[float, float, float]]] = {name: [] for name in methods}
    for index in range(args.datasets):
        key = zlib.crc32(f"{mechanism}/{noise}".encode())
        rng = np.random.default_rng([args.seed, key, index])
        scm = UnseenSCM(
            args.nodes,
            mechanism,
            noise,
            rng,
            args.parents,
            binary_roots=args.binary_roots,
            noise_factor=args.noise_factor,
            graph=args.graph,
        )
        context = scm.generate(scm.noise(args.context, rng))
        query_noise = scm.noise(400, rng)
        query = scm.generate(query_noise)
        inner = [j for j in range(args.nodes) if scm.adjacency[:, j].any() and scm.adjacency[j].any()]
        target = int(rng.choice(inner or scm.order[-1:]))
        value = float(np.quantile(context[:, target], rng.choice([0.1, 0.9])))
        intervened = scm.generate(query_noise, {target: value})
        std = context.std(axis=0)
        columns = [f"x{j}" for j in range(args.nodes)]
        for name in methods:
            if name == "DoWhy-GCM":
                answers = dowhy_answers(context, scm.adjacency, query, query_noise, {target: value})
            elif name in ("default", "zero-shot"):
                fitted = model.infer(context, scm.adjacency, columns=columns, zero_shot=name == "zero-shot")
                answers = (
                    fitted.noise(query).to_numpy(),
                    fitted.generate(query_noise).to_numpy(),
                    fitted.generate(query_noise, {columns[target]: value}).to_numpy(),
                )
            else:
                baseline = (LinearANM if name == "linear ANM" else KernelANM).fit(context, scm.adjacency)
                answers = (
                    baseline.noise(query),
                    baseline.generate(query_noise),
                    baseline.generate(query_noise, {target: value}),
                )
            truths = (query_noise, query, intervened)
            results[name].append(
                tuple(standardized_rmse(a, t, std) for a, t in zip(answers, truths, strict=True))
            )
    return {name: np.mean(values, axis=0) for name, values in results.items()}


def best_in_bold(result: dict[str, np.ndarray], names: Sequence[str], digits: Sequence[int]) -> list[str]:
    """One table cell per method of ``names``: its figures ``result[name]`` with ``digits`` decimals each, joined by
    " / ", a figure in bold where it is the lowest of every method's in ``result``."""
    best = np.min(np.stack(list(result.values())), axis=0)
    return [
        " / ".join(
            f"**{v:.{places}f}**" if v <= best[t] else f"{v:.{places}f}"
            for t, (v, places) in enumerate(zip(result[name], digits, strict=True))
        )
        for name in names
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--mechanisms",
        nargs="+",
        default=list(MECHANISMS),
        choices=MECHANISMS + MORE_MECHANISMS + ROUND_TWO_MECHANISMS,
    )
    parser.add_argument("--noises", nargs="+", default=["gauss"], choices=NOISES)
    parser.add_argument("--nodes", type=int, default=10)
    parser.add_argument("--context", type=int, default=400)
    parser.add_argument("--parents", type=float, default=1.5, help="expected parents per node (er graphs)")
    parser.add_argument("--graph", default="er", choices=GRAPHS)
    parser.add_argument("--datasets", type=int, default=4)
    parser.add_argument("--binary-roots", action="store_true", help="every root takes -1 or 1")
    parser.add_argument(
        "--noise-factor", type=float, default=1.0, help="the non-root nodes' noise times this"
    )
    parser.add_argument("--dowhy", action="store_true", help="add DoWhy-GCM (needs condfip[dowhy])")
    parser.add_argument("--weights", default="small")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    model = CondFiP.from_pretrained(args.weights)
    methods = METHODS + (("DoWhy-GCM",) if args.dowhy else ())
    print("| mechanism | noise | " + " | ".join(methods) + " |")
    print("|---|---|" + "---|" * len(methods))
    for mechanism in args.mechanisms:
        for noise in args.noises:
            result = scores(model, mechanism, noise, args)
            cells = best_in_bold(result, methods, (3, 3, 3))
            print(f"| {mechanism} | {noise} | " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()
