"""Training of the two stages (encoder, then decoder), in one process or with torch.distributed."""

from condfip.training.trainer import STAGES, TrainingOptions, train

__all__ = ["STAGES", "TrainingOptions", "train"]
