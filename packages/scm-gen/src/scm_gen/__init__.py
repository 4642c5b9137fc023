"""Random structural causal models (SCMs) and the Cond-FiP benchmark datasets.

Graph convention everywhere: `adjacency[i, j] = 1` means the edge `i -> j`; the parents of node `j` are the
nonzero entries of column `j`.
"""

__version__ = "0.1.0"

from scm_gen.benchmark import BenchmarkDataset, make_benchmark_dataset, sample_benchmark_dataset
from scm_gen.calibrated import CalibratedMechanisms
from scm_gen.graphs import GRAPH_KINDS, sample_graph, topological_order, validate_adjacency
from scm_gen.mechanisms import (
    MECHANISM_KINDS,
    NODE_FAMILIES,
    HeteroscedasticRFFMechanisms,
    LinearMechanisms,
    Mechanisms,
    RFFMechanisms,
)
from scm_gen.noise import NOISE_KINDS, NoiseModel
from scm_gen.presets import PRESETS, Preset, sample_scm
from scm_gen.scm import SCM, check_intervention_value
from scm_gen.standardization import standardize
from scm_gen.training import TrainingBatch, make_training_batch, training_batches

__all__ = [
    "GRAPH_KINDS",
    "MECHANISM_KINDS",
    "NODE_FAMILIES",
    "NOISE_KINDS",
    "PRESETS",
    "SCM",
    "BenchmarkDataset",
    "CalibratedMechanisms",
    "HeteroscedasticRFFMechanisms",
    "LinearMechanisms",
    "Mechanisms",
    "NoiseModel",
    "Preset",
    "RFFMechanisms",
    "TrainingBatch",
    "__version__",
    "check_intervention_value",
    "make_benchmark_dataset",
    "make_training_batch",
    "sample_benchmark_dataset",
    "sample_graph",
    "sample_scm",
    "standardize",
    "topological_order",
    "training_batches",
    "validate_adjacency",
]
