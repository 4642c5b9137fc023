import json
import re

import numpy as np
import pytest

from condfip_eval import __version__
from condfip_eval.grid import MECHANISMS, PaperCell, cell_specs, dataset_index, paper_cells
from condfip_eval.methods import LinearANM, Method
from condfip_eval.methods.base import FittedSCM
from condfip_eval.paper import PaperSettings, run_paper
from condfip_eval.results import ResultsDirError
from condfip_eval.scoring import TASKS, score_dataset
from scm_gen import sample_scm


class _OracleSCM(FittedSCM):
    def __init__(self, scm):
        super().__init__(scm.adjacency)
        self.scm = scm

    def _noise(self, x):
        return self.scm.abduct(x)

    def _generate(self, noise, interventions):
        return self.scm.generate(noise, interventions or None)


class Oracle(Method):
    """Knows the true SCM of one grid dataset (rebuilt the way scm-gen's make_benchmark_dataset draws it)."""

    name = "oracle"

    def __init__(self, spec):
        rng = np.random.default_rng(np.random.SeedSequence(spec.seed, spawn_key=(spec.index,)))
        self.scm = sample_scm(
            spec.cell.preset, spec.cell.mechanism, spec.cell.num_nodes, rng=rng, graph=spec.graph
        )

    def _fit(self, context, adjacency):
        return _OracleSCM(self.scm)


class _NaNSCM(FittedSCM):
    def _noise(self, x):
        return np.full_like(x, np.nan)

    def _generate(self, noise, interventions):
        return noise


class ReturnsNaN(Method):
    name = "nan"

    def _fit(self, context, adjacency):
        return _NaNSCM(adjacency)


def test_non_finite_output_is_an_error_not_a_silent_gap():
    spec = cell_specs(PaperCell(5, "linear", "in"), num_query=10, num_interventional=10, scms_per_graph=1)[0]
    with pytest.raises(ValueError, match="noise: the fitted model gives NaN or infinite values"):
        score_dataset(ReturnsNaN(), spec.build())


class Broken(Method):
    name = "broken"

    def _fit(self, context, adjacency):
        raise RuntimeError("no luck")


def test_canonical_indices_follow_scm_gen_grid_layout():
    # presets in, out; mechanisms linear, rff; d 10, 20, 50, 100; 3 SCMs per family (IN: 3 families, OUT: 2)
    assert dataset_index(PaperCell(10, "linear", "in"), 0, 0) == 0
    assert dataset_index(PaperCell(10, "linear", "in"), 2, 1) == 7
    assert dataset_index(PaperCell(20, "linear", "in"), 0, 0) == 9
    assert dataset_index(PaperCell(10, "rff", "in"), 0, 0) == 36
    assert dataset_index(PaperCell(20, "linear", "out"), 1, 1) == 72 + 6 + 4
    assert dataset_index(PaperCell(100, "rff", "out"), 1, 2) == 72 + 48 - 1
    off_grid = {
        dataset_index(PaperCell(7, m, p), g, r)
        for m in ("linear", "rff")
        for p in ("in", "out")
        for g in (0, 1)
        for r in range(3)
    }
    assert len(off_grid) == 24 and min(off_grid) >= 1_000_000


def test_indices_agree_with_scm_gen_grid_export():
    import importlib

    import scm_gen

    grid_specs = getattr(scm_gen, "grid_specs", None)
    for module in ("scm_gen.specs", "scm_gen.grid"):
        if grid_specs is None:
            try:
                grid_specs = getattr(importlib.import_module(module), "grid_specs", None)
            except ImportError:
                pass
    if grid_specs is None:
        pytest.skip("this scm-gen has no grid_specs export to compare with")
    exported = {(s.preset, s.mechanism, s.num_nodes, s.graph): [] for s in grid_specs()}
    for spec in grid_specs():
        exported[(spec.preset, spec.mechanism, spec.num_nodes, spec.graph)].append(spec.index)
    for cell in paper_cells((10, 20, 50, 100)):
        for spec in cell_specs(cell):
            assert spec.index in exported[(cell.preset, cell.mechanism, cell.num_nodes, spec.graph)]


def test_other_mechanism_families_get_their_own_cells_and_fixed_indices():
    cells = paper_cells((20,), ("mixed", "nn_tanh"), ("in",))
    assert [(c.mechanism, c.column) for c in cells] == [("nn_tanh", "nn_tanh-IN"), ("mixed", "mixed-IN")]
    assert paper_cells((20,)) == paper_cells((20,), ("linear", "rff"), ("in", "out"))  # the paper's grid
    families = [
        dataset_index(PaperCell(d, m, p), g, r)
        for m in MECHANISMS[2:]
        for p in ("in", "out")
        for d in (10, 20, 5_000)
        for g in (0, 2)
        for r in (0, 99)
    ]
    assert len(set(families)) == len(families) and min(families) >= 100_000_000
    paper = {
        dataset_index(PaperCell(d, m, p), 2, 99)
        for m in ("linear", "rff")
        for p in ("in", "out")
        for d in (10, 5_000)
    }
    assert max(paper) < 100_000_000
    with pytest.raises(ValueError, match="unknown mechanism 'magic'; choose from linear, rff"):
        paper_cells((20,), ("magic",))
    with pytest.raises(ValueError, match="unknown preset 'mid'"):
        paper_cells((20,), ("linear",), ("mid",))
    with pytest.raises(ValueError, match="no mechanism given"):
        PaperSettings(mechanisms=())


def test_a_family_cell_draws_that_family():
    spec = cell_specs(PaperCell(6, "nn_relu", "out"), num_query=30, num_interventional=30, scms_per_graph=1)[
        1
    ]
    dataset = spec.build()
    assert (dataset.metadata["mechanism"], dataset.metadata["graph"]) == ("nn_relu", "sbm")
    assert dataset.metadata["index"] == spec.index
    result = score_dataset(Oracle(spec), dataset)  # the oracle rebuilds the same SCM from the index
    assert all(value < 1e-8 for value in result["rmse"].values())


def test_families_share_the_folder_and_get_their_own_tables(tmp_path):
    run_paper(_tiny_settings(), tmp_path, progress=False)
    tables = run_paper(
        _tiny_settings(mechanisms=("polynomial", "nn_tanh"), presets=("in",)), tmp_path, progress=False
    )
    folder = tmp_path / "paper/graph-true/context-400/linear"
    assert sorted(p.name for p in folder.glob("*.json")) == [
        "in_linear_d6.json",
        "in_nn_tanh_d6.json",
        "in_polynomial_d6.json",
        "in_rff_d6.json",
        "out_linear_d6.json",
        "out_rff_d6.json",
    ]
    text = tables.read_text()
    paper_part, family_part = text.split("## Other mechanism families")
    assert "| method | d | LIN-IN | RFF-IN | LIN-OUT | RFF-OUT |" in paper_part
    assert "nn_tanh" not in paper_part
    assert family_part.count("| method | d | nn_tanh-IN | polynomial-IN |") == len(TASKS)
    assert re.search(r"\| Linear ANM \| 6 \| [0-9.]+ \([0-9.]+\) \| [0-9.]+ \([0-9.]+\) \|", family_part)
    assert "(paper)" not in family_part


def test_cells_and_specs():
    cells = paper_cells((10, 20))
    assert [c.column for c in cells[:4]] == ["LIN-IN", "RFF-IN", "LIN-OUT", "RFF-OUT"]
    assert [c.num_nodes for c in cells] == [10] * 4 + [20] * 4
    assert [s.graph for s in cell_specs(cells[0])] == ["er"] * 3 + ["sf_in"] * 3 + ["sf_out"] * 3
    assert len(cell_specs(cells[2], scms_per_graph=1)) == 2  # OUT: ws, sbm
    with pytest.raises(ValueError, match="node counts"):
        paper_cells((1,))
    # a scarce-data variant keeps the SCM: same graph, fewer context rows
    full, scarce = cell_specs(cells[1])[0].build(), cell_specs(cells[1], num_context=50)[0].build()
    np.testing.assert_array_equal(full.adjacency, scarce.adjacency)
    assert scarce.context_data.shape == (50, 10)


def test_oracle_scores_zero_on_every_task():
    spec = cell_specs(PaperCell(8, "rff", "out"), num_query=30, num_interventional=30, scms_per_graph=1)[0]
    dataset = spec.build()
    result = score_dataset(Oracle(spec), dataset)
    assert set(result["rmse"]) == set(TASKS)
    for task, value in result["rmse"].items():
        assert value < 1e-8, task
    # a real baseline is worse than the oracle but finite
    baseline = score_dataset(LinearANM(), dataset)["rmse"]
    assert all(0 < value < 10 for value in baseline.values())


def _tiny_settings(**changes):
    options = dict(
        node_counts=(6,), methods=("linear",), scms_per_graph=1, num_query=40, num_interventional=40
    )
    return PaperSettings(**{**options, **changes})


def test_run_writes_cells_and_tables_and_resumes(tmp_path, monkeypatch):
    tables = run_paper(_tiny_settings(), tmp_path, progress=False)
    text = tables.read_text()
    assert "## Table 1. Noise prediction" in text and "| Linear ANM | 6 |" in text
    assert "| Cond-FiP (paper)" not in text  # the paper has no d = 6 rows
    cell = json.loads((tmp_path / "paper/graph-true/context-400/linear/in_rff_d6.json").read_text())
    assert cell["complete"] and len(cell["datasets"]) == 3  # er, sf_in, sf_out
    assert cell["summary"]["noise"]["count"] == 3 and cell["summary"]["noise"]["standard_error"] > 0
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert manifest["condfip_eval_version"] == __version__

    # a second run fits nothing: every dataset is already in its cell file
    monkeypatch.setattr(LinearANM, "_fit", lambda *args: pytest.fail("a finished cell was refitted"))
    run_paper(_tiny_settings(), tmp_path, progress=False)


def test_failures_are_recorded_and_marked(tmp_path):
    settings = _tiny_settings(methods=("linear", "nonlinear"))
    run_paper(settings, tmp_path, methods={"nonlinear": Broken()}, progress=False)
    cell = json.loads((tmp_path / "paper/graph-true/context-400/nonlinear/out_linear_d6.json").read_text())
    assert all(record["error"] == "RuntimeError: no luck" for record in cell["datasets"])
    assert (
        "| Kernel ANM | 6 | — (-)*" not in (tmp_path / "paper/graph-true/context-400/tables.md").read_text()
    )
    assert "| Kernel ANM | 6 | —* |" in (tmp_path / "paper/graph-true/context-400/tables.md").read_text()
    # an unfinished cell is marked '+'
    from condfip_eval.paper import write_paper_tables

    path = tmp_path / "paper/graph-true/context-400/linear/in_linear_d6.json"
    document = json.loads(path.read_text())
    document["complete"] = False
    path.write_text(json.dumps(document))
    assert re.search(
        r"\| Linear ANM \| 6 \| [0-9.]+ \([0-9.]+\)\+ \|",
        write_paper_tables(tmp_path, "true", 400).read_text(),
    )
    # a resumed run retries the failed datasets (and only those)
    run_paper(settings, tmp_path, progress=False)
    cell = json.loads((tmp_path / "paper/graph-true/context-400/nonlinear/out_linear_d6.json").read_text())
    assert cell["complete"] and all("error" not in record for record in cell["datasets"])


def test_other_version_or_protocol_is_refused(tmp_path):
    run_paper(_tiny_settings(), tmp_path, progress=False)
    with pytest.raises(ResultsDirError, match="scms_per_graph"):
        run_paper(_tiny_settings(scms_per_graph=2), tmp_path, progress=False)
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    manifest["condfip_eval_version"] = "0.0.1"
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ResultsDirError, match="condfip-eval 0.0.1"):
        run_paper(_tiny_settings(), tmp_path, progress=False)


def test_settings_reject_unknown_names():
    with pytest.raises(ValueError, match="unknown method 'magic'"):
        PaperSettings(methods=("linear", "magic"))
    with pytest.raises(ValueError, match="graph must be one of true, inferred"):
        PaperSettings(graph_source="guessed")
    quick, full = PaperSettings(quick=True), PaperSettings()
    assert (quick.fip_steps, quick.scms_per_graph, quick.node_counts) == (200, 1, (10,))
    assert (full.fip_steps, full.scms_per_graph, full.node_counts) == (2000, 3, (10, 20, 50, 100))


def test_inferred_graph_runs_score_the_graph(tmp_path):
    def infer_empty(data):
        d = data.shape[1]
        return np.full((d, d), 0.5), np.zeros((d, d), dtype=np.int8)

    settings = _tiny_settings(graph_source="inferred")
    tables = run_paper(settings, tmp_path, graph_inferrer=infer_empty, progress=False)
    record = json.loads((tmp_path / "paper/graph-inferred/context-400/linear/in_linear_d6.json").read_text())[
        "datasets"
    ][0]
    assert record["graph_scores"]["auroc"] == 0.5  # constant scores
    assert record["graph_scores"]["f1"] == 0.0
    text = tables.read_text()
    assert "## Inferred graphs" in text and "| Cond-FiP (paper)" not in text


def test_task_table_layout_and_reference_rows():
    from condfip_eval.tables import paper_task_table, summarize_records

    records = [{"rmse": {t: v for t in TASKS}, "fit_seconds": 1.0, "sample_seconds": 0.5} for v in (0.1, 0.3)]
    summary = summarize_records(records, TASKS)
    assert summary["noise"]["mean"] == pytest.approx(0.2) and summary["noise"][
        "standard_error"
    ] == pytest.approx(0.1)
    table = paper_task_table("noise", {"linear": {20: {"RFF-OUT": summary}}}, num_context=400).splitlines()
    assert table[0] == "| method | d | LIN-IN | RFF-IN | LIN-OUT | RFF-OUT |"
    assert table[2] == "| Linear ANM | 20 | — | — | — | 0.200 (0.100) |"
    assert table[3:] == [
        "| Cond-FiP (paper) | 20 | 0.06 | 0.09 | 0.07 | 0.12 |",
        "| FiP (paper) | 20 | 0.04 | 0.12 | 0.05 | 0.15 |",
        "| DoWhy (paper) | 20 | 0.03 | 0.15 | 0.03 | 0.23 |",
    ]
