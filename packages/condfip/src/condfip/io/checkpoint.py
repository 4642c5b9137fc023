"""The checkpoint format, for any model type: ``model.safetensors`` + ``config.json``. Nothing is ever pickled.

``config.json`` holds the model type, the format version, the package version, the architecture and the
training recipe (and further sections a model type adds, such as the graph model's ``"inference"``). Loading
refuses an unknown format, missing or extra tensors and wrong shapes with a message naming them.

Large weights may be split into shards, as Hugging Face does: ``model-00001-of-00002.safetensors``, ... and
``model.safetensors.index.json`` (``{"metadata": {"total_size": bytes}, "weight_map": {tensor: shard}}``), in
place of ``model.safetensors`` (``save_model(max_shard_bytes=)``). A folder holds one form or the other.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import re
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file

from condfip._version import __version__
from condfip.io.atomic import atomic_directory, atomic_file, temporary_directory, write_json

FORMAT_VERSION = 1
WEIGHTS_NAME = "model.safetensors"
INDEX_NAME = "model.safetensors.index.json"
CONFIG_NAME = "config.json"
CHECKPOINT_FILES = (CONFIG_NAME, WEIGHTS_NAME)
SHARDED_FILES = (INDEX_NAME, "model-*-of-*.safetensors")  # in place of model.safetensors
DIGEST_KEY = "weights_digest"  # in config.json and in each weight file's metadata: which save wrote them
_SHARD_NAME = re.compile(r"^model-\d{5}-of-\d{5}\.safetensors$")


def save_checkpoint(
    model: torch.nn.Module,
    directory: str | Path,
    *,
    model_type: str,
    training: dict[str, Any] | None = None,
    sections: dict[str, Any] | None = None,
    max_shard_bytes: int | None = None,
    dtype: torch.dtype | None = None,
) -> None:
    """Write the weights and the config; a reader sees the folder's previous checkpoint or the new one.

    ``model`` is any module with a ``config`` that has ``to_dict()``; ``model_type`` names its kind;
    ``sections`` are further top-level entries of ``config.json`` (the graph model's ``"inference"``).
    ``max_shard_bytes``: weights larger than this are split into shards with an index (module docstring).
    ``dtype``: store floating-point tensors in this type (``torch.bfloat16`` halves the files; loading casts
    back to the model's type).

    The config is checked as JSON (NaN and infinities are written as null), and the stored weights as loading
    checks them (:func:`check_storable`: no tensor of another kind than the model's, no NaN or infinities),
    before any file is written. A folder that holds nothing but a checkpoint (or does not exist) is replaced as
    a whole (:func:`condfip.io.atomic.atomic_directory`). A folder that also holds other files (a training run's
    ``state/`` and logs) keeps them: the new checkpoint is written completely beside it, then its files are
    renamed in, ``config.json`` last.
    """
    if max_shard_bytes is not None and (
        isinstance(max_shard_bytes, bool) or not isinstance(max_shard_bytes, int) or max_shard_bytes < 1
    ):
        raise ValueError(f"max_shard_bytes must be a positive number of bytes or None, got {max_shard_bytes}")
    if training is not None and not isinstance(training, dict):  # read_config refuses any other section
        raise ValueError(
            f"training must be a dict (the checkpoint's 'training' section) or None, got {type(training).__name__}"
        )
    config = {
        "model_type": model_type,
        "format_version": FORMAT_VERSION,
        "package_version": __version__,
        "architecture": model.config.to_dict(),
        "training": training or {},
        **(sections or {}),
    }
    json_text(config)  # a value JSON cannot hold is refused before any file is written (and hashing)
    directory = Path(directory)
    tensors = {name: tensor.detach().contiguous().cpu() for name, tensor in model.state_dict().items()}
    stored = _stored(tensors, dtype)
    check_storable(tensors, stored, dtype)  # what loading would refuse is refused before any file is written
    tensors = stored
    config[DIGEST_KEY] = digest = tensors_digest(tensors)
    text = json_text(config)

    def write(folder: Path) -> None:
        write_weights(tensors, folder, model_type=model_type, max_shard_bytes=max_shard_bytes, digest=digest)
        with atomic_file(folder / CONFIG_NAME) as temporary:
            temporary.write_text(text)

    if _replaceable(directory):
        with atomic_directory(directory) as temporary:
            write(temporary)
        return
    with temporary_directory(directory / ".checkpoint") as staged:
        write(staged)
        names = sorted((path.name for path in staged.iterdir()), key=lambda name: name == CONFIG_NAME)
        for name in names:  # config.json last: it names the weights of the new checkpoint
            os.replace(staged / name, directory / name)
        for path in directory.iterdir():  # the other form of weights, or shards of a larger save
            if _is_checkpoint_file(path.name) and path.name not in names:
                path.unlink(missing_ok=True)


def _stored(tensors: dict[str, torch.Tensor], dtype: torch.dtype | None) -> dict[str, torch.Tensor]:
    """``tensors`` as a save stores them: floating-point ones cast to ``dtype`` when given."""
    if dtype is None:
        return tensors
    if not isinstance(dtype, torch.dtype):
        raise ValueError(f"dtype must be a torch.dtype such as torch.bfloat16 or None, got {dtype!r}")
    stored = {}
    for name, tensor in tensors.items():
        try:
            stored[name] = tensor.to(dtype) if tensor.is_floating_point() else tensor
        except RuntimeError as error:  # a quantized type, which a plain cast cannot make
            raise ValueError(
                f"cannot save the checkpoint: {name} cannot be stored as {dtype}: {error}"
            ) from None
    return stored


def _replaceable(directory: Path) -> bool:
    """Whether a save may replace ``directory`` as a whole: it does not exist, or holds only checkpoint files,
    and is not the working directory or one above it (which a rename would pull from under the process)."""
    if directory.is_symlink() or not directory.is_dir():
        return not directory.exists() and not directory.is_symlink() and directory.absolute().name != ""
    if directory.resolve() in (Path.cwd(), *Path.cwd().parents):
        return False
    return all(_is_checkpoint_file(path.name) for path in directory.iterdir())


def tensors_digest(tensors: dict[str, torch.Tensor]) -> str:
    """A short hash of the tensors' names, types, shapes and values: the same for the same weights."""
    digest = hashlib.sha256()
    for name in sorted(tensors):
        tensor = tensors[name].contiguous()
        digest.update(f"{name}:{tensor.dtype}:{tuple(tensor.shape)};".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()[:32]


def check_digest(directory: Path, config: dict[str, Any]) -> None:
    """Refuse weight files written by another save than ``config.json`` (a save interrupted between renaming
    its files into a folder it shares with other files). Configs written before the digest, and weight files
    without one (rewritten by another tool), are not checked."""
    expected = config.get(DIGEST_KEY)
    if expected is None:
        return
    index = directory / INDEX_NAME
    files = [directory / WEIGHTS_NAME]
    if index.is_file() and not files[0].is_file():
        with contextlib.suppress(OSError, ValueError, AttributeError):
            files = [
                directory / name for name in sorted(set(json.loads(index.read_text())["weight_map"].values()))
            ]
    for path in files:
        try:
            with safe_open(str(path), framework="pt") as handle:
                found = (handle.metadata() or {}).get(DIGEST_KEY)
        except Exception:  # a missing or corrupted file: reading the weights names the problem
            continue
        if found is not None and found != expected:  # a file without one was written by another tool
            raise ValueError(
                f"{path} was written by another save than {directory / CONFIG_NAME} (a save into this folder was "
                "interrupted); re-save the checkpoint"
            )


def _is_checkpoint_file(name: str) -> bool:
    return name in (CONFIG_NAME, WEIGHTS_NAME, INDEX_NAME) or bool(_SHARD_NAME.match(name))


def checkpoint_stamp(directory: str | Path) -> tuple:
    """The names, modification times, sizes and inodes of a checkpoint folder's files (config, weights, index,
    shards): a checkpoint saved over the folder changes it (a cache of loaded models keys on it)."""
    directory = Path(directory)
    stamp = []
    for path in sorted(directory.iterdir()) if directory.is_dir() else []:
        if _is_checkpoint_file(path.name):
            with contextlib.suppress(OSError):
                status = path.stat()
                stamp.append((path.name, status.st_mtime_ns, status.st_size, status.st_ino))
    return tuple(stamp)


def json_ready(value: Any, where: str = "") -> Any:
    """``value`` with NaN and infinities (which JSON cannot hold) as None and tuples as lists; a value of
    another type than JSON's (a Path, a tensor) or a key that is not a string is a ValueError naming its key."""
    if isinstance(value, dict):
        for key in value:
            if not isinstance(key, str):
                raise ValueError(f"{where or 'a'} key {key!r} is not a string; JSON keys are strings")
        return {key: json_ready(entry, f"{where}.{key}" if where else key) for key, entry in value.items()}
    if isinstance(value, list | tuple):
        return [json_ready(entry, f"{where}[{position}]") for position, entry in enumerate(value)]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if value is None or isinstance(value, str | int | float | bool):
        return value
    raise ValueError(
        f"{where or 'the value'} is a {type(value).__name__} ({value!r}), which JSON cannot hold; give a string, "
        "number, bool, None, list or dict (str() of a path)"
    )


def json_text(value: dict[str, Any]) -> str:
    """``value`` (:func:`json_ready`) as indented JSON with sorted keys."""
    return json.dumps(json_ready(value), indent=2, sort_keys=True, allow_nan=False) + "\n"


def write_weights(
    tensors: dict[str, torch.Tensor],
    directory: Path,
    *,
    model_type: str,
    max_shard_bytes: int | None = None,
    digest: str | None = None,
) -> None:
    """``model.safetensors``, or shards and their index when the tensors exceed ``max_shard_bytes``; the other
    form's files are removed afterwards, so the folder never holds both. Each file's metadata records
    ``digest`` (:func:`tensors_digest` of all the tensors; computed when not given)."""
    metadata = {"format": "pt", "model_type": model_type, DIGEST_KEY: digest or tensors_digest(tensors)}
    total = sum(tensor.numel() * tensor.element_size() for tensor in tensors.values())
    stale = sorted(path for path in directory.iterdir() if _SHARD_NAME.match(path.name))
    if max_shard_bytes is None or total <= max_shard_bytes:
        with atomic_file(directory / WEIGHTS_NAME) as temporary:
            save_safetensors(tensors, temporary, metadata)
        stale.append(directory / INDEX_NAME)
    else:
        shards: list[dict[str, torch.Tensor]] = [{}]
        size = 0
        for (
            name,
            tensor,
        ) in tensors.items():  # in state-dict order; a tensor larger than the limit stands alone
            nbytes = tensor.numel() * tensor.element_size()
            if shards[-1] and size + nbytes > max_shard_bytes:
                shards.append({})
                size = 0
            shards[-1][name] = tensor
            size += nbytes
        names = [f"model-{k + 1:05d}-of-{len(shards):05d}.safetensors" for k in range(len(shards))]
        for shard, file_name in zip(shards, names, strict=True):
            with atomic_file(directory / file_name) as temporary:
                save_safetensors(shard, temporary, metadata)
        weight_map = {
            name: file_name for shard, file_name in zip(shards, names, strict=True) for name in shard
        }
        write_json(directory / INDEX_NAME, {"metadata": {"total_size": total}, "weight_map": weight_map})
        stale = [path for path in stale if path.name not in names] + [directory / WEIGHTS_NAME]
    for path in stale:
        path.unlink(missing_ok=True)


def save_safetensors(
    tensors: dict[str, torch.Tensor], path: Path, metadata: dict[str, str] | None = None
) -> None:
    """``safetensors.torch.save_file`` with the bytes a function of the tensors and metadata alone, and its I/O
    failures (a full disk) raised as ``OSError``.

    safetensors writes the metadata from a hash map, whose key order changes from process to process; the
    header is rewritten in place with sorted metadata keys (the same bytes in another order, so its length and
    the tensor offsets do not change)."""
    try:
        save_file(tensors, str(path), metadata=metadata)
    except SafetensorError as error:
        raise _as_os_error(error, path) from None
    with open(path, "r+b") as handle:
        size = int.from_bytes(handle.read(8), "little")
        header = handle.read(size)
        entries = json.loads(header)
        if "__metadata__" in entries:
            entries["__metadata__"] = dict(sorted(entries["__metadata__"].items()))
        canonical = json.dumps(entries, separators=(",", ":"), ensure_ascii=False).encode()
        canonical += b" " * (size - len(canonical))  # safetensors pads its header with spaces
        if len(canonical) != size:
            raise AssertionError(f"the rewritten safetensors header of {path} changed its length")
        handle.seek(8)
        handle.write(canonical)


def _as_os_error(error: Exception, path: Path) -> Exception:
    """safetensors reports a failed write as ``SafetensorError("... I/O error: <reason> (os error N)")``: the
    OSError it stands for, or the error itself when it is not an I/O failure."""
    found = re.search(r"I/O error: .*\(os error (\d+)\)", str(error))
    if found is None:
        return error
    number = int(found.group(1))
    return OSError(number, os.strerror(number), str(path))


def read_config(directory: str | Path, *, model_type: str) -> dict[str, Any]:
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
            f"({__version__}) reads format_version {FORMAT_VERSION}: upgrade condfip or re-save it"
        )
    if not isinstance(config.get("architecture"), dict):
        raise ValueError(f"{path} has no 'architecture' section")
    if not isinstance(config.get("training", {}), dict):
        raise ValueError(f"{path} has a 'training' section that is not a JSON object; re-save the checkpoint")
    return config


def read_weights(path: Path) -> dict[str, torch.Tensor]:
    if not path.is_file():
        raise ValueError(f"{path.parent} is not a Cond-FiP checkpoint: {path.name} is missing")
    try:
        return load_file(str(path))
    except Exception as error:  # safetensors raises its own error types for truncated or corrupted files
        raise ValueError(f"cannot read {path}: {error}; the file is truncated or corrupted") from error


def read_checkpoint_weights(directory: str | Path) -> tuple[dict[str, torch.Tensor], Path]:
    """The tensors of a checkpoint folder, from ``model.safetensors`` or from shards and their index, and the
    file they were read from (for messages)."""
    directory = Path(directory)
    index_path = directory / INDEX_NAME
    if not index_path.is_file():
        return read_weights(directory / WEIGHTS_NAME), directory / WEIGHTS_NAME
    if (directory / WEIGHTS_NAME).is_file():
        raise ValueError(
            f"{directory} holds both {WEIGHTS_NAME} and {INDEX_NAME}; keep one form of the weights (re-save it)"
        )
    try:
        index = json.loads(index_path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"cannot read {index_path}: {error}; the file is corrupted, re-save it") from error
    weight_map = index.get("weight_map") if isinstance(index, dict) else None
    if not isinstance(weight_map, dict) or not all(
        isinstance(name, str) and isinstance(file_name, str) and _SHARD_NAME.match(file_name)
        for name, file_name in weight_map.items()
    ):
        raise ValueError(
            f"{index_path} must map every tensor name to a shard file named model-NNNNN-of-NNNNN.safetensors "
            "in 'weight_map'; re-save the checkpoint"
        )
    tensors: dict[str, torch.Tensor] = {}
    for file_name in sorted(set(weight_map.values())):
        shard = read_weights(directory / file_name)
        listed = {name for name, owner in weight_map.items() if owner == file_name}
        if set(shard) != listed:
            surprises = sorted(set(shard) ^ listed)
            raise ValueError(
                f"{directory / file_name} does not hold the tensors {index_path.name} assigns to it "
                f"(differing: {_names(surprises)}); re-save the checkpoint"
            )
        tensors.update(shard)
    return tensors, index_path


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


def wrong_kinds(expected: dict[str, torch.Tensor], found: dict[str, torch.Tensor]) -> list[str]:
    """The tensors of ``found`` of another kind than the model's own in ``expected`` (an integer tensor for
    float weights, or the reverse), as ``"name (int32, expected float32)"``: what loading refuses."""
    return [
        f"{name} ({_dtype_name(found[name].dtype)}, expected {_dtype_name(tensor.dtype)})"
        for name, tensor in expected.items()
        if name in found and _kind(found[name].dtype) != _kind(tensor.dtype)
    ]


def non_finite(found: dict[str, torch.Tensor]) -> list[str]:
    """The names, sorted, of the floating-point tensors of ``found`` that hold NaN or infinities: what loading
    refuses."""
    return sorted(
        name for name, tensor in found.items() if tensor.is_floating_point() and not _all_finite(tensor)
    )


def _all_finite(tensor: torch.Tensor) -> bool:
    if tensor.element_size() == 1:  # torch has no isfinite for the 8-bit float types: compare them widened
        tensor = tensor.float()
    return bool(torch.isfinite(tensor).all())


def check_values(expected: dict[str, torch.Tensor], found: dict[str, torch.Tensor], source: Path) -> None:
    """Refuse tensors of another kind than the model's (``wrong_kinds``) and floating-point tensors holding
    NaN or infinities (``non_finite``), naming them."""
    wrong_kind = wrong_kinds(expected, found)
    if wrong_kind:
        raise ValueError(
            f"{source} holds tensors of the wrong type: {_names(wrong_kind)}; the file is corrupted or was not "
            "written for this model, re-save the checkpoint"
        )
    broken = non_finite(found)
    if broken:
        raise ValueError(
            f"{source} holds NaN or infinite values in {_names(broken)}; a trained network has finite "
            "weights: the file is corrupted, or the run that wrote it diverged"
        )


def check_storable(
    expected: dict[str, torch.Tensor], stored: dict[str, torch.Tensor], dtype: torch.dtype | None
) -> None:
    """Refuse to save tensors ``stored`` (the model's own ``expected``, cast to ``dtype`` when given) that
    loading would refuse (``wrong_kinds``, ``non_finite``), naming them, before any file is written."""
    wrong_kind = wrong_kinds(expected, stored)
    if wrong_kind:
        raise ValueError(
            f"cannot save the checkpoint: dtype={dtype} stores tensors of the wrong type: {_names(wrong_kind)}, "
            "which loading refuses; store floating-point weights in a floating-point type (torch.bfloat16 "
            "halves the files)"
        )
    broken = non_finite(stored)
    if broken:
        stored_as = "" if dtype is None else f" once stored as {dtype}"
        raise ValueError(
            f"cannot save the checkpoint: NaN or infinite values in {_names(broken)}{stored_as}, which loading "
            "refuses; save finite weights (those of a run before it diverged)"
            + ("" if dtype is None else ", or store them in a type whose range holds them (torch.bfloat16)")
        )


def _kind(dtype: torch.dtype) -> str:
    if dtype == torch.bool:
        return "bool"
    return "float" if dtype.is_floating_point else "complex" if dtype.is_complex else "integer"


def _dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


def load_weights(model: torch.nn.Module, directory: str | Path) -> None:
    """Load a checkpoint folder's tensors into ``model``, in the model's dtypes; refuses missing, extra and
    misshapen tensors, tensors of the wrong kind and non-finite values with a message naming them."""
    tensors, weights_path = read_checkpoint_weights(directory)
    expected = model.state_dict()
    check_tensors(expected, tensors, weights_path)
    check_values(expected, tensors, weights_path)
    config: Any = {}
    with contextlib.suppress(OSError, ValueError):  # an unreadable config.json is read_config's to report
        config = json.loads((Path(directory) / CONFIG_NAME).read_text())
    if isinstance(config, dict):
        check_digest(Path(directory), config)
    model.load_state_dict({name: tensor.to(expected[name].dtype) for name, tensor in tensors.items()})
