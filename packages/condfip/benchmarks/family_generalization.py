"""Zero-shot and default-path accuracy per mechanism family, beside a linear regression fitted per dataset.

Measures how a checkpoint generalizes to mechanism families: run it on the families a checkpoint was trained on
and on one it never saw (leave one family out of training, then evaluate on it). For each family it draws
``--datasets`` SCMs (scm-gen, preset ``in``, ER/SF graphs, d = ``--nodes``, ``--context`` rows) and reports the
mean standardized RMSE of noise (of held-out rows) and of generation (held-out rows from their true noise) for:
the checkpoint zero-shot, the checkpoint's default (adapted) path, and a least-squares linear ANM.

    python packages/condfip/benchmarks/family_generalization.py --weights small DIR ... \
        --families linear rff polynomial --datasets 8
"""

from __future__ import annotations

import argparse

import numpy as np

from condfip import CondFiP
from condfip.demo.baseline import LinearANM
from scm_gen import make_benchmark_dataset


def standardized_rmse(estimate: np.ndarray, truth: np.ndarray, std: np.ndarray) -> float:
    """Mean over rows of the root mean square over nodes of the error in units of the context's std."""
    return float(np.sqrt((((estimate - truth) / std) ** 2).mean(axis=1)).mean())


def scores(model: CondFiP, family: str, args: argparse.Namespace) -> dict[str, tuple[float, float]]:
    """Mean (noise, generation) RMSE of each method over the family's datasets."""
    results: dict[str, list[tuple[float, float]]] = {}
    for index in range(args.datasets):
        dataset = make_benchmark_dataset(
            "in", family, args.nodes, num_context=args.context, num_query=400, seed=args.seed, index=index
        )
        context, query = dataset.context_data, dataset.query_data
        noise = dataset.query_noise
        std = context.std(axis=0)
        for name, zero_shot in (("zero-shot", True), ("default", False)):
            scm = model.infer(context, dataset.adjacency, zero_shot=zero_shot)
            results.setdefault(name, []).append(
                (
                    standardized_rmse(scm.noise(query).to_numpy(), noise, std),
                    standardized_rmse(scm.generate(noise).to_numpy(), query, std),
                )
            )
        linear = LinearANM.fit(context, dataset.adjacency)
        results.setdefault("linear ANM", []).append(
            (
                standardized_rmse(linear.noise(query), noise, std),
                standardized_rmse(linear.generate(noise), query, std),
            )
        )
    return {name: tuple(np.mean(values, axis=0)) for name, values in results.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", nargs="+", default=["small"], help="shipped names or checkpoint folders")
    parser.add_argument("--families", nargs="+", default=["linear", "rff", "polynomial"])
    parser.add_argument("--datasets", type=int, default=8)
    parser.add_argument("--nodes", type=int, default=20)
    parser.add_argument("--context", type=int, default=400)
    parser.add_argument("--seed", type=int, default=77)
    args = parser.parse_args()
    print("| weights | family | method | noise | generation |\n|---|---|---|---|---|")
    for weights in args.weights:
        model = CondFiP.from_pretrained(weights, device="cpu")
        for family in args.families:
            for method, (noise, generation) in scores(model, family, args).items():
                print(f"| {weights} | {family} | {method} | {noise:.3f} | {generation:.3f} |", flush=True)


if __name__ == "__main__":
    main()
