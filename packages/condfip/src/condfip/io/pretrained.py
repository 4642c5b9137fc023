"""Resolving ``from_pretrained(name_or_path)``: a shipped name, a local folder, or a Hugging Face Hub repo id.

A shipped checkpoint is a folder ``condfip/pretrained/<name>/`` holding ``model.safetensors`` and
``config.json``; it is found through ``importlib.resources``, so it works offline from an installed wheel.
"""

from __future__ import annotations

import json
import os
from importlib import resources
from pathlib import Path

from condfip.io.atomic import existing_directory
from condfip.io.checkpoint import CHECKPOINT_FILES, CONFIG_NAME, INDEX_NAME, SHARDED_FILES, WEIGHTS_NAME
from condfip.io.hub import check_repo_id, download_checkpoint


def shipped_root() -> Path:
    """The folder inside the installed package where shipped checkpoints live as sub-folders."""
    return Path(str(resources.files("condfip"))) / "pretrained"


def _missing_files(folder: Path) -> list[str]:
    """The files a checkpoint folder lacks: config.json, and the weights in one file or as indexed shards."""
    missing = [] if (folder / CONFIG_NAME).is_file() else [CONFIG_NAME]
    if not ((folder / WEIGHTS_NAME).is_file() or (folder / INDEX_NAME).is_file()):
        missing.append(WEIGHTS_NAME)
    return missing


def _is_checkpoint(folder: Path) -> bool:
    return folder.is_dir() and not _missing_files(folder)


def _model_type(folder: Path) -> str:
    """The ``model_type`` a checkpoint's config.json declares; "condfip" when it cannot be read (the loader
    then reports what is wrong with it)."""
    try:
        config = json.loads((folder / CONFIG_NAME).read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return "condfip"
    return str(config.get("model_type", "condfip")) if isinstance(config, dict) else "condfip"


def shipped_checkpoints(root: Path | None = None, *, model_type: str = "condfip") -> dict[str, Path]:
    """Name -> folder of every complete checkpoint of kind ``model_type`` shipped in ``root`` (default: inside
    this package). Kinds: "condfip" (the Cond-FiP network) and "graph" (the amortized graph model)."""
    root = shipped_root() if root is None else Path(root)
    if not root.is_dir():
        return {}
    return {
        folder.name: folder
        for folder in sorted(root.iterdir())
        if _is_checkpoint(folder) and _model_type(folder) == model_type
    }


def _check_folder(folder: Path) -> Path:
    missing = _missing_files(folder)
    if missing:
        raise ValueError(
            f"checkpoint folder {str(folder)!r} lacks {missing}; a checkpoint is a folder with "
            f"{' and '.join(CHECKPOINT_FILES)} (or, for large weights, {SHARDED_FILES[0]} and its shards), written by "
            "save_pretrained"
        )
    return folder


def looks_like_path(name_or_path: str | Path) -> bool:
    """Whether ``name_or_path`` can only mean a local folder, not a Hub repo id ``owner/name``: a ``Path``, or
    text that starts with ``.``, ``/`` or ``~``, is absolute, holds a second ``/`` or another separator of this
    system (``\\`` on Windows), or names an existing file."""
    if not isinstance(name_or_path, str):
        return True
    separators = [separator for separator in (os.sep, os.altsep) if separator not in (None, "/")]
    return (
        name_or_path.startswith((".", "/", "~"))
        or os.path.isabs(name_or_path)
        or name_or_path.count("/") > 1
        or any(separator in name_or_path for separator in separators)
        or Path(name_or_path).exists()
    )


def _no_folder(text: str) -> ValueError:
    """The error for a path ``text`` that holds no checkpoint folder: a file, or nothing at all."""
    path = Path(text).expanduser()
    absolute = os.path.abspath(path)
    where = repr(text) if absolute == text else f"{text!r} ({absolute})"
    if path.exists():
        return ValueError(
            f"{where} is a file, not a checkpoint folder; pass the folder that holds "
            f"{' and '.join(CHECKPOINT_FILES)} (written by save_pretrained)"
        )
    return ValueError(
        f"no checkpoint folder at {where}; check the path (relative paths start from the working directory), "
        "or write a checkpoint there with save_pretrained"
    )


def resolve_checkpoint(
    name_or_path: str | Path,
    *,
    revision: str | None = None,
    cache_dir: str | Path | None = None,
    local_files_only: bool = False,
    root: Path | None = None,
    model_type: str = "condfip",
) -> Path:
    """The local folder holding the checkpoint ``name_or_path`` refers to, downloading from the Hub if needed.

    Order: a shipped name (``"small"``), an existing local folder, then a Hub repo id ``owner/name`` (fetched
    through huggingface_hub's standard cache; offline, only a cached copy can be used). A name that can only be
    a path (``looks_like_path``) and names no folder is refused as such, never looked up on the Hub.
    """
    text = str(name_or_path)
    shipped = shipped_checkpoints(root, model_type=model_type)
    if text in shipped:
        return shipped[text]
    found = existing_directory(Path(text).expanduser())  # or the version a save interrupted mid-swap left
    if found is not None:
        return _check_folder(found)
    if looks_like_path(name_or_path):
        raise _no_folder(text)
    if text.count("/") == 1:
        try:
            folder = download_checkpoint(
                check_repo_id(text), revision=revision, cache_dir=cache_dir, local_files_only=local_files_only
            )
        except ValueError as error:  # the name may also have been meant as a local folder
            raise ValueError(f"{error}; no local folder {text!r} exists here either") from None
        return _check_folder(folder)
    names = ", ".join(repr(name) for name in shipped) or "none in this installation"
    raise ValueError(
        f"name_or_path={text!r} is not a shipped checkpoint (shipped: {names}), an existing folder, "
        "or a Hugging Face Hub repo id of the form 'owner/name'"
    )
