"""Typed configs: dataclass fields that carry their help, flag and range, one place for each.

Every config of raynas (search, retrain, race) is a frozen dataclass whose fields are made
with :func:`option`. From that one declaration come the defaults, the command-line flags
(:mod:`raynas.cli.options`), the validation (finite numbers, ranges: :func:`check_fields`)
and the JSON/YAML round trip (:func:`to_json`, :func:`from_json`, :func:`read_config_file`).
"""

from __future__ import annotations

import dataclasses
import json
import math
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

from raynas.errors import RaynasError

C = TypeVar("C")


def option(default: Any = dataclasses.MISSING, *, help: str = "", flag: str | None = None, low: float | None = None,
           high: float | None = None, above: float | None = None, cli: bool = True, **kwargs: Any) -> Any:
    """A config field: ``low``/``high`` are inclusive bounds, ``above`` an exclusive lower one;
    ``flag`` names the command-line flag when it is not ``--field-name``; ``cli=False`` keeps
    the field out of the command line (it can still be set from a config file)."""
    meta = {"help": help, "flag": flag, "low": low, "high": high, "above": above, "cli": cli}
    return dataclasses.field(default=default, metadata=meta, **kwargs)


def flag_name(f: dataclasses.Field) -> str:
    return f.metadata.get("flag") or "--" + f.name.replace("_", "-")


def _label(f: dataclasses.Field) -> str:
    return f"{f.name} ({flag_name(f)})" if f.metadata.get("cli", True) else f.name


def field_types(cls: type) -> dict[str, Any]:
    """Each field's type with ``None`` taken out of optional ones: int, float, str, bool, tuple or a dataclass."""
    hints = typing.get_type_hints(cls)
    out = {}
    for f in dataclasses.fields(cls):
        t = hints[f.name]
        if typing.get_origin(t) in (typing.Union, types.UnionType):
            t = next(a for a in typing.get_args(t) if a is not type(None))
        out[f.name] = typing.get_origin(t) or t
    return out


def check_fields(obj: Any) -> None:
    """Refuse values of the wrong type, non-finite numbers and numbers out of the declared range."""
    kinds = field_types(type(obj))
    for f in dataclasses.fields(obj):
        value, kind = getattr(obj, f.name), kinds[f.name]
        if value is None:
            continue
        if kind in (int, float):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or (kind is int and not isinstance(
                    value, int) and not float(value).is_integer()):
                raise RaynasError(f"{_label(f)} must be {'an integer' if kind is int else 'a number'}, got {value!r}")
            if not math.isfinite(value):
                raise RaynasError(f"{_label(f)} must be a finite number, got {value}")
            low, high, above = f.metadata.get("low"), f.metadata.get("high"), f.metadata.get("above")
            if (low is not None and value < low) or (high is not None and value > high) or (
                    above is not None and value <= above):
                bounds = [f"> {above:g}" if above is not None else None, f">= {low:g}" if low is not None else None,
                          f"<= {high:g}" if high is not None else None]
                raise RaynasError(f"{_label(f)} must be {' and '.join(b for b in bounds if b)}, got {value}")
        elif kind is bool and not isinstance(value, bool):
            raise RaynasError(f"{_label(f)} must be true or false, got {value!r}")
        elif kind is str and not isinstance(value, str):
            raise RaynasError(f"{_label(f)} must be a string, got {value!r}")


def to_json(obj: Any) -> Any:
    """A config (nested configs included) as JSON-ready values; tuples become lists."""
    if dataclasses.is_dataclass(obj):
        return {f.name: to_json(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, (list, tuple)):
        return [to_json(v) for v in obj]
    return obj


def from_json(cls: type[C], data: Any, what: str | None = None) -> C:
    """Build ``cls`` from a dict: unknown keys are errors, nested configs are built too, lists
    become tuples and whole numbers may be given for float fields."""
    what = what or cls.__name__
    if not isinstance(data, dict):
        raise RaynasError(f"{what} must be a mapping of field names to values, got {type(data).__name__}")
    known = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(known))
    if unknown:
        raise RaynasError(f"unknown {what} field(s): {', '.join(unknown)}", f"known fields: {', '.join(known)}")
    kinds, values = field_types(cls), {}
    for name, value in data.items():
        kind = kinds[name]
        if value is not None and dataclasses.is_dataclass(kind):
            value = from_json(kind, value, f"{what}.{name}")
        elif kind is tuple and isinstance(value, list):
            value = tuple(value)
        elif kind is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        values[name] = value
    try:
        return cls(**values)
    except TypeError as exc:  # a required field is missing
        raise RaynasError(f"{what}: {exc}") from None


def read_config_file(path: str | Path) -> dict[str, Any]:
    """A YAML or JSON mapping from ``path``, with errors that name the file."""
    import yaml

    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise RaynasError(f"cannot read config file {path}: {exc}", "give a readable YAML or JSON file") from None
    try:
        data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (ValueError, yaml.YAMLError) as exc:
        raise RaynasError(f"config file {path} is not valid {'JSON' if path.suffix == '.json' else 'YAML'}: {exc}"
                          ) from None
    if not isinstance(data, dict):
        raise RaynasError(f"config file {path} must hold a mapping of fields, got {type(data).__name__}")
    return data
