"""Hugging Face Hub: download a checkpoint through the standard cache, upload one through any HfApi-like client."""

from __future__ import annotations

import re
import tempfile
from pathlib import Path
from typing import Any

from condfip.io.checkpoint import CHECKPOINT_FILES, SHARDED_FILES

MODEL_CARD = """---
library_name: condfip
tags:
- causal-inference
- structural-causal-model
- cond-fip
---
# Cond-FiP checkpoint

Zero-shot inference of additive-noise structural causal models (Cond-FiP, arXiv 2410.06128) with the
`condfip` package:

```python
from condfip import CondFiP
model = CondFiP.from_pretrained("{repo_id}")
scm = model.infer(data, graph)   # graph convention: adjacency[i, j] = 1 means the edge i -> j
```

Files: `model.safetensors` (weights) and `config.json` (architecture and training recipe).
"""


_REPO_PART = re.compile(r"[A-Za-z0-9_](?:[A-Za-z0-9_.-]*[A-Za-z0-9_])?")
MAX_REPO_NAME = 96  # characters of a Hub repo name


def check_repo_id(repo_id: object) -> str:
    """``repo_id`` if it is a Hugging Face Hub repo id ``owner/name`` by the Hub's rules (letters, digits,
    ``-``, ``_`` and ``.``; neither part starts or ends with ``-`` or ``.``; no ``--`` or ``..``; not ending in
    ``.git``; a name of at most 96 characters), else a ValueError naming the rule it breaks."""
    if not isinstance(repo_id, str):
        raise ValueError(f"repo_id must be a string 'owner/name', got {type(repo_id).__name__}")
    refused = f"{repo_id!r} is not a Hugging Face Hub repo id:"
    parts = repo_id.split("/")
    if len(parts) != 2 or not all(parts):
        raise ValueError(f"{refused} it must have the form 'owner/name' (one '/' between two names)")
    if not all(_REPO_PART.fullmatch(part) for part in parts):
        raise ValueError(
            f"{refused} the owner and the name hold only letters, digits, '-', '_' and '.', and neither starts "
            "or ends with '-' or '.'"
        )
    if "--" in repo_id or ".." in repo_id or repo_id.endswith(".git") or len(parts[1]) > MAX_REPO_NAME:
        raise ValueError(
            f"{refused} the Hub refuses '--' and '..', a name ending in '.git' and names longer than "
            f"{MAX_REPO_NAME} characters"
        )
    return repo_id


def hub_offline() -> bool:
    """Whether huggingface_hub runs in offline mode (``HF_HUB_OFFLINE=1``, read when it is imported)."""
    from huggingface_hub import constants

    return bool(constants.HF_HUB_OFFLINE)


def _offline_upload(repo_id: str) -> ValueError:
    return ValueError(
        f"cannot upload to {repo_id!r}: huggingface_hub is in offline mode (HF_HUB_OFFLINE=1), which allows no "
        "upload; unset HF_HUB_OFFLINE (huggingface_hub reads it at import: start a new Python process without "
        "it, with network access) and call push_to_hub again"
    )


def download_checkpoint(
    repo_id: str,
    *,
    revision: str | None = None,
    cache_dir: str | Path | None = None,
    local_files_only: bool = False,
) -> Path:
    """The cached snapshot folder of ``repo_id`` (downloaded first when online and not cached)."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import (
        HfHubHTTPError,
        LocalEntryNotFoundError,
        OfflineModeIsEnabled,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    try:
        folder = snapshot_download(
            repo_id,
            revision=revision,
            cache_dir=cache_dir,
            local_files_only=local_files_only,
            allow_patterns=[*CHECKPOINT_FILES, *SHARDED_FILES],
        )
    except (LocalEntryNotFoundError, OfflineModeIsEnabled):
        raise ValueError(
            f"checkpoint {repo_id!r} is not in the Hugging Face cache and cannot be downloaded now (offline: "
            "HF_HUB_OFFLINE=1, local_files_only=True or no network); download it once online, or pass a "
            "local folder or a shipped name such as 'small'"
        ) from None
    except (RepositoryNotFoundError, RevisionNotFoundError) as error:
        raise ValueError(
            f"Hugging Face Hub has no checkpoint {repo_id!r} (revision {revision!r}): {error.__class__.__name__}; "
            "check the repo id (and your token for a private repo)"
        ) from None
    except HfHubHTTPError as error:
        raise ValueError(f"could not download {repo_id!r} from the Hugging Face Hub: {error}") from None
    return Path(folder)


def push_checkpoint(
    save: Any,
    repo_id: str,
    *,
    api: Any = None,
    private: bool | None = None,
    token: str | None = None,
    commit_message: str = "Upload Cond-FiP checkpoint",
) -> Any:
    """Write a checkpoint with ``save(folder)`` and upload it, with a model card, to ``repo_id``.

    ``api`` is a ``huggingface_hub.HfApi`` (default) or any object with ``create_repo`` and ``upload_folder``.
    Returns what ``upload_folder`` returns. A repo id that breaks the Hub's rules (:func:`check_repo_id`) is
    refused before anything is written or uploaded, and so is huggingface_hub's offline mode
    (``HF_HUB_OFFLINE=1``) for the default client; a client's own offline error becomes the same ValueError.
    """
    from huggingface_hub.errors import OfflineModeIsEnabled

    check_repo_id(repo_id)
    if api is None:
        if hub_offline():
            raise _offline_upload(repo_id)
        from huggingface_hub import HfApi

        api = HfApi()
    with tempfile.TemporaryDirectory(prefix="condfip-push-") as folder:
        save(folder)
        (Path(folder) / "README.md").write_text(MODEL_CARD.replace("{repo_id}", repo_id), encoding="utf-8")
        try:
            api.create_repo(repo_id, token=token, private=private, exist_ok=True)
            return api.upload_folder(
                repo_id=repo_id, folder_path=folder, commit_message=commit_message, token=token
            )
        except OfflineModeIsEnabled:  # an HfApi given as api, in offline mode
            raise _offline_upload(repo_id) from None
