"""Training of the Cond-FiP stages (encoder, then decoder) and of the graph model, in one process or with
torch.distributed."""

from condfip.training.trainer import STAGES, TrainingOptions, train

__all__ = ["STAGES", "TrainingOptions", "train"]
