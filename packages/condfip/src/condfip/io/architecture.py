"""What both networks' frozen config dataclasses share: conversion to and from the ``architecture`` section of
a checkpoint's ``config.json``, and lookup by name or JSON file."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar, TypeVar

ConfigT = TypeVar("ConfigT", bound="Architecture")


class Architecture:
    """Mixin of a frozen dataclass of sizes; ``NAMED`` holds its named configurations ("small", "base")."""

    NAMED: ClassVar[Mapping[str, Any]] = {}
    KIND: ClassVar[str] = "config"  # how messages name a configuration of this kind

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)  # type: ignore[call-overload]

    @classmethod
    def from_dict(cls: type[ConfigT], values: dict[str, Any]) -> ConfigT:
        """The config of these fields; unknown fields are refused by name, missing ones take defaults."""
        known = {field.name for field in dataclasses.fields(cls)}  # type: ignore[arg-type]
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown {cls.__name__} fields {unknown}; known fields are {sorted(known)}")
        return cls(**values)

    @classmethod
    def from_json(cls: type[ConfigT], path: str | Path) -> ConfigT:
        """A config from a JSON file: the fields, or a checkpoint's config.json (its ``architecture``)."""
        try:
            values = json.loads(Path(path).read_text())
        except (OSError, json.JSONDecodeError) as error:
            raise ValueError(f"cannot read a {cls.__name__} from {path}: {error}") from error
        return cls.from_dict(values.get("architecture", values))

    @classmethod
    def named(cls: type[ConfigT], name: str) -> ConfigT:
        """One of the named configurations (``NAMED``)."""
        if name not in cls.NAMED:
            raise ValueError(f"unknown {cls.KIND} name {name!r}; expected one of {sorted(cls.NAMED)}")
        return cls.NAMED[name]

    @classmethod
    def from_name_or_file(cls: type[ConfigT], value: str, option: str = "--config") -> ConfigT:
        """A named configuration, or a JSON file of fields (what a ``--config`` option takes)."""
        if value in cls.NAMED:
            return cls.NAMED[value]
        if value.endswith(".json") and Path(value).is_file():
            return cls.from_json(value)
        raise ValueError(
            f"{option} must be one of {sorted(cls.NAMED)} or an existing JSON file, got {value!r}"
        )
