"""Checkpoints: ``model.safetensors`` + ``config.json``. Nothing is ever pickled.

``config.json`` holds the format version, the package version, the architecture and the training recipe.
Loading refuses an unknown format, missing or extra tensors and wrong shapes with a message naming them.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from condfip.atomic import atomic_file
from condfip.model.condfip_model import CondFiPModel
from condfip.model.config import CondFiPConfig

FORMAT_VERSION = 1
MODEL_TYPE = "condfip"
WEIGHTS_NAME = "model.safetensors"
CONFIG_NAME = "config.json"


def package_version() -> str:
    from condfip import __version__

    return __version__


def save_model(
    model: torch.nn.Module,
    directory: str | Path,
    *,
    training: dict[str, Any] | None = None,
    model_type: str = MODEL_TYPE,
    sections: dict[str, Any] | None = None,
) -> None:
    """Write the weights, then the config, each through a temporary file and one rename.

    ``model`` is any module with a ``config`` that has ``to_dict()``; ``model_type`` names its kind;
    ``sections`` are further top-level entries of ``config.json`` (the graph model's ``"inference"``).
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    tensors = {name: tensor.detach().contiguous().cpu() for name, tensor in model.state_dict().items()}
    with atomic_file(directory / WEIGHTS_NAME) as temporary:
        save_file(tensors, str(temporary), metadata={"format": "pt", "model_type": model_type})
    config = {
        "model_type": model_type,
        "format_version": FORMAT_VERSION,
        "package_version": package_version(),
        "architecture": model.config.to_dict(),
        "training": training or {},
        **(sections or {}),
    }
    write_json(directory / CONFIG_NAME, config)


def write_json(path: Path, value: Any) -> None:
    with atomic_file(path) as temporary:
        temporary.write_text(json.dumps(value, indent=2, sort_keys=True) + "\n")


def read_config(directory: str | Path, *, model_type: str = MODEL_TYPE) -> dict[str, Any]:
    """The validated ``config.json`` of a checkpoint directory holding a model of kind ``model_type``."""
    path = Path(directory) / CONFIG_NAME
    if not path.is_file():
        raise ValueError(f"{directory} is not a Cond-FiP checkpoint: {CONFIG_NAME} is missing")
    try:
        config = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(
            f"cannot read {path}: {error}; the file is corrupted, re-save the checkpoint"
        ) from error
    if not isinstance(config, dict) or config.get("model_type") != model_type:
        found = config.get("model_type") if isinstance(config, dict) else type(config).__name__
        raise ValueError(f"{path} describes model_type {found!r}, expected {model_type!r}")
    if config.get("format_version") != FORMAT_VERSION:
        raise ValueError(
            f"{path} has format_version {config.get('format_version')!r}; this condfip "
            f"({package_version()}) reads format_version {FORMAT_VERSION}: upgrade condfip or re-save it"
        )
    if not isinstance(config.get("architecture"), dict):
        raise ValueError(f"{path} has no 'architecture' section")
    return config


def read_weights(path: Path) -> dict[str, torch.Tensor]:
    if not path.is_file():
        raise ValueError(f"{path.parent} is not a Cond-FiP checkpoint: {path.name} is missing")
    try:
        return load_file(str(path))
    except Exception as error:  # safetensors raises its own error types for truncated or corrupted files
        raise ValueError(f"cannot read {path}: {error}; the file is truncated or corrupted") from error


def check_tensors(expected: dict[str, torch.Tensor], found: dict[str, torch.Tensor], source: Path) -> None:
    missing = sorted(set(expected) - set(found))
    extra = sorted(set(found) - set(expected))
    wrong = [
        f"{name} {tuple(found[name].shape)} (expected {tuple(tensor.shape)})"
        for name, tensor in expected.items()
        if name in found and found[name].shape != tensor.shape
    ]
    problems = []
    if missing:
        problems.append(f"missing tensors {_names(missing)}")
    if extra:
        problems.append(f"unexpected tensors {_names(extra)}")
    if wrong:
        problems.append(f"wrong shapes {_names(wrong)}")
    if problems:
        raise ValueError(f"{source} does not match its config.json: " + "; ".join(problems))


def _names(items: list[str], limit: int = 5) -> str:
    shown = ", ".join(items[:limit])
    return shown + (f" and {len(items) - limit} more" if len(items) > limit else "")


def load_model(directory: str | Path, *, map_location: str | torch.device = "cpu") -> CondFiPModel:
    directory = Path(directory)
    config = read_config(directory)
    model = CondFiPModel(CondFiPConfig.from_dict(config["architecture"]))
    weights_path = directory / WEIGHTS_NAME
    tensors = read_weights(weights_path)
    expected = model.state_dict()
    check_tensors(expected, tensors, weights_path)
    model.load_state_dict({name: tensor.to(expected[name].dtype) for name, tensor in tensors.items()})
    model.training_recipe = config.get("training", {})
    return model.to(map_location).eval()
