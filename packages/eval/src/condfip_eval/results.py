"""A results directory: a manifest naming the version and protocol of each run kind, and JSON files written
atomically (temporary file, then rename), so an interrupted run leaves only whole files and can resume.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any

from condfip_eval import __version__

__all__ = ["ResultsDirError", "ResultsDirectory", "finished_records", "read_json", "write_json", "write_text"]

MANIFEST = "manifest.json"


class ResultsDirError(ValueError):
    """A results directory that this version must not write into or read."""


def _finite(value: Any) -> Any:
    """NaN and infinities become None (JSON has no NaN)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(item) for item in value]
    return value


def write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as file:
            file.write(text)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def write_json(path: Path, value: Any) -> None:
    write_text(path, json.dumps(_finite(value), indent=1, allow_nan=False) + "\n")


def finished_records(path: Path, key: str) -> list[dict[str, Any]]:
    """The records under ``key`` of a result file that ended without an error (failed ones are retried)."""
    if not Path(path).exists():
        return []
    return [record for record in read_json(path)[key] if "error" not in record]


def read_json(path: Path) -> Any:
    with open(path, encoding="utf-8") as file:
        return json.load(file)


class ResultsDirectory:
    """The folder of one or more runs (``paper``, ``csuite``, ``sachs``, ``ecoli70``) of this version.

    Opening it for a run kind checks the manifest: a folder written by another ``condfip-eval`` version, or by
    the same kind of run with another protocol (for example ``--quick`` against a full run), is refused with
    ``ResultsDirError``.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    @property
    def manifest_path(self) -> Path:
        return self.path / MANIFEST

    def manifest(self) -> dict[str, Any] | None:
        if not self.manifest_path.exists():
            return None
        try:
            manifest = read_json(self.manifest_path)
        except (OSError, json.JSONDecodeError) as error:
            raise ResultsDirError(
                f"{self.manifest_path} is unreadable ({error}); use another --out"
            ) from error
        if not isinstance(manifest, dict) or "condfip_eval_version" not in manifest:
            raise ResultsDirError(f"{self.manifest_path} is not a condfip-eval manifest; use another --out")
        return manifest

    def check_readable(self) -> dict[str, Any]:
        """The manifest of an existing results folder of this version."""
        manifest = self.manifest()
        if manifest is None:
            raise ResultsDirError(f"{self.path} holds no condfip-eval results ({MANIFEST} is missing)")
        self._check_version(manifest)
        return manifest

    def _check_version(self, manifest: dict[str, Any]) -> None:
        if manifest["condfip_eval_version"] != __version__:
            raise ResultsDirError(
                f"{self.path} holds results of condfip-eval {manifest['condfip_eval_version']}, this is "
                f"{__version__}; use a new --out folder"
            )

    def open_run(self, kind: str, protocol: dict[str, Any]) -> None:
        """Record (or check) the protocol of run ``kind``; creates the folder and manifest when missing."""
        manifest = self.manifest()
        if manifest is None:
            if self.path.exists() and any(self.path.iterdir()):
                raise ResultsDirError(
                    f"{self.path} is not empty and has no {MANIFEST}; use a new --out folder"
                )
            manifest = {"condfip_eval_version": __version__, "runs": {}}
        self._check_version(manifest)
        protocol = _finite(protocol)
        recorded = manifest["runs"].get(kind)
        if recorded is not None and recorded != protocol:
            changed = sorted(
                key for key in set(recorded) | set(protocol) if recorded.get(key) != protocol.get(key)
            )
            raise ResultsDirError(
                f"{self.path} holds a {kind} run with other settings ({', '.join(changed)}); use a new --out folder"
            )
        manifest["runs"][kind] = protocol
        write_json(self.manifest_path, manifest)
