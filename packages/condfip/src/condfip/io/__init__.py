"""Files: checkpoints (safetensors + JSON) with the registry of model types, shipped weights and the Hugging
Face Hub, and atomic writes. Imports no model: each network registers itself (``PretrainedModel``)."""

from condfip.io.atomic import atomic_directory, atomic_file, existing_directory, write_json
from condfip.io.pretrained import resolve_checkpoint, shipped_checkpoints, shipped_root
from condfip.io.registry import MODEL_TYPES, PretrainedModel, load_model

__all__ = [
    "MODEL_TYPES",
    "PretrainedModel",
    "atomic_directory",
    "atomic_file",
    "existing_directory",
    "load_model",
    "resolve_checkpoint",
    "shipped_checkpoints",
    "shipped_root",
    "write_json",
]
