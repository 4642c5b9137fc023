"""The calibrated default threshold of a graph model: the F1 rule on a hand-made case, the stored
``"inference"`` section, and ``infer_graph`` / ``condfip graph`` using it when no threshold is given."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import scm_gen
from condfip import infer_graph
from condfip.cli import main
from condfip.cli.inputs import read_graph_csv
from condfip.core.dag_rule import dag_from_probabilities
from condfip.graph import GraphModel
from condfip.training.calibration import (
    CANDIDATE_THRESHOLDS,
    best_f1_threshold,
    calibrate_threshold,
    write_calibration,
)

sys.path.insert(0, str(Path(__file__).parent))
from test_graph_model import tiny_model  # noqa: E402


def test_best_threshold_maximizes_mean_f1_and_prefers_the_lowest() -> None:
    truth = np.zeros((3, 3), dtype=np.int8)
    truth[0, 1] = 1
    probabilities = np.zeros((3, 3))
    probabilities[0, 1], probabilities[1, 2] = 0.3, 0.2
    # up to 0.15 both edges are kept (F1 2/3); at 0.20 and 0.25 only the true one (F1 1); from 0.30 none (F1 0)
    assert best_f1_threshold([truth], [probabilities]) == (0.2, 1.0)
    assert best_f1_threshold([truth], [probabilities], candidates=(0.1, 0.5)) == (0.1, pytest.approx(2 / 3))
    # two datasets: the mean decides
    other = np.zeros((3, 3), dtype=np.int8)
    other[1, 2] = 1
    assert best_f1_threshold([truth, other], [probabilities, probabilities])[0] == 0.05
    with pytest.raises(ValueError, match="need one probability matrix per true adjacency"):
        best_f1_threshold([truth], [])


@pytest.fixture()
def calibrated(tmp_path: Path) -> Path:
    model = tiny_model(seed=3)
    model.save_pretrained(tmp_path / "graph", training={"node_counts": [4, 5, 6]})
    return tmp_path / "graph"


def test_calibration_is_stored_and_becomes_the_default(calibrated: Path) -> None:
    model = GraphModel.from_pretrained(calibrated)
    assert model.default_threshold == 0.5 and model.inference == {}
    inference = calibrate_threshold(model, datasets_per_cell=2)
    assert inference["threshold"] in CANDIDATE_THRESHOLDS
    assert inference["calibration"]["node_counts"] == [
        4,
        5,
        6,
    ]  # the trained range: smallest, middle, largest
    assert 0.0 <= inference["calibration"]["mean_f1"] <= 1.0
    write_calibration(calibrated, {**inference, "threshold": 0.35})
    config = json.loads((calibrated / "config.json").read_text())
    assert config["inference"]["threshold"] == 0.35 and config["training"] == {"node_counts": [4, 5, 6]}
    reloaded = GraphModel.from_pretrained(calibrated)
    assert reloaded.default_threshold == 0.35

    # infer_graph without a threshold uses it, and save_pretrained keeps it
    rng = np.random.default_rng(0)
    scm = scm_gen.sample_scm("in", "linear", 5, rng=rng, graph="er")
    table = pd.DataFrame(scm.sample(80, rng)[0], columns=list("abcde"))
    probabilities, dag = infer_graph(table, model=reloaded, device="cpu")
    np.testing.assert_array_equal(dag, dag_from_probabilities(probabilities, threshold=0.35))
    _, at_half = infer_graph(table, model=reloaded, device="cpu", threshold=0.5)
    np.testing.assert_array_equal(at_half, dag_from_probabilities(probabilities, threshold=0.5))
    reloaded.save_pretrained(calibrated.parent / "copy")
    assert GraphModel.from_pretrained(calibrated.parent / "copy").default_threshold == 0.35


def test_the_graph_command_uses_the_stored_threshold(calibrated: Path, tmp_path: Path) -> None:
    write_calibration(calibrated, {"threshold": 0.3})
    rng = np.random.default_rng(1)
    scm = scm_gen.sample_scm("in", "rff", 5, rng=rng, graph="er")
    table = pd.DataFrame(scm.sample(80, rng)[0], columns=list("vwxyz"))
    table.to_csv(tmp_path / "data.csv", index=False)
    argv = ["graph", "--data", str(tmp_path / "data.csv"), "--model", str(calibrated), "--device", "cpu"]
    assert main([*argv, "--out", str(tmp_path / "G.csv"), "--probabilities", str(tmp_path / "P.csv")]) == 0
    probabilities = read_graph_csv(tmp_path / "P.csv").to_numpy()
    expected = dag_from_probabilities(probabilities, threshold=0.3)
    np.testing.assert_array_equal(read_graph_csv(tmp_path / "G.csv").to_numpy(), expected)


def test_invalid_inference_sections_are_refused(calibrated: Path) -> None:
    for section in ({"threshold": 1.5}, {"threshold": "high"}, ["threshold"]):
        config = json.loads((calibrated / "config.json").read_text())
        config["inference"] = section
        (calibrated / "config.json").write_text(json.dumps(config))
        with pytest.raises(
            ValueError, match="has an invalid 'inference' section .* must be a number in \\[0, 1\\]"
        ):
            GraphModel.from_pretrained(calibrated)


def test_calibration_command(calibrated: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["calibrate", str(calibrated), "--datasets-per-cell", "1"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert GraphModel.from_pretrained(calibrated).default_threshold == printed["threshold"]
    (tmp_path / "empty").mkdir()
    for folder, message in (
        ("nowhere", "is not a folder; pass the folder of a graph model checkpoint"),
        ("empty", "lacks ['config.json', 'model.safetensors']; a checkpoint is a folder"),
    ):
        assert main(["calibrate", str(tmp_path / folder)]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and message in err[0], err
