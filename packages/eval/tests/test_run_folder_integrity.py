"""``report`` and ``publish`` on incomplete or damaged run folders: every damaged result file is one line naming it
(exit code 2, no traceback), ``publish`` leaves its destination as it was, and cells where a method failed
everywhere or finished nothing still make tables."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from condfip_eval.cli import main
from condfip_eval.csuite import CSuiteSettings, run_csuite
from condfip_eval.ecoli70 import Ecoli70Settings, run_ecoli70
from condfip_eval.paper import PaperSettings, run_paper
from condfip_eval.publish import publish
from condfip_eval.report import write_report
from condfip_eval.results import ResultsDirError
from condfip_eval.sachs import SachsSettings, run_sachs

TINY = Path(__file__).parent / "data" / "ecoli70_tiny.json"
CELL = "paper/graph-true/context-400/linear/in_linear_d5.json"
SACHS = "sachs/raw-context-400/linear.json"
ECOLI = "ecoli70/context-400/linear.json"
CSUITE = "csuite/context-400/linear/lingauss.json"


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("run")
    paper = dict(node_counts=(5,), scms_per_graph=1, num_query=40, num_interventional=40)
    run_paper(PaperSettings(methods=("linear",), **paper), root, progress=False)
    run_sachs(SachsSettings(methods=("linear",), replicates=2, generated_rows=200), root, progress=False)
    run_ecoli70(
        Ecoli70Settings(model_path=str(TINY), methods=("linear",), replicates=2, generated_rows=200),
        root,
        progress=False,
    )
    run_csuite(
        CSuiteSettings(names=("lingauss",), methods=("linear",), replicates=2, num_query=50),
        root,
        progress=False,
    )
    return root


@pytest.fixture
def copy(run, tmp_path) -> Path:
    destination = tmp_path / "run"
    shutil.copytree(run, destination)
    return destination


def edit(path: Path, change: Callable[[dict], object]) -> None:
    document = json.loads(path.read_text())
    change(document)
    path.write_text(json.dumps(document))


def fail_all(document: dict, key: str) -> None:
    ids = ("index", "graph", "replicate")
    document[key] = [
        {name: value for name, value in record.items() if name in ids} | {"error": "RuntimeError: boom"}
        for record in document[key]
    ]


DAMAGE = {
    "truncated cell": (CELL, lambda p: p.write_text(p.read_text()[:200]), "is not a JSON file"),
    "cell that is a list": (CELL, lambda p: p.write_text("[]"), "it is not a JSON object"),
    "cell without its cell": (CELL, lambda p: edit(p, lambda d: d.pop("cell")), "its 'cell' is not the cell"),
    "cell of another cell": (
        CELL,
        lambda p: edit(p, lambda d: d["cell"].update(num_nodes=6)),
        "its 'cell' is not the cell 'in_linear_d5'",
    ),
    "cell without complete": (
        CELL,
        lambda p: edit(p, lambda d: d.pop("complete")),
        "whether the cell is complete",
    ),
    "null RMSE": (
        CELL,
        lambda p: edit(p, lambda d: d["datasets"][0]["rmse"].update(noise=None)),
        "entry 0 of 'datasets' has no finite RMSE of the 'noise' task",
    ),
    "text RMSE": (
        CELL,
        lambda p: edit(p, lambda d: d["datasets"][0]["rmse"].update(counterfactual="0.1")),
        "no finite RMSE of the 'counterfactual' task",
    ),
    "record without RMSE": (
        CELL,
        lambda p: edit(p, lambda d: d["datasets"][0].pop("rmse")),
        "entry 0 of 'datasets' has no 'rmse' scores",
    ),
    "record without timing": (
        CELL,
        lambda p: edit(p, lambda d: d["datasets"][0].pop("fit_seconds")),
        "has no finite number 'fit_seconds'",
    ),
    "repeated dataset": (
        CELL,
        lambda p: edit(p, lambda d: d["datasets"].append(d["datasets"][0])),
        "repeats index",
    ),
    "cell of another method": (
        CELL,
        lambda p: edit(p, lambda d: d.update(method="nonlinear")),
        "holds results of method 'nonlinear', not of 'linear'",
    ),
    "stray JSON file": (
        "paper/graph-true/context-400/linear/notes.json",
        lambda p: p.write_text('{"hello": 1}'),
        "notes.json is not an intact condfip-eval result file: it names no method",
    ),
    "Sachs null MMD": (
        SACHS,
        lambda p: edit(p, lambda d: d["replicates"][1].update(mmd2=None)),
        "entry 1 of 'replicates' has no finite number 'mmd2'",
    ),
    "Sachs without replicates": (
        SACHS,
        lambda p: edit(p, lambda d: d.pop("replicates")),
        "no 'replicates' list",
    ),
    "Sachs of another transform": (
        SACHS,
        lambda p: edit(p, lambda d: d.update(log_transform=True)),
        "its transform or graph is not the 'raw-context-400'",
    ),
    "ecoli70 null RMSE": (
        ECOLI,
        lambda p: edit(p, lambda d: d["replicates"][0]["rmse"].update(noise=None)),
        "no finite RMSE of the 'noise' task",
    ),
    "CSuite of another dataset": (
        CSUITE,
        lambda p: edit(p, lambda d: d.update(dataset="linexp")),
        "does not hold the CSuite dataset 'lingauss'",
    ),
    "CSuite NaN timing": (
        CSUITE,
        lambda p: p.write_text(
            p.read_text().replace('"sample_seconds": ', '"sample_seconds": NaN, "x": ', 1)
        ),
        "has no finite number 'sample_seconds'",
    ),
}


@pytest.mark.parametrize("name", sorted(DAMAGE))
@pytest.mark.parametrize("command", ["report", "publish"])
def test_a_damaged_result_file_is_one_line_naming_it(copy, tmp_path, capsys, name, command):
    relative, damage, reason = DAMAGE[name]
    damage(copy / relative)
    destination = tmp_path / "published"
    destination.mkdir()
    (destination / "README.md").write_text("kept\n")
    argv = (
        ["report", str(copy), "--no-figures"]
        if command == "report"
        else ["publish", str(copy), str(destination)]
    )
    assert main(argv) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and error.startswith("condfip-eval: error: ")
    assert str(copy / relative) in error and reason in error, error
    # nothing was published: every table is rebuilt and checked before the first write
    assert sorted(p.name for p in destination.iterdir()) == ["README.md"]


def test_publish_leaves_an_earlier_publication_untouched_when_a_later_run_kind_is_damaged(copy, tmp_path):
    destination = tmp_path / "published"
    publish(copy, destination)
    before = {p: p.read_bytes() for p in destination.rglob("*") if p.is_file()}
    edit(copy / SACHS, lambda d: d["replicates"][0].update(energy="x"))  # sachs is published after paper
    with pytest.raises(ResultsDirError, match="no finite number 'energy'"):
        publish(copy, destination)
    assert {p: p.read_bytes() for p in destination.rglob("*") if p.is_file()} == before


def test_methods_that_failed_everywhere_or_finished_nothing_still_make_tables(copy):
    edit(copy / CELL, lambda d: fail_all(d, "datasets"))
    edit(copy / CELL.replace("in_linear", "in_rff"), lambda d: d.update(datasets=[], complete=False))
    edit(copy / SACHS, lambda d: fail_all(d, "replicates"))
    edit(copy / ECOLI, lambda d: fail_all(d, "replicates"))
    edit(copy / CSUITE, lambda d: fail_all(d, "datasets"))
    text = write_report(copy, figures=False).read_text()
    assert "| Linear ANM | 5 | —* | —+ |" in text  # failed everywhere / nothing finished yet
    assert "| Linear ANM | —* | —* | — | 0 |" in text  # Sachs: no split finished
    assert "| Linear ANM | —* | —* | —* | —* | —* | —* | — |" in text  # ecoli70
    assert "| lingauss | —* |" in text


def test_folders_that_are_not_runs_are_left_out(copy):
    (copy / "paper" / "graph-true" / "context-abc" / "linear").mkdir(parents=True)
    (copy / "paper" / "graph-guessed" / "context-400").mkdir(parents=True)
    (copy / "sachs" / "backup").mkdir()
    text = write_report(copy, figures=False).read_text()
    assert text.count("## Paper benchmark:") == 1


def test_a_run_resumes_around_a_damaged_cell_only_after_it_is_moved_away(copy):
    edit(copy / CELL, lambda d: d["datasets"][0].pop("index"))
    settings = PaperSettings(
        methods=("linear",), node_counts=(5,), scms_per_graph=1, num_query=40, num_interventional=40
    )
    with pytest.raises(ResultsDirError, match="entry 0 of 'datasets' has no integer 'index'"):
        run_paper(settings, copy, progress=False)
    (copy / CELL).unlink()
    run_paper(settings, copy, progress=False)
    assert json.loads((copy / CELL).read_text())["complete"] is True
