"""Publishing an export directory to the Hugging Face Hub."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from scm_gen.summary import read_summary

_REPO_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*$")


class HubError(OSError):
    """The Hub could not be reached, or it refused the repository or the upload."""


def push_to_hub(
    directory: str | os.PathLike,
    repo_id: str,
    *,
    private: bool = False,
    token: str | None = None,
    api: Any = None,
    commit_message: str | None = None,
) -> str:
    """Upload an export directory as the dataset repository `repo_id` ("owner/name"); returns its URL.

    `api` is a `huggingface_hub.HfApi` (made from `token` when None); anything with the same `create_repo`
    and `upload_folder` methods works, which is how the tests run without a network. Network, offline-mode
    and authentication failures raise `HubError` (an `OSError`) with the Hub client's message.
    """
    if not isinstance(repo_id, str) or not _REPO_ID.match(repo_id):
        raise ValueError(f"repo={repo_id!r} must look like OWNER/NAME (letters, digits, '.', '_', '-')")
    summary = read_summary(directory)
    if not (Path(directory) / "README.md").is_file():
        raise ValueError(f"directory={str(directory)!r} has no README.md dataset card; export it again")
    if api is None:
        from huggingface_hub import HfApi

        api = HfApi(token=token)
    try:
        api.create_repo(repo_id=repo_id, repo_type="dataset", private=private, exist_ok=True)
        api.upload_folder(
            folder_path=str(directory),
            repo_id=repo_id,
            repo_type="dataset",
            commit_message=commit_message
            or f"Upload {summary['title']} (scm-gen {summary['scm_gen_version']})",
        )
    except Exception as error:  # the client's errors differ between versions (requests, httpx, its own)
        raise HubError(
            f"could not push {str(directory)!r} to the Hugging Face Hub dataset {repo_id!r}: "
            f"{type(error).__name__}: {error}"
        ) from error
    return f"https://huggingface.co/datasets/{repo_id}"
