import json
import subprocess
import sys
from pathlib import Path

import pytest

from condfip_eval.cli import main
from condfip_eval.paper import PaperSettings, run_paper
from condfip_eval.report import write_report
from condfip_eval.results import ResultsDirError
from condfip_eval.sachs import SachsSettings, run_sachs, shipped_data_file

DATA = shipped_data_file()


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    root = tmp_path_factory.mktemp("results")
    paper = PaperSettings(
        node_counts=(5,), methods=("linear",), scms_per_graph=1, num_query=60, num_interventional=60
    )
    run_paper(paper, root, progress=False)
    run_sachs(SachsSettings(data_path=str(DATA), methods=("linear",), replicates=2), root, progress=False)
    return root


def test_report_holds_every_table(results):
    text = write_report(results, figures=False).read_text()
    assert text.startswith("# Cond-FiP evaluation report")
    assert "## Paper benchmark: 400 context rows, true graph" in text
    assert "### Table 1. Noise prediction" in text and "### Table 4. Counterfactual" in text
    assert "## Sachs (CD3/CD28, raw values (no log transform))" in text
    assert "- `paper`: seed=0" in text


def test_report_figures_are_pngs(results):
    pytest.importorskip("matplotlib")
    text = write_report(results).read_text()
    figures = sorted((results / "figures").glob("*.png"))
    assert {p.name for p in figures} >= {
        "paper_true_context400_noise.png",
        "paper_true_context400_marginals.png",
    }
    assert all(p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in figures)
    assert "![Noise prediction](figures/paper_true_context400_noise.png)" in text


def test_report_without_matplotlib_says_so(results, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    assert "Figures skipped: matplotlib is not installed" in write_report(results).read_text()


def test_report_refuses_other_versions(tmp_path):
    (tmp_path / "manifest.json").write_text(json.dumps({"condfip_eval_version": "9.9", "runs": {}}))
    with pytest.raises(ResultsDirError, match="condfip-eval 9.9"):
        write_report(tmp_path)


@pytest.mark.parametrize(
    "argv, message",
    [
        (["paper", "--methods", "linear,magic", "--out", "X"], "unknown method 'magic'"),
        (["paper", "--graph", "guessed", "--out", "X"], "invalid choice: 'guessed'"),
        (["paper", "--nodes", "0", "--out", "X"], "expected a positive integer"),
        (["report", "MISSING"], "holds no condfip-eval results"),
        (["sachs", "--data", "MISSING.csv", "--out", "X"], "does not exist"),
        (["ecoli70", "--model", "MISSING.json", "--out", "X"], "MISSING.json"),
        (["bogus"], "invalid choice: 'bogus'"),
        (
            ["paper", "--nodes", "5", "--methods", "condfip", "--weights", "NO_SUCH_WEIGHTS", "--out", "X"],
            "NO_SUCH_WEIGHTS",
        ),
        (["paper", "--nodes", "5", "--methods", "linear,dowhy", "--out", "X"], "pip install dowhy"),
        (["paper", "--methods", "condfip-refit", "--out", "X"], "'condfip-refit' no longer exists"),
    ],
)
def test_cli_bad_input_is_one_line_exit_2(tmp_path, capsys, monkeypatch, argv, message):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setitem(sys.modules, "dowhy", None)  # as without the extra
    assert main(argv) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and error.startswith("condfip-eval: error: ") and message in error


def test_cli_other_version_exit_2(tmp_path, capsys):
    (tmp_path / "manifest.json").write_text(json.dumps({"condfip_eval_version": "0.0.1", "runs": {}}))
    assert (
        main(["paper", "--nodes", "5", "--methods", "linear", "--out", str(tmp_path), "--no-progress"]) == 2
    )
    assert "condfip-eval 0.0.1" in capsys.readouterr().err


def test_entry_point_runs_quick_paper(tmp_path):
    out = tmp_path / "run"
    command = [
        sys.executable,
        "-m",
        "condfip_eval.cli",
        "paper",
        "--nodes",
        "5",
        "--quick",
        "--methods",
        "linear",
    ]
    done = subprocess.run(
        [*command, "--out", str(out), "--no-progress"], capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr
    assert Path(done.stdout.strip()).name == "tables.md"
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["runs"]["paper"]["scms_per_graph"] == 1 and manifest["runs"]["paper"]["fip_steps"] == 200
