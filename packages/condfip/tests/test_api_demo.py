"""``condfip demo``: its scoring against the truth, its linear and kernel baselines, and the command itself."""

from __future__ import annotations

import dataclasses
import re
import sys
from pathlib import Path

import networkx as nx
import numpy as np
import pytest
import torch
from torch import nn

import scm_gen
from condfip import CondFiP
from condfip.cli import main
from condfip.demo import KernelANM, KernelRegression, LinearANM, run_demo, standardized_rmse
from condfip.demo import run as demo_run
from condfip.demo.baseline import BANDWIDTH_FACTORS, RIDGES
from condfip.demo.run import with_informative_intervention
from condfip.io import shipped_checkpoints
from condfip.model import CondFiPConfig, CondFiPModel, DatasetEmbedding

TINY = CondFiPConfig(
    dim=8, num_heads=2, mlp_dim=16, encoder_pairs=1, embedding_pairs=1, decoder_blocks=1, num_anchor_rows=16
)


class OracleModel(nn.Module):
    """``F_hat`` = the true mechanisms of ``scm``, in the standardized units of the context (float64)."""

    def __init__(self, scm, context: np.ndarray) -> None:
        super().__init__()
        self.scm, self.mean, self.std = scm, context.mean(axis=0), context.std(axis=0)
        self.config = TINY
        self.anchor = nn.Parameter(torch.zeros(1, dtype=torch.float64))

    def embed(self, context, parents, *, sample_mask=None, chunk_size=None):
        zeros = torch.zeros(context.shape[0], context.shape[2], 1, dtype=torch.float64)
        return DatasetEmbedding(scale=zeros, position=zeros, condition=zeros)

    def mechanisms(self, z, parents, embedding, nodes=None):
        x = z[0].numpy() * self.std + self.mean
        full = torch.from_numpy((self.scm.mechanisms(x) - self.mean) / self.std)[None]
        return full if nodes is None else full[..., nodes]


@pytest.fixture(scope="module")
def model_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("demo") / "tiny"
    with torch.random.fork_rng():
        torch.manual_seed(0)
        CondFiPModel(TINY).save_pretrained(folder)
    return folder


def test_standardized_rmse_by_hand():
    predicted = np.array([[1.0, 2.0], [0.0, 0.0]])
    truth = np.array([[0.0, 0.0], [0.0, 3.0]])
    std = np.array([1.0, 2.0])
    # row 0: sqrt((1 + 1) / 2) = 1; row 1: sqrt((0 + 2.25) / 2) = 1.0607
    assert standardized_rmse(predicted, truth, std) == pytest.approx((1.0 + np.sqrt(1.125)) / 2)


def test_linear_baseline_recovers_a_linear_scm():
    rng = np.random.default_rng(0)
    scm = scm_gen.sample_scm("in", "linear", 6, rng=rng, graph="er")
    data, noise = scm.sample(5000, rng)
    baseline = LinearANM.fit(data, scm.adjacency)
    assert np.all(baseline.weights[scm.adjacency == 0] == 0)
    std = data.std(axis=0)
    assert standardized_rmse(baseline.noise(data), noise, std) < 0.02
    assert standardized_rmse(baseline.generate(noise), data, std) < 0.02
    node = int(scm.topological_order[1])
    np.testing.assert_array_equal(baseline.generate(noise, {node: 2.0})[:, node], 2.0)
    np.testing.assert_allclose(baseline.generate(baseline.noise(data)), data, rtol=1e-9, atol=1e-9)


def direct_kernel(a: np.ndarray, b: np.ndarray, bandwidth: float) -> np.ndarray:
    """exp(-|a_i - b_j|^2 / (2 bandwidth^2)) [n, m] from explicit differences."""
    differences = a[:, None, :] - b[None, :, :]  # [n, m, p]
    return np.exp(-(differences**2).sum(axis=2) / (2.0 * bandwidth**2))


def test_kernel_regression_matches_a_direct_solve_and_brute_force_leave_one_out():
    rng = np.random.default_rng(3)
    parents = rng.normal(size=(40, 2)) * [2.0, 0.5] + [1.0, -3.0]  # [n, p], not standardized
    target = np.sin(parents[:, 0]) + parents[:, 1] ** 2 + 0.1 * rng.normal(size=40)
    regression = KernelRegression.fit(parents, target)

    z = (parents - parents.mean(axis=0)) / parents.std(axis=0)
    y = target - target.mean()
    squared = ((z[:, None, :] - z[None, :, :]) ** 2).sum(axis=2)
    median = np.sqrt(np.median(squared[np.triu_indices(40, k=1)]))  # of the 780 pairwise distances
    # brute force: refit without row i, predict row i, for every (bandwidth, ridge) of the grid
    errors = {}
    for factor in BANDWIDTH_FACTORS:
        kernel = direct_kernel(z, z, factor * median)
        for ridge in RIDGES:
            residuals = []
            for i in range(40):
                rest = np.arange(40) != i
                weights = np.linalg.solve(kernel[np.ix_(rest, rest)] + ridge * np.eye(39), y[rest])
                residuals.append(y[i] - kernel[i, rest] @ weights)
            errors[factor * median, ridge] = float(np.mean(np.square(residuals)))
    ranked = sorted(errors, key=errors.get)
    # the leave-one-out formula and the refits differ by the rounding of n x n solves whose condition number is
    # at most (n + ridge) / ridge <= 4e5: far below 1e-6 relative; the two best candidates differ by more
    assert errors[ranked[1]] > errors[ranked[0]] * (1 + 1e-4)
    assert (regression.bandwidth, regression.ridge) == pytest.approx(ranked[0], rel=1e-12)
    assert regression.leave_one_out_error == pytest.approx(errors[ranked[0]], rel=1e-6)

    kernel = direct_kernel(z, z, regression.bandwidth) + regression.ridge * np.eye(40)
    weights = np.linalg.solve(kernel, y)
    # both solve the same system; its kernel is rounded differently (the distances' two formulas), which the
    # solve amplifies by at most its condition number
    tolerance = 100 * np.finfo(np.float64).eps * np.linalg.cond(kernel) * np.abs(weights).max()
    np.testing.assert_allclose(regression.weights, weights, rtol=0, atol=tolerance)
    new = rng.normal(size=(7, 2)) * [2.0, 0.5] + [1.0, -3.0]
    expected = (
        target.mean()
        + direct_kernel((new - parents.mean(axis=0)) / parents.std(axis=0), z, regression.bandwidth) @ weights
    )
    np.testing.assert_allclose(regression.predict(new), expected, rtol=0, atol=40 * tolerance)


def test_kernel_baseline_fits_an_rff_scm_and_inverts_exactly():
    rng = np.random.default_rng(1)
    scm = scm_gen.sample_scm("in", "rff", 6, rng=rng, graph="er")
    context, _ = scm.sample(300, rng)
    data, noise = scm.sample(200, rng)
    kernel = KernelANM.fit(context, scm.adjacency)
    linear = LinearANM.fit(context, scm.adjacency)
    std = context.std(axis=0)
    assert standardized_rmse(kernel.noise(data), noise, std) < 0.7 * standardized_rmse(
        linear.noise(data), noise, std
    )
    roots = np.flatnonzero(scm.adjacency.sum(axis=0) == 0)
    assert roots.size and all(kernel.regressions[root] is None for root in roots)
    for root in roots:  # a root's mechanism is its context mean
        np.testing.assert_array_equal(kernel.mechanisms(data)[:, root], context[:, root].mean())
    # node j reads only its parents: changing a non-parent leaves its prediction unchanged
    node = int(np.flatnonzero(scm.adjacency.sum(axis=0))[0])
    others = data.copy()
    others[:, scm.adjacency[:, node] == 0] += 1.0
    np.testing.assert_array_equal(kernel.predict_node(node, others), kernel.predict_node(node, data))
    np.testing.assert_allclose(
        kernel.generate(kernel.noise(data)), data, rtol=1e-12, atol=1e-12 * np.abs(data).max()
    )
    intervened = int(scm.topological_order[1])
    np.testing.assert_array_equal(kernel.generate(noise, {intervened: 2.0})[:, intervened], 2.0)
    with pytest.raises(ValueError, match="ridges must be positive"):
        KernelANM.fit(context, scm.adjacency, ridges=(0.0, 1.0))
    with pytest.raises(ValueError, match="bandwidth_factors must be positive"):
        KernelANM.fit(context, scm.adjacency, bandwidth_factors=())


def test_oracle_scores_zero_and_the_report_lists_every_task():
    dataset = scm_gen.make_benchmark_dataset(
        "in", "rff", 6, num_context=100, num_query=50, num_interventional=50, seed=2
    )
    report, scm = run_demo(CondFiP(OracleModel(dataset.scm, dataset.context_data)), dataset)
    for task in ("noise", "generation", "interventional", "counterfactual"):
        assert getattr(report.condfip, task) < 1e-9
        assert getattr(report.baseline, task) > 1e-3  # a linear fit of RFF mechanisms is not exact
        assert getattr(report.kernel, task) > 1e-3  # nor is a kernel fit on 100 rows
    table = report.table()
    for line in ("noise", "generation", "interventional", "counterfactual", "seconds"):
        assert re.search(
            rf"^  {line} +\d+\.\d{{3}} +\d+\.\d{{3}} +\d+\.\d{{3}}$", table, flags=re.MULTILINE
        ), table
    assert (
        "Cond-FiP (zero-shot)" in table and "kernel ANM (fitted)" in table and "linear ANM (fitted)" in table
    )
    assert (
        report.refit is None and "refit" not in table
    )  # the oracle is no Cond-FiP network: nothing to refit
    assert scm.columns == [f"x{j}" for j in range(6)]


def test_the_refit_column_scores_the_refitted_model():
    sys.path.insert(0, str(Path(__file__).parent))
    from test_api_inference import tiny_model

    dataset = scm_gen.make_benchmark_dataset(
        "in", "linear", 5, num_context=120, num_query=40, num_interventional=40, seed=4
    )
    model = CondFiP(tiny_model(), device="cpu")
    report, _ = run_demo(model, dataset)
    refitted = model.infer(dataset.context_data, dataset.adjacency)  # the default path
    std = dataset.context_data.std(axis=0)
    expected = standardized_rmse(refitted.noise(dataset.query_data).to_numpy(), dataset.query_noise, std)
    assert report.refit is not None and report.refit.noise == pytest.approx(expected, rel=1e-9)
    kernel = KernelANM.fit(dataset.context_data, dataset.adjacency)
    expected = standardized_rmse(kernel.generate(dataset.query_noise), dataset.query_data, std)
    assert report.kernel is not None and report.kernel.generation == pytest.approx(expected, rel=1e-12)
    table = report.table()
    four = r"^  generation +\d+\.\d{3} +\d+\.\d{3} +\d+\.\d{3} +\d+\.\d{3}$"
    assert re.search(four, table, flags=re.MULTILINE), table
    names = [
        "Cond-FiP (zero-shot)",
        "Cond-FiP (default: adapted)",
        "kernel ANM (fitted)",
        "linear ANM (fitted)",
    ]
    assert [m.name for m in report.methods()] == names
    header = table.splitlines()[4]
    assert [header.index(name) for name in names] == sorted(header.index(name) for name in names)
    assert run_demo(model, dataset, refit_readout=False)[0].refit is None


def test_the_kernel_column_is_left_out_above_its_row_limit(monkeypatch):
    dataset = scm_gen.make_benchmark_dataset(
        "in", "rff", 4, num_context=60, num_query=20, num_interventional=20, seed=3
    )
    monkeypatch.setattr(demo_run, "KERNEL_MAX_ROWS", 59)
    report, _ = run_demo(CondFiP(OracleModel(dataset.scm, dataset.context_data)), dataset)
    assert report.kernel is None and "kernel ANM (fitted)" not in report.table().splitlines()[4]
    assert report.table().splitlines()[-1] == (
        "(kernel ANM left out: its fit costs O(n^3) per node; it runs up to 59 context rows)"
    )
    monkeypatch.setattr(demo_run, "KERNEL_MAX_ROWS", 60)
    assert run_demo(CondFiP(OracleModel(dataset.scm, dataset.context_data)), dataset)[0].kernel is not None


def test_demo_with_an_inferred_graph_gives_it_to_both_methods():
    sys.path.insert(0, str(Path(__file__).parent))
    from test_graph_model import tiny_model

    from condfip import infer_graph

    dataset = scm_gen.make_benchmark_dataset(
        "in", "linear", 6, num_context=100, num_query=50, num_interventional=50, seed=2
    )
    graph_model = tiny_model(seed=1)
    oracle = CondFiP(OracleModel(dataset.scm, dataset.context_data), graph_model=graph_model)
    true_report, _ = run_demo(oracle, dataset)
    report, scm = run_demo(oracle, dataset, infer_graph=True)
    _, dag = infer_graph(dataset.context_data, model=graph_model, columns=scm.columns)
    assert not np.array_equal(dag, dataset.adjacency)  # the random test model gets the graph wrong
    assert set(scm.graph.edges()) == {(f"x{i}", f"x{j}") for i, j in np.argwhere(dag)}
    baseline = LinearANM.fit(dataset.context_data, dag)  # the baseline got the same inferred DAG
    std = dataset.context_data.std(axis=0)
    assert report.baseline.noise == pytest.approx(
        standardized_rmse(baseline.noise(dataset.query_data), dataset.query_noise, std)
    )
    assert report.baseline.noise != pytest.approx(true_report.baseline.noise)
    kernel = KernelANM.fit(dataset.context_data, dag)  # and so did the kernel baseline
    assert report.kernel.noise == pytest.approx(
        standardized_rmse(kernel.noise(dataset.query_data), dataset.query_noise, std), rel=1e-12
    )
    assert (
        f"Graph: inferred zero-shot from the context rows, given to every method: {int(dag.sum())} edges, "
        f"{int(dataset.adjacency.sum())} in the true graph, {int(((dag != 0) & (dataset.adjacency != 0)).sum())} "
        "correct" in report.description
    )
    assert "Graph: the true one, given to every method" in true_report.description


def test_demo_intervenes_on_a_node_with_descendants():
    dataset = scm_gen.make_benchmark_dataset(
        "in", "rff", 8, num_context=100, num_query=30, num_interventional=30, seed=5
    )
    graph = nx.from_numpy_array(dataset.adjacency, create_using=nx.DiGraph)
    sink = next(node for node in range(8) if not nx.descendants(graph, node))
    drawn = next(node for node in range(8) if nx.descendants(graph, node))
    assert (
        with_informative_intervention(
            dataclasses.replace(dataset, intervention_node=drawn), 0
        ).intervention_node
        == drawn
    )
    changed = with_informative_intervention(dataclasses.replace(dataset, intervention_node=sink), 0)
    node, value = changed.intervention_node, changed.intervention_value
    assert nx.descendants(graph, node)
    low, high = np.quantile(dataset.data[:, node], [0.1, 0.9])
    assert low <= value <= high
    np.testing.assert_array_equal(
        changed.interventional_data, dataset.scm.generate(dataset.interventional_noise, {node: value})
    )
    np.testing.assert_array_equal(
        changed.counterfactual_data, dataset.scm.counterfactual(dataset.query_data, {node: value})
    )


def demo_argv(model_folder, *extra: str) -> list[str]:
    return [
        "demo",
        "--model",
        str(model_folder),
        "--num-nodes",
        "5",
        "--num-context",
        "60",
        "--seed",
        "4",
        *extra,
    ]


def test_demo_command_prints_the_table(model_folder, capsys):
    assert main(demo_argv(model_folder)) == 0
    first = capsys.readouterr().out
    assert "d = 5, 60 context rows, seed 4" in first and "rerun with --seed 4" in first
    # four methods: Cond-FiP zero-shot, its default (adapted) path, the kernel and the linear baselines
    four = r"^  interventional +\d+\.\d{3} +\d+\.\d{3} +\d+\.\d{3} +\d+\.\d{3}$"
    assert re.search(four, first, flags=re.MULTILINE), first
    assert re.search(
        r"^ +Cond-FiP \(zero-shot\) +Cond-FiP \(default: adapted\) +kernel ANM \(fitted\) +linear ANM \(fitted\)$",
        first,
        flags=re.MULTILINE,
    ), first
    main(demo_argv(model_folder))
    second = capsys.readouterr().out
    scores = [line for line in first.splitlines() if line.startswith("  ") and "seconds" not in line]
    assert scores == [line for line in second.splitlines() if line.startswith("  ") and "seconds" not in line]


def test_demo_command_with_an_inferred_graph(model_folder, tmp_path, capsys):
    sys.path.insert(0, str(Path(__file__).parent))
    from test_graph_model import tiny_model

    graph_folder = tmp_path / "graph"
    tiny_model(seed=1).save_pretrained(graph_folder)
    assert main(demo_argv(model_folder, "--infer-graph", "--graph-model", str(graph_folder))) == 0
    out = capsys.readouterr().out
    assert re.search(
        r"Graph: inferred zero-shot .* \d+ edges, \d+ in the true graph, \d+ correct; SHD \d+, F1 \d\.\d\d, AUROC",
        out,
    ), out
    assert main(demo_argv(model_folder, "--no-refit-readout")) == 0
    out = capsys.readouterr().out
    assert "Graph: the true one" in out and "refit" not in out


def test_demo_plot_without_matplotlib_says_how_to_install(model_folder, tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib now raises ImportError
    assert main(demo_argv(model_folder, "--plot", str(tmp_path / "plot.png"))) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "pip install 'condfip[plot]'" in error
    assert list(tmp_path.iterdir()) == []


def test_demo_plot_writes_a_png(model_folder, tmp_path):
    pytest.importorskip("matplotlib")
    assert main(demo_argv(model_folder, "--plot", str(tmp_path / "plot.png"))) == 0
    assert (tmp_path / "plot.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [p.name for p in tmp_path.iterdir()] == ["plot.png"]


@pytest.mark.skipif(not shipped_checkpoints().get("small"), reason="the small weights are not shipped yet")
def test_demo_with_no_arguments_runs_on_the_shipped_weights(capsys):
    assert main(["demo", "--seed", "0"]) == 0
    assert "d = 20, 400 context rows" in capsys.readouterr().out


def test_demo_bad_options(capsys):
    with pytest.raises(SystemExit) as stopped:
        main(["demo", "--num-nodes", "zero"])
    assert stopped.value.code == 2 and capsys.readouterr().err.count("\n") == 1
