import json
from importlib import metadata
from pathlib import Path

import networkx as nx
import numpy as np
import pytest

from condfip_eval.cli import main
from condfip_eval.sachs import SACHS_COLUMNS, SachsSettings, load_sachs, run_sachs, sachs_adjacency

DATA = Path(__file__).parent / "data" / "sachs_cd3cd28.csv"


def test_consensus_graph_has_17_edges_and_no_cycle():
    adjacency = sachs_adjacency()
    assert adjacency.sum() == 17
    graph = nx.DiGraph(
        [(SACHS_COLUMNS[i], SACHS_COLUMNS[j]) for i, j in zip(*np.nonzero(adjacency), strict=True)]
    )
    assert nx.is_directed_acyclic_graph(graph)
    assert (
        graph.has_edge("PKC", "PKA") and graph.has_edge("PIP3", "PIP2") and not graph.has_edge("PIP2", "PIP3")
    )
    assert set(graph.predecessors("pmek")) == {"PKC", "PKA", "praf"}


def test_load_the_test_copy():
    frame = load_sachs(DATA)
    assert frame.shape == (853, 11) and tuple(frame.columns) == SACHS_COLUMNS
    assert frame.iloc[0].tolist()[:3] == [26.4, 13.2, 8.82]


def test_wrong_columns_are_named(tmp_path):
    bad = tmp_path / "bad.csv"
    load_sachs(DATA).rename(columns={"PKA": "pka"}).to_csv(bad, index=False)
    with pytest.raises(ValueError, match=r"missing \['PKA'\], unexpected \['pka'\]"):
        load_sachs(bad)


class _FakeDistribution:
    version = "0.6.0"

    def __init__(self, root):
        self.root = root

    def locate_file(self, path):
        return self.root / path


def test_default_source_is_cdt_file_rows_0_to_852(tmp_path, monkeypatch):
    target = tmp_path / "cdt/data/resources/cyto_full_data.csv"
    target.parent.mkdir(parents=True)
    lines = DATA.read_text().splitlines()
    target.write_text("\n".join(lines + lines[1:4]) + "\n")  # three more rows, like the later conditions
    monkeypatch.setattr(metadata, "distribution", lambda name: _FakeDistribution(tmp_path))
    frame = load_sachs()
    assert frame.shape == (853, 11)


def test_missing_cdt_says_what_to_install(monkeypatch):
    def missing(name):
        raise metadata.PackageNotFoundError(name)

    monkeypatch.setattr(metadata, "distribution", missing)
    with pytest.raises(FileNotFoundError, match=r"condfip-eval\[sachs\]"):
        load_sachs()


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
    load_sachs(DATA).iloc[:, :10].to_csv(bad, index=False)
    assert main(["sachs", "--data", str(bad), "--methods", "linear", "--out", str(tmp_path / "out")]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "missing ['pjnk']" in error
