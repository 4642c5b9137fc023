"""A fit's exact leave-one-out statistics per node, computed when first read.

They cost a pass over the fitted rows (the chosen basis's features and one triangular solve per model), about a
tenth of an adaptation, and only ``InferredSCM.noise()`` (its weighting of the encoder's noise) and the
adaptation table read them: sampling, interventions, effects and DoWhy's mechanisms never do. So a fit hands
them over as a ``DeferredHeldOut``, which runs that pass on first use and keeps the result. A selection of nodes
or a merge of fits defers the same way, from its parts.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class HeldOut:
    """Per node [d] each: the mean diagonal of the hat matrix over the fitted rows, the mean squared exact
    leave-one-out residual, the same with each row's leverage capped (``adaptation.leverage_caps``), and the
    standard error of that capped mean over the rows."""

    mean_leverage: torch.Tensor
    errors: torch.Tensor
    capped_errors: torch.Tensor
    capped_standard_errors: torch.Tensor

    def select(self, index: torch.Tensor) -> HeldOut:
        """The statistics of the nodes ``index`` ([k] long), in that order."""
        return HeldOut(*(value[index.to(value.device)] for value in self.__dict__.values()))


class DeferredHeldOut:
    """``HeldOut`` statistics computed by ``compute()`` on the first call, then kept (and ``compute`` dropped with
    whatever it held: the rows' features, the models' factors)."""

    def __init__(self, compute: Callable[[], HeldOut]) -> None:
        self._compute: Callable[[], HeldOut] | None = compute
        self._value: HeldOut | None = None

    def __call__(self) -> HeldOut:
        if self._value is None:
            with torch.inference_mode():
                self._value = self._compute()
            self._compute = None
        return self._value

    def __getstate__(self) -> dict[str, object]:
        """A pickled copy holds the statistics, computed now: no closure (which pickle refuses) and none of what
        ``compute`` held (the rows' features: most of a pickled ``InferredSCM`` otherwise)."""
        return {"_compute": None, "_value": self()}

    @property
    def computed(self) -> bool:
        """Whether the statistics were computed."""
        return self._value is not None

    def select(self, index: torch.Tensor) -> DeferredHeldOut:
        """The statistics of the nodes ``index`` ([k] long), computed (from these) when first read, or now if
        these are."""
        return DeferredHeldOut(lambda: self().select(index))._now_if(self.computed)

    def _now_if(self, ready: bool) -> DeferredHeldOut:
        if ready:
            self()
        return self

    @staticmethod
    def merged(parts: list[tuple[torch.Tensor, DeferredHeldOut]], num_nodes: int) -> DeferredHeldOut:
        """The statistics of ``num_nodes`` nodes from those of disjoint node sets (``(nodes [k] long, held out)``),
        each computed when the merge is first read (now, if every part is)."""

        def compute() -> HeldOut:
            values = [(nodes, held_out()) for nodes, held_out in parts]
            sample = values[0][1].mean_leverage
            laid = []
            for name in HeldOut.__dataclass_fields__:
                out = torch.zeros(num_nodes, dtype=sample.dtype, device=sample.device)
                for nodes, value in values:
                    out[nodes.to(out.device)] = getattr(value, name)
                laid.append(out)
            return HeldOut(*laid)

        return DeferredHeldOut(compute)._now_if(all(held_out.computed for _, held_out in parts))
