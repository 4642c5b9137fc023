"""How close fresh samples come to the SCM's own distribution, on the families of ``unseen_families.py``.

Per SCM, 1,000 rows as ``scm.sample`` draws them on the default path (each node's abducted context noise widened
by its fit's leverage, ``InferredSCM.sampling_noise``); for comparison, 1,000 rows from the same model with the
abducted noise unwidened (``noise(method="decoder")`` of the context), and from the linear and kernel-ridge ANMs
of ``condfip.demo.baseline`` (their in-sample residuals). Every sampler redraws each node's noise with
replacement, independently across nodes, the same row indices for every sampler (paired). Each is scored against
1,000 fresh rows of the true SCM by the unbiased MMD^2 (Gaussian kernel, median-heuristic bandwidth) and the
energy distance of ``condfip_eval.metrics`` (needs ``./packages/eval``), in the true rows' standardized units;
the table reports their means over ``--datasets`` SCMs per family.

    python packages/condfip/benchmarks/sample_distribution.py --context 100 400 --datasets 10
"""

from __future__ import annotations

import argparse
import zlib

import numpy as np
from unseen_families import MECHANISMS, MORE_MECHANISMS, ROUND_TWO_MECHANISMS, UnseenSCM, best_in_bold

from condfip import CondFiP
from condfip.demo.baseline import KernelANM, LinearANM
from condfip_eval.metrics import energy_distance, mmd_squared

SAMPLERS = ("default", "unwidened", "linear ANM", "kernel ANM")
FRESH_ROWS = 1000


def resampled(noise: np.ndarray, picks: np.ndarray) -> np.ndarray:
    """Rows of noise [r, d], node j's from row ``picks[:, j]`` of its column of ``noise`` [n, d] (picks [r, d])."""
    return noise[picks, np.arange(noise.shape[1])]


def scores(
    model: CondFiP, mechanism: str, args: argparse.Namespace, num_context: int
) -> dict[str, np.ndarray]:
    """Mean (MMD^2, energy distance) [2] of each sampler over ``args.datasets`` SCMs."""
    results: dict[str, list[tuple[float, float]]] = {name: [] for name in SAMPLERS}
    for index in range(args.datasets):
        rng = np.random.default_rng([args.seed, zlib.crc32(mechanism.encode()), index, num_context])
        scm = UnseenSCM(args.nodes, mechanism, "gauss", rng)
        context = scm.generate(scm.noise(num_context, rng))
        truth = scm.generate(scm.noise(FRESH_ROWS, rng))
        mean, std = truth.mean(axis=0), truth.std(axis=0)
        picks = rng.integers(
            0, num_context, size=(FRESH_ROWS, args.nodes)
        )  # the same draws for every sampler
        fitted = model.infer(context, scm.adjacency)
        draws = {
            "default": fitted.generate(resampled(fitted.sampling_noise().to_numpy(), picks)).to_numpy(),
            "unwidened": fitted.generate(
                resampled(fitted.noise(method="decoder").to_numpy(), picks)
            ).to_numpy(),
        }
        for name, baseline in (("linear ANM", LinearANM), ("kernel ANM", KernelANM)):
            anm = baseline.fit(context, scm.adjacency)
            draws[name] = anm.generate(resampled(anm.noise(context), picks))
        for name, rows in draws.items():
            a, b = (rows - mean) / std, (truth - mean) / std
            results[name].append((mmd_squared(a, b), energy_distance(a, b)))
    return {name: np.mean(values, axis=0) for name, values in results.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    families = MECHANISMS + MORE_MECHANISMS + ROUND_TWO_MECHANISMS
    parser.add_argument(
        "--mechanisms", nargs="+", default=["sine", "network", "bumps", "quadratic"], choices=families
    )
    parser.add_argument("--context", nargs="+", type=int, default=[100, 400])
    parser.add_argument("--nodes", type=int, default=10)
    parser.add_argument("--datasets", type=int, default=10)
    parser.add_argument("--weights", default="small")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    model = CondFiP.from_pretrained(args.weights)
    print("| rows | mechanism | " + " | ".join(f"{name} MMD² / energy" for name in SAMPLERS) + " |")
    print("|---|---|" + "---|" * len(SAMPLERS))
    for num_context in args.context:
        for mechanism in args.mechanisms:
            cells = best_in_bold(scores(model, mechanism, args, num_context), SAMPLERS, (5, 4))
            print(f"| {num_context} | {mechanism} | " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()
