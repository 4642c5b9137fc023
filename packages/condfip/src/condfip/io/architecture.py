"""What both networks' frozen config dataclasses share: conversion to and from the ``architecture`` section of
a checkpoint's ``config.json``, and lookup by name or JSON file."""

from __future__ import annotations

import dataclasses
import json
import math
import types
import typing
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
    def from_dict(cls: type[ConfigT], values: dict[str, Any], *, complete: bool = False) -> ConfigT:
        """The config of these fields; unknown fields and values of the wrong type (``"dim": "sixty-four"``,
        ``"dim": 64.0``) are refused by name. ``complete``: every field must be given (a checkpoint's
        architecture); otherwise missing ones take their defaults."""
        if not isinstance(values, dict):
            raise ValueError(f"a {cls.__name__} is a JSON object of fields, got {type(values).__name__}")
        fields = {field.name: field for field in dataclasses.fields(cls)}  # type: ignore[arg-type]
        unknown = sorted(set(values) - set(fields))
        if unknown:
            raise ValueError(f"unknown {cls.__name__} fields {unknown}; known fields are {sorted(fields)}")
        missing = sorted(set(fields) - set(values))
        if complete and missing:
            raise ValueError(
                f"the {cls.__name__} lacks the fields {missing}; a checkpoint states every field (no default is "
                "assumed for a stored network): add them, or re-save the checkpoint"
            )
        hints = typing.get_type_hints(cls)
        for name, value in values.items():
            _check_type(cls.__name__, name, value, hints[name])
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


def _check_type(owner: str, name: str, value: object, annotation: object) -> None:
    """Refuse ``value`` unless it has the field's type: int (not bool, not 64.0), float (finite; an int is
    fine), bool, str, or None where the annotation allows it."""
    allowed = typing.get_args(annotation) if isinstance(annotation, types.UnionType) else (annotation,)
    if value is None and type(None) in allowed:
        return
    for kind in allowed:
        if kind is bool and isinstance(value, bool):
            return
        if kind is int and isinstance(value, int) and not isinstance(value, bool):
            return
        if kind is float and isinstance(value, int | float) and not isinstance(value, bool):
            if math.isfinite(value):
                return
        if kind is str and isinstance(value, str):
            return
    if not all(kind in (bool, int, float, str, type(None)) for kind in allowed):
        return  # a field of another type: its dataclass checks it
    expected = " or ".join(
        {
            bool: "true/false",
            int: "an integer",
            float: "a finite number",
            str: "a string",
            type(None): "null",
        }[kind]
        for kind in allowed
    )
    raise ValueError(f"{owner}.{name} must be {expected}, got {value!r}")
