"""The `scm-gen` entry point under bad requests, broken files, file-system faults and signals (subprocesses)."""

import errno
import json
import os
import pty
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

TINY = ["--nodes", "3", "--datasets", "2", "--samples", "6", "--interventions", "2", "--quiet"]
# Long enough to be interrupted (a minute or more if left alone); about 0.3 GB by the disk estimate.
LONG = "--nodes 100 --datasets 2000 --samples 60 --interventions 10 --shard-size 5".split()


def _scm_gen(*args, env=None, timeout=120):
    return subprocess.run(
        [sys.executable, "-m", "scm_gen.cli", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )


def _python(code, *args, timeout=120):
    """`code` run in a fresh interpreter with `sys.argv[1:] = args` (for faults injected before `main`)."""
    return subprocess.run(
        [sys.executable, "-c", code, *map(str, args)], capture_output=True, text=True, timeout=timeout
    )


def _assert_one_line_error(result, *fragments):
    assert result.returncode == 2, result.stderr
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("scm-gen: error: "), result.stderr
    assert "Traceback" not in result.stderr
    for fragment in fragments:
        assert fragment in result.stderr, result.stderr


def _leftovers(folder: Path) -> list[str]:
    return sorted(entry.name for entry in folder.iterdir())


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (["--samples", "100000000000"], ["TiB of memory", "100000000000"]),
        (["--nodes", "10000000"], ["nodes=10000000", "TiB"]),
        (["--datasets", "1000000000000"], ["datasets=1000000000000", "PiB"]),
        (["--seed", str(2**100)], ["seed=", "9223372036854775807"]),
        (["--datasets", "100000", "--samples", "40000", "--nodes", "5000"], ["needs about"]),
    ],
)
def test_absurd_requests_are_refused_before_any_work(args, fragments, tmp_path):
    result = _scm_gen("generate", *args, "--out", tmp_path / "out", timeout=60)
    _assert_one_line_error(result, *fragments)
    assert _leftovers(tmp_path) == []


def test_a_huge_seed_below_the_limit_works(tmp_path):
    assert _scm_gen("generate", *TINY, "--seed", 2**63 - 1, "--out", tmp_path / "out").returncode == 0
    summary = json.loads((tmp_path / "out" / "scm_gen.json").read_text())
    assert summary["generator"]["seed"] == 2**63 - 1


@pytest.fixture(scope="module")
def export(tmp_path_factory):
    folder = tmp_path_factory.mktemp("export")
    assert _scm_gen("generate", *TINY, "--out", folder / "out").returncode == 0
    return folder / "out"


def test_push_without_a_network_is_one_line(export):
    result = _scm_gen("push", export, "--repo", "someone/data", env={"HF_HUB_OFFLINE": "1"})
    _assert_one_line_error(result, "could not push", "someone/data")


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        (b"{not json", "is not valid JSON"),
        (b"\xff\xfe", "is not valid JSON"),
        (b"[1, 2]", "not an object"),
        (b'{"title": "x", "split": "test", "scm_gen_version": "0", "configs": {}}', "no configs"),
        (b'{"title": "x", "split": "test", "scm_gen_version": "0", "configs": {"a": {}}}', "config 'a'"),
    ],
)
def test_info_on_a_malformed_summary_names_the_file(export, tmp_path, content, fragment):
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "scm_gen.json").write_bytes(content)
    _assert_one_line_error(_scm_gen("info", broken), fragment, str(broken / "scm_gen.json"))


def test_info_on_a_corrupt_shard_names_the_file(export, tmp_path):
    copy = tmp_path / "copy"
    subprocess.run(["cp", "-r", str(export), str(copy)], check=True)
    (shard,) = (copy / "data").rglob("*.parquet")
    shard.write_bytes(b"not parquet")
    _assert_one_line_error(_scm_gen("info", copy), str(shard))


def test_output_under_a_file_is_one_line_and_leaves_nothing(tmp_path):
    (tmp_path / "file").write_text("x")
    result = _scm_gen("generate", *TINY, "--out", tmp_path / "file" / "out")
    _assert_one_line_error(result, f"{str(tmp_path / 'file')!r} is not a directory")
    assert "File exists" not in result.stderr
    assert _leftovers(tmp_path) == ["file"]
    _assert_one_line_error(_scm_gen("generate", *TINY, "--out", ""), "--out is empty")


def test_info_into_a_closed_pipe_is_quiet(export):
    """`scm-gen info DIR | head -0`: no "Broken pipe" message, exit status 141 as for SIGPIPE."""
    process = subprocess.Popen(
        [sys.executable, "-m", "scm_gen.cli", "info", str(export)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    process.stdout.close()  # the reader is gone before the command prints
    stderr = process.stderr.read()
    assert process.wait(timeout=120) == 141, stderr
    assert stderr == ""


FAULT = """
import errno, os, sys
import pyarrow.parquet as pq
from scm_gen.cli import main

def fail(*args, **kwargs):
    raise OSError(errno.{code}, os.strerror(errno.{code}), sys.argv[-1])

{target} = fail
sys.exit(main(sys.argv[1:]))
"""


@pytest.mark.parametrize(
    ("code", "target"),
    [("ENOSPC", "pq.ParquetWriter.write_table"), ("EACCES", "os.mkdir"), ("EROFS", "os.rename")],
)
def test_file_system_faults_are_one_line_and_leave_nothing(tmp_path, code, target):
    out = tmp_path / "out"
    result = _python(FAULT.format(code=code, target=target), "generate", *TINY, "--out", out)
    _assert_one_line_error(result, os.strerror(getattr(errno, code)))
    assert _leftovers(tmp_path) == []


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root writes into read-only folders")
def test_read_only_folder_is_one_line(tmp_path):
    folder = tmp_path / "locked"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        result = _scm_gen("generate", *TINY, "--out", folder / "out")
    finally:
        folder.chmod(0o755)
    _assert_one_line_error(result, "Permission denied")
    assert _leftovers(folder) == []


# --------------------------------------------------------------------------------------------------- signals


def _children(pid: int) -> list[int]:
    """Live processes whose parent is `pid` (from /proc)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid and fields[0] != "Z":
            found.append(int(stat.parent.name))
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"  # a zombie has ended; only its exit status is left


def _wait_until(condition, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


def _start_long_run(folder: Path) -> tuple[subprocess.Popen, list[int]]:
    """A two-worker generation, returned once its staging directory and its workers exist."""
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "scm_gen.cli",
            "generate",
            *LONG,
            "--num-proc",
            "2",
            "--out",
            str(folder / "out"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    started = _wait_until(lambda: any(folder.iterdir()) and len(_children(process.pid)) >= 2, 60)
    assert started, "the run did not start its workers"
    time.sleep(0.3)  # let the workers begin their shards
    return process, _children(process.pid)


linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")


@linux_only
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP])
def test_termination_ends_the_workers_and_removes_partial_output(tmp_path, signum):
    process, children = _start_long_run(tmp_path)
    assert _leftovers(tmp_path)[0].startswith(".out.partial-")
    process.send_signal(signum)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 128 + signum
    assert stderr.count("\n") == 1 and signal.Signals(signum).name in stderr, stderr
    assert _leftovers(tmp_path) == []
    assert _wait_until(lambda: not any(_alive(pid) for pid in children), 15), [
        pid for pid in children if _alive(pid)
    ]


@linux_only
def test_after_sigkill_workers_end_and_the_next_run_removes_the_leftovers(tmp_path):
    process, children = _start_long_run(tmp_path)
    process.kill()
    process.communicate(timeout=60)
    assert _wait_until(lambda: not any(_alive(pid) for pid in children), 15)
    (partial,) = _leftovers(tmp_path)
    assert partial.startswith(".out.partial-")
    assert _scm_gen("generate", *TINY, "--out", tmp_path / "next").returncode == 0
    assert _leftovers(tmp_path) == ["next"]


# --------------------------------------------------------------------------------------------------- progress

GRID = [
    "grid",
    "--nodes",
    "3",
    "--scms-per-graph",
    "1",
    "--context",
    "4",
    "--query",
    "2",
    "--interventions",
    "1",
]


@pytest.mark.skipif(os.name != "posix", reason="needs a pseudo-terminal")
def test_grid_shows_a_progress_bar_on_a_terminal_only(tmp_path):
    controller, terminal = pty.openpty()  # a terminal that reports no size, like many CI and tmux panes
    process = subprocess.Popen(
        [sys.executable, "-m", "scm_gen.cli", *GRID, "--out", str(tmp_path / "tty")],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=terminal,
    )
    os.close(terminal)
    shown = b""
    while True:
        ready, _, _ = select.select([controller], [], [], 60)
        if not ready:
            break
        try:
            chunk = os.read(controller, 4096)
        except OSError:  # the terminal closed with the process
            break
        if not chunk:
            break
        shown += chunk
    os.close(controller)
    assert process.wait(timeout=60) == 0
    text = shown.decode(errors="replace")
    assert "generating" in text and "100%" in text and "10/10" in text, text

    piped = _scm_gen(*GRID, "--out", tmp_path / "pipe")
    assert piped.returncode == 0 and piped.stderr == ""
