"""Checkpoints of the graph model: the Cond-FiP format (``model.safetensors`` + ``config.json``) with
``model_type`` "graph", read through the same validation helpers. Nothing is ever pickled."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from condfip.checkpoint import check_tensors, read_checkpoint_weights, read_config, save_model
from condfip.graph.config import GraphModelConfig
from condfip.graph.model import GraphModel

GRAPH_MODEL_TYPE = "graph"
DEFAULT_GRAPH_MODEL = "graph-small"


def save_graph_model(
    model: GraphModel, directory: str | Path, *, training: dict[str, Any] | None = None
) -> None:
    sections = {"inference": model.inference} if model.inference else None
    save_model(model, directory, training=training, model_type=GRAPH_MODEL_TYPE, sections=sections)


def load_graph_model(
    name_or_path: str | Path = DEFAULT_GRAPH_MODEL,
    *,
    map_location: str | torch.device = "cpu",
    revision: str | None = None,
    cache_dir: str | Path | None = None,
    local_files_only: bool = False,
) -> GraphModel:
    """Load a shipped graph model by name, a local folder, or a Hugging Face Hub repo id (see
    ``condfip.pretrained.resolve_checkpoint``); refuses other model types, unknown formats and mismatched
    tensors with a message naming them."""
    from condfip.pretrained.registry import resolve_checkpoint, shipped_checkpoints

    if str(name_or_path) == DEFAULT_GRAPH_MODEL and not Path(DEFAULT_GRAPH_MODEL).is_dir():
        if DEFAULT_GRAPH_MODEL not in shipped_checkpoints(model_type=GRAPH_MODEL_TYPE):
            raise ValueError(
                f"the default graph model {DEFAULT_GRAPH_MODEL!r} is not shipped with this condfip version; train "
                "one (`condfip train graph --config small --nodes 10-30 --out DIR`, see TRAINING.md) and pass its "
                "folder: model=DIR in Python, --model DIR to `condfip graph`, --graph-model DIR to `condfip infer`"
            )
    directory = resolve_checkpoint(
        name_or_path,
        revision=revision,
        cache_dir=cache_dir,
        local_files_only=local_files_only,
        model_type=GRAPH_MODEL_TYPE,
    )
    config = read_config(directory, model_type=GRAPH_MODEL_TYPE)
    model = GraphModel(GraphModelConfig.from_dict(config["architecture"]))
    tensors, weights_path = read_checkpoint_weights(directory)
    expected = model.state_dict()
    check_tensors(expected, tensors, weights_path)
    model.load_state_dict({name: tensor.to(expected[name].dtype) for name, tensor in tensors.items()})
    model.training_recipe = dict(config.get("training", {}))
    model.inference = read_inference(config, Path(directory))
    return model.to(map_location).eval()


def read_inference(config: dict[str, Any], directory: Path) -> dict[str, Any]:
    """The checkpoint's ``"inference"`` section (its default threshold), checked; {} when it has none."""
    inference = config.get("inference", {})
    threshold = inference.get("threshold", 0.5) if isinstance(inference, dict) else None
    if isinstance(threshold, bool) or not isinstance(threshold, int | float) or not 0.0 <= threshold <= 1.0:
        raise ValueError(
            f"{directory / 'config.json'} has an invalid 'inference' section {inference!r}: its 'threshold' must "
            "be a number in [0, 1]; re-run `python -m condfip.graph.calibration` on the checkpoint"
        )
    return dict(inference)
