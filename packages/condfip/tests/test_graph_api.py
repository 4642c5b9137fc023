"""``infer_graph``, ``CondFiP.infer(data, graph="infer")``, ``condfip graph`` and ``condfip infer --graph infer``."""

from __future__ import annotations

import json
import shutil
import sys
import warnings
from pathlib import Path

import networkx as nx
import numpy as np
import pandas as pd
import pytest
import torch

import condfip
import scm_gen
from condfip import CondFiP, infer_graph
from condfip.cli import main
from condfip.cli.inputs import read_graph_csv
from condfip.core.dag_rule import dag_from_probabilities
from condfip.model import CondFiPConfig, CondFiPModel

sys.path.insert(0, str(Path(__file__).parent))
from rounding import assert_close  # noqa: E402
from test_graph_model import OPERATIONS, tiny_model  # noqa: E402

NAMES = ["age", "dose", "blood pressure", "risk", "weight"]


@pytest.fixture(scope="module")
def table() -> pd.DataFrame:
    rng = np.random.default_rng(5)
    scm = scm_gen.sample_scm("in", "linear", len(NAMES), rng=rng, graph="er")
    return pd.DataFrame(scm.sample(60, rng)[0], columns=NAMES)


@pytest.fixture(scope="module")
def graph_model():
    model = tiny_model(seed=2)
    model.training_recipe = {"node_counts": [3, 4, 5]}
    return model


def test_probabilities_and_dag_follow_the_columns(table, graph_model) -> None:
    probabilities, dag = infer_graph(table, model=graph_model, device="cpu")
    assert probabilities.shape == dag.shape == (5, 5) and probabilities.dtype == np.float64
    assert (np.diagonal(probabilities) == 0).all() and ((probabilities >= 0) & (probabilities <= 1)).all()
    np.testing.assert_array_equal(dag, dag_from_probabilities(probabilities))
    assert nx.is_directed_acyclic_graph(nx.from_numpy_array(dag, create_using=nx.DiGraph))
    assert dag.sum() > 0  # the test model spreads its probabilities around 0.5
    order = [3, 0, 4, 1, 2]
    permuted, _ = infer_graph(table.iloc[:, order], model=graph_model, device="cpu")
    # probabilities: float32 logits through a sigmoid (slope at most 1/4)
    expected = probabilities[np.ix_(order, order)]
    assert_close(
        permuted, expected, dtype=torch.float32, operations=OPERATIONS, what="permuted probabilities"
    )
    # the same answer from an array (units do not matter: the data are standardized inside)
    from_array, _ = infer_graph(table.to_numpy() * 3.0 + 1.0, model=graph_model, device="cpu")
    assert_close(from_array, probabilities, dtype=torch.float32, operations=OPERATIONS, what="from an array")
    assert condfip.infer_graph is infer_graph


def test_threshold_and_known_edges(table, graph_model) -> None:
    probabilities, _ = infer_graph(table, model=graph_model, device="cpu", threshold=0.0)
    _, none = infer_graph(table, model=graph_model, device="cpu", threshold=1.0)
    assert none.sum() == 0
    weakest = np.unravel_index(np.argmin(probabilities + np.eye(5)), (5, 5))
    strongest = np.unravel_index(np.argmax(probabilities), (5, 5))
    required = [(NAMES[weakest[0]], NAMES[weakest[1]])]
    forbidden = nx.DiGraph([(NAMES[strongest[0]], NAMES[strongest[1]])])
    _, dag = infer_graph(table, model=graph_model, device="cpu", required=required, forbidden=forbidden)
    assert dag[weakest] == 1 and dag[strongest] == 0
    # positions work for unnamed arrays, adjacency masks too
    _, by_position = infer_graph(table.to_numpy(), model=graph_model, device="cpu", required=[tuple(weakest)])
    mask = np.zeros((5, 5), dtype=int)
    mask[weakest] = 1
    _, by_mask = infer_graph(table.to_numpy(), model=graph_model, device="cpu", required=mask)
    np.testing.assert_array_equal(by_position, by_mask)
    assert by_position[weakest] == 1


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda t: t.assign(dose=np.nan), "data has 60 NaN or infinite values, in columns 'dose'"),
        (lambda t: t.assign(risk=2.0), r"data columns \['risk'\] are constant"),
        (lambda t: t.iloc[:1], r"data has 1 row\(s\); inferring a causal model needs at least 2 rows"),
    ],
)
def test_bad_tables_are_refused(table, graph_model, change, message) -> None:
    with pytest.raises(ValueError, match=message):
        infer_graph(change(table), model=graph_model, device="cpu")


def test_bad_options_are_refused(table, graph_model) -> None:
    with pytest.raises(
        ValueError, match="threshold must be a number in \\[0, 1\\] or None \\(the model's default\\), got 2"
    ):
        infer_graph(table, model=graph_model, threshold=2)
    with pytest.raises(ValueError, match="required names node 'height', which is neither a column name"):
        infer_graph(table, model=graph_model, required=[("age", "height")])
    with pytest.raises(
        ValueError, match=r"forbidden edge list entry 0 is 'age'; every entry must be a \(source, target\)"
    ):
        infer_graph(table, model=graph_model, forbidden=["age"])
    with pytest.raises(ValueError, match="edge 'age' -> 'dose' is both required and forbidden"):
        infer_graph(table, model=graph_model, required=[("age", "dose")], forbidden=[("age", "dose")])
    with pytest.raises(ValueError, match="model must be a GraphModel, a shipped name"):
        infer_graph(table, model=42)
    with pytest.raises(ValueError, match="is not a shipped checkpoint \\(shipped: "):
        infer_graph(table, model="graph-huge")


def test_more_nodes_than_trained_warns_only_for_the_whole_table(table, graph_model) -> None:
    wider = table.assign(extra=np.random.default_rng(0).normal(size=len(table)))
    with pytest.warns(
        UserWarning, match="data has 6 columns but the graph model was trained on at most 5 nodes"
    ):
        probabilities, dag = infer_graph(wider, model=graph_model, device="cpu", neighborhood=None)
    assert probabilities.shape == (6, 6)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        infer_graph(table, model=graph_model, device="cpu")  # within the trained range: silent
        infer_graph(wider, model=graph_model, device="cpu")  # beyond it, neighborhoods of 5 nodes: silent


# ----- integration ------------------------------------------------------------------------------------------

TINY_CONDFIP = CondFiPConfig(
    dim=8, num_heads=2, mlp_dim=16, encoder_pairs=1, embedding_pairs=1, decoder_blocks=1, num_anchor_rows=16
)


@pytest.fixture(scope="module")
def folders(tmp_path_factory, graph_model, table) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("graph-cli")
    with torch.random.fork_rng():
        torch.manual_seed(1)
        CondFiPModel(TINY_CONDFIP).save_pretrained(folder / "condfip")
    graph_model.save_pretrained(folder / "graph", training=graph_model.training_recipe)
    table.to_csv(folder / "data.csv", index=False)
    pd.DataFrame({"source": ["age"], "target": ["weight"]}).to_csv(folder / "required.csv", index=False)
    return {
        "condfip": folder / "condfip",
        "graph": folder / "graph",
        "data": folder / "data.csv",
        "root": folder,
    }


def test_infer_with_graph_infer_uses_the_inferred_dag(table, graph_model, folders) -> None:
    model = CondFiP.from_pretrained(folders["condfip"], device="cpu", graph_model=graph_model)
    scm = model.infer(table, graph="infer")
    _, dag = infer_graph(table, model=graph_model, device="cpu")
    expected = {(NAMES[i], NAMES[j]) for i, j in np.argwhere(dag)}
    assert set(scm.graph.edges()) == expected
    [batched] = model.infer_batch([(table, "infer")])
    assert set(batched.graph.edges()) == expected
    by_folder = CondFiP.from_pretrained(folders["condfip"], device="cpu", graph_model=folders["graph"])
    assert set(by_folder.infer(table, graph="infer").graph.edges()) == expected


def test_graph_command_writes_a_dag_that_infer_reads(table, graph_model, folders, tmp_path, capsys) -> None:
    out, probabilities_out = tmp_path / "G.csv", tmp_path / "P.csv"
    argv = [
        "graph",
        "--data",
        str(folders["data"]),
        "--out",
        str(out),
        "--probabilities",
        str(probabilities_out),
    ]
    argv += ["--model", str(folders["graph"]), "--required", str(folders["root"] / "required.csv")]
    assert main([*argv, "--device", "cpu"]) == 0
    assert f"to {out} and the edge probabilities to {probabilities_out}" in capsys.readouterr().out
    probabilities, dag = infer_graph(table, model=graph_model, device="cpu", required=[("age", "weight")])
    written = read_graph_csv(out)
    assert list(written.columns) == NAMES and list(written.index) == NAMES
    np.testing.assert_array_equal(written.to_numpy(), dag)
    np.testing.assert_allclose(read_graph_csv(probabilities_out).to_numpy(), probabilities, rtol=1e-12)
    assert dag[0, 4] == 1

    # condfip infer --graph infer samples exactly as with the DAG that condfip graph writes
    plain = tmp_path / "plain.csv"
    assert (
        main(["graph", "--data", str(folders["data"]), "--out", str(plain), "--model", str(folders["graph"])])
        == 0
    )
    infer = [
        "infer",
        "--data",
        str(folders["data"]),
        "--model",
        str(folders["condfip"]),
        "--num-samples",
        "7",
    ]
    from_file, inferred = tmp_path / "from_file.csv", tmp_path / "inferred.csv"
    assert main([*infer, "--graph", str(plain), "--out", str(from_file)]) == 0
    assert (
        main([*infer, "--graph", "infer", "--graph-model", str(folders["graph"]), "--out", str(inferred)])
        == 0
    )
    pd.testing.assert_frame_equal(pd.read_csv(inferred), pd.read_csv(from_file))
    assert list(pd.read_csv(inferred).columns) == NAMES


@pytest.mark.parametrize(("option", "neighborhood"), [("3", 3), ("none", None), ("auto", "auto")])
def test_graph_command_passes_the_neighborhood(
    table, graph_model, folders, tmp_path, option, neighborhood
) -> None:
    out, probabilities_out = tmp_path / "G.csv", tmp_path / "P.csv"
    argv = [
        "graph",
        "--data",
        str(folders["data"]),
        "--out",
        str(out),
        "--probabilities",
        str(probabilities_out),
    ]
    assert main([*argv, "--model", str(folders["graph"]), "--neighborhood", option, "--device", "cpu"]) == 0
    probabilities, dag = infer_graph(table, model=graph_model, device="cpu", neighborhood=neighborhood)
    np.testing.assert_allclose(read_graph_csv(probabilities_out).to_numpy(), probabilities, rtol=1e-12)
    np.testing.assert_array_equal(read_graph_csv(out).to_numpy(), dag)
    if option == "3":  # sub-tables of 3 of the 5 columns: not what the whole table gives
        whole, _ = infer_graph(table, model=graph_model, device="cpu", neighborhood=None)
        assert not np.allclose(probabilities, whole)


def exit_code(argv: list[str]) -> int:
    """``main(argv)``, or the code of the SystemExit that argparse raises for a usage error."""
    try:
        return main(argv)
    except SystemExit as stop:
        return int(stop.code)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--threshold", "2"], "argument --threshold: expected a number in [0, 1], got '2'"),
        (["--required", "missing.csv"], "--required 'missing.csv': no such file"),
        (["--model", "graph-huge"], "'graph-huge' is not a shipped checkpoint"),
        (
            ["--neighborhood", "1"],
            "argument --neighborhood: expected auto, none or a number of nodes >= 2, got '1'",
        ),
        (["--neighborhood", "local"], "expected auto, none or a number of nodes >= 2, got 'local'"),
    ],
)
def test_graph_command_bad_input_exits_2_with_one_line(folders, tmp_path, capsys, extra, message) -> None:
    argv = ["graph", "--data", str(folders["data"]), "--out", str(tmp_path / "G.csv")]
    assert exit_code([*argv, "--model", str(folders["graph"]), *extra]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0], err
    assert not (tmp_path / "G.csv").exists()


def test_graph_command_refuses_a_checkpoint_with_bad_node_counts(folders, tmp_path, capsys) -> None:
    shutil.copytree(folders["graph"], tmp_path / "bad")
    path = tmp_path / "bad" / "config.json"
    config = json.loads(path.read_text())
    config["training"]["node_counts"] = ["3", 4]
    path.write_text(json.dumps(config))
    argv = [
        "graph",
        "--data",
        str(folders["data"]),
        "--out",
        str(tmp_path / "G.csv"),
        "--model",
        str(tmp_path / "bad"),
    ]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"{path} has an invalid 'training.node_counts' ['3', 4]" in err[0], err
    assert not (tmp_path / "G.csv").exists()


def test_graph_command_refuses_bad_data(folders, table, tmp_path, capsys) -> None:
    bad = tmp_path / "bad.csv"
    table.assign(risk=1.0).to_csv(bad, index=False)
    assert (
        main(
            ["graph", "--data", str(bad), "--out", str(tmp_path / "G.csv"), "--model", str(folders["graph"])]
        )
        == 2
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "data columns ['risk'] are constant" in err[0]


def test_numpy_thresholds_are_numbers():
    from condfip.core.dag_rule import dag_from_probabilities

    probabilities = np.array([[0.0, 0.8], [0.1, 0.0]])
    for threshold in (np.float32(0.5), np.int64(0), 0.5):
        np.testing.assert_array_equal(
            dag_from_probabilities(probabilities, threshold=threshold), [[0, 1], [0, 0]]
        )
    with pytest.raises(ValueError, match="threshold must be a number in"):
        dag_from_probabilities(probabilities, threshold=np.True_)


def test_a_checkpoint_folder_is_reloaded_when_it_changes(tmp_path: Path, monkeypatch) -> None:
    rng = np.random.default_rng(0)
    data = rng.normal(size=(40, 3))
    first, second = tiny_model(0), tiny_model(1)
    first.save_pretrained(tmp_path / "g")
    expected_first, _ = infer_graph(data, model=first, device="cpu")
    expected_second, _ = infer_graph(data, model=second, device="cpu")
    assert not np.allclose(expected_first, expected_second)
    np.testing.assert_allclose(infer_graph(data, model=str(tmp_path / "g"), device="cpu")[0], expected_first)
    second.save_pretrained(tmp_path / "g")  # another model saved over the folder
    np.testing.assert_allclose(infer_graph(data, model=str(tmp_path / "g"), device="cpu")[0], expected_second)
    # the same relative path in another working directory is another folder
    first.save_pretrained(tmp_path / "a" / "m")
    second.save_pretrained(tmp_path / "b" / "m")
    monkeypatch.chdir(tmp_path / "a")
    np.testing.assert_allclose(infer_graph(data, model="m", device="cpu")[0], expected_first)
    monkeypatch.chdir(tmp_path / "b")
    np.testing.assert_allclose(infer_graph(data, model="m", device="cpu")[0], expected_second)
