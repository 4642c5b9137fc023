"""Cond-FiP inside DoWhy-GCM against DoWhy's own automatic assignment, on the same data.

    python packages/condfip/benchmarks/bench_dowhy.py [--nodes 10 20 50 100] [--datasets 3] [--model small]
        [--infer-option refit_readout=True ...]

Needs ``condfip[dowhy]``. For scm-gen benchmark datasets (preset ``in``, RFF mechanisms, 400 context rows),
two ways to fill one ``gcm.InvertibleStructuralCausalModel`` over the true graph:

- Cond-FiP: ``condfip.dowhy.assign_causal_mechanisms(causal_model, data)`` then ``gcm.fit(causal_model, data)``;
- DoWhy: ``gcm.auto.assign_causal_mechanisms(causal_model, data, quality=GOOD)`` then ``gcm.fit``.

Time: assign + fit, the median over datasets, one thread each (the Cond-FiP checkpoint is loaded once and
warmed up before timing; its load time is printed apart). Errors, both through DoWhy's own queries and in the
units of condfip-eval's scoring (standardized by the observational rows' mean and std, RMSE per row over the
nodes, averaged over rows):

- counterfactual: ``gcm.counterfactual_samples`` of the query rows under ``do(node = value)`` (the dataset's
  intervention) against the true counterfactual rows;
- interventional: the interventional rows' true noise (a root's DoWhy noise is its value) pushed through
  ``gcm.counterfactual_samples(noise_data=...)`` under the intervention, against the true interventional rows.

Also printed: the seconds of that one counterfactual query (400 rows) with each model.
"""

from __future__ import annotations

import argparse
import ast
import statistics
import time

import networkx as nx
import numpy as np
import pandas as pd


def _rmse(got: np.ndarray, truth: np.ndarray, mean: np.ndarray, std: np.ndarray) -> float:
    difference = (got - mean) / std - (truth - mean) / std  # [n, d] standardized
    return float(np.sqrt((difference**2).mean(axis=1)).mean())


def _option(text: str) -> tuple[str, object]:
    name, _, value = text.partition("=")
    if not name or not value:
        raise argparse.ArgumentTypeError(f"--infer-option takes NAME=VALUE, got {text!r}")
    return name, ast.literal_eval(value)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--nodes", type=int, nargs="+", default=[10, 20, 50, 100])
    parser.add_argument("--datasets", type=int, default=3, help="datasets per node count")
    parser.add_argument("--model", default="small", help="shipped name or checkpoint folder")
    parser.add_argument("--mechanism", default="rff", choices=["linear", "rff"])
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument(
        "--infer-option", type=_option, action="append", default=[], help="NAME=VALUE for model.infer"
    )
    args = parser.parse_args()
    import torch
    from dowhy import gcm

    from condfip import CondFiP
    from condfip.dowhy import assign_causal_mechanisms
    from scm_gen import make_benchmark_dataset

    torch.set_num_threads(1)
    gcm.config.disable_progress_bars()
    gcm.config.set_default_n_jobs(1)
    options = dict(args.infer_option)
    start = time.perf_counter()
    model = CondFiP.from_pretrained(args.model, device="cpu")
    print(
        f"Cond-FiP checkpoint {args.model!r} loaded in {time.perf_counter() - start:.2f} s; options {options}"
    )

    def fill_condfip(causal_model, data):
        assign_causal_mechanisms(causal_model, data, model=model, **options)
        gcm.fit(causal_model, data)

    def fill_dowhy(causal_model, data):
        gcm.auto.assign_causal_mechanisms(causal_model, data, quality=gcm.auto.AssignmentQuality.GOOD)
        gcm.fit(causal_model, data)

    methods = {"Cond-FiP": fill_condfip, "DoWhy GOOD": fill_dowhy}
    warm = make_benchmark_dataset("in", args.mechanism, 5, seed=0, num_context=50, num_query=2)
    warm_graph = nx.relabel_nodes(nx.from_numpy_array(warm.adjacency, create_using=nx.DiGraph), str)
    fill_condfip(
        gcm.InvertibleStructuralCausalModel(warm_graph),
        pd.DataFrame(warm.context_data, columns=[str(j) for j in range(5)]),
    )

    header = f"{'d':>4} {'method':<11} {'assign+fit s':>13} {'cf query s':>11} {'cf RMSE':>8} {'int RMSE':>9}"
    print(header, flush=True)
    for num_nodes in args.nodes:
        results: dict[str, dict[str, list[float]]] = {
            name: {"fit": [], "query": [], "cf": [], "int": []} for name in methods
        }
        for index in range(args.datasets):
            dataset = make_benchmark_dataset(
                "in", args.mechanism, num_nodes, seed=args.seed, index=index, num_context=400
            )
            columns = [f"x{j}" for j in range(num_nodes)]
            graph = nx.DiGraph()
            graph.add_nodes_from(columns)
            graph.add_edges_from(
                (columns[i], columns[j]) for i, j in zip(*np.nonzero(dataset.adjacency), strict=True)
            )
            context = pd.DataFrame(dataset.context_data, columns=columns)
            query = pd.DataFrame(dataset.query_data, columns=columns)
            node, value = columns[dataset.intervention_node], float(dataset.intervention_value)
            intervention = {node: lambda x, value=value: value}  # do(node = value)
            roots = [name for name in columns if graph.in_degree(name) == 0]
            true_noise = pd.DataFrame(dataset.interventional_noise, columns=columns)
            true_noise[roots] = pd.DataFrame(dataset.interventional_data, columns=columns)[roots]
            mean, std = dataset.data.mean(axis=0), dataset.data.std(axis=0)
            for name, fill in methods.items():
                causal_model = gcm.InvertibleStructuralCausalModel(nx.DiGraph(graph))  # DoWhy keeps the graph
                start = time.perf_counter()
                fill(causal_model, context)
                results[name]["fit"].append(time.perf_counter() - start)
                start = time.perf_counter()
                counterfactual = gcm.counterfactual_samples(causal_model, intervention, observed_data=query)
                results[name]["query"].append(time.perf_counter() - start)
                interventional = gcm.counterfactual_samples(causal_model, intervention, noise_data=true_noise)
                results[name]["cf"].append(
                    _rmse(counterfactual[columns].to_numpy(), dataset.counterfactual_data, mean, std)
                )
                results[name]["int"].append(
                    _rmse(interventional[columns].to_numpy(), dataset.interventional_data, mean, std)
                )
        for name, figures in results.items():
            print(
                f"{num_nodes:>4} {name:<11} {statistics.median(figures['fit']):>13.3f}"
                f" {statistics.median(figures['query']):>11.3f} {np.mean(figures['cf']):>8.3f}"
                f" {np.mean(figures['int']):>9.3f}",
                flush=True,
            )
        speedup = statistics.median(results["DoWhy GOOD"]["fit"]) / statistics.median(
            results["Cond-FiP"]["fit"]
        )
        print(f"{num_nodes:>4} assign+fit speed-up of Cond-FiP: {speedup:.1f}x", flush=True)


if __name__ == "__main__":
    main()
