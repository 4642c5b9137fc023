"""Methods compared by the benchmark, behind one interface (see :mod:`condfip_eval.methods.base`).

``make_method(name, **options)`` builds one by name: "condfip" (the Cond-FiP API's default path),
"condfip-zero-shot" (the paper's zero-shot Cond-FiP), "fip", "dowhy", "linear", "nonlinear".
Heavy or optional dependencies (torch models, DoWhy, pretrained weights) load only when that method is built;
``missing_dependency(name)`` says, without building it, why a method cannot run in this environment.
"""

from __future__ import annotations

from typing import Any

from condfip_eval.methods.anm import KernelANM, LinearANM
from condfip_eval.methods.base import FittedSCM, Interventions, Method, generate_in_order, topological_order

__all__ = [
    "METHOD_NAMES",
    "FittedSCM",
    "Interventions",
    "KernelANM",
    "LinearANM",
    "Method",
    "generate_in_order",
    "make_method",
    "missing_dependency",
    "topological_order",
    "unknown_method_message",
]

METHOD_NAMES = ("condfip", "condfip-zero-shot", "fip", "dowhy", "linear", "nonlinear")
RETIRED_NAMES = {
    "condfip-refit": "'condfip' runs the Cond-FiP API's default path and 'condfip-zero-shot' the paper's method",
}


def missing_dependency(name: str) -> str | None:
    """Why method ``name`` cannot run here (a missing optional package, with the command that installs it), or
    None when it can."""
    if name == "dowhy":
        from condfip_eval.methods.dowhy_gcm import dowhy_available

        if not dowhy_available():
            return (
                "DoWhy is not installed (pip install dowhy, best in its own environment: it pins older scipy)"
            )
    return None


def make_method(name: str, **options: Any) -> Method:
    """The method called ``name`` (one of METHOD_NAMES), built with ``options`` for its constructor."""
    if name == "linear":
        return LinearANM(**options)
    if name == "nonlinear":
        return KernelANM(**options)
    if name == "fip":
        from condfip_eval.methods.fip import PerDatasetFiP

        return PerDatasetFiP(**options)
    if name == "dowhy":
        from condfip_eval.methods.dowhy_gcm import DoWhyGCM

        return DoWhyGCM(**options)
    if name == "condfip":
        from condfip_eval.methods.condfip_method import CondFiPMethod

        return CondFiPMethod(**options)
    if name == "condfip-zero-shot":
        from condfip_eval.methods.condfip_method import CondFiPZeroShotMethod

        return CondFiPZeroShotMethod(**options)
    raise ValueError(unknown_method_message(name))


def unknown_method_message(name: str) -> str:
    """The error for a name that is not in METHOD_NAMES (a retired name says what replaced it)."""
    if name in RETIRED_NAMES:
        return f"method {name!r} no longer exists: {RETIRED_NAMES[name]}"
    return f"unknown method {name!r}; choose from {', '.join(METHOD_NAMES)}"
