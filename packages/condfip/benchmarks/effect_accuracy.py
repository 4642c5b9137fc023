"""How close ``InferredSCM.average_causal_effect`` comes to the truth (figures in BENCHMARKS.md, "Average causal
effects").

    python packages/condfip/benchmarks/effect_accuracy.py [--model small] [--datasets 8] [--nodes 20]

For scm-gen test datasets (P_IN / P_OUT, linear / RFF, 400 context rows, the benchmark's intervention
``do(node = value)`` with value ~ U(q10, q90) of the node): the effect on every descendant of the node against
no intervention, from 4,000 rows of fresh noise, by Cond-FiP's default (adapted) path, Cond-FiP zero-shot, and the
linear and kernel-ridge additive-noise models of ``condfip.demo.baseline`` fitted on the same rows (their fresh
noise: each node's in-sample residuals resampled); the truth pushes the same number of true noise rows through
the true SCM. Error: |estimate - truth| / the target's context std, averaged over every (dataset, descendant).
"""

from __future__ import annotations

import argparse

import networkx as nx
import numpy as np

NOISE_ROWS = 4000


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", default="small", help="shipped name or checkpoint folder")
    parser.add_argument("--datasets", type=int, default=8, help="datasets per cell")
    parser.add_argument("--nodes", type=int, default=20)
    parser.add_argument("--seed", type=int, default=77)
    args = parser.parse_args()
    import torch

    from condfip import CondFiP
    from condfip.demo.baseline import KernelANM, LinearANM
    from scm_gen import make_benchmark_dataset

    torch.set_num_threads(1)
    model = CondFiP.from_pretrained(args.model, device="cpu")
    names = ("default", "zero-shot", "linear ANM", "kernel ANM")
    print("| cell | " + " | ".join(names) + " | descendants scored |")
    print("|---|" + "---|" * (len(names) + 1))
    for preset, mechanism in (("in", "linear"), ("in", "rff"), ("out", "linear"), ("out", "rff")):
        errors: dict[str, list[float]] = {name: [] for name in names}
        for index in range(args.datasets):
            dataset = make_benchmark_dataset(preset, mechanism, args.nodes, seed=args.seed, index=index)
            context, adjacency = dataset.data[: dataset.num_context], dataset.adjacency
            node, value = dataset.intervention_node, dataset.intervention_value
            graph = nx.from_numpy_array(adjacency, create_using=nx.DiGraph)
            targets = sorted(nx.descendants(graph, node))
            if not targets:
                continue
            scale = context.std(axis=0)[targets]
            noise = dataset.scm.sample_noise(NOISE_ROWS, np.random.default_rng(0))
            truth = dataset.scm.generate(noise, {node: value}).mean(0) - dataset.scm.generate(noise).mean(0)
            for name in ("default", "zero-shot"):
                scm = model.infer(context, adjacency, zero_shot=name == "zero-shot")
                intervention = {scm.columns[node]: value}
                estimate = np.array(
                    [
                        scm.average_causal_effect(scm.columns[t], intervention, {}, n=NOISE_ROWS, seed=0)
                        for t in targets
                    ]
                )
                errors[name] += list(np.abs(estimate - truth[targets]) / scale)
            for name, baseline in (("linear ANM", LinearANM), ("kernel ANM", KernelANM)):
                fitted = baseline.fit(context, adjacency)
                abducted = fitted.noise(context)  # fresh noise: each node's abducted noise resampled
                rows = np.random.default_rng(0).integers(0, len(context), size=(NOISE_ROWS, context.shape[1]))
                fresh = abducted[rows, np.arange(context.shape[1])]
                estimate = fitted.generate(fresh, {node: value}).mean(0) - fitted.generate(fresh).mean(0)
                errors[name] += list(np.abs(estimate[targets] - truth[targets]) / scale)
        figures = [float(np.mean(errors[name])) for name in names]
        best = min(figures)
        cells = [f"**{value:.3f}**" if value == best else f"{value:.3f}" for value in figures]
        print(
            f"| {preset.upper()} {mechanism} | " + " | ".join(cells) + f" | {len(errors['default'])} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
