"""Hugging Face Hub: download a checkpoint through the standard cache, upload one through any HfApi-like client."""

from __future__ import annotations

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
    Returns what ``upload_folder`` returns.
    """
    if api is None:
        from huggingface_hub import HfApi

        api = HfApi()
    with tempfile.TemporaryDirectory(prefix="condfip-push-") as folder:
        save(folder)
        (Path(folder) / "README.md").write_text(MODEL_CARD.replace("{repo_id}", repo_id), encoding="utf-8")
        api.create_repo(repo_id, token=token, private=private, exist_ok=True)
        return api.upload_folder(
            repo_id=repo_id, folder_path=folder, commit_message=commit_message, token=token
        )
