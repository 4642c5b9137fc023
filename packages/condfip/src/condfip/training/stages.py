"""What differs between training stages, behind one small interface the loop drives.

A stage builds its model (initialized from the run's seed, with the trainable parameters marked), wraps its
loss in a module (so DistributedDataParallel can wrap it), builds and scores its fixed validation set, and adds
to the run's recipe what it read to build the model.
"""

from __future__ import annotations

from typing import Any, Protocol

from torch import nn

from condfip.training.condfip_stage import CondFiPStage
from condfip.training.graph_stage import GraphStage
from condfip.training.options import GraphOptions, TrainingOptions


class Stage(Protocol):
    def build_model(self, options: TrainingOptions) -> nn.Module:
        """The model on the CPU, initialized from ``options.seed``, trainable parameters marked; it has
        ``config.to_dict()`` and ``save_pretrained(directory, training=...)``."""

    def loss_module(self, model: nn.Module, options: TrainingOptions) -> nn.Module:
        """A module whose ``forward(data, noise, parents, step)`` returns the scalar loss of a batch."""

    def validation_set(self, options: TrainingOptions) -> list[Any]:
        """The fixed held-out data, built once on the main rank."""

    def evaluate(self, model: nn.Module, cells: list[Any]) -> dict[str, float]:
        """Figures of the (averaged) model on the validation set; keys of in-distribution cells start with
        ``in/``."""

    def recipe(self) -> dict[str, Any]:
        """What the run's recipe records beyond its options, of what ``build_model`` read (the decoder stage:
        which encoder weights it started from); a resume refuses a change of it."""


def stage_for(options: TrainingOptions) -> Stage:
    """The stage that trains ``options.stage``."""
    if isinstance(options.stage, GraphOptions):
        return GraphStage(options.stage)
    return CondFiPStage(options.stage)
