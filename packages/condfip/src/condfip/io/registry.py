"""Model types and how each network saves and loads itself, the same way for both.

A network class derives from ``PretrainedModel`` with ``model_type="..."``: that registers it, and gives it
``save_pretrained`` and ``from_pretrained``. ``from_pretrained`` takes a shipped name, a local folder or a
Hugging Face Hub repo id (``condfip.io.pretrained``), reads the checkpoint of that type (``condfip.io.
checkpoint``) and builds the registered class from its ``architecture``. This module never imports a model.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, ClassVar

import torch

from condfip.io.architecture import Architecture
from condfip.io.checkpoint import CONFIG_NAME, json_ready, load_weights, read_config, save_checkpoint
from condfip.io.memory import check_memory, format_bytes
from condfip.io.pretrained import resolve_checkpoint

MODEL_TYPES: dict[str, type[PretrainedModel]] = {}


class PretrainedModel:
    """Mixin of a ``torch.nn.Module`` network stored as a checkpoint of its own ``model_type``.

    ``config_class`` is its architecture dataclass (the model is built as ``cls(config)``); ``default_name``
    the shipped checkpoint ``from_pretrained()`` loads without a name. A type that stores more than weights,
    architecture and recipe overrides ``checkpoint_sections`` and ``read_checkpoint_sections``; one whose
    sections (or recipe entries) must hold certain values overrides ``check_checkpoint_sections``, which both
    loading and saving call.
    """

    model_type: ClassVar[str]
    config_class: ClassVar[type[Architecture]]
    default_name: ClassVar[str]
    config: Any
    training_recipe: dict[str, Any]  # the checkpoint's "training" section ({} for a new model)

    def __init_subclass__(cls, *, model_type: str | None = None, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if model_type is not None:
            cls.model_type = model_type
            MODEL_TYPES[model_type] = cls

    def checkpoint_sections(self) -> dict[str, Any]:
        """Further top-level sections of ``config.json`` beyond architecture and recipe."""
        return {}

    def read_checkpoint_sections(self, config: dict[str, Any], path: Path) -> None:
        """Take what ``checkpoint_sections`` wrote from the validated ``config`` read from ``path``."""

    @classmethod
    def check_checkpoint_sections(cls, config: dict[str, Any], where: str) -> None:
        """Refuse a ``config.json`` content (``where`` names it in messages) whose sections this type cannot
        read: loading calls it on what it read, saving on what it is about to write."""

    def save_pretrained(
        self,
        directory: str | Path,
        *,
        training: dict[str, Any] | None = None,
        max_shard_bytes: int | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        """Write ``model.safetensors`` and ``config.json`` into ``directory`` atomically (shards beyond
        ``max_shard_bytes``; floating-point tensors stored as ``dtype`` when given). ``training``: the
        checkpoint's ``training`` section; None keeps the one the model was loaded with. What loading would
        refuse is refused before any file is written."""
        training = getattr(self, "training_recipe", None) if training is None else training
        sections = self.checkpoint_sections()
        if isinstance(training, dict | None):  # save_checkpoint refuses another training section by itself
            written = json_ready({"training": training or {}, **sections})  # as loading will read it
            self.check_checkpoint_sections(written, f"the checkpoint to save in {directory}")
        save_checkpoint(
            self,  # type: ignore[arg-type]
            directory,
            model_type=self.model_type,
            training=training,
            sections=sections or None,
            max_shard_bytes=max_shard_bytes,
            dtype=dtype,
        )

    @classmethod
    def from_pretrained(
        cls,
        name_or_path: str | Path | None = None,
        *,
        map_location: str | torch.device = "cpu",
        revision: str | None = None,
        cache_dir: str | Path | None = None,
        local_files_only: bool = False,
    ) -> Any:
        """Load a shipped name (default ``default_name``), a folder written by ``save_pretrained`` or a Hub
        repo id; refuses other model types, unknown formats and mismatched tensors with a message naming them."""
        return load_model(
            cls.default_name if name_or_path is None else name_or_path,
            model_type=cls.model_type,
            map_location=map_location,
            revision=revision,
            cache_dir=cache_dir,
            local_files_only=local_files_only,
        )


# Bytes a network takes while it is built and loaded, per byte of its parameters: the module itself and the
# tensors read from the checkpoint before they are copied in
LOAD_COPIES = 2


def parameter_bytes(model_class: type, config: Any) -> float:
    """Bytes of the parameters and buffers of ``model_class(config)``, counted on the meta device (nothing is
    allocated); infinite when their sizes overflow a 64-bit count."""
    try:
        with torch.device("meta"):
            model = model_class(config)
    except RuntimeError:  # "Storage size calculation overflowed": more elements than an int64 counts
        return math.inf
    return float(sum(tensor.numel() * tensor.element_size() for tensor in model.state_dict().values()))


def check_model_memory(model_class: type, config: Any, what: str) -> None:
    """Refuse to build a network whose parameters cannot fit in this machine's memory, with their estimate."""
    needed = parameter_bytes(model_class, config)
    hint = "check its architecture sizes (a wrong dim or mlp_dim?)"
    if math.isinf(needed):
        raise ValueError(f"{what} would have more than 2^63 parameter values, far beyond any memory; {hint}")
    check_memory(
        LOAD_COPIES * needed,
        f"{what} ({model_class.__name__} with {format_bytes(needed)} of parameters)",
        hint=hint,
    )


def load_model(
    name_or_path: str | Path,
    *,
    model_type: str,
    map_location: str | torch.device = "cpu",
    revision: str | None = None,
    cache_dir: str | Path | None = None,
    local_files_only: bool = False,
) -> Any:
    """The network of the registered ``model_type`` stored at ``name_or_path``, in eval mode on
    ``map_location``."""
    if model_type not in MODEL_TYPES:
        raise ValueError(f"unknown model_type {model_type!r}; registered types are {sorted(MODEL_TYPES)}")
    directory = resolve_checkpoint(
        name_or_path,
        revision=revision,
        cache_dir=cache_dir,
        local_files_only=local_files_only,
        model_type=model_type,
    )
    config = read_config(directory, model_type=model_type)
    model_class = MODEL_TYPES[model_type]
    config_path = Path(directory) / CONFIG_NAME
    try:
        architecture = model_class.config_class.from_dict(config["architecture"], complete=True)
    except ValueError as error:
        raise ValueError(f"{config_path}: {error}") from None
    model_class.check_checkpoint_sections(config, str(config_path))
    check_model_memory(model_class, architecture, f"the network that {config_path} describes")
    model = model_class(architecture)  # type: ignore[call-arg]
    load_weights(model, directory)
    model.training_recipe = dict(config.get("training", {}))
    model.read_checkpoint_sections(config, Path(directory) / CONFIG_NAME)
    return model.to(map_location).eval()
