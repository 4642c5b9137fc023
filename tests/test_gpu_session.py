"""``scripts/gpu_session.sh`` in its CPU dry run: every part runs, and what would come back from the GPU machine
fits the device tool's limits (at most 8 files, 2 folders deep) and loads."""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
import torch

from condfip.model import CondFiPModel

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_gpu_session_dry_run_returns_the_report_logs_and_sharded_weights(tmp_path: Path) -> None:
    out, work = tmp_path / "out", tmp_path / "work"
    environment = {
        **os.environ,
        "OUT": str(out),
        "WORK": str(work),
        "DRY_RUN": "1",
        "PYTHON": sys.executable,
        "DRY_DAG_TESTS_S": "240",  # the interpreter suite on a busy CI machine
    }
    finished = subprocess.run(
        ["bash", "scripts/gpu_session.sh"],
        cwd=REPO,
        env=environment,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert finished.returncode == 0, finished.stdout[-3000:] + finished.stderr[-3000:]

    returned = sorted(str(path.relative_to(out)) for path in out.rglob("*") if path.is_file())
    assert returned == [
        "base/config.json",
        "base/model-00001-of-00002.safetensors",
        "base/model-00002-of-00002.safetensors",
        "base/model.safetensors.index.json",
        "logs.tar.gz",
        "report.md",
    ]
    report = (out / "report.md").read_text()
    for heading in (
        "## 1. dag-attention tests",
        "## 2. dag-attention benchmark",
        "## 3. train base",
        "## 4. inference",
        "## 5. condfip CUDA tests",
    ):
        assert heading in report
    assert report.count("status: passed") >= 2  # training and the inference benchmark
    assert "total:" in report

    model = CondFiPModel.from_pretrained(out / "base")  # bfloat16 shards, loaded as float32
    assert next(model.parameters()).dtype == torch.float32 and model.config.dim == 8
    with tarfile.open(out / "logs.tar.gz") as archive:
        names = archive.getnames()
    assert "./train/model/validation.jsonl" in names and "./inference.json" in names
    assert not any("/state/" in name for name in names)  # optimizer states stay behind
