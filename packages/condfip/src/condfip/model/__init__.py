"""The Cond-FiP network: dataset encoder, dataset embedding and conditional fixed-point decoder."""

from condfip.model.condfip_model import CondFiPModel
from condfip.model.config import NAMED_CONFIGS, CondFiPConfig
from condfip.model.embedding import DatasetEmbedding
from condfip.model.fixed_point import fixed_point_generate

__all__ = [
    "NAMED_CONFIGS",
    "CondFiPConfig",
    "CondFiPModel",
    "DatasetEmbedding",
    "fixed_point_generate",
]
