"""Exponential moving average of the trainable weights, used for evaluation and for the saved model."""

from __future__ import annotations

import torch
from torch import nn


class WeightAverage:
    def __init__(self, model: nn.Module, decay: float) -> None:
        self.decay = decay
        self.shadow = {
            name: parameter.detach().clone()
            for name, parameter in model.named_parameters()
            if parameter.requires_grad
        }

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        for name, parameter in model.named_parameters():
            if name in self.shadow:
                self.shadow[name].lerp_(parameter.detach(), 1.0 - self.decay)

    def averaged_state_dict(self, model: nn.Module) -> dict[str, torch.Tensor]:
        """The model's state dict with the averaged values in place of the trainable weights."""
        state = {name: tensor.detach().clone() for name, tensor in model.state_dict().items()}
        state.update({name: tensor.clone() for name, tensor in self.shadow.items()})
        return state
