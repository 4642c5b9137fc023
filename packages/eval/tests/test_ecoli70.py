import json
from importlib import metadata
from pathlib import Path

import numpy as np
import pytest

from condfip_eval.ecoli70 import (
    Ecoli70Settings,
    load_linear_gaussian_network,
    make_network_dataset,
    run_ecoli70,
)
from condfip_eval.methods import LinearANM
from condfip_eval.scoring import score_dataset

TINY = Path(__file__).parent / "data" / "ecoli70_tiny.json"


def test_load_pgmpy_format():
    network = load_linear_gaussian_network(TINY)
    assert network.nodes == ("a", "b", "c")
    np.testing.assert_array_equal(network.adjacency, [[0, 1, 1], [0, 0, 1], [0, 0, 0]])
    np.testing.assert_allclose(network.weights[:, 2], [-1.0, 0.5, 0.0])
    np.testing.assert_allclose(network.intercepts, [1.0, -0.5, 0.0])
    np.testing.assert_allclose(network.noise_std, [0.5, 1.0, 1.0])  # sqrt of the variances
    rows = network.generate(np.array([[0.0, 0.0, 0.0], [1.0, 1.0, 1.0]]))
    np.testing.assert_allclose(rows, [[1.0, 0.5, -0.75], [2.0, 2.5, 0.25]])  # by hand


def test_dataset_layout_and_a_linear_fit():
    network = load_linear_gaussian_network(TINY)
    dataset = make_network_dataset(network, num_context=300, num_query=50, num_interventional=40, seed=1)
    assert dataset.context_data.shape == (300, 3) and dataset.interventional_data.shape == (40, 3)
    np.testing.assert_allclose(network.generate(dataset.query_noise), dataset.query_data)
    node = dataset.intervention_node
    np.testing.assert_array_equal(dataset.counterfactual_data[:, node], dataset.intervention_value)
    assert (dataset.interventional_data[:, node] == dataset.intervention_value).all()
    scores = score_dataset(LinearANM(), dataset)["rmse"]
    assert max(scores.values()) < 0.15  # least squares recovers a linear-Gaussian network


def test_run_writes_tables(tmp_path):
    settings = Ecoli70Settings(model_path=str(TINY), methods=("linear",), replicates=2, num_context=100)
    text = run_ecoli70(settings, tmp_path, progress=False).read_text()
    assert (
        "| method | noise | generation | interventional | counterfactual | MMD^2 | energy | seconds |" in text
    )
    assert "| Linear ANM |" in text


def test_inferred_graph_run_gives_every_method_the_inferred_dag(tmp_path):
    """A stub graph model that returns the true graph minus one edge: the records keep SHD 1, and the linear
    fits (hence the scores) differ from the true-graph run's."""
    network = load_linear_gaussian_network(TINY)
    dropped = tuple(np.argwhere(network.adjacency)[0])
    calls = []

    def almost_true(data):
        calls.append(data.shape)
        dag = network.adjacency.copy()
        dag[dropped] = 0
        return dag.astype(float) * 0.9 + 0.05 - 0.05 * np.eye(len(dag)), dag

    settings = Ecoli70Settings(
        model_path=str(TINY), methods=("linear",), replicates=2, num_context=100, graph_source="inferred"
    )
    path = run_ecoli70(settings, tmp_path, progress=False, graph_inferrer=almost_true)
    assert (
        path.parent.name == "context-100-inferred-graph" and calls == [(100, network.adjacency.shape[0])] * 2
    )
    text = path.read_text()
    assert "inferred graph" in text and "mean over 2 datasets: SHD 1.0" in text
    inferred = json.loads((path.parent / "linear.json").read_text())
    assert inferred["graph_source"] == "inferred"
    assert [r["graph_scores"]["shd"] for r in inferred["replicates"]] == [1.0, 1.0]
    true_path = run_ecoli70(
        Ecoli70Settings(model_path=str(TINY), methods=("linear",), replicates=2, num_context=100),
        tmp_path,
        progress=False,
    )
    assert true_path.parent.name == "context-100" and "the network's true graph" in true_path.read_text()
    true_records = json.loads((true_path.parent / "linear.json").read_text())["replicates"]
    assert true_records[0]["rmse"]["noise"] != inferred["replicates"][0]["rmse"]["noise"]
    with pytest.raises(ValueError, match="graph_source must be 'true' or 'inferred'"):
        run_ecoli70(Ecoli70Settings(model_path=str(TINY), graph_source="x"), tmp_path, progress=False)


def test_pgmpy_file_found_through_metadata(tmp_path, monkeypatch):
    target = tmp_path / "pgmpy/utils/example_models/ecoli70.json"
    target.parent.mkdir(parents=True)
    target.write_text(TINY.read_text())

    class Distribution:
        version = "1.0.0"

        def locate_file(self, path):
            return tmp_path / path

    monkeypatch.setattr(metadata, "distribution", lambda name: Distribution())
    assert load_linear_gaussian_network().nodes == ("a", "b", "c")

    def missing(name):
        raise metadata.PackageNotFoundError(name)

    monkeypatch.setattr(metadata, "distribution", missing)
    with pytest.raises(
        FileNotFoundError, match=r"pip install pgmpy \(or pip install './packages/eval\[ecoli70\]'"
    ):
        load_linear_gaussian_network()


def test_malformed_file_is_refused(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text('{"nodes": ["a"], "arcs": []}')
    with pytest.raises(ValueError, match="not a linear-Gaussian network"):
        load_linear_gaussian_network(bad)


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (bytes(range(256)) * 8, "it is not UTF-8 text"),
        (b"a,b,c\n1,2,3\n", "it is not JSON (Expecting value at line 1 column 1)"),
        (b'{"nodes": ["a"], "cpds": {}, "arcs": []}', "missing entry 'a'"),
        (b'{"nodes": 3}', "'nodes' must be a list of node names"),
        (b"[]", "it holds a JSON list, not an object"),
    ],
)
def test_garbage_file_gets_one_short_line_naming_it(tmp_path, content, reason):
    bad = tmp_path / "garbage.csv"
    bad.write_bytes(content)
    with pytest.raises(ValueError) as caught:
        load_linear_gaussian_network(bad)
    message = str(caught.value)
    assert message.startswith(f"{bad} is not a linear-Gaussian network in pgmpy's JSON format: ")
    assert reason in message and "\n" not in message and len(message) < 300 + len(str(bad))
