"""Backend choice: auto falls back quietly, an explicit Triton request that cannot run raises with a fix."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest
import torch

from dag_attention import _dispatch, dag_attention
from dag_attention._dispatch import BACKEND_ENV_VAR, resolve_backend


@pytest.fixture
def no_interpreter(monkeypatch):
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    monkeypatch.delenv(BACKEND_ENV_VAR, raising=False)


def _inputs(dtype=torch.float32):
    q, k, v = (torch.randn(1, 2, 1, 3, 4, dtype=dtype) for _ in range(3))
    return q, k, v, torch.ones(1, 3, 3, dtype=torch.bool).tril(-1)


def test_auto_picks_the_reference_on_cpu(no_interpreter):
    assert resolve_backend("auto", torch.zeros(1, 1, 1, 1, 1)) == "reference"
    assert resolve_backend("AUTO", torch.zeros(1, 1, 1, 1, 1)) == "reference"
    q, k, v, parents = _inputs()
    torch.testing.assert_close(
        dag_attention(q, k, v, parents), dag_attention(q, k, v, parents, backend="reference")
    )


def test_auto_stays_on_the_reference_on_cpu_even_with_the_interpreter(monkeypatch):
    monkeypatch.delenv(BACKEND_ENV_VAR, raising=False)
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    assert resolve_backend("auto", torch.zeros(1, 1, 1, 1, 1)) == "reference"


def test_explicit_triton_on_cpu_raises_with_the_fix(no_interpreter):
    with pytest.raises(
        ValueError,
        match=r"backend='triton' cannot run: .* need CUDA tensors, got tensors on cpu; move them with .cuda\(\), use backend='reference'.*TRITON_INTERPRET=1",
    ):
        dag_attention(*_inputs(), backend="triton")


def test_explicit_triton_with_float64_raises(monkeypatch):
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    with pytest.raises(
        ValueError, match=r"support float16, bfloat16 and float32, got torch.float64; use backend='reference'"
    ):
        dag_attention(*_inputs(torch.float64), backend="triton")


def test_explicit_triton_with_too_wide_heads_raises(monkeypatch):
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    q = torch.zeros(1, 1, 1, 2, 300)
    with pytest.raises(ValueError, match=r"head dim e of at most 256, got e = 300"):
        dag_attention(q, q, q, torch.zeros(1, 2, 2, dtype=torch.bool), backend="triton")


def test_environment_variable_overrides_auto_only(monkeypatch):
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    monkeypatch.setenv(BACKEND_ENV_VAR, "triton")
    with pytest.raises(ValueError, match="need CUDA tensors"):
        dag_attention(*_inputs())  # auto -> triton by the environment -> cannot run on CPU
    dag_attention(*_inputs(), backend="reference")  # an explicit argument wins
    monkeypatch.setenv(BACKEND_ENV_VAR, "Reference")
    assert resolve_backend("auto", torch.zeros(1, 1, 1, 1, 1)) == "reference"


def test_bad_environment_variable(monkeypatch):
    monkeypatch.setenv(BACKEND_ENV_VAR, "fast")
    with pytest.raises(
        ValueError, match=rf"environment variable {BACKEND_ENV_VAR} must be one of .* got 'fast'"
    ):
        dag_attention(*_inputs())


def test_missing_triton_raises_import_error_with_install_hint(monkeypatch):
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    monkeypatch.delenv(BACKEND_ENV_VAR, raising=False)
    monkeypatch.setattr(_dispatch, "_triton_op", None)
    monkeypatch.setattr(_dispatch, "_triton_import_error", ImportError("No module named 'triton'"))
    with pytest.raises(
        ImportError,
        match=r"Triton cannot be imported \(No module named 'triton'\); install it with pip install 'dag-attention\[triton\]'",
    ):
        dag_attention(*_inputs(), backend="triton")


def test_package_imports_and_runs_without_triton():
    # A fresh interpreter where `import triton` fails, as when the optional extra is not installed.
    script = textwrap.dedent(
        """
        import sys
        sys.modules["triton"] = None  # makes `import triton` raise ImportError
        import torch
        import dag_attention
        from dag_attention import DAGAttention, dag_attention as op
        q = torch.randn(1, 2, 1, 3, 4)
        parents = torch.ones(1, 3, 3, dtype=torch.bool).tril(-1)
        out = op(q, q, q, parents)  # auto: the reference
        assert out.shape == q.shape
        assert DAGAttention(8, 2)(torch.randn(1, 2, 3, 8), parents).shape == (1, 2, 3, 8)
        try:
            op(q, q, q, parents, backend="triton")
        except ImportError as error:
            print("IMPORT-ERROR:", error)
        assert "triton" not in sys.modules or sys.modules["triton"] is None
        """
    )
    env = {**os.environ, "TRITON_INTERPRET": "1"}
    env.pop(BACKEND_ENV_VAR, None)
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=300
    )
    assert result.returncode == 0, result.stderr
    assert "IMPORT-ERROR:" in result.stdout and "pip install 'dag-attention[triton]'" in result.stdout
