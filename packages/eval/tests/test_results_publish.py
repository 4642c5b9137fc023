"""The results folder's manifest (protocol, environment, weights) and ``publish`` (tables without raw files)."""

from __future__ import annotations

import errno
import hashlib
import json
import os
from importlib import metadata
from pathlib import Path

import pytest

from condfip_eval import __version__
from condfip_eval.cli import main
from condfip_eval.paper import PaperSettings, run_paper
from condfip_eval.provenance import package_versions, weights_sha256
from condfip_eval.publish import publish
from condfip_eval.results import ResultsDirectory, ResultsDirError, write_text
from condfip_eval.sachs import SachsSettings, run_sachs

PAPER = dict(node_counts=(5,), methods=("linear",), scms_per_graph=1, num_query=40, num_interventional=40)


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("run")
    run_paper(PaperSettings(**PAPER), root, progress=False)
    run_paper(PaperSettings(**PAPER, num_context=100), root, progress=False)
    run_sachs(SachsSettings(methods=("linear",), replicates=2, log_transform=True), root, progress=False)
    return root


def test_manifest_records_the_environment(run):
    manifest = json.loads((run / "manifest.json").read_text())
    assert set(manifest["runs"]) == {"paper", "sachs"}
    for kind in ("paper", "sachs"):
        environment = manifest["environment"][kind]
        assert environment["condfip-eval"] == [__version__]
        assert environment["numpy"] == [metadata.version("numpy")]
        assert environment["python"] == [package_versions()["python"]]
    assert manifest.get("weights", {}) == {}  # no Cond-FiP method ran


def test_versions_from_several_environments_are_all_kept(tmp_path):
    directory = ResultsDirectory(tmp_path)
    directory.open_run("paper", {"seed": 0}, environment={"torch": "2.1.0", "python": "3.11.2"})
    directory.open_run(
        "paper", {"seed": 0}, environment={"torch": "2.5.0", "python": "3.11.2", "dowhy": "0.14"}
    )
    environment = json.loads((tmp_path / "manifest.json").read_text())["environment"]["paper"]
    assert environment == {"dowhy": ["0.14"], "python": ["3.11.2"], "torch": ["2.1.0", "2.5.0"]}


def test_other_weights_under_the_same_name_are_refused_before_writing(tmp_path):
    directory = ResultsDirectory(tmp_path)
    directory.open_run("paper", {"seed": 0}, weights={"small": "a" * 64})
    before = (tmp_path / "manifest.json").read_bytes()
    with pytest.raises(
        ResultsDirError, match=r"other weights named 'small' \(sha256 aaaaaaaaaaaaaaaa\.\.\., these are"
    ):
        directory.open_run("paper", {"seed": 0}, weights={"small": "b" * 64})
    assert (tmp_path / "manifest.json").read_bytes() == before
    directory.open_run("paper", {"seed": 0}, weights={"small": "a" * 64})  # the same weights are welcome


def test_weights_hash_of_a_local_checkpoint(tmp_path):
    (tmp_path / "model.safetensors").write_bytes(b"some weights")
    assert weights_sha256(str(tmp_path)) == hashlib.sha256(b"some weights").hexdigest()
    assert weights_sha256("no-such-checkpoint-name") is None
    assert weights_sha256(str(tmp_path / "missing")) is None


def test_a_condfip_run_records_the_hash_of_its_weights(tmp_path):
    import condfip

    settings = PaperSettings(node_counts=(5,), methods=("condfip-zero-shot",), scms_per_graph=1)
    directory = ResultsDirectory(tmp_path)
    settings.start_run(directory, "paper", settings.protocol(), None, needed=True)
    assert not (tmp_path / "manifest.json").exists()  # written with the first result
    directory.write_result(tmp_path / "paper" / "result.json", {"datasets": []})
    shipped = [p for p in Path(condfip.__file__).parent.rglob("small/model.safetensors")]
    assert len(shipped) == 1
    digest = hashlib.sha256(shipped[0].read_bytes()).hexdigest()
    assert json.loads((tmp_path / "manifest.json").read_text())["weights"] == {"small": digest}


def test_publish_writes_tables_and_manifests_only(run, tmp_path):
    destination = tmp_path / "results"
    (destination / "paper-grid").mkdir(parents=True)
    (destination / "paper-grid" / "README.md").write_text("commands\n")
    (destination / "paper-grid" / "graph-true-context-50.md").write_text("an older table\n")
    folders = publish(run, destination)
    assert [folder.name for folder in folders] == ["paper-grid", "sachs"]
    assert sorted(p.name for p in (destination / "paper-grid").iterdir()) == [
        "README.md",
        "graph-true-context-100.md",
        "graph-true-context-400.md",
        "manifest.json",
    ]
    assert (destination / "paper-grid" / "README.md").read_text() == "commands\n"
    assert (destination / "paper-grid" / "graph-true-context-400.md").read_text() == (
        run / "paper" / "graph-true" / "context-400" / "tables.md"
    ).read_text()
    assert sorted(p.name for p in (destination / "sachs").iterdir()) == [
        "log-context-400.md",
        "manifest.json",
    ]
    manifest = json.loads((destination / "sachs" / "manifest.json").read_text())
    recorded = json.loads((run / "manifest.json").read_text())
    assert manifest == {
        "condfip_eval_version": __version__,
        "run": "sachs",
        "protocol": recorded["runs"]["sachs"],
        "environment": recorded["environment"]["sachs"],
        "weights_sha256": {},
        "tables": ["log-context-400.md"],
    }
    assert not list(destination.rglob("*.json"))[2:]  # two manifests, no per-dataset files


def test_publish_refuses_its_own_folder_and_non_results(run, tmp_path):
    with pytest.raises(ResultsDirError, match="another folder than the run's own"):
        publish(run, run)
    with pytest.raises(ResultsDirError, match="holds no condfip-eval results"):
        publish(tmp_path, tmp_path / "out")


def test_publish_from_the_command_line(run, tmp_path, capsys):
    assert main(["publish", str(run), str(tmp_path / "results")]) == 0
    assert capsys.readouterr().out.split() == [str(tmp_path / "results" / n) for n in ("paper-grid", "sachs")]


def test_write_errors_name_the_target_and_leave_nothing(tmp_path, monkeypatch, capsys):
    """A refused write (as in a read-only folder, which root would not see) is one line and exit code 2."""
    real_open = os.open

    def refuse(path, flags, mode=0o777, **kwargs):
        if str(path).endswith(".tmp"):
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return real_open(path, flags, mode, **kwargs)

    monkeypatch.setattr(os, "open", refuse)
    out = tmp_path / "run"
    arguments = [
        "paper",
        "--nodes",
        "5",
        "--quick",
        "--methods",
        "linear",
        "--no-progress",
        "--out",
        str(out),
    ]
    assert main(arguments) == 2
    assert capsys.readouterr().err == f"condfip-eval: error: Permission denied: {out / 'manifest.json'}\n"
    assert not out.exists()
    with pytest.raises(PermissionError) as caught:
        write_text(tmp_path / "table.md", "x")
    assert caught.value.filename == str(tmp_path / "table.md") and list(tmp_path.iterdir()) == []
