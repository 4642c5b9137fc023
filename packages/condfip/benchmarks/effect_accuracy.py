"""How close ``InferredSCM.average_causal_effect`` comes to the truth (figures in BENCHMARKS.md, "Average causal
effects").

    python packages/condfip/benchmarks/effect_accuracy.py [--model small] [--datasets 8] [--nodes 20]

For scm-gen test datasets (P_IN / P_OUT, linear / RFF, 400 context rows, the benchmark's intervention
``do(node = value)`` with value ~ U(q10, q90) of the node): the effect on every descendant of the node against
no intervention, from 4,000 rows of noise, by Cond-FiP zero-shot, Cond-FiP with the readout refitted, and a
linear additive-noise model fitted on the same rows (the demo's baseline); the truth pushes the same number of
true noise rows through the true SCM. Error: |estimate - truth| / the target's context std, averaged over
every (dataset, descendant).
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
    from condfip.demo.baseline import LinearANM
    from scm_gen import make_benchmark_dataset

    torch.set_num_threads(1)
    model = CondFiP.from_pretrained(args.model, device="cpu")
    print(f"{'cell':<12} {'Cond-FiP':>9} {'+ refit':>9} {'linear ANM':>11} {'targets':>8}")
    for preset, mechanism in (("in", "linear"), ("in", "rff"), ("out", "linear"), ("out", "rff")):
        errors: dict[str, list[float]] = {"zero-shot": [], "refit": [], "linear": []}
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
            for name, refit in (("zero-shot", False), ("refit", True)):
                scm = model.infer(context, adjacency, refit_readout=refit)
                intervention = {scm.columns[node]: value}
                estimate = np.array(
                    [
                        scm.average_causal_effect(scm.columns[t], intervention, {}, n=NOISE_ROWS, seed=0)
                        for t in targets
                    ]
                )
                errors[name] += list(np.abs(estimate - truth[targets]) / scale)
            linear = LinearANM.fit(context, adjacency)
            abducted = linear.noise(context)  # fresh noise: each node's abducted noise resampled
            rows = np.random.default_rng(0).integers(0, len(context), size=(NOISE_ROWS, context.shape[1]))
            fresh = abducted[rows, np.arange(context.shape[1])]
            estimate = linear.generate(fresh, {node: value}).mean(0) - linear.generate(fresh).mean(0)
            errors["linear"] += list(np.abs(estimate[targets] - truth[targets]) / scale)
        figures = [float(np.mean(errors[name])) for name in ("zero-shot", "refit", "linear")]
        print(
            f"{preset + '/' + mechanism:<12} {figures[0]:>9.3f} {figures[1]:>9.3f} {figures[2]:>11.3f}"
            f" {len(errors['linear']):>8}",
            flush=True,
        )


if __name__ == "__main__":
    main()
