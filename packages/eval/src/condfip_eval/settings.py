"""Settings every run shares: which methods, how to build them, the seed."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from condfip_eval.methods import METHOD_NAMES, Method, make_method

__all__ = ["MethodSettings"]


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

    def __post_init__(self) -> None:
        self.methods = tuple(self.methods)
        unknown = [name for name in self.methods if name not in METHOD_NAMES]
        if unknown or not self.methods:
            shown = repr(unknown[0]) if unknown else "(none)"
            raise ValueError(f"unknown method {shown}; choose from {', '.join(METHOD_NAMES)}")
        if self.fip_steps is None:
            self.fip_steps = 200 if self.quick else 2000

    def method_protocol(self) -> dict[str, Any]:
        return {
            "seed": self.seed,
            "fip_steps": self.fip_steps,
            "dowhy_quality": self.dowhy_quality,
            "condfip_weights": self.condfip_weights,
        }

    def build_methods(
        self, given: Mapping[str, Method] | None = None, *, needed: bool = True
    ) -> dict[str, Method]:
        """Every method of the run, built before any work so that a missing extra or weights fail at once.

        ``given`` supplies ready-built methods by name; nothing is built when ``needed`` is false.
        """
        built = dict(given or {})
        if needed:
            for name in self.methods:
                if name not in built:
                    built[name] = self.build_method(name)
        return built

    def build_method(self, name: str) -> Method:
        defaults: dict[str, dict[str, Any]] = {
            "fip": {"steps": self.fip_steps, "seed": self.seed},
            "dowhy": {"quality": self.dowhy_quality},
            "condfip": {"model": self.condfip_weights},
            "condfip-refit": {"model": self.condfip_weights},
        }
        return make_method(name, **{**defaults.get(name, {}), **self.method_options.get(name, {})})
