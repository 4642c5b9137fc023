"""A results directory: a manifest naming the version, protocol and environment of each run kind, and files
written atomically (temporary file, then rename), so an interrupted run leaves only whole files and can resume.

Files and folders get the permissions the umask gives (``0o666`` and ``0o777`` before the umask), like any
file a shell command writes. An OS error while writing (read-only folder, full disk) names the target file,
never a temporary one.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from condfip.io.atomic import atomic_file
from condfip_eval import __version__

__all__ = [
    "ResultsDirError",
    "ResultsDirectory",
    "finished_records",
    "read_json",
    "write_bytes",
    "write_json",
    "write_text",
]

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


def write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (``condfip.io.atomic``), with the permissions the umask gives a
    new file; an OS error names ``path`` (or its folder when that cannot be created), never the temporary."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise OSError(error.errno, error.strerror, str(path.parent)) from error
    try:
        with atomic_file(path) as temporary:
            temporary.write_bytes(data)
    except OSError as error:
        raise OSError(error.errno, error.strerror, str(path)) from error


def write_text(path: Path, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    write_bytes(path, text.encode("utf-8"))


def write_json(path: Path, value: Any) -> None:
    write_text(path, json.dumps(_finite(value), indent=1, allow_nan=False) + "\n")


def finished_records(path: Path, key: str) -> list[dict[str, Any]]:
    """The records under ``key`` of a result file that ended without an error (failed ones are retried)."""
    if not Path(path).exists():
        return []
    document = read_json(path)
    if not isinstance(document, dict) or not isinstance(document.get(key), list):
        raise ResultsDirError(f"{path} is not a condfip-eval result file (no {key!r} list); move it away")
    return [record for record in document[key] if "error" not in record]


def read_json(path: Path) -> Any:
    """The JSON document in ``path``; a file that is not JSON is a ``ResultsDirError`` naming it."""
    try:
        with open(path, encoding="utf-8") as file:
            return json.load(file)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        reason = error.msg if isinstance(error, json.JSONDecodeError) else "not UTF-8 text"
        raise ResultsDirError(
            f"{path} is not a JSON file ({reason}); move it away or use another folder"
        ) from None


def _merge_versions(recorded: dict[str, list[str]], current: dict[str, str]) -> dict[str, list[str]]:
    """Every version seen per package (one folder may be filled from several environments)."""
    merged = {name: list(versions) for name, versions in recorded.items()}
    for name, version in current.items():
        seen = merged.setdefault(name, [])
        if version not in seen:
            seen.append(version)
    return dict(sorted(merged.items()))


class ResultsDirectory:
    """The folder of one or more runs (``paper``, ``csuite``, ``sachs``, ``ecoli70``) of this version.

    ``check_run`` validates a run against the manifest without writing anything; ``open_run`` then records
    it. A folder written by another ``condfip-eval`` version, by the same kind of run with another protocol
    (for example ``--quick`` against a full run), or with other weights under the same name is refused with
    ``ResultsDirError``.

    Manifest: ``condfip_eval_version``; ``runs[kind]`` the protocol; ``environment[kind]`` every version of
    each package that wrote into the run; ``weights[name]`` the sha256 of the weights used under that name.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._pending: dict[str, Any] | None = None  # a manifest that the first result will write

    @property
    def manifest_path(self) -> Path:
        return self.path / MANIFEST

    def _check_folder(self) -> None:
        if self.path.exists() and not self.path.is_dir():
            raise ResultsDirError(
                f"{self.path} is a file, not a folder; give --out a folder (new or of results)"
            )
        for parent in self.path.parents:
            if parent.exists():
                if not parent.is_dir():
                    raise ResultsDirError(
                        f"{parent} is a file, so {self.path} cannot be created; use another --out"
                    )
                break

    def manifest(self) -> dict[str, Any] | None:
        self._check_folder()
        if not self.manifest_path.exists():
            return None
        try:
            manifest = read_json(self.manifest_path)
        except OSError as error:
            raise ResultsDirError(
                f"{self.manifest_path} is unreadable ({error.strerror}); use another --out"
            ) from error
        if (
            not isinstance(manifest, dict)
            or "condfip_eval_version" not in manifest
            or not isinstance(manifest.get("runs"), dict)
        ):
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

    def check_run(
        self, kind: str, protocol: dict[str, Any], weights: dict[str, str] | None = None
    ) -> dict[str, Any]:
        """The manifest that ``open_run`` would write, after every check; writes nothing."""
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
        known = manifest.get("weights", {})
        for name, digest in (weights or {}).items():
            if known.get(name) not in (None, digest):
                raise ResultsDirError(
                    f"{self.path} holds results of other weights named {name!r} (sha256 {known[name][:16]}..., "
                    f"these are {digest[:16]}...); use a new --out folder"
                )
        return {**manifest, "runs": {**manifest["runs"], kind: protocol}}

    def open_run(
        self,
        kind: str,
        protocol: dict[str, Any],
        *,
        environment: dict[str, str] | None = None,
        weights: dict[str, str] | None = None,
        defer: bool = False,
    ) -> None:
        """Record (or check) the protocol of run ``kind``, the package versions of ``environment`` and the
        ``weights`` hashes; creates the folder and manifest when missing. Nothing is left when it fails.

        ``defer``: write the manifest together with the first result (:meth:`write_result`), so that a run that
        fails before its first result leaves the folder as it was.
        """
        manifest = self.check_run(kind, protocol, weights)
        environments = manifest.get("environment", {})
        manifest["environment"] = {
            **environments,
            kind: _merge_versions(environments.get(kind, {}), environment or {}),
        }
        if weights:
            manifest["weights"] = dict(sorted({**manifest.get("weights", {}), **weights}.items()))
        if defer:
            self._pending = manifest
            return
        missing = [folder for folder in (self.path, *self.path.parents) if not folder.exists()]
        try:
            write_json(self.manifest_path, manifest)
        except BaseException:
            for folder in missing:  # the folders this call created, deepest first, while empty
                if folder.is_dir() and not any(folder.iterdir()):
                    folder.rmdir()
            raise

    def write_result(self, path: Path, value: Any) -> None:
        """Write one result file (JSON, atomically); the first one also writes the manifest of a deferred
        ``open_run``, and if either write fails both are undone (the folder is left as it was)."""
        if self._pending is None:
            write_json(path, value)
            return
        path = Path(path)
        previous = self.manifest_path.read_bytes() if self.manifest_path.exists() else None
        missing = [folder for folder in (path.parent, *path.parent.parents) if not folder.exists()]
        try:
            write_json(self.manifest_path, self._pending)
            write_json(path, value)
        except BaseException:
            if previous is None:
                self.manifest_path.unlink(missing_ok=True)
            else:
                write_bytes(self.manifest_path, previous)
            for folder in missing:  # deepest first, while empty
                if folder.is_dir() and not any(folder.iterdir()):
                    folder.rmdir()
            raise
        self._pending = None
