"""``condfip infer`` and ``condfip effect`` end to end on small CSV files, and their one-line errors (exit code 2)."""

from __future__ import annotations

import contextlib
import errno
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

import scm_gen
from condfip import CondFiP
from condfip.cli import main
from condfip.model import CondFiPConfig, CondFiPModel

TINY = CondFiPConfig(
    dim=8, num_heads=2, mlp_dim=16, encoder_pairs=1, embedding_pairs=1, decoder_blocks=1, num_anchor_rows=16
)


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("cli")
    generator = torch.Generator().manual_seed(2)
    with torch.random.fork_rng():
        torch.manual_seed(2)
        model = CondFiPModel(TINY)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(0.3 * torch.randn(parameter.shape, generator=generator))
    model.save_pretrained(folder / "model")
    rng = np.random.default_rng(4)
    scm = scm_gen.sample_scm("in", "linear", 4, rng=rng, graph="er")
    names = ["age", "dose", "blood pressure", "risk"]
    pd.DataFrame(scm.sample(60, rng)[0], columns=names).to_csv(folder / "data.csv", index=False)
    pd.DataFrame(scm.adjacency, columns=names).to_csv(folder / "adjacency.csv", index=False)
    pd.DataFrame(scm.adjacency, columns=names, index=names).to_csv(folder / "adjacency_named.csv")
    sources, targets = np.nonzero(scm.adjacency)
    pd.DataFrame({"source": [names[i] for i in sources], "target": [names[j] for j in targets]}).to_csv(
        folder / "edges.csv", index=False
    )
    return {
        "folder": folder,
        "model": folder / "model",
        "data": folder / "data.csv",
        "graph": folder / "adjacency.csv",
        "adjacency": scm.adjacency,
        "names": names,
    }


def infer(files, *extra: str, graph: Path | None = None) -> list[str]:
    return [
        "infer",
        "--data",
        str(files["data"]),
        "--graph",
        str(graph or files["graph"]),
        "--model",
        str(files["model"]),
        *extra,
    ]


def python_api(files):
    data = pd.read_csv(files["data"])
    return data, CondFiP.from_pretrained(files["model"]).infer(data, files["adjacency"])


def test_observational_samples_match_the_python_api(files, tmp_path, capsys):
    out = tmp_path / "samples.csv"
    assert main(infer(files, "--num-samples", "25", "--seed", "3", "--out", str(out))) == 0
    assert f"wrote 25 observational rows to {out}" in capsys.readouterr().out
    written = pd.read_csv(out)
    _, scm = python_api(files)
    assert list(written.columns) == files["names"]
    np.testing.assert_allclose(written.to_numpy(), scm.sample(25, seed=3).to_numpy(), rtol=1e-12)
    again = tmp_path / "again.csv"
    main(infer(files, "--num-samples", "25", "--seed", "3", "--out", str(again)))
    assert out.read_bytes() == again.read_bytes()


def test_interventional_samples_and_noise(files, tmp_path):
    out, noise_out = tmp_path / "do.csv", tmp_path / "noise.csv"
    argv = infer(
        files, "--num-samples", "30", "--intervene", "dose=2.5", "--intervene", "age=-1", "--seed", "1"
    )
    assert main([*argv, "--noise-out", str(noise_out), "--out", str(out)]) == 0
    written = pd.read_csv(out)
    assert len(written) == 30
    np.testing.assert_array_equal(written["dose"], 2.5)
    np.testing.assert_array_equal(written["age"], -1.0)
    _, scm = python_api(files)
    np.testing.assert_allclose(pd.read_csv(noise_out).to_numpy(), scm.noise().to_numpy(), rtol=1e-12)
    expected = scm.interventional_samples({"dose": 2.5, "age": -1.0}, n=30, seed=1)
    np.testing.assert_allclose(written.to_numpy(), expected.to_numpy(), rtol=1e-12)


def test_zero_shot_matches_the_python_api(files, tmp_path):
    out, noise_out = tmp_path / "samples.csv", tmp_path / "noise.csv"
    argv = infer(files, "--num-samples", "20", "--seed", "4", "--zero-shot", "--noise-out", str(noise_out))
    assert main([*argv, "--out", str(out)]) == 0
    data = pd.read_csv(files["data"])
    scm = CondFiP.from_pretrained(files["model"]).infer(data, files["adjacency"], zero_shot=True)
    np.testing.assert_allclose(pd.read_csv(out).to_numpy(), scm.sample(20, seed=4).to_numpy(), rtol=1e-12)
    np.testing.assert_allclose(pd.read_csv(noise_out).to_numpy(), scm.noise().to_numpy(), rtol=1e-12)
    _, zero_shot = python_api(files)
    assert not np.allclose(pd.read_csv(noise_out).to_numpy(), zero_shot.noise().to_numpy())


def test_counterfactuals_of_the_data_rows(files, tmp_path):
    out = tmp_path / "cf.csv"
    assert main(infer(files, "--counterfactual", "--intervene", "blood pressure=0.5", "--out", str(out))) == 0
    data, scm = python_api(files)
    written = pd.read_csv(out)
    np.testing.assert_array_equal(written["blood pressure"], 0.5)
    expected = scm.counterfactual_samples({"blood pressure": 0.5}, data)
    np.testing.assert_allclose(written.to_numpy(), expected.to_numpy(), rtol=1e-12)


@pytest.mark.parametrize("graph_file", ["adjacency_named.csv", "edges.csv"])
def test_graph_csv_formats_agree(files, tmp_path, graph_file):
    reference, other = tmp_path / "reference.csv", tmp_path / "other.csv"
    main(infer(files, "--num-samples", "10", "--out", str(reference)))
    assert (
        main(infer(files, "--num-samples", "10", "--out", str(other), graph=files["folder"] / graph_file))
        == 0
    )
    assert reference.read_bytes() == other.read_bytes()


def _bad(tmp_path, capsys, argv, expected: str, *, with_out: bool = True) -> None:
    out = tmp_path / "out.csv"
    with pytest.raises(SystemExit) as stopped:
        code = main([*argv, "--out", str(out)] if with_out else argv)
        raise SystemExit(code)
    assert stopped.value.code == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and expected in error, error
    assert "Traceback" not in error
    assert list(tmp_path.iterdir()) == []  # nothing written, no temporary left behind


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (["--num-samples", "5", "--intervene", "height=1"], "unknown node 'height'"),
        (["--num-samples", "5", "--intervene", "dose"], "expected NAME=VALUE, got 'dose'"),
        (["--num-samples", "5", "--intervene", "dose=nan"], "not finite"),
        (["--num-samples", "5", "--intervene", "dose=high"], "is not a number"),
        (["--num-samples", "0"], "expected a positive integer, got '0'"),
        ([], "--num-samples N is required"),
        (["--counterfactual"], "--counterfactual needs at least one --intervene"),
        (
            ["--counterfactual", "--intervene", "dose=1", "--num-samples", "3"],
            "does not apply to --counterfactual",
        ),
        (["--num-samples", "5", "--seed", "-3"], "expected a non-negative integer"),
        (
            ["--num-samples", "5", "--graph-model", "graph-small"],
            "--graph-model applies only with --graph infer (the graph is given); drop it",
        ),
    ],
)
def test_bad_options(files, tmp_path, capsys, change, expected):
    _bad(tmp_path, capsys, infer(files, *change), expected)


def test_bad_files(files, tmp_path, capsys):
    folder = tmp_path / "inputs"
    folder.mkdir()
    work = tmp_path / "work"
    work.mkdir()
    (folder / "cyclic.csv").write_text("source,target\nage,dose\ndose,risk\nrisk,age\n")
    (folder / "text.csv").write_text("age,dose,blood pressure,risk\n1,a,2,3\n2,b,3,1\n")
    (folder / "empty.csv").write_text("")
    (folder / "words.csv").write_text("age,dose,blood pressure,risk\nno,0,0,0\n0,0,0,0\n0,0,0,0\n0,0,0,0\n")
    cases = [
        (
            infer(files, "--num-samples", "3", graph=folder / "cyclic.csv"),
            "cycle 'age' -> 'dose' -> 'risk' -> 'age'",
        ),
        (infer(files, "--num-samples", "3", graph=folder / "missing.csv"), "missing.csv': no such file"),
        (infer(files, "--num-samples", "3", graph=folder / "empty.csv"), "is not a readable CSV"),
        (
            infer(files, "--num-samples", "3", graph=folder / "words.csv"),
            "adjacency entry ['age', 'age'] is 'no', not a number",
        ),
        (
            [
                "infer",
                "--data",
                str(folder / "text.csv"),
                "--graph",
                str(files["graph"]),
                "--num-samples",
                "3",
            ],
            "column 'dose' has dtype",
        ),
        (
            [
                "infer",
                "--data",
                str(files["data"]),
                "--graph",
                str(files["graph"]),
                "--num-samples",
                "3",
                "--model",
                "huge",
            ],
            "'huge' is not a shipped checkpoint",
        ),
    ]
    for argv, expected in cases:
        _bad(work, capsys, argv, expected)


def effect(files, *extra: str) -> list[str]:
    return ["effect", *infer(files)[1:], "--target", "dose", *extra]


@pytest.mark.parametrize("zero_shot", [True, False], ids=["zero-shot", "adapted"])
def test_effect_prints_the_python_api_figure(files, capsys, zero_shot):
    flags = ["--zero-shot"] if zero_shot else []
    argv = effect(files, "--alternative", "age=1", "--reference", "age=-1", "--num-samples", "500", *flags)
    assert main([*argv, "--seed", "3"]) == 0
    printed = capsys.readouterr()
    data = pd.read_csv(files["data"])
    scm = CondFiP.from_pretrained(files["model"]).infer(data, files["adjacency"], zero_shot=zero_shot)
    expected = scm.average_causal_effect("dose", {"age": 1.0}, {"age": -1.0}, n=500, seed=3)
    assert abs(expected) > 1e-6  # dose descends from age
    assert printed.out.strip() == f"{expected:.6g}"  # the same computation, printed to 6 digits
    assert "average causal effect on dose of do(age = 1) against do(age = -1) (500 fresh rows, seed 3)" in (
        printed.err
    )


def test_effect_on_the_data_rows_against_no_intervention(files, capsys):
    assert (
        main(effect(files, "--alternative", "age=0.5", "--alternative", "blood pressure=2", "--on-data")) == 0
    )
    printed = capsys.readouterr()
    data, scm = python_api(files)
    expected = scm.average_causal_effect("dose", {"age": 0.5, "blood pressure": 2.0}, {}, data=data)
    assert abs(expected) > 1e-6
    assert printed.out.strip() == f"{expected:.6g}"  # the same computation, printed to 6 digits
    assert (
        "of do(age = 0.5, blood pressure = 2) against no intervention (the 60 data rows' noise)"
        in printed.err
    )


@pytest.mark.parametrize("on_data", [False, True], ids=["fresh-rows", "on-data"])
def test_effect_with_a_bootstrap_interval_matches_the_python_api(files, capsys, on_data):
    rows = ["--on-data"] if on_data else ["--num-samples", "300"]
    argv = effect(files, "--alternative", "age=1", *rows, "--bootstrap", "4", "--level", "0.8", "--seed", "5")
    assert main(argv) == 0
    printed = capsys.readouterr()
    estimate, lower, upper = (float(value) for value in printed.out.split())
    data = pd.read_csv(files["data"])
    model = CondFiP.from_pretrained(files["model"])

    def statistic(scm):
        if on_data:
            return scm.average_causal_effect("dose", {"age": 1.0}, {}, data=scm.data)
        return scm.average_causal_effect("dose", {"age": 1.0}, {}, n=300, seed=5)

    result = model.bootstrap(data, files["adjacency"], statistic, num_bootstraps=4, seed=5)
    expected_lower, expected_upper = result.interval(0.8)
    assert (estimate, lower, upper) == pytest.approx(
        (result.estimate, expected_lower, expected_upper), rel=1e-5
    )
    assert lower < upper
    assert "the 80% percentile interval over 4 resamples of the rows" in printed.err
    assert main([*argv, "--reinfer"]) == 0  # a whole inference per resample: the same estimate, other spread
    again = model.bootstrap(data, files["adjacency"], statistic, num_bootstraps=4, seed=5, reinfer=True)
    values = tuple(float(value) for value in capsys.readouterr().out.split())
    assert values == pytest.approx((again.estimate, *again.interval(0.8)), rel=1e-5)
    assert values[0] == pytest.approx(estimate, rel=1e-12) and values[1:] != (lower, upper)


def test_effect_says_how_many_fresh_rows_it_draws(files, capsys):
    assert main(effect(files, "--alternative", "age=1", "--seed", "2")) == 0
    assert (
        "(fresh rows in stratified blocks until a 1 % standard error (at most 10,000), seed 2)"
        in capsys.readouterr().err
    )


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (["--alternative", "age=1", "--target", "height"], "unknown target 'height'"),
        (["--alternative", "age=1", "--on-data", "--num-samples", "9"], "does not apply to --on-data"),
        (["--alternative", "age=1", "--alternative", "age=2"], "--alternative names a node twice"),
        (["--alternative", "age=1", "--reference", "weight=2"], "unknown node 'weight'"),
        ([], "the following arguments are required: --alternative"),
        (["--alternative", "age=1", "--bootstrap", "1"], "expected an integer >= 2, got '1'"),
        (["--alternative", "age=1", "--bootstrap", "5", "--level", "95"], "strictly between 0 and 1"),
        (["--alternative", "age=1", "--level", "0.9"], "--level applies only with --bootstrap N"),
        (
            ["--alternative", "age=1", "--level", "0.95"],
            "--level applies only with --bootstrap N",
        ),  # the default
        (["--alternative", "age=1", "--reinfer"], "--reinfer applies only with --bootstrap N"),
    ],
)
def test_effect_bad_options(files, tmp_path, capsys, change, expected):
    _bad(tmp_path, capsys, effect(files, *change), expected, with_out=False)


def test_console_entry_point_end_to_end(files, tmp_path):
    out = tmp_path / "samples.csv"
    command = [sys.executable, "-m", "condfip.cli", *infer(files, "--num-samples", "7", "--out", str(out))]
    finished = subprocess.run(command, capture_output=True, text=True, timeout=600, check=False)
    assert finished.returncode == 0, finished.stderr
    assert pd.read_csv(out).shape == (7, 4)


def _refused(argv: list[str], expected: str, capsys) -> str:
    """``main(argv)`` exits with code 2 and one line on stderr that holds ``expected``."""
    with pytest.raises(SystemExit) as stopped:
        raise SystemExit(main(argv))
    assert stopped.value.code == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and expected in error and "Traceback" not in error, error
    return error


def test_outputs_are_checked_before_either_is_written(files, tmp_path, capsys):
    folder = tmp_path / "adir"
    folder.mkdir()
    (tmp_path / "afile").write_text("x")
    noise, same = str(tmp_path / "noise.csv"), str(tmp_path / "same.csv")
    argv = infer(files, "--num-samples", "5")
    cases = [
        (
            ["--noise-out", noise, "--out", str(folder)],
            f"--out {str(folder)!r} is a directory; give a file name",
        ),
        (["--noise-out", str(folder), "--out", same], "--noise-out"),
        (
            ["--noise-out", noise, "--out", str(tmp_path / "afile" / "s.csv")],
            f"{str(tmp_path / 'afile')!r} is not a directory",
        ),
        (["--noise-out", same, "--out", str(tmp_path / "." / "same.csv")], "--noise-out and --out both name"),
        (["--out", ""], "argument --out: the path is empty; give the path to write"),
        (["--noise-out", "", "--out", same], "argument --noise-out: the path is empty"),
    ]
    for change, expected in cases:
        _refused([*argv, *change], expected, capsys)
        assert sorted(path.name for path in tmp_path.iterdir()) == ["adir", "afile"]  # neither output
        assert list(folder.iterdir()) == []
    graph = ["graph", "--data", str(files["data"]), "--model", "not-loaded"]
    _refused([*graph, "--probabilities", noise, "--out", str(folder)], "--out", capsys)
    _refused([*graph, "--probabilities", same, "--out", same], "--probabilities and --out both name", capsys)
    assert sorted(path.name for path in tmp_path.iterdir()) == ["adir", "afile"]


@pytest.mark.parametrize(("option", "key"), [("--out", "data"), ("--noise-out", "data"), ("--out", "graph")])
def test_infer_refuses_an_output_that_would_replace_its_input(files, capsys, option, key):
    """An output naming the --data or --graph file is refused before any work; the input stays as it was."""
    before = files[key].read_bytes()
    argv = infer(files, "--num-samples", "5", *(["--out", "elsewhere.csv"] if option != "--out" else []))
    argv += [option, str(files[key])]
    flag = "--data" if key == "data" else "--graph"
    _refused(argv, f"{option} {str(files[key])!r} is the file that {flag} reads", capsys)
    assert files[key].read_bytes() == before


def test_infer_prints_the_api_warnings_in_one_line_naming_flags(files, tmp_path, capsys):
    """8 rows are too few to adapt to: the fallback warning is one line on stderr, once, naming --zero-shot."""
    few = tmp_path / "few.csv"
    pd.read_csv(files["data"]).head(8).to_csv(few, index=False)
    argv = infer(files, "--num-samples", "3", "--out", str(tmp_path / "s.csv"))
    argv[argv.index("--data") + 1] = str(few)
    assert main(argv) == 0
    lines = capsys.readouterr().err.splitlines()
    warned = [line for line in lines if "warning" in line.lower()]
    assert warned == [
        "condfip infer: warning: 8 rows are too few to adapt to (at least 10): using the zero-shot model, as "
        "with --zero-shot"
    ], lines


def test_infer_writes_both_outputs_or_neither(files, tmp_path, capsys, monkeypatch):
    """A failure while writing the second output (a full disk) leaves neither file, not the first one."""
    import condfip.cli.inputs

    out, noise = tmp_path / "s.csv", tmp_path / "noise.csv"
    real_atomic_file = condfip.cli.inputs.atomic_file

    @contextlib.contextmanager
    def full_disk_for_the_samples(path):
        with real_atomic_file(path) as temporary:
            if path == out:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(temporary))
            yield temporary

    monkeypatch.setattr(condfip.cli.inputs, "atomic_file", full_disk_for_the_samples)
    argv = infer(files, "--num-samples", "5", "--noise-out", str(noise), "--out", str(out))
    _refused(argv, f"cannot write {str(noise)!r} and {str(out)!r}: No space left on device", capsys)
    assert list(tmp_path.iterdir()) == []


def test_repeated_positive_options_add_up(files, tmp_path):
    from condfip.cli import build_parser
    from condfip.cli.infer import _positive

    def positive(*flags: str) -> bool | list[str]:
        return _positive(build_parser().parse_args([*infer(files, "--out", "x.csv"), *flags]))

    assert positive() is False
    assert positive("--positive") is True
    assert positive("--positive", "dose", "--positive", "age") == ["dose", "age"]
    assert positive("--positive", "dose", "age") == ["dose", "age"]
    assert positive("--positive", "dose", "--positive") is True  # a use without names: every column
    data = pd.read_csv(files["data"])
    data[["age", "dose"]] = np.exp(data[["age", "dose"]] / data[["age", "dose"]].std())
    data.to_csv(tmp_path / "positive.csv", index=False)
    argv = ["infer", "--data", str(tmp_path / "positive.csv"), *infer(files)[3:], "--num-samples", "20"]
    assert (
        main([*argv, "--positive", "dose", "--positive", "age", "--out", str(tmp_path / "repeated.csv")]) == 0
    )
    assert main([*argv, "--positive", "age", "dose", "--out", str(tmp_path / "together.csv")]) == 0
    assert main([*argv, "--positive", "age", "--out", str(tmp_path / "age.csv")]) == 0
    repeated = (tmp_path / "repeated.csv").read_bytes()
    assert repeated == (tmp_path / "together.csv").read_bytes()
    assert repeated != (tmp_path / "age.csv").read_bytes()
    data = pd.read_csv(tmp_path / "positive.csv")
    scm = CondFiP.from_pretrained(files["model"]).infer(data, files["adjacency"], positive=["dose", "age"])
    expected = scm.sample(20, seed=0).to_numpy()
    np.testing.assert_allclose(pd.read_csv(tmp_path / "repeated.csv").to_numpy(), expected, rtol=1e-12)


def test_help_says_infer_adapts_by_default(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "infer the SCM of a CSV table (adapted to its rows unless --zero-shot) and write samples" in text
    assert "zero-shot and write" not in text
    with pytest.raises(SystemExit):
        main(["demo", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for default in ("(default 20)", "(default rff)", "(default in)", "(default 400)", "(default small)"):
        assert default in text, default


def test_demo_graph_model_needs_infer_graph(files, tmp_path, capsys):
    argv = ["demo", "--num-nodes", "3", "--model", str(files["model"]), "--graph-model", "graph-small"]
    _refused(argv, "--graph-model applies only with --infer-graph (the true graph is given); drop it", capsys)


def test_graph_writes_both_outputs_and_counts_in_the_singular(files, tmp_path, capsys, monkeypatch):
    import condfip.cli.graph as graph_command

    table = pd.read_csv(files["data"])[["age", "dose"]]
    table.to_csv(tmp_path / "two.csv", index=False)
    one_edge = (np.array([[0.0, 0.9], [0.2, 0.0]]), np.array([[0, 1], [0, 0]]))
    monkeypatch.setattr(graph_command, "infer_graph", lambda *args, **kwargs: one_edge)
    out, probabilities = tmp_path / "G.csv", tmp_path / "P.csv"
    argv = [
        "graph",
        "--data",
        str(tmp_path / "two.csv"),
        "--out",
        str(out),
        "--probabilities",
        str(probabilities),
    ]
    assert main(argv) == 0
    assert capsys.readouterr().out.startswith(f"wrote a DAG with 1 edge over 2 nodes to {out} and the edge")
    assert pd.read_csv(out, index_col=0).to_numpy().tolist() == [[0, 1], [0, 0]]
    assert pd.read_csv(probabilities, index_col=0).to_numpy().tolist() == [[0.0, 0.9], [0.2, 0.0]]
