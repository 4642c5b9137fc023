"""Methods compared by the benchmark, behind one interface (see :mod:`condfip_eval.methods.base`).

``make_method(name, **options)`` builds one by name: "condfip", "condfip-refit" (Cond-FiP with its readout
refitted on the context rows), "fip", "dowhy", "linear", "nonlinear".
Heavy or optional dependencies (torch models, DoWhy, pretrained weights) load only when that method is built.
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
    "topological_order",
]

METHOD_NAMES = ("condfip", "condfip-refit", "fip", "dowhy", "linear", "nonlinear")


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
    if name == "condfip-refit":
        from condfip_eval.methods.condfip_method import CondFiPRefitMethod

        return CondFiPRefitMethod(**options)
    raise ValueError(f"unknown method {name!r}; choose from {', '.join(METHOD_NAMES)}")
