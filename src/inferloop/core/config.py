"""Typed access to ``params.yaml``: one section per stage, loaded on demand.

Nothing is read at import. A stage calls :func:`load_section` once with the dataclass that
describes its section; unknown keys are an error (a typo in params.yaml must not be ignored).
"""

from __future__ import annotations

import dataclasses
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

import yaml

__all__ = [
    "ParamsError",
    "T",
    "as_dict",
    "from_dict",
    "load_section",
    "read_params",
]


T = TypeVar("T")


class ParamsError(ValueError):
    """A params file or section is missing or does not match its dataclass."""


def read_params(path: str | Path = "params.yaml") -> dict[str, Any]:
    """Read a params YAML file into a dict, with a clear error when it is missing or malformed."""
    p = Path(path)
    if not p.is_file():
        raise ParamsError(f"params file not found: {p}")
    loaded = yaml.safe_load(p.read_text())
    if not isinstance(loaded, dict):
        raise ParamsError(f"params file {p} must hold a mapping of sections, got {type(loaded)}")
    return loaded


def load_section(cls: type[T], section: str, path: str | Path = "params.yaml") -> T:
    """Load one top-level section of a params file into the dataclass ``cls``."""
    params = read_params(path)
    if section not in params:
        raise ParamsError(f"section '{section}' missing from {path}")
    return from_dict(cls, params[section], where=section)


def from_dict(cls: type[T], data: Any, *, where: str = "") -> T:
    """Build dataclass ``cls`` from a (nested) mapping, checking key names.

    Nested dataclass fields are built recursively; tuples/lists are converted to tuples.
    """
    if not dataclasses.is_dataclass(cls):
        raise TypeError(f"{cls!r} is not a dataclass")
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ParamsError(f"{where or cls.__name__}: expected a mapping, got {data!r}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ParamsError(
            f"{where or cls.__name__}: unknown keys {unknown}; allowed {sorted(names)}"
        )
    kwargs = {key: _coerce(hints[key], value, f"{where}.{key}") for key, value in data.items()}
    try:
        return cls(**kwargs)
    except TypeError as exc:  # missing required keys
        raise ParamsError(f"{where or cls.__name__}: {exc}") from exc


def _coerce(hint: Any, value: Any, where: str) -> Any:
    """Convert a YAML value to the annotated type where the conversion is unambiguous."""
    origin = typing.get_origin(hint)
    if dataclasses.is_dataclass(hint) and isinstance(hint, type):
        return from_dict(hint, value, where=where)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        if value is None:
            return None
        return _coerce(args[0], value, where) if len(args) == 1 else value
    if origin is tuple and isinstance(value, list | tuple):
        inner = typing.get_args(hint)[0] if typing.get_args(hint) else Any
        return tuple(_coerce(inner, v, where) for v in value)
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    return value


def as_dict(obj: Any) -> dict[str, Any]:
    """A dataclass as a plain dict (for logging params to MLflow)."""
    return dataclasses.asdict(obj)
