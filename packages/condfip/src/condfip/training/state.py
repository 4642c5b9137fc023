"""Training state (raw weights, EMA, optimizer moments, step, RNG) as one safetensors + JSON pair."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file

from condfip.io.atomic import atomic_directory, existing_directory
from condfip.io.checkpoint import save_safetensors

STATE_TENSORS = "training_state.safetensors"
STATE_JSON = "training_state.json"
STATE_FORMAT_VERSION = 1


def save_training_state(
    directory: Path,
    *,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    ema_shadow: dict[str, torch.Tensor],
    info: dict[str, Any],
) -> None:
    """Replace ``directory`` as a whole, so a crash leaves the previous state or the new one."""
    names = {id(parameter): name for name, parameter in model.named_parameters()}
    tensors = {f"model.{name}": tensor.detach().cpu() for name, tensor in model.state_dict().items()}
    tensors.update({f"ema.{name}": tensor.detach().cpu() for name, tensor in ema_shadow.items()})
    optimizer_groups = []
    for group in optimizer.param_groups:
        optimizer_groups.append({key: value for key, value in group.items() if key != "params"})
        for parameter in group["params"]:
            for key, value in optimizer.state.get(parameter, {}).items():
                tensors[f"optimizer.{names[id(parameter)]}.{key}"] = torch.as_tensor(value).detach().cpu()
    tensors["rng.torch"] = torch.get_rng_state()
    meta = {**info, "format_version": STATE_FORMAT_VERSION, "optimizer_groups": optimizer_groups}
    with atomic_directory(directory) as temporary:
        save_safetensors({k: v.contiguous() for k, v in tensors.items()}, temporary / STATE_TENSORS)
        (temporary / STATE_JSON).write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")


def load_training_state(
    directory: Path,
    *,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    ema_shadow: dict[str, torch.Tensor],
    check_meta: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Restore everything written by :func:`save_training_state`; returns its JSON info.

    ``check_meta`` sees that info before any tensor is restored and raises to refuse the state."""
    found = existing_directory(directory)
    if found is None:
        raise ValueError(f"cannot resume: no training state in {directory}; start without --resume")
    try:
        meta = json.loads((found / STATE_JSON).read_text())
        tensors = load_file(str(found / STATE_TENSORS))
    except Exception as error:
        raise ValueError(f"cannot resume from {found}: {error}") from error
    if not isinstance(meta, dict):
        _invalid(found / STATE_JSON, f"it holds a {type(meta).__name__}, not an object")
    if meta.get("format_version") != STATE_FORMAT_VERSION:
        raise ValueError(f"cannot resume: {found} has state format {meta.get('format_version')!r}")
    if check_meta is not None:
        check_meta(meta)
    _check_state(found, meta, tensors, model=model, optimizer=optimizer, ema_shadow=ema_shadow)
    device = next(model.parameters()).device
    model.load_state_dict({k[len("model.") :]: v for k, v in tensors.items() if k.startswith("model.")})
    for name in ema_shadow:
        ema_shadow[name].copy_(tensors[f"ema.{name}"])
    parameters = dict(model.named_parameters())
    for group, saved in zip(optimizer.param_groups, meta["optimizer_groups"], strict=True):
        group.update(
            {key: tuple(value) if isinstance(value, list) else value for key, value in saved.items()}
        )
        for parameter in group["params"]:
            name = next(n for n, p in parameters.items() if p is parameter)
            prefix = f"optimizer.{name}."
            entries = {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}
            if entries:
                optimizer.state[parameter] = {
                    key: (value if key == "step" else value.to(device)) for key, value in entries.items()
                }
    torch.set_rng_state(tensors["rng.torch"])
    return meta


def _invalid(path: Path, problem: str) -> None:
    raise ValueError(
        f"cannot resume: {path} is not a valid training state ({problem}); start a new run in another --out, "
        "or restore the state/ folder the run wrote"
    )


def _check_state(
    found: Path,
    meta: dict[str, Any],
    tensors: dict[str, torch.Tensor],
    *,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    ema_shadow: dict[str, torch.Tensor],
) -> None:
    """Refuse a state that does not fit this run (a file edited or damaged) before anything is restored."""
    step = meta.get("step")
    if isinstance(step, bool) or not isinstance(step, int) or step < 1:
        _invalid(found / STATE_JSON, f"'step' must be a number of steps >= 1, got {step!r}")
    groups = meta.get("optimizer_groups")
    if (
        not isinstance(groups, list)
        or len(groups) != len(optimizer.param_groups)
        or not all(isinstance(group, dict) for group in groups)
    ):
        _invalid(
            found / STATE_JSON,
            f"'optimizer_groups' must be a list of {len(optimizer.param_groups)} objects, got {groups!r}",
        )
    expected = {f"model.{name}": tensor for name, tensor in model.state_dict().items()}
    expected.update({f"ema.{name}": tensor for name, tensor in ema_shadow.items()})
    names = {id(parameter): name for name, parameter in model.named_parameters()}
    shapes = {
        f"optimizer.{names[id(parameter)]}.": parameter.shape
        for group in optimizer.param_groups
        for parameter in group["params"]
    }
    path = found / STATE_TENSORS
    for name, tensor in expected.items():
        if name not in tensors:
            _invalid(path, f"the tensor {name} is missing")
        if tensors[name].shape != tensor.shape:
            _invalid(path, f"{name} has shape {tuple(tensors[name].shape)}, expected {tuple(tensor.shape)}")
    for name, tensor in tensors.items():
        prefix = name[: name.rfind(".") + 1]
        if name.startswith("optimizer.") and prefix not in shapes:
            _invalid(path, f"{name} belongs to no trained weight of this run")
        if name.startswith("optimizer.") and not name.endswith(".step") and tensor.shape != shapes[prefix]:
            _invalid(path, f"{name} has shape {tuple(tensor.shape)}, expected {tuple(shapes[prefix])}")
        if not name.startswith(("model.", "ema.", "optimizer.", "rng.")) or (
            name.startswith(("model.", "ema.")) and name not in expected
        ):
            _invalid(path, f"the tensor {name} is not part of this run's state")
    rng = tensors.get("rng.torch")
    if rng is None or rng.dtype != torch.uint8 or rng.dim() != 1:
        _invalid(path, "the tensor rng.torch (the random generator's state) is missing or malformed")
