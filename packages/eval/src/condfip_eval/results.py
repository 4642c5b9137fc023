"""A results directory: a manifest naming the version, protocol and environment of each run kind, and files
written atomically (temporary file, then rename), so an interrupted run leaves only whole files and can resume.

Files and folders get the permissions the umask gives (``0o666`` and ``0o777`` before the umask), like any
file a shell command writes. An OS error while writing (read-only folder, full disk) names the target file,
never a temporary one.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from condfip.api.arguments import is_real
from condfip.io.atomic import atomic_file
from condfip_eval import __version__

__all__ = [
    "ResultsDirError",
    "ResultsDirectory",
    "finished_records",
    "read_json",
    "read_result_file",
    "result_file_error",
    "run_folders",
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


ID_KEYS = {"datasets": "index", "replicates": "replicate"}  # what names a record in each kind of list


def finished_records(path: Path, key: str) -> list[dict[str, Any]]:
    """The records under ``key`` of a result file that ended without an error (failed ones are retried)."""
    if not Path(path).exists():
        return []
    document = read_result_file(path, key)
    return [record for record in document[key] if "error" not in record]


def run_folders(parent: Path, pattern: re.Pattern[str]) -> list[Path]:
    """The folders directly under ``parent`` whose whole name matches ``pattern`` (the run folders condfip-eval
    writes; others are not its own and are left alone), sorted by name."""
    if not Path(parent).is_dir():
        return []
    return sorted(p for p in Path(parent).iterdir() if p.is_dir() and pattern.fullmatch(p.name))


def _is_number(value: Any) -> bool:
    return is_real(value) and math.isfinite(value)


def _record_problem(record: Any, key: str, numbers: Sequence[str], tasks: Sequence[str]) -> str | None:
    """What is wrong with one record of a result file, or None."""
    if not isinstance(record, dict):
        return "is not a JSON object"
    identifier = ID_KEYS[key]
    if isinstance(record.get(identifier), bool) or not isinstance(record.get(identifier), int):
        return f"has no integer {identifier!r}"
    scores = record.get("graph_scores")
    if scores is not None and (
        not isinstance(scores, dict) or not all(_is_number(value) for value in scores.values())
    ):
        return "has graph scores that are not finite numbers"
    if "error" in record:
        return None if isinstance(record["error"], str) else "has an 'error' that is not text"
    for name in numbers:
        if not _is_number(record.get(name)):
            return f"has no finite number {name!r} (and no error)"
    if tasks:
        rmse = record.get("rmse")
        if not isinstance(rmse, dict):
            return "has no 'rmse' scores (and no error)"
        for task in tasks:
            if not _is_number(rmse.get(task)):
                return f"has no finite RMSE of the {task!r} task (and no error)"
    return None


def result_file_error(path: Path, problem: str) -> ResultsDirError:
    """The error for a result file that a run did not write, or that was damaged since."""
    return ResultsDirError(
        f"{path} is not an intact condfip-eval result file: {problem}; move it away (the run that wrote it "
        "recomputes it) or restore it"
    )


def read_result_file(
    path: Path,
    key: str,
    *,
    numbers: Sequence[str] = (),
    tasks: Sequence[str] = (),
    method: str | None = None,
) -> dict[str, Any]:
    """A result file of a run, checked: a JSON object naming its ``method`` (the one its path gives, if
    ``method``), with a list ``key`` (``"datasets"`` or ``"replicates"``) of records, each with a distinct
    integer id and either an ``error`` or every one of ``numbers`` and an RMSE of each of ``tasks`` as finite
    numbers. Anything else is a ``ResultsDirError`` naming the file and the first problem."""
    document = read_json(path)
    if not isinstance(document, dict):
        raise result_file_error(path, "it is not a JSON object")
    if not isinstance(document.get("method"), str):
        raise result_file_error(path, "it names no method")
    if method is not None and document["method"] != method:
        raise result_file_error(
            path, f"it holds results of method {document['method']!r}, not of {method!r} as its name says"
        )
    records = document.get(key)
    if not isinstance(records, list):
        raise result_file_error(path, f"it has no {key!r} list")
    seen = set()
    for position, record in enumerate(records):
        problem = _record_problem(record, key, numbers, tasks)
        if problem is None and record[ID_KEYS[key]] in seen:
            problem = f"repeats {ID_KEYS[key]} {record[ID_KEYS[key]]}"
        if problem is not None:
            raise result_file_error(path, f"entry {position} of {key!r} {problem}")
        seen.add(record[ID_KEYS[key]])
    return document


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
            or not isinstance(manifest.get("condfip_eval_version"), str)
            or not isinstance(manifest.get("runs"), dict)
            or not all(isinstance(protocol, dict) for protocol in manifest["runs"].values())
            or not isinstance(manifest.get("environment", {}), dict)
            or not isinstance(manifest.get("weights", {}), dict)
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
