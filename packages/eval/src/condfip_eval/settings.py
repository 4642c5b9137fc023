"""Settings every run shares: which methods, how to build them, the seed; and what a run records of them."""

from __future__ import annotations

import inspect
import os
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from condfip.api.arguments import is_integer
from condfip_eval.methods import METHOD_NAMES, Method, make_method, unknown_method_message
from condfip_eval.provenance import package_versions, weights_sha256
from condfip_eval.results import ResultsDirectory

__all__ = ["CONDFIP_METHODS", "MethodSettings", "check_integer", "graph_model_name"]

CONDFIP_METHODS = ("condfip", "condfip-zero-shot")  # built on one shared CondFiP of ``condfip_weights``
DOWHY_QUALITIES = ("GOOD", "BETTER", "BEST")
MAX_SEED = 2**63 - 1  # scm-gen's bound on run seeds (an int64)


def check_integer(name: str, value: Any, minimum: int, maximum: int | None = None) -> int:
    """``value`` as an int in ``[minimum, maximum]``; a bool, a float or anything else is a ValueError naming
    ``name``."""
    if not is_integer(value):
        raise ValueError(f"{name} must be an integer; got {type(value).__name__} {value!r}")
    if value < minimum or (maximum is not None and value > maximum):
        bound = f">= {minimum}" if maximum is None else f"between {minimum} and {maximum:,}"
        raise ValueError(f"{name} must be {bound}; got {value}")
    return int(value)


def check_names(name: str, value: Any, example: str) -> tuple[Any, ...]:
    """A sequence of names (or numbers) as a tuple; a single string, whose letters would pass for names, is
    refused with ``example`` as the right form."""
    if isinstance(value, str) or not isinstance(value, Iterable):
        raise ValueError(f"{name} must be a sequence such as {example}; got {value!r}")
    return tuple(value)


def graph_model_name() -> str | None:
    """The weights ``condfip.infer_graph`` uses by default (its ``model`` keyword), or None if it has none."""
    try:
        from condfip import infer_graph
    except ImportError:
        return None
    try:
        default = inspect.signature(infer_graph).parameters["model"].default
    except (KeyError, TypeError, ValueError):
        return None
    return default if isinstance(default, str) else None


@dataclass
class MethodSettings:
    """Methods to compare and their options. ``fip_steps`` None means 2000 (200 when ``quick``)."""

    methods: tuple[str, ...] = METHOD_NAMES
    seed: int = 0
    quick: bool = False
    fip_steps: int | None = None
    dowhy_quality: str = "GOOD"
    condfip_weights: str = "small"
    method_options: dict[str, dict[str, Any]] = field(default_factory=dict)
    # methods left out of ``methods`` (name -> why), named on stderr when a run starts
    skipped: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.methods = check_names("methods", self.methods, "('linear',)")
        unknown = [name for name in self.methods if name not in METHOD_NAMES]
        if unknown:
            raise ValueError(unknown_method_message(unknown[0]))
        if not self.methods:
            raise ValueError(f"no method given; choose from {', '.join(METHOD_NAMES)}")
        self.seed = check_integer("seed", self.seed, 0, MAX_SEED)
        if self.fip_steps is None:
            self.fip_steps = 200 if self.quick else 2000
        self.fip_steps = check_integer("fip_steps", self.fip_steps, 1)
        if self.dowhy_quality not in DOWHY_QUALITIES:
            raise ValueError(
                f"dowhy_quality must be one of {', '.join(DOWHY_QUALITIES)}; got {self.dowhy_quality!r}"
            )
        if isinstance(self.condfip_weights, os.PathLike):
            self.condfip_weights = os.fspath(self.condfip_weights)
        if not isinstance(self.condfip_weights, str) or not self.condfip_weights:
            raise ValueError(
                f"condfip_weights must be a weights name, folder or Hub id; got {self.condfip_weights!r}"
            )

    def method_protocol(self) -> dict[str, Any]:
        return {
            "seed": self.seed,
            "fip_steps": self.fip_steps,
            "dowhy_quality": self.dowhy_quality,
            "condfip_weights": self.condfip_weights,
        }

    def weights_hashes(self, built_here: Iterable[str], *, graph_model: bool = False) -> dict[str, str]:
        """sha256 of the weights files of the methods in ``built_here`` (built from these settings) and, with
        ``graph_model``, of condfip's default graph model, by the names they were given (local files only)."""
        names = []
        built_here = set(built_here)
        if any(
            name in built_here and "model" not in self.method_options.get(name, {})
            for name in CONDFIP_METHODS
        ):
            names.append(self.condfip_weights)
        if graph_model and (graph := graph_model_name()) is not None:
            names.append(graph)
        hashes = {name: weights_sha256(name) for name in names}
        return {name: digest for name, digest in hashes.items() if digest is not None}

    def start_run(
        self,
        directory: ResultsDirectory,
        kind: str,
        protocol: dict[str, Any],
        given: Mapping[str, Method] | None,
        *,
        needed: bool,
        graph_model: bool = False,
    ) -> dict[str, Method]:
        """Check the folder, build the methods (loading weights), then record the run in the manifest, which is
        written with the first result (``directory.write_result``): a run that fails before it leaves the folder
        as it was."""
        directory.check_run(kind, protocol)
        built = self.build_methods(given, needed=needed)
        weights = self.weights_hashes(
            [name for name in built if name not in (given or {})], graph_model=graph_model
        )
        directory.open_run(kind, protocol, environment=package_versions(), weights=weights, defer=True)
        for name, reason in self.skipped.items():
            print(f"condfip-eval: skipping method {name}: {reason}", file=sys.stderr)
        return built

    def build_methods(
        self, given: Mapping[str, Method] | None = None, *, needed: bool = True
    ) -> dict[str, Method]:
        """Every method of the run, built before any work so that a missing extra or bad weights fail at once
        (and before anything is written).

        ``given`` supplies ready-built methods by name; nothing is built when ``needed`` is false.
        """
        built = dict(given or {})
        if needed:
            for name in self.methods:
                if name not in built:
                    built[name] = self.build_method(name, built)
        return built

    def build_method(self, name: str, built: Mapping[str, Method] | None = None) -> Method:
        """Method ``name`` with the run's options; the Cond-FiP methods share the model of one already in
        ``built`` (the weights load once)."""
        defaults: dict[str, dict[str, Any]] = {
            "fip": {"steps": self.fip_steps, "seed": self.seed},
            "dowhy": {"quality": self.dowhy_quality},
        }
        if name in CONDFIP_METHODS:
            shared = [
                m.model for n, m in (built or {}).items() if n in CONDFIP_METHODS and hasattr(m, "model")
            ]
            defaults[name] = {"model": shared[0] if shared else self.condfip_weights}
        return make_method(name, **{**defaults.get(name, {}), **self.method_options.get(name, {})})
