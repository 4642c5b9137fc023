"""Backend choice: the fused Triton kernels where they can run, the PyTorch reference elsewhere.

``backend="auto"`` quietly falls back to the reference; an explicit ``backend="triton"`` that cannot run
raises and says what to do. Triton is imported lazily, on the first call that needs it, so that
``import dag_attention`` works without Triton installed.
"""

from __future__ import annotations

import importlib
import os
from types import ModuleType

import torch

BACKENDS = ("auto", "reference", "triton")
BACKEND_ENV_VAR = "DAG_ATTENTION_BACKEND"
TRITON_DTYPES = (torch.float16, torch.bfloat16, torch.float32)
MAX_TRITON_HEAD_DIM = 256

_TRUE_WORDS = ("1", "true", "yes", "on", "y")
_triton_op: ModuleType | None = None
_triton_import_error: ImportError | None = None


def interpreter_enabled() -> bool:
    """Whether ``TRITON_INTERPRET`` asks Triton to run kernels in its (CPU) interpreter."""
    return os.environ.get("TRITON_INTERPRET", "").strip().lower() in _TRUE_WORDS


def load_triton_op() -> ModuleType | None:
    """The module holding the Triton autograd function, or None when Triton cannot be imported."""
    global _triton_op, _triton_import_error
    if _triton_op is None and _triton_import_error is None:
        try:
            _triton_op = importlib.import_module("dag_attention._triton_op")
        except ImportError as error:  # Triton is an optional extra
            _triton_import_error = error
    return _triton_op


def _requested_backend(backend: str) -> str:
    if not isinstance(backend, str) or backend.lower() not in BACKENDS:
        raise ValueError(f"dag_attention: backend must be one of {BACKENDS}, got {backend!r}")
    backend = backend.lower()
    if backend != "auto":
        return backend
    from_env = os.environ.get(BACKEND_ENV_VAR, "").strip().lower()
    if not from_env:
        return "auto"
    if from_env not in BACKENDS:
        raise ValueError(
            f"dag_attention: environment variable {BACKEND_ENV_VAR} must be one of {BACKENDS} or unset, "
            f"got {os.environ[BACKEND_ENV_VAR]!r}"
        )
    return from_env


def _why_triton_cannot_run(q: torch.Tensor) -> Exception | None:
    """None when the Triton kernels can run on ``q``, else the error to raise (reason and fix)."""
    prefix = "dag_attention: backend='triton' cannot run: "
    if q.device.type != "cuda" and not (q.device.type == "cpu" and interpreter_enabled()):
        return ValueError(
            f"{prefix}the Triton kernels need CUDA tensors, got tensors on {q.device}; move them with .cuda(), "
            f"use backend='reference' (or 'auto'), or set TRITON_INTERPRET=1 before the first call to run "
            f"the kernels on CPU in Triton's interpreter (slow; for tests)"
        )
    if q.dtype not in TRITON_DTYPES:
        return ValueError(
            f"{prefix}the Triton kernels support float16, bfloat16 and float32, got {q.dtype}; "
            f"use backend='reference' (or 'auto') for {q.dtype}"
        )
    if q.shape[-1] > MAX_TRITON_HEAD_DIM:
        return ValueError(
            f"{prefix}the Triton kernels support a head dim e of at most {MAX_TRITON_HEAD_DIM}, got e = {q.shape[-1]}; "
            f"use more heads or backend='reference' (or 'auto')"
        )
    if load_triton_op() is None:
        return ImportError(
            f"{prefix}Triton cannot be imported ({_triton_import_error}); install it with "
            f"pip install 'dag-attention[triton]', or use backend='reference' (or 'auto')"
        )
    return None


def resolve_backend(backend: str, q: torch.Tensor, *, rectangular: bool = False) -> str:
    """Return ``"triton"`` or ``"reference"`` for a call with query tensor ``q``.

    ``backend`` is ``"auto"``, ``"reference"`` or ``"triton"``; with ``"auto"`` the environment variable
    ``DAG_ATTENTION_BACKEND`` (same values) overrides the automatic choice when it is set.
    """
    requested = _requested_backend(backend)
    if requested == "reference":
        return "reference"
    if rectangular:  # query and key nodes differ: the fused kernels take square masks only
        if backend.lower() == "triton":  # asked for in the call; DAG_ATTENTION_BACKEND alone falls back
            raise ValueError(
                "dag_attention: backend='triton' cannot run: the Triton kernels take square masks (as many key "
                "nodes as query nodes), got a rectangular one; use backend='reference' (or 'auto')"
            )
        return "reference"
    if requested == "auto":
        if q.device.type == "cuda" and _why_triton_cannot_run(q) is None:
            return "triton"
        return "reference"
    error = _why_triton_cannot_run(q)
    if error is not None:
        raise error
    return "triton"
