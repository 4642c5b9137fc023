"""``scripts/gpu_check.sh``: its CPU dry run runs every part, writes the report and loadable sharded weights;
bad arguments are refused before anything runs."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from condfip.model import CondFiPModel

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "scripts" / "gpu_check.sh"


def run_script(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    environment = {**os.environ, "PYTHON": sys.executable}
    return subprocess.run(
        ["bash", str(SCRIPT), *args],
        cwd=REPO,
        env=environment,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--budget", "ten"], "--budget must be a whole number of seconds"),
        (["--budget", "30"], "at least 60"),
        (["--frobnicate"], "unknown argument --frobnicate"),
        (["--dry-run", "--budget"], "--budget needs a value"),
    ],
)
def test_bad_arguments_exit_2_with_one_message(tmp_path: Path, args: list[str], message: str) -> None:
    finished = run_script("--out", str(tmp_path / "out"), *args)
    assert finished.returncode == 2
    assert message in finished.stderr
    assert not (tmp_path / "out").exists()  # refused before anything was written


@pytest.mark.slow
def test_dry_run_runs_every_part_and_returns_loadable_base_weights(tmp_path: Path) -> None:
    out = tmp_path / "out"
    finished = run_script("--dry-run", "--budget", "1500", "--out", str(out), timeout=1800)
    assert finished.returncode == 0, finished.stdout[-3000:] + finished.stderr[-3000:]

    report = (out / "report.md").read_text()
    headings = (
        "## 1. dag-attention tests",
        "## 2. dag-attention benchmark",
        "## 3. condfip CUDA tests",
        "## 4. inference benchmark",
        "## 5. train base",
    )
    positions = [report.index(heading) for heading in headings]
    assert positions == sorted(positions)
    assert report.count("status: passed") == len(headings)
    assert "parts not passed: 0" in report

    for stage in ("encoder", "model"):  # both run folders, with their logs and resumable state
        assert (out / "train" / stage / "validation.jsonl").is_file()
        assert (out / "train" / stage / "state").is_dir()
    assert (out / "inference" / "inference.json").is_file()
    assert (out / "dag-bench" / "bench.md").is_file()

    shipped = sorted(path.name for path in (out / "base").iterdir())
    assert "config.json" in shipped and "model.safetensors.index.json" in shipped
    assert any(name.startswith("model-00001-of-") for name in shipped)
    model = CondFiPModel.from_pretrained(out / "base")  # bfloat16 shards, loaded as float32
    assert next(model.parameters()).dtype == torch.float32 and model.config.dim == 8
