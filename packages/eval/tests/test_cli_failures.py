"""The command line through its real entry point (a subprocess): bad input and OS errors give one line on
stderr and exit code 2, and leave no file behind; options do what their help says."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from condfip_eval.sachs import shipped_data_file

QUICK_LINEAR = ["paper", "--nodes", "5", "--quick", "--methods", "linear", "--no-progress"]


def _run(*arguments: str, env: dict | None = None, preexec_fn=None) -> subprocess.CompletedProcess:
    environment = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "condfip_eval.cli", *arguments],
        capture_output=True,
        text=True,
        timeout=600,
        env=environment,
        preexec_fn=preexec_fn,
    )


def _one_error_line(done: subprocess.CompletedProcess, *fragments: str) -> str:
    assert done.returncode == 2, done.stderr
    assert done.stderr.count("\n") == 1 and done.stderr.startswith("condfip-eval: error: "), done.stderr
    assert "Traceback" not in done.stderr
    for fragment in fragments:
        assert fragment in done.stderr, done.stderr
    return done.stderr


def _files(folder: Path) -> list[str]:
    return sorted(str(path.relative_to(folder)) for path in folder.rglob("*"))


def _blocked_modules(tmp_path: Path, *names: str) -> dict:
    """An environment in which ``import <name>`` fails, as where the package is not installed."""
    blocker = tmp_path / "blocked"
    for name in names:
        (blocker / name).mkdir(parents=True)
        (blocker / name / "__init__.py").write_text(f"raise ImportError('{name} is blocked for this test')\n")
    return {"PYTHONPATH": os.pathsep.join([str(blocker), os.environ.get("PYTHONPATH", "")])}


def test_paper_mechanisms_and_presets_choose_the_cells(tmp_path):
    out = tmp_path / "run"
    done = _run(*QUICK_LINEAR, "--mechanisms", "magic", "--out", str(out))
    _one_error_line(done, "unknown mechanism 'magic'")
    assert not out.exists()
    done = _run(*QUICK_LINEAR, "--presets", "mid", "--out", str(out))
    _one_error_line(done, "--presets", "mid")
    assert not out.exists()
    done = _run(*QUICK_LINEAR, "--mechanisms", "multiplicative", "--presets", "out", "--out", str(out))
    assert done.returncode == 0, done.stderr
    folder = out / "paper" / "graph-true" / "context-400"
    assert _files(folder / "linear") == ["out_multiplicative_d5.json"]
    assert "| method | d | multiplicative-OUT |" in (folder / "tables.md").read_text()


def test_sachs_replicates_is_honoured(tmp_path):
    out = tmp_path / "run"
    done = _run("sachs", "--replicates", "2", "--methods", "linear", "--no-progress", "--out", str(out))
    assert done.returncode == 0, done.stderr
    folder = out / "sachs" / "raw-context-400"
    for name in ("floor", "linear"):
        records = json.loads((folder / f"{name}.json").read_text())["replicates"]
        assert [record["replicate"] for record in records] == [0, 1]
    assert json.loads((out / "manifest.json").read_text())["runs"]["sachs"]["replicates"] == 2


def test_output_path_that_is_a_file(tmp_path):
    target = tmp_path / "results.txt"
    target.write_text("mine\n")
    _one_error_line(_run(*QUICK_LINEAR, "--out", str(target)), f"{target} is a file, not a folder")
    assert target.read_text() == "mine\n" and _files(tmp_path) == ["results.txt"]
    _one_error_line(_run(*QUICK_LINEAR, "--out", str(target / "run")), f"{target} is a file")
    assert _files(tmp_path) == ["results.txt"]


def test_read_only_output_folder(tmp_path):
    parent = tmp_path / "locked"
    parent.mkdir()
    parent.chmod(stat.S_IRUSR | stat.S_IXUSR)
    try:
        if os.access(parent, os.W_OK):
            pytest.skip("this user may write into read-only folders (root)")
        _one_error_line(_run(*QUICK_LINEAR, "--out", str(parent / "run")), "Permission denied", str(parent))
        assert _files(parent) == []
    finally:
        parent.chmod(stat.S_IRWXU)


@pytest.mark.skipif(sys.platform != "linux", reason="RLIMIT_FSIZE with SIGXFSZ ignored, as on Linux")
@pytest.mark.parametrize(("limit", "failing"), [(64, "manifest.json"), (8192, "in_linear_d5.json")])
def test_full_disk_leaves_nothing(tmp_path, limit, failing):
    """A file size limit makes a write fail as a full disk does (EFBIG instead of ENOSPC): the manifest's
    (about 600 bytes) or, once it is written, the first result's (about 20 kB)."""
    import resource

    def limit_file_size():
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    out = tmp_path / "new" / "run"
    done = _run(*QUICK_LINEAR, "--out", str(out), preexec_fn=limit_file_size)
    error = _one_error_line(done, "File too large: ")
    assert error.rstrip().endswith(failing)
    assert _files(tmp_path) == []  # not even the manifest or the folders it created


def test_bad_weights_leave_the_folder_as_it_was(tmp_path):
    weights = tmp_path / "weights"
    weights.mkdir()
    (weights / "config.json").write_text('{"model_type": "condfip", "dim": 16}')
    (weights / "model.safetensors").write_bytes(b"not a safetensors file")
    out = tmp_path / "run"
    bad = ["paper", "--nodes", "5", "--quick", "--methods", "linear,condfip", "--no-progress"]
    _one_error_line(_run(*bad, "--weights", str(weights), "--out", str(out)), f"'{weights}'")
    assert not out.exists()
    done = _run(*QUICK_LINEAR, "--out", str(out))  # the corrected rerun (default weights) is accepted
    assert done.returncode == 0, done.stderr
    assert "manifest.json" in _files(out)


def test_a_run_refused_at_its_first_dataset_leaves_nothing(tmp_path):
    out = tmp_path / "run"
    too_many_rows = [
        "paper",
        "--nodes",
        "5",
        "--context",
        "100000000000",
        "--methods",
        "linear",
        "--no-progress",
    ]
    _one_error_line(_run(*too_many_rows, "--out", str(out)), "rows")
    assert not out.exists()


def test_garbage_ecoli70_model_is_named_in_one_short_line(tmp_path):
    garbage = tmp_path / "garbage.csv"
    garbage.write_bytes(bytes(range(256)) * 8)
    out = tmp_path / "run"
    error = _one_error_line(
        _run("ecoli70", "--model", str(garbage), "--methods", "linear", "--out", str(out)),
        f"{garbage} is not a linear-Gaussian network in pgmpy's JSON format: it is not UTF-8 text",
    )
    assert len(error) < 200 + len(str(garbage)) and "\\x" not in error
    assert not out.exists()


def test_garbage_sachs_file_is_named(tmp_path):
    garbage = tmp_path / "garbage.csv"
    garbage.write_bytes(bytes(range(256)) * 8)
    out = tmp_path / "run"
    _one_error_line(
        _run("sachs", "--data", str(garbage), "--methods", "linear", "--out", str(out)),
        f"Sachs data file {garbage} is not a CSV",
    )
    assert not out.exists()


@pytest.mark.parametrize("umask", [0o022, 0o077])
def test_files_and_folders_follow_the_umask(tmp_path, umask):
    out = tmp_path / "run"
    done = _run(*QUICK_LINEAR, "--out", str(out), preexec_fn=lambda: os.umask(umask))
    assert done.returncode == 0, done.stderr
    paths = [out, *out.rglob("*")]
    assert len(paths) > 5
    for path in paths:
        expected = (0o777 if path.is_dir() else 0o666) & ~umask
        assert stat.S_IMODE(path.stat().st_mode) == expected, path


def test_report_without_matplotlib_says_how_to_get_figures(tmp_path):
    out = tmp_path / "run"
    assert _run(*QUICK_LINEAR, "--out", str(out)).returncode == 0
    done = _run("report", str(out), env=_blocked_modules(tmp_path, "matplotlib"))
    assert done.returncode == 0, done.stderr
    assert done.stderr.startswith(
        "condfip-eval: figures skipped: matplotlib is not installed; pip install matplotlib"
    )
    assert "'./packages/eval[plot]'" in done.stderr
    assert "Figures skipped: matplotlib is not installed" in (out / "report.md").read_text()
    assert not (out / "figures").exists()


def test_quick_paper_runs_without_dowhy_and_says_what_it_skipped(tmp_path):
    """The README's quick command on an install without DoWhy (smaller here: d = 5, 60 rows, one FiP step)."""
    out = tmp_path / "run"
    arguments = ["paper", "--quick", "--nodes", "5", "--fip-steps", "1", "--context", "60", "--no-progress"]
    arguments += ["--out", str(out)]
    done = _run(*arguments, env=_blocked_modules(tmp_path, "dowhy"))
    assert done.returncode == 0, done.stderr
    assert "condfip-eval: skipping method dowhy: DoWhy is not installed (pip install dowhy" in done.stderr
    folder = out / "paper" / "graph-true" / "context-60"
    ran = sorted(path.name for path in folder.iterdir() if path.is_dir())
    assert ran == ["condfip", "condfip-zero-shot", "fip", "linear", "nonlinear"]
    tables = (folder / "tables.md").read_text()
    assert "| Cond-FiP zero-shot | 5 |" in tables and "| Kernel ANM | 5 |" in tables


def test_help_texts():
    sachs = _run("sachs", "--help", env={"COLUMNS": "250"})
    assert sachs.returncode == 0 and "--quick" not in sachs.stdout and "--replicates" in sachs.stdout
    paper = _run("paper", "--help", env={"COLUMNS": "250"})
    flat = " ".join(paper.stdout.split())
    assert "--quick" in flat and "200 with --quick" in flat
    assert (
        "condfip,condfip-zero-shot,fip,dowhy,linear,nonlinear (default: all of them that are installed"
        in flat
    )


def test_shipped_sachs_rows_are_the_default(tmp_path):
    out = tmp_path / "run"
    done = _run("sachs", "--replicates", "1", "--methods", "linear", "--no-progress", "--out", str(out))
    assert done.returncode == 0, done.stderr
    with_file = tmp_path / "with-file"
    arguments = ["sachs", "--replicates", "1", "--methods", "linear", "--no-progress"]
    done = _run(*arguments, "--data", str(shipped_data_file()), "--out", str(with_file))
    assert done.returncode == 0, done.stderr
    relative = Path("sachs") / "raw-context-400" / "linear.json"
    default, given = (
        json.loads((folder / relative).read_text())["replicates"] for folder in (out, with_file)
    )
    assert default[0]["mmd2"] == given[0]["mmd2"] and default[0]["energy"] == given[0]["energy"]


def _signalled_while_writing(out: Path, signal_name: str) -> subprocess.CompletedProcess:
    """A quick run that sends itself ``signal_name`` while its first result file is being written (just before
    the file's rename). Ctrl-C is what a terminal sends a foreground process, whose SIGINT Python turns into
    KeyboardInterrupt; a process started in the background by a shell without job control (a CI script's
    ``cmd &``) inherits SIGINT ignored, so the child restores Python's own handler first."""
    script = (
        "import os, signal, sys\n"
        "signal.signal(signal.SIGINT, signal.default_int_handler)\n"
        "real_replace = os.replace\n"
        "def replace(source, target):\n"
        "    if str(target).endswith('.json') and 'manifest' not in str(target):\n"
        f"        os.kill(os.getpid(), signal.{signal_name})\n"
        "    return real_replace(source, target)\n"
        "os.replace = replace\n"
        "from condfip_eval.cli import main\n"
        "sys.exit(main(sys.argv[1:]))\n"
    )
    return subprocess.run(
        [sys.executable, "-c", script, *QUICK_LINEAR, "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=600,
    )


@pytest.mark.skipif(
    not hasattr(__import__("signal"), "SIGTERM") or sys.platform == "win32", reason="POSIX signals"
)
def test_sigterm_while_writing_leaves_no_partial_file(tmp_path):
    out = tmp_path / "run"
    done = _signalled_while_writing(out, "SIGTERM")
    assert done.returncode == 128 + 15, done.stderr
    assert "Traceback" not in done.stderr
    assert not out.exists()  # the first result and the manifest written with it are undone, folders too


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_ctrl_c_prints_one_line_and_exits_130(tmp_path):
    """Ctrl-C (SIGINT): one "interrupted" line, exit code 130 as the condfip and scm-gen commands, and the file
    being written is removed."""
    out = tmp_path / "run"
    done = _signalled_while_writing(out, "SIGINT")
    assert done.returncode == 130, done.stderr
    assert done.stderr == "condfip-eval: interrupted\n"
    assert not out.exists()


def test_report_names_its_folder_argument_draws_no_bars_in_a_pipe_and_is_quiet_into_a_closed_one(tmp_path):
    afile = tmp_path / "afile"
    afile.write_text("mine\n")
    error = _one_error_line(_run("report", str(afile)), f"DIRECTORY {str(afile)!r} is a file, not a folder")
    assert "--out" not in error
    _one_error_line(_run("publish", str(afile), str(tmp_path / "dest")), "DIRECTORY")
    out = tmp_path / "run"
    arguments = [argument for argument in QUICK_LINEAR if argument != "--no-progress"]
    done = _run(*arguments, "--out", str(out))  # stderr is a pipe here, not a terminal: no progress bar
    assert done.returncode == 0, done.stderr
    assert "fit/s" not in done.stderr and "\r" not in done.stderr and "paper:" not in done.stderr, done.stderr
    process = subprocess.Popen(
        [sys.executable, "-m", "condfip_eval.cli", "report", str(out), "--no-figures"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"},
    )
    process.stdout.close()  # `condfip-eval report DIR | head -0`: the reader is gone before the command prints
    stderr = process.stderr.read()
    assert process.wait(timeout=600) == 141, stderr
    assert stderr == ""
    assert (out / "report.md").is_file()


def test_help_texts_give_the_defaults():
    paper = " ".join(_run("paper", "--help", env={"COLUMNS": "250"}).stdout.split())
    assert "context rows per dataset (the paper's: 400, 100, 50; default 400)" in paper
    assert "run seed (default 0)" in paper and "(default small)" in paper
