"""Every ``condfip`` command fails cleanly: bad input, absurd sizes, missing devices and file-system faults give
exit code 2 and exactly one line on stderr, never a traceback, and leave no file behind; SIGTERM while writing
leaves nothing either, and what SIGKILL leaves is removed by the next run.

Process-level behaviour (exit codes, signals, resource limits) runs through the real entry point,
``python -m condfip.cli``, in subprocesses; the other messages call ``condfip.cli.main`` in this process."""

from __future__ import annotations

import importlib.util
import json
import os
import resource
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from condfip.cli import main
from condfip.model import CondFiPConfig, CondFiPModel

TINY = CondFiPConfig(
    dim=8, num_heads=2, mlp_dim=16, encoder_pairs=1, embedding_pairs=1, decoder_blocks=1, num_anchor_rows=16
)
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
TRAIN_SMALL = ["--steps", "1", "--batch-size", "2", "--num-samples", "24", "--nodes", "4", "--workers", "0"]
TRAIN_SMALL += ["--validation-datasets", "1", "--warmup-steps", "1", "--quiet"]


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("reliability-cli")
    generator = torch.Generator().manual_seed(1)
    with torch.random.fork_rng():
        torch.manual_seed(1)
        model = CondFiPModel(TINY)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(0.3 * torch.randn(parameter.shape, generator=generator))
    model.save_pretrained(folder / "model")
    (folder / "tiny.json").write_text(json.dumps(TINY.to_dict()))
    rng = np.random.default_rng(0)
    x = rng.normal(size=(60, 4))
    x[:, 1] += x[:, 0]
    x[:, 3] += x[:, 1] - x[:, 2]
    pd.DataFrame(x, columns=list("abcd")).to_csv(folder / "data.csv", index=False)
    (folder / "edges.csv").write_text("source,target\na,b\nb,d\nc,d\n")
    (folder / "duplicate.csv").write_text("a,b,a\n1,2,3\n4,5,7\n")
    (folder / "header.csv").write_text("a,b,c,d\n")
    (folder / "ragged.csv").write_text("a,b,c,d\n1,2,3,4,5\n" + "1,2,3,4\n" * 59)  # one extra field in row 1
    (folder / "non_square.csv").write_text("a,b,c,d\n0,1,0,0\n0,0,0,1\n")
    (folder / "nan.csv").write_text(",a,b,c,d\na,0,1,,0\nb,0,0,0,1\nc,0,0,0,1\nd,0,0,0,0\n")
    (folder / "half.csv").write_text(",a,b,c,d\na,0,0.5,0,0\nb,0,0,0,1\nc,0,0,0,1\nd,0,0,0,0\n")
    (folder / "required.csv").write_text("source,target\nd,a\n")
    (folder / "unknown.csv").write_text("source,target\na,zz\n")
    (folder / "a_file").write_text("not a folder")
    return {name: folder / name for name in ("model", "tiny.json", "data.csv", "edges.csv")} | {
        "folder": folder
    }


def _infer(files, out: Path, *extra: str, data: str = "data.csv", graph: str = "edges.csv") -> list[str]:
    folder = files["folder"]
    return ["infer", "--data", str(folder / data), "--graph", str(folder / graph), "--model", str(files["model"]),
            "--device", "cpu", "--out", str(out), *extra]  # fmt: skip


def _run(argv: list[str], limit_bytes: int | None = None) -> subprocess.CompletedProcess:
    """``python -m condfip.cli ARGV``; ``limit_bytes`` caps the size of any file it writes (RLIMIT_FSIZE, with
    SIGXFSZ ignored: a write beyond it fails with EFBIG, as on a full disk)."""

    def limit() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit_bytes, limit_bytes))

    return subprocess.run(
        [sys.executable, "-m", "condfip.cli", *argv],
        capture_output=True,
        text=True,
        env=ENV,
        timeout=300,
        preexec_fn=limit if limit_bytes is not None else None,
    )


def _assert_clean_failure(
    result: subprocess.CompletedProcess, expected: str, folder: Path, before: set
) -> None:
    assert result.returncode == 2, result.stderr
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr, result.stderr
    assert expected in result.stderr, result.stderr
    assert set(folder.iterdir()) == before, sorted(set(folder.iterdir()) ^ before)  # nothing written or left


def test_through_the_entry_point_failures_are_one_line_exit_2_and_leave_nothing(files, tmp_path) -> None:
    folder = files["folder"]
    out = tmp_path / "out"
    out.mkdir()
    cases = [
        (_infer(files, out / "s.csv", "--num-samples", "100000000000"), "needs about", None),
        # a full disk: the samples, or the first checkpoint of a run, cannot be written
        (_infer(files, out / "s.csv", "--num-samples", "20000"), "cannot write", 65536),
        (
            [
                "train",
                "encoder",
                "--out",
                str(out / "run"),
                "--config",
                str(files["tiny.json"]),
                *TRAIN_SMALL,
            ],
            "cannot write the training run",
            4096,
        ),  # fmt: skip
    ]
    before = set(folder.iterdir())
    with ThreadPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(lambda case: _run(case[0], case[2]), cases))
    for (argv, expected, _), result in zip(cases, results, strict=True):
        _assert_clean_failure(result, expected, folder, before)
        assert list(out.iterdir()) == [], (argv, sorted(out.iterdir()))


def _temporaries(folder: Path) -> list[Path]:
    return sorted(folder.glob(".*.tmp"))


def _start_writing(files, out: Path) -> subprocess.Popen:
    """``condfip infer`` writing a CSV of about 25 MB; returns once its temporary file is being written."""
    process = subprocess.Popen(
        [sys.executable, "-m", "condfip.cli", *_infer(files, out, "--num-samples", "300000")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=ENV,
    )
    deadline = time.monotonic() + 240
    while not any(path.stat().st_size > 0 for path in _temporaries(out.parent) if path.exists()):
        assert process.poll() is None, process.communicate()[1]
        assert time.monotonic() < deadline, "the temporary file never appeared"
        time.sleep(0.02)
    return process


def test_sigterm_while_writing_leaves_nothing(files, tmp_path) -> None:
    out = tmp_path / "samples.csv"
    process = _start_writing(files, out)
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 128 + signal.SIGTERM, stderr
    assert stderr == "condfip infer: stopped by SIGTERM\n"
    assert list(tmp_path.iterdir()) == []


def test_sigterm_and_sighup_unwind_through_the_writers(files, tmp_path, capsys, monkeypatch) -> None:
    """The handlers ``main`` installs turn either signal into an exception while the second of two CSVs is being
    written: both temporary files are removed and neither output appears (the noise, written first, neither),
    the exit code is 128 + the signal, and the previous handlers come back."""
    import condfip.cli.infer as infer_command

    real_write = infer_command.write_csvs
    for stop in (signal.SIGTERM, signal.SIGHUP):
        previous = signal.getsignal(stop)

        def write_and_stop(outputs, stop=stop):
            def signal_while_writing(*args, **kwargs):
                assert len(_temporaries(tmp_path)) == 2  # both temporary files exist when the signal comes
                os.kill(os.getpid(), stop)

            monkeypatch.setattr(outputs[-1][0], "to_csv", signal_while_writing)
            real_write(outputs)

        monkeypatch.setattr(infer_command, "write_csvs", write_and_stop)
        noise = ["--noise-out", str(tmp_path / "noise.csv")]
        assert main(_infer(files, tmp_path / "s.csv", "--num-samples", "5", *noise)) == 128 + stop
        assert capsys.readouterr().err == f"condfip infer: stopped by {stop.name}\n"
        assert list(tmp_path.iterdir()) == []
        assert signal.getsignal(stop) == previous


def test_a_signal_during_the_renames_waits_until_both_outputs_are_in_place(
    files, tmp_path, capsys, monkeypatch
):
    """SIGTERM between the two renames is held until both are done: both outputs or neither, never one."""
    real_replace = os.replace
    renamed = []

    def replace_and_stop(source, target):
        if Path(target).parent == tmp_path:
            if not renamed:
                os.kill(os.getpid(), signal.SIGTERM)  # held: delivered once both files are in place
            renamed.append(Path(target).name)
        real_replace(source, target)

    monkeypatch.setattr(os, "replace", replace_and_stop)
    noise = ["--noise-out", str(tmp_path / "noise.csv")]
    assert main(_infer(files, tmp_path / "s.csv", "--num-samples", "5", *noise)) == 128 + signal.SIGTERM
    assert capsys.readouterr().err == "condfip infer: stopped by SIGTERM\n"
    assert sorted(renamed) == ["noise.csv", "s.csv"]
    assert sorted(path.name for path in tmp_path.iterdir()) == ["noise.csv", "s.csv"]
    assert len(pd.read_csv(tmp_path / "s.csv")) == 5


def test_what_sigkill_leaves_is_removed_by_the_next_run(files, tmp_path) -> None:
    out = tmp_path / "samples.csv"
    process = _start_writing(files, out)
    process.kill()
    process.wait(timeout=60)
    assert len(_temporaries(tmp_path)) == 1 and not out.exists()  # SIGKILL cannot be intercepted
    assert main(_infer(files, out, "--num-samples", "5")) == 0
    assert _temporaries(tmp_path) == [] and len(pd.read_csv(out)) == 5


# --------------------------------------------------------------------------------------- messages (in process)
def _bad(argv: list[str], expected: str, capsys, folder: Path) -> None:
    before = set(folder.iterdir())
    assert main(argv) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and expected in error, error
    assert set(folder.iterdir()) == before


@pytest.mark.parametrize(
    ("data", "graph", "expected"),
    [
        ("header.csv", "edges.csv", "has a header row (a, b, c, d) but no data rows"),
        ("ragged.csv", "edges.csv", "ragged.csv': line 2 has 5 fields but the header names 4 columns"),
        ("duplicate.csv", "edges.csv", "names the columns ['a'] more than once"),
        ("data.csv", "non_square.csv", "an adjacency CSV must be square (one row per node"),
        (
            "data.csv",
            "nan.csv",
            "adjacency entry ['a', 'c'] (row 0, column 2) is nan; entries must be 0 or 1",
        ),
        (
            "data.csv",
            "half.csv",
            "adjacency entry ['a', 'b'] (row 0, column 1) is 0.5; entries must be 0 or 1",
        ),
    ],
)
def test_bad_tables_and_graphs_are_named(files, tmp_path, capsys, data, graph, expected) -> None:
    _bad(
        _infer(files, tmp_path / "s.csv", "--num-samples", "5", data=data, graph=graph),
        expected,
        capsys,
        tmp_path,
    )


def test_known_edge_errors_name_columns(files, tmp_path, capsys) -> None:
    folder = files["folder"]
    argv = ["graph", "--data", str(files["data.csv"]), "--out", str(tmp_path / "g.csv"), "--required",
            str(folder / "required.csv"), "--forbidden", str(folder / "required.csv")]  # fmt: skip
    _bad(argv, "edge 'd' -> 'a' is both required and forbidden", capsys, tmp_path)


def _command(files, tmp_path: Path, command: str, *extra: str) -> list[str]:
    """A call of ``command`` on the module's files (the small network, its data and graph), then ``extra``."""
    folder = files["folder"]
    if command == "infer":
        return [*_infer(files, tmp_path / "s.csv", "--num-samples", "5"), *extra]
    if command == "effect":
        effect = _infer(files, tmp_path / "s.csv")[1:-2]  # without --out
        return ["effect", *effect, "--target", "d", "--alternative", "a=1", *extra]
    if command == "graph":
        return ["graph", "--data", str(folder / "data.csv"), "--out", str(tmp_path / "g.csv"), *extra]
    if command == "demo":
        return [
            "demo",
            "--seed",
            "0",
            "--num-nodes",
            "3",
            "--num-context",
            "50",
            "--model",
            str(files["model"]),
            *extra,
        ]
    return ["train", "encoder", "--out", str(tmp_path / "run"), *TRAIN_SMALL, *extra]


@pytest.mark.parametrize(
    ("command", "extra", "expected", "python"),
    [
        ("infer", ["--model", "nope"], "--model 'nope' is not a shipped checkpoint", "name_or_path"),
        ("infer", ["--model", "./nonexistent"], "no checkpoint folder at './nonexistent' (", "Hugging Face"),
        ("graph", ["--model", "./nonexistent"], "no checkpoint folder at './nonexistent' (", "Hugging Face"),
        (
            "infer",
            ["--device", "bogus"],
            "--device must be 'auto', 'cpu', 'cuda' or 'cuda:N'",
            "error: device",
        ),
        ("infer", ["--positive", "zz"], "--positive names unknown column(s) ['zz']", "error: positive"),
        ("infer", ["--positive", "b"], "or leave the column out of --positive", "positive="),
        (
            "infer",
            ["--graph", "infer", "--graph-model", "nope"],
            "--graph-model 'nope' is not a shipped",
            "name_or_path",
        ),
        (
            "effect",
            ["--bootstrap", "2", "--positive", "zz"],
            "--positive names unknown column(s)",
            "error: positive",
        ),
        ("graph", ["--model", "nope"], "--model 'nope' is not a shipped checkpoint", "name_or_path"),
        (
            "graph",
            ["--device", "bogus"],
            "--device must be 'auto', 'cpu', 'cuda' or 'cuda:N'",
            "error: device",
        ),
        (
            "graph",
            ["--required", "unknown.csv"],
            "--required names node 'zz', which is neither",
            "error: required",
        ),
        (
            "graph",
            ["--forbidden", "unknown.csv"],
            "--forbidden names node 'zz', which is neither",
            "error: forbidden",
        ),
        ("demo", ["--num-nodes", "6000"], "--num-nodes 6000 must be between 1 and 5000", "num_nodes"),
        ("demo", ["--model", "nope"], "--model 'nope' is not a shipped checkpoint", "name_or_path"),
        (
            "demo",
            ["--infer-graph", "--graph-model", "nope"],
            "--graph-model 'nope' is not a shipped",
            "name_or_path",
        ),
        (
            "train",
            ["--device", "bogus"],
            "--device must be 'auto', 'cpu', 'cuda' or 'cuda:N'",
            "error: device",
        ),
    ],
)
def test_messages_name_the_flags_not_the_python_arguments(
    files, tmp_path, capsys, command, extra, expected, python
) -> None:
    extra = [str(files["folder"] / value) if value.endswith(".csv") else value for value in extra]
    before = set(tmp_path.iterdir())
    assert main(_command(files, tmp_path, command, *extra)) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and error.startswith(f"condfip {command}: error: ") and expected in error, (
        error
    )
    assert python not in error, error
    assert set(tmp_path.iterdir()) == before


def test_flag_message_replaces_only_the_arguments_it_is_given() -> None:
    from condfip.cli.inputs import flag_message

    flags = {"positive": "--positive", "device": "--device", "name_or_path": "--model"}
    assert flag_message("positive names ['zz']; or leave it out of positive=", flags) == (
        "--positive names ['zz']; or leave it out of --positive"
    )
    assert (
        flag_message("name_or_path='x' is not a shipped checkpoint", flags)
        == "--model 'x' is not a shipped checkpoint"
    )
    unchanged = (
        "column 'a' is declared positive; zero_shot=True or devices=2; the device 'cpu'; positive_only=1"
    )
    assert flag_message(unchanged, flags) == unchanged


def test_interventions_beyond_the_range_are_refused(files, tmp_path, capsys) -> None:
    argv = _infer(files, tmp_path / "s.csv", "--num-samples", "5", "--intervene", "a=1e40")
    _bad(argv, "intervention on column 'a': 1e+40 is outside the range the network takes", capsys, tmp_path)


def test_demo_plot_without_matplotlib_fails_before_the_demo(files, tmp_path, capsys, monkeypatch) -> None:
    import condfip.cli.demo as demo_command

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "matplotlib" else real(name, *a)
    )

    def must_not_run(*args, **kwargs):
        raise AssertionError("the demo ran before --plot was checked")

    monkeypatch.setattr(demo_command, "run_demo", must_not_run)
    monkeypatch.setattr(demo_command.CondFiP, "from_pretrained", must_not_run)
    argv = ["demo", "--num-nodes", "4", "--model", str(files["model"]), "--plot", str(tmp_path / "p.png")]
    _bad(argv, "--plot needs matplotlib; install it with: pip install 'condfip[plot]'", capsys, tmp_path)


def test_sizes_devices_and_places_are_checked_before_any_work(files, tmp_path, capsys) -> None:
    folder = files["folder"]
    train = ["train", "encoder", "--out", str(tmp_path / "run"), *TRAIN_SMALL]
    demo = ["demo", "--num-context", "1000000000", "--model", str(files["model"])]
    _bad(demo, "the demo on 1,000,000,000 context rows of 20 nodes needs about", capsys, tmp_path)
    _bad([*train, "--stop-at", "0"], "--stop-at must be an integer >= 1", capsys, tmp_path)
    _bad(
        [*train, "--time-limit", "nan"], "--time-limit must be a positive number of minutes", capsys, tmp_path
    )
    _bad(
        [*train, "--time-limit", "-1"], "--time-limit must be a positive number of minutes", capsys, tmp_path
    )
    _bad([*train, "--out", str(folder / "a_file")], "is a file; give a folder for the run", capsys, tmp_path)
    _bad([*train, "--out", str(folder / "a_file" / "run")], "Not a directory", capsys, tmp_path)
    huge = tmp_path / "huge.json"
    huge.write_text(json.dumps({"dim": 2**17, "mlp_dim": 2**17, "num_heads": 1}))
    _bad([*train, "--config", str(huge)], "TiB of parameters) needs about", capsys, tmp_path)
    huge.unlink()
    if not torch.cuda.is_available():
        _bad([*train, "--device", "cuda"], "device 'cuda' is not available here", capsys, tmp_path)
        infer = _infer(files, tmp_path / "s.csv", "--num-samples", "5", "--device", "cuda")
        _bad(infer, "device 'cuda' is not available here", capsys, tmp_path)


def test_demo_counts_the_drawing_of_its_scm_in_the_memory_check(files, tmp_path, capsys, monkeypatch) -> None:
    """3 nodes and 1e8 context rows: a small table to infer from, but scm-gen draws the RFF features of every
    row (1e8 x 100 float32, 37 GiB); on a 16 GiB machine the demo is refused before anything is loaded."""
    import condfip.cli.demo as demo_command
    import condfip.io.memory

    def must_not_run(*args, **kwargs):
        raise AssertionError("the demo started before its memory was checked")

    monkeypatch.setattr(condfip.io.memory, "physical_memory", lambda: 16 * 2**30)
    monkeypatch.setattr(demo_command.CondFiP, "from_pretrained", must_not_run)
    argv = [
        "demo",
        "--seed",
        "0",
        "--num-nodes",
        "3",
        "--num-context",
        "100000000",
        "--model",
        str(files["model"]),
    ]
    for mechanism in ("rff", "linear"):
        assert main([*argv, "--mechanism", mechanism]) == 2
        error = capsys.readouterr().err
        assert error.count("\n") == 1 and "Traceback" not in error, error
        assert error.startswith(
            "condfip demo: error: the demo on 100,000,000 context rows of 3 nodes needs about"
        )
        assert error.endswith("more than this machine's 16.0 GiB; use a smaller --num-context\n"), error
    assert list(tmp_path.iterdir()) == []


def test_training_flags_and_resume_are_checked(files, tmp_path, capsys) -> None:
    run = tmp_path / "run"
    config = ["--config", str(files["tiny.json"])]
    _bad(
        ["train", "encoder", "--out", str(run), "--lr", "nan", *TRAIN_SMALL], "--lr must be", capsys, tmp_path
    )
    _bad(
        ["train", "encoder", "--out", str(run), "--steps", "0"],
        "--steps must be an integer >= 1",
        capsys,
        tmp_path,
    )
    assert main(["train", "encoder", "--out", str(run), *config, *TRAIN_SMALL]) == 0
    capsys.readouterr()
    graph_config = tmp_path / "graph.json"
    graph_config.write_text(json.dumps({"dim": 8, "num_heads": 2, "mlp_dim": 16, "num_layers": 1}))
    expected = (
        "it holds a run of the 'encoder' stage, not of the 'graph' stage; resume it as 'condfip train encoder"
    )
    before = set(run.iterdir())
    argv = ["train", "graph", "--out", str(run), "--resume", "--config", str(graph_config), *TRAIN_SMALL]
    _bad(argv, expected, capsys, tmp_path)
    assert set(run.iterdir()) == before
    _bad(["train", "encoder", "--out", str(run), "--resume", "--stop-at", "1", *config, *TRAIN_SMALL],
         "--stop-at 1 is not after the step the run", capsys, tmp_path)  # fmt: skip


def test_training_checks_mechanism_names_before_any_worker_or_folder(files, tmp_path, capsys) -> None:
    run = tmp_path / "tr" / "x"
    argv = ["train", "encoder", "--out", str(run), "--config", str(files["tiny.json"]), *TRAIN_SMALL]
    expected = "--mechanisms: 'foo' is not a mechanism family of scm-gen; choose from linear rff"
    _bad([*argv, "--workers", "1", "--mechanisms", "linear", "foo"], expected, capsys, tmp_path)
    assert not (tmp_path / "tr").exists()


@pytest.mark.parametrize(
    ("stage", "option", "value", "owner"),
    [
        ("encoder", "--rollout-weight", "-1", "decoder"),
        ("encoder", "--rollout-weight", "0", "decoder"),  # the default value, given: refused all the same
        ("encoder", "--rollout-rows", "8", "decoder"),
        ("graph", "--refit-weight", "1", "decoder"),
        ("encoder", "--acyclicity-weight", "2", "graph"),
    ],
)
def test_options_of_another_stage_are_refused(files, tmp_path, capsys, stage, option, value, owner) -> None:
    argv = ["train", stage, "--out", str(tmp_path / "run"), *TRAIN_SMALL, option, value]
    _bad(argv, f"{option} applies to the {owner} stage only; drop it", capsys, tmp_path)


def test_a_failed_run_removes_the_empty_folders_it_made(files, tmp_path, capsys, monkeypatch) -> None:
    import condfip.training.loop

    def fail_after_making_the_folder(options):
        Path(options.out).mkdir(parents=True)
        raise ValueError("refused after the folder was made")

    monkeypatch.setattr(condfip.training.loop, "train", fail_after_making_the_folder)
    argv = ["train", "encoder", "--out", str(tmp_path / "new" / "run"), *TRAIN_SMALL]
    _bad(argv, "refused after the folder was made", capsys, tmp_path)  # tmp_path as it was: no new/ left


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        ([], "condfip: error: the following arguments are required: command (see condfip --help)"),
        (["foo"], "condfip: error: argument command: invalid choice: 'foo'"),
        (["infer", "--bogus"], "condfip infer: error: the following arguments are required: --data"),
        (
            ["infer", "--data", "d.csv", "--graph", "g.csv", "--out", "s.csv", "--bogus", "1"],
            "condfip infer: error: unrecognized arguments: --bogus 1 (see condfip infer --help)",
        ),
        (["graph", "--data", "d.csv", "--out", "g.csv", "--bogus"], "condfip graph: error: unrecognized"),
        (
            ["demo", "--num-context", "1"],
            "condfip demo: error: argument --num-context: expected an integer >= 2",
        ),
    ],
)
def test_usage_errors_of_the_top_level_are_one_line(tmp_path, capsys, argv, expected) -> None:
    with pytest.raises(SystemExit) as stopped:
        main(argv)
    assert stopped.value.code == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and error.startswith(expected), error
    assert list(tmp_path.iterdir()) == []


def test_a_closed_output_ends_the_command_quietly(files) -> None:
    """``condfip effect ... | head -0``: no "Broken pipe" message, exit code 141 as for SIGPIPE."""
    folder = files["folder"]
    argv = ["effect", "--data", str(folder / "data.csv"), "--graph", str(folder / "edges.csv"), "--model",
            str(files["model"]), "--device", "cpu", "--target", "d", "--alternative", "a=1", "--num-samples", "50"]  # fmt: skip
    process = subprocess.Popen(
        [sys.executable, "-m", "condfip.cli", *argv],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=ENV,
    )
    process.stdout.close()  # the reader is gone before the command prints
    stderr = process.stderr.read()
    assert process.wait(timeout=300) == 141, stderr
    assert "Broken pipe" not in stderr and "Traceback" not in stderr, stderr
