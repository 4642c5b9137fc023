"""Scoring Cond-FiP (zero-shot and its default, adapted path) and the linear and kernel baselines on one benchmark
dataset, against the true SCM."""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass

import networkx as nx
import numpy as np

from condfip.api import CondFiP
from condfip.api import infer_graph as infer_dag
from condfip.api.tables import INFER_COPIES
from condfip.core.dags import as_digraph
from condfip.core.graph_scores import auroc, edge_f1, has_edges_and_non_edges, structural_hamming_distance
from condfip.demo.baseline import KernelANM, LinearANM
from condfip.io.memory import check_memory, table_bytes

TASKS = ("noise", "generation", "interventional", "counterfactual")
KERNEL_MAX_ROWS = 2000
"""The kernel baseline runs up to this many context rows: its fit costs O(n^3) time and n x n matrices per node."""
HELD_OUT_ROWS = 400  # query and interventional rows of the demo's dataset (scm-gen's defaults)
# float64 tables [rows, d] that scm-gen holds while it draws a dataset (the rows, their noise, their copies)
DATASET_COPIES = 3


def check_demo_memory(num_context: int, num_nodes: int, feature_columns: int) -> None:
    """Refuse, before anything is drawn, a demo whose peak memory exceeds the machine's: the dataset's tables
    while scm-gen draws them, one node at a time through ``feature_columns`` float32 values per row (the random
    features of RFF mechanisms; 0 for linear ones), then beside them the inference from the context rows."""
    rows = num_context + HELD_OUT_ROWS
    drawing = 4 * rows * (feature_columns + num_nodes + 1)  # one node's features and float32 inputs
    inference = table_bytes(num_context, num_nodes, INFER_COPIES)
    check_memory(
        table_bytes(rows, num_nodes, DATASET_COPIES) + max(drawing, inference),
        f"the demo on {num_context:,} context rows of {num_nodes} nodes",
        hint="use a smaller --num-context",
    )


def with_informative_intervention(dataset, seed: int):
    """The dataset, intervening on a node with descendants (re-drawn from the true SCM when the drawn node has
    none: then every method's counterfactual would be exact and interventions would test nothing)."""
    graph = as_digraph(dataset.adjacency)
    if nx.descendants(graph, dataset.intervention_node) or dataset.scm is None:
        return dataset
    candidates = [node for node in range(dataset.num_nodes) if nx.descendants(graph, node)]
    if not candidates:
        return dataset
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(1,)))
    node = int(rng.choice(candidates))
    value = float(dataset.scm.sample_intervention_value(node, rng, reference=dataset.data))
    return dataclasses.replace(
        dataset,
        intervention_node=node,
        intervention_value=value,
        interventional_data=dataset.scm.generate(dataset.interventional_noise, {node: value}),
        counterfactual_data=dataset.scm.counterfactual(dataset.query_data, {node: value}),
    )


def standardized_rmse(predicted: np.ndarray, truth: np.ndarray, std: np.ndarray) -> float:
    """Mean over rows of the root mean square over nodes of ``(predicted - truth) / std`` (docs/ARCHITECTURE.md, "Evaluation protocol")."""
    return float(np.mean(np.sqrt(np.mean(((predicted - truth) / std) ** 2, axis=1))))


@dataclass(frozen=True)
class MethodScores:
    """RMSE per task (standardized units) and the seconds the method took to fit and answer them all."""

    name: str
    noise: float
    generation: float
    interventional: float
    counterfactual: float
    seconds: float


@dataclass(frozen=True)
class DemoReport:
    description: str
    condfip: MethodScores  # zero-shot
    baseline: MethodScores  # the linear regression
    refit: MethodScores | None = None  # Cond-FiP's default path, adapted to the context rows
    kernel: MethodScores | None = None  # the kernel ridge regression
    note: str = ""  # a line under the table (a column left out, and why)

    def methods(self) -> list[MethodScores]:
        """The columns of the table, in order: zero-shot, default path, kernel and linear regressions."""
        return [m for m in (self.condfip, self.refit, self.kernel, self.baseline) if m is not None]

    def table(self) -> str:
        """The scores side by side, one task per line."""
        methods = self.methods()
        widths = [max(len(method.name), 10) for method in methods]
        lines = [
            self.description,
            "RMSE against the true SCM, standardized units (lower is better):",
            f"  {'':<16}" + "  ".join(f"{m.name:>{w}}" for m, w in zip(methods, widths, strict=True)),
        ]
        for task in (*TASKS, "seconds"):
            scores = (f"{getattr(m, task):>{w}.3f}" for m, w in zip(methods, widths, strict=True))
            lines.append(f"  {task:<16}" + "  ".join(scores))
        return "\n".join(lines + ([self.note] if self.note else []))


def run_demo(
    model: CondFiP, dataset, *, infer_graph: bool = False, refit_readout: bool = True
) -> tuple[DemoReport, object]:
    """Infer ``dataset`` (an ``scm_gen.BenchmarkDataset``) zero-shot and by Cond-FiP's default path, and fit the
    linear and kernel baselines on the same context (the kernel one up to ``KERNEL_MAX_ROWS`` context rows).

    Tasks, all on held-out rows: noise of the query rows; generation from their true noise; interventional
    rows from the true interventional noise under ``do(node = value)``; counterfactuals of the query rows.
    ``infer_graph``: every method gets the DAG that ``model.graph_model`` infers from the context rows instead
    of the true graph (Cond-FiP's seconds include that inference); the report scores the DAG too.
    ``refit_readout``: also score Cond-FiP's default path, adapted to the context rows (``infer(...)``; its
    noise is ``noise()``'s best estimate), when the model can. Returns the report and the inferred SCM of the
    default path (the zero-shot one when the default path did not run).
    """
    columns = [f"x{j}" for j in range(dataset.num_nodes)]
    context, query = dataset.context_data, dataset.query_data
    graph_line = "Graph: the true one, given to every method"
    graph_seconds = 0.0
    adjacency = dataset.adjacency
    if infer_graph:
        start = time.perf_counter()
        probabilities, adjacency = infer_dag(
            context, model=model.graph_model, columns=columns, device=model.device
        )
        graph_seconds = time.perf_counter() - start
        truth = dataset.adjacency
        ranking = f"{auroc(truth, probabilities):.3f}" if has_edges_and_non_edges(truth) else "undefined"
        graph_line = (
            f"Graph: inferred zero-shot from the context rows, given to every method: {int(adjacency.sum())} edges, "
            f"{int(truth.sum())} in the true graph, {int(((truth != 0) & (adjacency != 0)).sum())} correct; "
            f"SHD {structural_hamming_distance(truth, adjacency)}, "
            f"F1 {edge_f1(truth, adjacency):.2f}, AUROC {ranking}"
        )
    std = context.std(axis=0)
    node, value = dataset.intervention_node, dataset.intervention_value

    def score(name: str, answers: dict[str, np.ndarray], seconds: float) -> MethodScores:
        truth = {
            "noise": dataset.query_noise,
            "generation": query,
            "interventional": dataset.interventional_data,
            "counterfactual": dataset.counterfactual_data,
        }
        return MethodScores(
            name, **{t: standardized_rmse(answers[t], truth[t], std) for t in TASKS}, seconds=seconds
        )

    start = time.perf_counter()
    scm = model.infer(context, adjacency, columns=columns, zero_shot=True)
    do = {columns[node]: value}
    answers = {
        "noise": scm.noise(query, method="encoder").to_numpy(),
        "generation": scm.generate(dataset.query_noise).to_numpy(),
        "interventional": scm.generate(dataset.interventional_noise, do).to_numpy(),
        "counterfactual": scm.counterfactual_samples(do, query).to_numpy(),
    }
    condfip_scores = score("Cond-FiP (zero-shot)", answers, time.perf_counter() - start + graph_seconds)

    refit_scores = None
    if refit_readout and model.can_adapt:
        start = time.perf_counter()
        refitted = model.infer(context, adjacency, columns=columns)
        answers = {
            "noise": refitted.noise(query).to_numpy(),
            "generation": refitted.generate(dataset.query_noise).to_numpy(),
            "interventional": refitted.generate(dataset.interventional_noise, do).to_numpy(),
            "counterfactual": refitted.counterfactual_samples(do, query).to_numpy(),
        }
        seconds = time.perf_counter() - start + graph_seconds
        refit_scores = score("Cond-FiP (default: adapted)", answers, seconds)

    def baseline_answers(baseline) -> dict:
        """The four answers of a fitted baseline (LinearANM or KernelANM)."""
        return {
            "noise": baseline.noise(query),
            "generation": baseline.generate(dataset.query_noise),
            "interventional": baseline.generate(dataset.interventional_noise, {node: value}),
            "counterfactual": baseline.counterfactual(query, {node: value}),
        }

    start = time.perf_counter()
    answers = baseline_answers(LinearANM.fit(context, adjacency))
    baseline_scores = score("linear ANM (fitted)", answers, time.perf_counter() - start)

    kernel_scores, note = None, ""
    if len(context) <= KERNEL_MAX_ROWS:
        start = time.perf_counter()
        answers = baseline_answers(KernelANM.fit(context, adjacency))
        kernel_scores = score("kernel ANM (fitted)", answers, time.perf_counter() - start)
    else:
        note = (
            f"(kernel ANM left out: its fit costs O(n^3) per node; it runs up to {KERNEL_MAX_ROWS:,} context "
            "rows)"
        )

    meta = dataset.metadata
    description = (
        f"Fresh SCM from scm-gen: preset {meta.get('preset', '?').upper()}, {meta.get('mechanism', '?')} "
        f"mechanisms, {meta.get('graph', '?')} graph, d = {dataset.num_nodes}, {dataset.num_context} context rows, "
        f"seed {meta.get('seed', '?')}\n"
        f"Intervention: do({columns[node]} = {value:.4g}); {dataset.num_query} query rows, "
        f"{len(dataset.interventional_data)} interventional rows\n{graph_line}"
    )
    shown = refitted if refit_scores is not None else scm  # the default path when it ran
    report = DemoReport(description, condfip_scores, baseline_scores, refit_scores, kernel_scores, note)
    return report, shown
