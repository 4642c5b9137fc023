"""What a run's numbers depend on besides its protocol: package versions and the hashes of the weights used.

``package_versions()`` reads installed distributions' metadata (nothing is imported); ``weights_sha256(name)``
hashes the ``model.safetensors`` of Cond-FiP weights given as a local folder, a checkpoint shipped inside the
``condfip`` package, or a Hugging Face Hub id already in the local cache (never downloaded here).
"""

from __future__ import annotations

import hashlib
import platform
from importlib import metadata
from pathlib import Path

__all__ = ["RECORDED_PACKAGES", "package_versions", "weights_sha256"]

RECORDED_PACKAGES = ("condfip-eval", "condfip", "scm-gen", "dag-attention", "torch", "numpy", "dowhy")
WEIGHTS_FILE = "model.safetensors"


def package_versions() -> dict[str, str]:
    """Python's version and that of each installed package of ``RECORDED_PACKAGES`` (absent ones left out)."""
    versions = {"python": platform.python_version()}
    for name in RECORDED_PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _shipped_weights(name: str) -> Path | None:
    """``<name>/model.safetensors`` anywhere inside the installed condfip package, if there is exactly one."""
    try:
        import condfip
    except ImportError:
        return None
    root = Path(condfip.__file__).parent
    found = [path for path in root.rglob(f"{name}/{WEIGHTS_FILE}") if path.parent.name == name]
    return found[0] if len(found) == 1 else None


def _cached_hub_weights(repo_id: str) -> Path | None:
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return None
    try:
        cached = try_to_load_from_cache(repo_id, WEIGHTS_FILE)
    except ValueError:  # not a repo id (huggingface_hub's validation error is a ValueError)
        return None
    return Path(cached) if isinstance(cached, str) else None


def weights_sha256(name: str) -> str | None:
    """sha256 of the ``model.safetensors`` that ``CondFiP.from_pretrained(name)`` reads, or None when it is not
    a single local file (sharded weights, or a Hub id not in the local cache)."""
    local = Path(name)
    if local.is_dir():
        path = local / WEIGHTS_FILE
    else:
        is_hub_id = name.count("/") == 1 and not name.startswith((".", "/")) and not local.exists()
        path = _cached_hub_weights(name) if is_hub_id else _shipped_weights(name) if "/" not in name else None
    if path is None or not path.is_file():
        return None
    return _file_sha256(path)
