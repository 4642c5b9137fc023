import hashlib
import json

import networkx as nx
import numpy as np
import pytest

from condfip_eval.cli import main
from condfip_eval.sachs import (
    SACHS_COLUMNS,
    SachsSettings,
    consensus_graph,
    load_sachs,
    run_sachs,
    sachs_adjacency,
    shipped_data_file,
)

DATA = shipped_data_file()


def test_consensus_graph_has_17_edges_and_no_cycle():
    adjacency = sachs_adjacency()
    assert adjacency.sum() == 17
    graph = consensus_graph()
    assert isinstance(graph, nx.DiGraph) and tuple(graph.nodes) == SACHS_COLUMNS
    assert nx.is_directed_acyclic_graph(graph) and graph.number_of_edges() == 17
    assert (
        graph.has_edge("PKC", "PKA") and graph.has_edge("PIP3", "PIP2") and not graph.has_edge("PIP2", "PIP3")
    )
    assert set(graph.predecessors("pmek")) == {"PKC", "PKA", "praf"}
    # the DiGraph and the adjacency describe one graph
    np.testing.assert_array_equal(nx.to_numpy_array(graph, nodelist=SACHS_COLUMNS, dtype=np.int8), adjacency)


def test_shipped_rows_are_the_documented_file():
    assert hashlib.sha256(DATA.read_bytes()).hexdigest() == (
        "b2871db41f666ccc0837810bd39bd5c7cb92c7dbd746ed3d8ff8472f7f8c334d"  # data/SOURCES.md
    )
    frame = load_sachs()
    assert frame.shape == (853, 11) and tuple(frame.columns) == SACHS_COLUMNS
    assert frame.iloc[0].tolist()[:3] == [26.4, 13.2, 8.82]
    assert (frame.dtypes == np.float64).all() and (frame.to_numpy() > 0).all()
    assert load_sachs(DATA).equals(frame)


def test_wrong_columns_are_named(tmp_path):
    bad = tmp_path / "bad.csv"
    load_sachs().rename(columns={"PKA": "pka"}).to_csv(bad, index=False)
    with pytest.raises(ValueError, match=r"missing \['PKA'\], unexpected \['pka'\]"):
        load_sachs(bad)


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (bytes(range(256)) * 8, "it is not UTF-8 text"),
        (b"", "it is empty"),
        (b'a,b\n1,2,3,4\n"unterminated', "Error tokenizing data"),
    ],
)
def test_garbage_file_is_named(tmp_path, content, reason):
    bad = tmp_path / "garbage.csv"
    bad.write_bytes(content)
    with pytest.raises(ValueError) as caught:
        load_sachs(bad)
    message = str(caught.value)
    assert (
        message.startswith(f"Sachs data file {bad} is not a CSV with the columns praf,") and reason in message
    )
    assert "\n" not in message


def test_a_folder_or_a_missing_file_is_named(tmp_path):
    with pytest.raises(ValueError, match=f"Sachs data file {tmp_path} is not a file"):
        load_sachs(tmp_path)
    with pytest.raises(FileNotFoundError, match="missing.csv does not exist"):
        load_sachs(tmp_path / "missing.csv")


def test_run_scores_methods_and_the_floor(tmp_path):
    settings = SachsSettings(data_path=str(DATA), methods=("linear",), replicates=2, log_transform=True)
    tables = run_sachs(settings, tmp_path, progress=False).read_text()
    assert "log-transformed values" in tables
    assert (
        "| context rows (floor) |" in tables
        and "| Linear ANM |" in tables
        and "| Cond-FiP (paper) | 0.0130 |" in tables
    )
    # resuming adds nothing and refits nothing
    again = run_sachs(settings, tmp_path, progress=False).read_text()
    assert again == tables


def test_inferred_graph_run_gives_every_method_the_inferred_dag(tmp_path):
    """A stub graph model that infers the empty graph: the linear method then samples independent marginals,
    and every record keeps the DAG's scores against the consensus graph (SHD 17: every consensus edge missed)."""
    calls = []

    def empty_graph(data):
        calls.append(data.shape)
        d = data.shape[1]
        return np.full((d, d), 0.1) - 0.1 * np.eye(d), np.zeros((d, d), dtype=np.int8)

    settings = SachsSettings(
        data_path=str(DATA), methods=("linear",), replicates=2, log_transform=True, graph_source="inferred"
    )
    tables_path = run_sachs(settings, tmp_path, progress=False, graph_inferrer=empty_graph)
    assert tables_path.parent.name == "log-context-400-inferred-graph"
    assert calls == [(400, 11), (400, 11)]  # once per split, on its context rows
    tables = tables_path.read_text()
    assert "inferred graph" in tables and "mean over 2 splits: SHD 17.0, F1 0.00, AUROC 0.500" in tables
    assert "(paper)" not in tables  # the paper's rows used the consensus graph
    document = json.loads((tables_path.parent / "linear.json").read_text())
    assert document["graph_source"] == "inferred"
    assert [r["graph_scores"]["shd"] for r in document["replicates"]] == [17.0, 17.0]
    # the consensus-graph run is a separate folder, and linear fits differ between the two graphs
    consensus = run_sachs(
        SachsSettings(data_path=str(DATA), methods=("linear",), replicates=2, log_transform=True),
        tmp_path,
        progress=False,
    )
    assert consensus.parent.name == "log-context-400"
    scores = json.loads((consensus.parent / "linear.json").read_text())["replicates"]
    assert scores[0]["mmd2"] != document["replicates"][0]["mmd2"]
    with pytest.raises(ValueError, match="graph_source must be 'true' or 'inferred'"):
        run_sachs(SachsSettings(data_path=str(DATA), graph_source="guessed"), tmp_path, progress=False)


def test_cli_wrong_columns_is_one_line_exit_2(tmp_path, capsys):
    bad = tmp_path / "bad.csv"
    load_sachs().iloc[:, :10].to_csv(bad, index=False)
    assert main(["sachs", "--data", str(bad), "--methods", "linear", "--out", str(tmp_path / "out")]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "missing ['pjnk']" in error


def test_readme_example_infers_an_scm_over_the_sachs_columns():
    from condfip import CondFiP

    data = load_sachs()
    scm = CondFiP.from_pretrained("small").infer(data, consensus_graph())
    samples = scm.generate(scm.noise(data.iloc[:50]))
    assert list(samples.columns) == list(SACHS_COLUMNS) and samples.shape == (50, 11)
    assert np.isfinite(samples.to_numpy()).all()


def test_each_method_generates_the_settings_rows_not_as_many_as_held_out(tmp_path, monkeypatch):
    """The generated sample is ``generated_rows`` long (default GENERATED_ROWS), whatever the held-out size; the
    count is part of the run's protocol, so a run folder of another count is not resumed into."""
    from condfip_eval import sachs
    from condfip_eval.distribution import GENERATED_ROWS

    asked = []
    original = sachs.sample_from_context_noise

    def recorded(fitted, context, num_rows, rng):
        asked.append(num_rows)
        return original(fitted, context, num_rows, rng)

    monkeypatch.setattr(sachs, "sample_from_context_noise", recorded)
    settings = SachsSettings(data_path=str(DATA), methods=("linear",), replicates=1, log_transform=True)
    assert settings.generated_rows == GENERATED_ROWS > 853
    run_sachs(settings, tmp_path, progress=False)
    assert asked == [GENERATED_ROWS]
    fewer = SachsSettings(
        data_path=str(DATA), methods=("linear",), replicates=1, log_transform=True, generated_rows=500
    )
    with pytest.raises(ValueError, match="generated_rows"):
        run_sachs(fewer, tmp_path, progress=False)
