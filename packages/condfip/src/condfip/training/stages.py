"""What differs between training stages, behind one small interface the trainer drives.

A stage builds its model (initialized from the run's seed, with the trainable parameters marked), wraps
its loss in a module (so DistributedDataParallel can wrap it), and builds and scores its fixed validation set.
Stages: ``encoder`` and ``decoder`` (the Cond-FiP network, this module) and ``graph`` (the amortized graph
model, ``condfip.graph.training``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

from torch import nn

if TYPE_CHECKING:
    from condfip.training.trainer import TrainingOptions


class Stage(Protocol):
    name: str

    def check_options(self, options: TrainingOptions) -> None:
        """Raise a ValueError for options this stage cannot run with."""

    def build_model(self, options: TrainingOptions) -> nn.Module:
        """The model on the CPU, initialized from ``options.seed``, trainable parameters marked.

        It must have ``config.to_dict()`` and ``save_pretrained(directory, training=...)``."""

    def loss_module(self, model: nn.Module, options: TrainingOptions) -> nn.Module:
        """A module whose ``forward(data, noise, parents, step)`` returns the scalar loss of a batch."""

    def validation_set(self, options: TrainingOptions) -> list[Any]:
        """The fixed held-out data, built once on the main rank."""

    def evaluate(self, model: nn.Module, cells: list[Any]) -> dict[str, float]:
        """Figures of the (averaged) model on the validation set; keys of in-distribution cells start with
        ``in/``."""


def stage_for(name: str) -> Stage:
    """The stage called ``name`` (``encoder``, ``decoder`` or ``graph``)."""
    if name in ("encoder", "decoder"):
        from condfip.training.trainer import CondFiPStage

        return CondFiPStage(name)
    if name == "graph":
        from condfip.graph.training import GraphStage

        return GraphStage()
    raise ValueError(f"stage must be one of ('encoder', 'decoder', 'graph'), got {name!r}")
