"""Inference installs without the ``train`` extra: without scm-gen (and the datasets library it brings),
``condfip`` imports, infers and writes samples; the commands that need scm-gen say how to get it. (pyarrow,
which datasets needs, is left out of the check: pandas imports it by itself wherever it is installed.)"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd

# runs `main(argv)` of the condfip command line in a fresh interpreter where scm_gen cannot be imported
WITHOUT_SCM_GEN = """
import sys

class Missing:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("scm_gen", "datasets"):
            raise ImportError(f"No module named {name!r} (blocked: the train extra is not installed)")
        return None

sys.meta_path.insert(0, Missing())
from condfip.cli import main

code = main(sys.argv[1:])
loaded = sorted(name for name in sys.modules if name.split(".")[0] in ("scm_gen", "datasets"))
print("loaded:", loaded)
sys.exit(code)
"""


def run_without_scm_gen(*argv: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", WITHOUT_SCM_GEN, *argv],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_inference_needs_neither_scm_gen_nor_datasets(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    a = rng.normal(size=200)
    pd.DataFrame({"a": a, "b": 2 * a + rng.normal(size=200)}).to_csv(tmp_path / "data.csv", index=False)
    pd.DataFrame({"source": ["a"], "target": ["b"]}).to_csv(tmp_path / "graph.csv", index=False)
    out = tmp_path / "samples.csv"
    argv = ["infer", "--data", str(tmp_path / "data.csv"), "--graph", str(tmp_path / "graph.csv")]
    finished = run_without_scm_gen(*argv, "--num-samples", "5", "--device", "cpu", "--out", str(out))
    assert finished.returncode == 0, finished.stderr
    assert "loaded: []" in finished.stdout
    assert pd.read_csv(out).shape == (5, 2)


def test_commands_that_need_scm_gen_say_how_to_get_it(tmp_path: Path) -> None:
    for argv in (
        ["demo", "--seed", "0"],
        ["train", "encoder", "--steps", "1", "--out", str(tmp_path / "run")],
    ):
        finished = run_without_scm_gen(*argv)
        assert finished.returncode == 2, finished.stderr
        error = finished.stderr.strip().splitlines()
        assert len(error) == 1 and "pip install 'condfip[train]'" in error[0], error
    assert not (tmp_path / "run").exists()
