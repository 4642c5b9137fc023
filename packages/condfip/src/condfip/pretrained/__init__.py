"""Checkpoints shipped inside the package, and where a ``from_pretrained`` name or path points to.

A shipped checkpoint is a folder ``condfip/pretrained/<name>/`` holding ``model.safetensors`` and
``config.json``; it is found through ``importlib.resources``, so it works offline from an installed wheel.
"""

from condfip.pretrained.registry import (
    CHECKPOINT_FILES,
    resolve_checkpoint,
    shipped_checkpoints,
    shipped_root,
)

__all__ = ["CHECKPOINT_FILES", "resolve_checkpoint", "shipped_checkpoints", "shipped_root"]
