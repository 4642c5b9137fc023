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
from condfip.api.graph_inference import dependent_columns
from condfip.cli import main
from condfip.cli.inputs import read_graph_csv
from condfip.core.dag_rule import dag_from_probabilities
from condfip.core.standardization import Standardization, standardized
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


# ----- columns the graph model cannot score -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (lambda t: t["age"], "data columns 'age' and 'copy' are copies of each other up to scale and offset"),
        (lambda t: -3.0 * t["dose"] + 1e4, "data columns 'dose' and 'copy' are copies of each other"),
        (
            lambda t: t["age"] + 2.0 * t["risk"] - 1e-3 * t["weight"],
            r"data columns \['age', 'risk', 'weight', 'copy'\] are linearly dependent: one is a weighted sum",
        ),
    ],
)
def test_exact_copies_and_combinations_are_named(table, graph_model, folders, extra, message) -> None:
    """A column without noise of its own: with graph-small, a copy of the middle node of a chain took all of
    that node's edges. Named in a warning with the fix, also from ``CondFiP.infer(graph="infer")``; not
    refused, as some of scm-gen's P_OUT SCMs are as deterministic within float64's precision."""
    copied = table.assign(copy=extra(table))
    with pytest.warns(UserWarning, match=message) as caught:
        probabilities, dag = infer_graph(copied, model=graph_model, device="cpu")
    assert "drop one of them, or give the graph yourself instead of inferring it" in str(caught[0].message)
    assert np.isfinite(probabilities).all() and dag.shape == (6, 6)
    model = CondFiP.from_pretrained(folders["condfip"], device="cpu", graph_model=graph_model)
    with pytest.warns(UserWarning, match=message):
        model.infer(copied, graph="infer")
    if "'copy' are copies" in message:  # 4 rows of 6 columns: only pairs can be told from the rows' own rank
        with pytest.warns(UserWarning, match=message):
            infer_graph(copied.iloc[:4], model=graph_model, device="cpu")


def test_exact_within_float64_rounding_and_no_further() -> None:
    """The tolerance is ``DEPENDENCE_ROUNDINGS`` roundings of float64 (``dependence_tolerance``): copies and
    combinations of columns of any scale and offset fall below it; a noise a millionth of the spread, a copy
    stored in float32, or a table of independent columns stay far above."""
    rng = np.random.default_rng(0)
    for trial in range(40):
        num_nodes = int(rng.integers(2, 40))
        num_rows = int(rng.integers(num_nodes + 2, 4 * num_nodes + 60))
        scales = 10.0 ** rng.uniform(-6, 8, size=num_nodes)
        values = rng.normal(size=(num_rows, num_nodes)) * scales + scales * 10.0 ** rng.uniform(
            -1, 4, num_nodes
        )
        members = rng.choice(num_nodes, size=int(rng.integers(1, num_nodes + 1)), replace=False)
        combined = values[:, members] @ rng.normal(size=len(members)) * 10.0 ** rng.uniform(-5, 5)
        table = np.column_stack([values, combined])
        standardization = Standardization.fit(table)
        magnitude = float((np.abs(table).max(axis=0) / standardization.std).max())
        found = dependent_columns(standardization.data_to_standard(table), magnitude)
        assert found is not None and num_nodes in found, trial  # the combined column is one of them
        assert set(found) <= {*members.tolist(), num_nodes}
        independent = standardization.data_to_standard(table)[:, :-1]
        assert dependent_columns(independent, magnitude) is None
    base = rng.normal(size=(200, 3))
    for copy in (base[:, 0] + 1e-6 * rng.normal(size=200), base[:, 0].astype(np.float32).astype(np.float64)):
        assert dependent_columns(standardized(np.column_stack([base, copy]))) is None
    assert dependent_columns(standardized(np.column_stack([base, base[:, 1]]))) == [1, 3]


def test_a_dependence_of_the_sampled_rows_only_is_not_named() -> None:
    """Beyond 2 d rows the dependence is looked for on 2 d evenly spaced rows and confirmed on all: two columns
    equal on exactly those rows (and different elsewhere) are not copies; columns equal on every row are."""
    rng = np.random.default_rng(1)
    data = rng.normal(size=(1000, 3))
    rows = np.unique(np.linspace(0, 999, 6).round().astype(np.int64))
    data[rows, 2] = data[rows, 0]
    assert dependent_columns(standardized(data)) is None
    data[:, 2] = data[:, 0]
    assert dependent_columns(standardized(data)) == [0, 2]


def test_a_graph_that_cannot_fit_in_memory_is_refused_before_scoring(monkeypatch, graph_model) -> None:
    """The whole table of d = 400 columns needs about 2.2 GiB (the pair statistics' [d, d, d] collider
    evidence); with 1 GiB of memory it is refused before anything is allocated, and neighborhoods fit."""
    import condfip.io.memory as memory
    from condfip.api import graph_inference

    monkeypatch.setattr(memory, "physical_memory", lambda: 2**30)
    assert 2.0 * 2**30 < graph_inference.graph_memory_bytes(400, None) < 2.5 * 2**30
    data = np.random.default_rng(0).normal(size=(30, 400))
    scored = []
    monkeypatch.setattr(graph_inference, "edge_probabilities", lambda *args, **kwargs: scored.append(1))
    with pytest.raises(
        ValueError,
        match=r"inferring the graph of 30 rows of 400 columns as one table needs about 2\.\d GiB of memory, more "
        r"than this machine's 1\.0 GiB; score smaller neighborhoods \(neighborhood='auto' or a number of nodes\)",
    ):
        infer_graph(data, model=graph_model, device="cpu", neighborhood=None)
    assert scored == []
    assert graph_inference.graph_memory_bytes(400, 5) < 2**24


# ----- known edges ------------------------------------------------------------------------------------------


def test_integer_column_names_are_names_never_positions(table, graph_model) -> None:
    """Columns named 1..5: (1, 2) is the edge between the columns named 1 and 2; 0, which names no column, is
    refused (it was taken as the position of the column named 1, so (5, 0) silently meant 5 -> 1)."""
    named = table.set_axis([1, 2, 3, 4, 5], axis=1)
    _, dag = infer_graph(named, model=graph_model, device="cpu", required=[(1, 2), (5, 3)], threshold=1.0)
    np.testing.assert_array_equal(np.argwhere(dag), [[0, 1], [4, 2]])
    for edges in ([(5, 0)], [(0, 1)]):
        with pytest.raises(
            ValueError, match=r"required names node 0, which is not a column name \(columns: \[1, 2, 3, 4, 5\]\); "
            "the data has integer column names, so integer endpoints are names, never positions",
        ):  # fmt: skip
            infer_graph(named, model=graph_model, device="cpu", required=edges)
    mixed = table.set_axis(["age", 1, "bp", "risk", "weight"], axis=1)
    with pytest.raises(ValueError, match="forbidden names node 0, which is not a column name"):
        infer_graph(mixed, model=graph_model, device="cpu", forbidden=[(0, 1)])
    # unnamed arrays keep positions
    _, dag = infer_graph(table.to_numpy(), model=graph_model, device="cpu", required=[(4, 0)], threshold=1.0)
    np.testing.assert_array_equal(np.argwhere(dag), [[4, 0]])


@pytest.mark.parametrize(
    ("edges", "expected"),
    [
        ([(0, 1), (0, 1)], [[0, 1]]),  # one edge given twice (read as an adjacency: a self-loop on x1)
        ([(1, 0), (1, 0)], [[1, 0]]),
        (np.array([[1, 0], [1, 0]]), [[1, 0]]),
        ([[0, 1], [0, 0]], [[0, 1]]),  # an adjacency (as pairs it would hold the self-loop 0 -> 0)
        ([(0, 1)], [[0, 1]]),
    ],
)
def test_two_columns_pairs_or_adjacency(table, graph_model, edges, expected) -> None:
    two = table[["age", "dose"]].to_numpy()
    _, dag = infer_graph(two, model=graph_model, device="cpu", required=edges, threshold=1.0)
    np.testing.assert_array_equal(np.argwhere(dag), expected)


def test_known_edges_as_a_partial_adjacency_frame_name_the_fix(table, graph_model) -> None:
    frame = pd.DataFrame([[0, 1], [0, 0]], index=["age", "dose"], columns=["age", "dose"])
    with pytest.raises(
        ValueError,
        match=r"the required adjacency DataFrame has no row and column for the data columns \['blood pressure', "
        r"'risk', 'weight'\]; give it one row and one column per data column \(0 where there is no edge\), or "
        r"pass a list of \(source, target\) edges",
    ):
        infer_graph(table, model=graph_model, device="cpu", required=frame)


def test_infer_batch_mixes_given_and_inferred_graphs_of_any_shape(table, graph_model, folders) -> None:
    model = CondFiP.from_pretrained(folders["condfip"], device="cpu", graph_model=graph_model)
    given = nx.DiGraph([("age", "dose")])
    given.add_nodes_from(NAMES)
    small = table[["risk", "age", "weight"]].iloc[:40]
    items = [(table, "infer"), (table, given), (small, "infer"), (table.iloc[:25, :2], "infer")]
    batched = model.infer_batch(items)
    for (data, graph), scm in zip(items, batched, strict=True):
        alone = model.infer(data, graph)
        assert list(scm.graph.nodes) == list(data.columns)
        assert set(scm.graph.edges()) == set(alone.graph.edges())
        assert nx.is_directed_acyclic_graph(scm.graph)
    assert set(batched[1].graph.edges()) == {("age", "dose")}
    _, dag = infer_graph(small, model=graph_model, device="cpu")
    assert set(batched[2].graph.edges()) == {
        (small.columns[i], small.columns[j]) for i, j in np.argwhere(dag)
    }


# ----- the command line -------------------------------------------------------------------------------------


@pytest.mark.parametrize("flag", ["--out", "--probabilities"])
def test_graph_command_never_writes_over_its_inputs(folders, tmp_path, capsys, flag) -> None:
    data = tmp_path / "data.csv"
    shutil.copy(folders["data"], data)
    required = tmp_path / "required.csv"
    shutil.copy(folders["root"] / "required.csv", required)
    before = {path: path.read_bytes() for path in (data, required)}
    for target, option in ((data, "--data"), (required, "--required")):
        outputs = {"--out": tmp_path / "G.csv", "--probabilities": tmp_path / "P.csv", flag: target}
        argv = ["graph", "--data", str(data), "--required", str(required), "--model", str(folders["graph"])]
        for name, path in outputs.items():
            argv += [name, str(path)]
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert err == (
            f"condfip graph: error: {flag} {str(target)!r} is the file that {option} reads; writing it would "
            "replace that input, give the output another name\n"
        )
    assert {path: path.read_bytes() for path in (data, required)} == before
    assert sorted(path.name for path in tmp_path.iterdir()) == ["data.csv", "required.csv"]


def test_graph_command_prints_warnings_as_one_line_naming_flags(folders, tmp_path, capsys) -> None:
    wide = tmp_path / "wide.csv"
    pd.DataFrame(np.random.default_rng(0).normal(size=(30, 7)), columns=list("abcdefg")).to_csv(
        wide, index=False
    )
    out = tmp_path / "G.csv"
    argv = ["graph", "--data", str(wide), "--out", str(out), "--model", str(folders["graph"])]
    assert main([*argv, "--neighborhood", "none"]) == 0
    captured = capsys.readouterr()
    assert captured.err == (
        "condfip graph: warning: data has 7 columns but the graph model was trained on at most 5 nodes and the "
        "whole table is scored, where its probabilities degrade; the default --neighborhood 'auto' scores one "
        "sub-table per node instead\n"
    )
    assert (
        captured.out
        == f"wrote a DAG with {int(read_graph_csv(out).to_numpy().sum())} edges over 7 nodes to {out}\n"
    )


@pytest.mark.parametrize("rows", ["400", 0, 2.5, True])
def test_a_checkpoint_with_bad_training_rows_is_refused(graph_model, tmp_path, rows) -> None:
    """``training.num_samples`` sizes the neighborhoods of "auto" (``trained_num_rows``): checked on saving as on
    loading, like ``node_counts``."""
    message = f"has an invalid 'training.num_samples' {rows!r}: it must be the rows of every training dataset"
    with pytest.raises(ValueError, match=message):
        graph_model.save_pretrained(
            tmp_path / "refused", training={"node_counts": [3, 4, 5], "num_samples": rows}
        )
    assert not (tmp_path / "refused" / "config.json").exists()
    graph_model.save_pretrained(tmp_path / "good", training={"node_counts": [3, 4, 5], "num_samples": 80})
    assert condfip.graph.GraphModel.from_pretrained(tmp_path / "good").trained_num_rows == 80
    path = tmp_path / "good" / "config.json"
    config = json.loads(path.read_text())
    config["training"]["num_samples"] = rows
    path.write_text(json.dumps(config))
    with pytest.raises(ValueError, match=message):
        condfip.graph.GraphModel.from_pretrained(tmp_path / "good")
