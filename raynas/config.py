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
import reprlib
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

from raynas.errors import RaynasError

C = TypeVar("C")

MAX_CONFIG_BYTES = 1 << 20  # 1 MiB: a config of every field of every section is a few KB
MAX_ALIAS_GROWTH = 100_000  # YAML aliases may repeat at most this many nodes and characters
MAX_QUOTED = 100  # characters of a value quoted in an error message

_repr = reprlib.Repr()
_repr.maxstring = _repr.maxother = MAX_QUOTED
_repr.maxlist = _repr.maxtuple = _repr.maxdict = _repr.maxset = 10
_repr.maxlevel = 3


def _short(text: str) -> str:
    return text if len(text) <= MAX_QUOTED else text[:MAX_QUOTED] + "..."


def quote(value: Any) -> str:
    """``repr(value)`` cut to about :data:`MAX_QUOTED` characters: a message never prints (nor
    builds) a huge value in full, such as a string or list a YAML alias bomb made."""
    return _short(_repr.repr(value))


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


def optional_fields(cls: type) -> set[str]:
    """Names of the fields that may be ``None``."""
    hints = typing.get_type_hints(cls)
    return {f.name for f in dataclasses.fields(cls) if type(None) in typing.get_args(hints[f.name])}


def check_fields(obj: Any) -> None:
    """Refuse values of the wrong type, non-finite numbers and numbers out of the declared range."""
    kinds, optional = field_types(type(obj)), optional_fields(type(obj))
    for f in dataclasses.fields(obj):
        value, kind = getattr(obj, f.name), kinds[f.name]
        if value is None:
            if f.name not in optional and kind in (int, float, bool, str, tuple):
                raise RaynasError(f"{_label(f)} must be given a value, got null",
                                  "give a value or leave the field out for its default")
            continue
        if kind in (int, float):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or (kind is int and not isinstance(
                    value, int) and not float(value).is_integer()):
                raise RaynasError(f"{_label(f)} must be {'an integer' if kind is int else 'a number'}, "
                                  f"got {quote(value)}")
            if not math.isfinite(value):
                raise RaynasError(f"{_label(f)} must be a finite number, got {value}")
            low, high, above = f.metadata.get("low"), f.metadata.get("high"), f.metadata.get("above")
            if (low is not None and value < low) or (high is not None and value > high) or (
                    above is not None and value <= above):
                bounds = [f"> {above:g}" if above is not None else None, f">= {low:g}" if low is not None else None,
                          f"<= {high:g}" if high is not None else None]
                raise RaynasError(f"{_label(f)} must be {' and '.join(b for b in bounds if b)}, got {quote(value)}")
        elif kind is bool and not isinstance(value, bool):
            raise RaynasError(f"{_label(f)} must be true or false, got {quote(value)}")
        elif kind is str and not isinstance(value, str):
            raise RaynasError(f"{_label(f)} must be a string, got {quote(value)}")
        elif kind is tuple and (not isinstance(value, (tuple, list)) or not all(isinstance(v, str) for v in value)):
            raise RaynasError(f"{_label(f)} must be a list of names, got {quote(value)}",
                              "give a flat list of strings, e.g. [sep_conv_3x3, skip_connect] in a config file "
                              "or a comma-separated list on the command line")


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
        raise RaynasError(f"{what} must be a mapping of field names to values, got {_kind_name(data)}")
    known = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted((k for k in data if k not in known), key=str)
    if unknown:
        shown = ", ".join(_short(k) if isinstance(k, str) else quote(k) for k in unknown[:10])
        more = f" and {len(unknown) - 10} more" if len(unknown) > 10 else ""
        raise RaynasError(f"unknown {what} field(s): {shown}{more}", f"known fields: {', '.join(known)}")
    kinds, optional, values = field_types(cls), optional_fields(cls), {}
    for name, value in data.items():
        kind = kinds[name]
        if value is None and dataclasses.is_dataclass(kind) and name not in optional:
            raise RaynasError(f"{what}.{name} must be a mapping of field names to values, got null",
                              f"give its fields under '{name}', or leave '{name}' out")
        if value is not None and dataclasses.is_dataclass(kind):
            value = from_json(kind, value, f"{what}.{name}")
        elif kind is tuple and value is not None and not isinstance(value, (list, tuple)):
            raise RaynasError(f"{what}.{name} must be a list of names, got {quote(value)}",
                              "give a flat list of strings, e.g. [sep_conv_3x3, skip_connect]")
        elif kind is tuple and isinstance(value, list):
            value = tuple(value)
        elif kind is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        values[name] = value
    try:
        return cls(**values)
    except TypeError as exc:  # a required field is missing
        raise RaynasError(f"{what}: {exc}") from None


def _kind_name(value: Any) -> str:
    return "null" if value is None else type(value).__name__


def _alias_growth(root: Any) -> int:
    """How much YAML aliases repeat: the document's size with every alias written out, less its
    size with each node counted once (a node counts 1, a scalar also its length). Shared nodes
    are sized once, so this is quick even for a "billion laughs" document."""
    import yaml

    expanded: dict[int, int | None] = {}  # None: being sized (an alias inside its own anchor)
    distinct = 0

    def size(node: Any) -> int:
        nonlocal distinct
        key = id(node)
        if key in expanded:
            if expanded[key] is None:
                raise RaynasError("it refers to itself through an alias (a recursive structure)",
                                  "write the values out; a config holds plain mappings, lists and values")
            return expanded[key]
        expanded[key] = None
        if isinstance(node, yaml.ScalarNode):
            own, children = 1 + len(node.value), []
        elif isinstance(node, yaml.MappingNode):
            own, children = 1, [n for pair in node.value for n in pair]
        else:
            own, children = 1, node.value
        distinct += own
        total = own + sum(size(child) for child in children)
        expanded[key] = total
        return total

    total = size(root)
    return total - distinct


def _load_yaml(text: str) -> Any:
    """``yaml.safe_load``, refusing documents whose aliases repeat more than
    :data:`MAX_ALIAS_GROWTH` nodes and characters: anchors still work in small configs, while an
    alias bomb is refused before anything is built from it (or printed). libyaml's parser is used
    when PyYAML has it: it reads a config at its size limit in seconds, not tens of seconds."""
    import yaml

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        growth = _alias_growth(node)
        if growth > MAX_ALIAS_GROWTH:
            raise RaynasError(f"its aliases (*name) would repeat {growth:,} nodes and characters, more than the "
                              f"{MAX_ALIAS_GROWTH:,} a config file may repeat (an alias bomb?)",
                              "write the values out instead of nesting aliases of aliases")
        return loader.construct_document(node)
    finally:
        loader.dispose()


def read_config_file(path: str | Path) -> dict[str, Any]:
    """A YAML or JSON mapping from ``path``, with errors that name the file. The file may hold
    at most :data:`MAX_CONFIG_BYTES` and its YAML aliases may repeat only a little, so a hostile
    file costs bounded time and memory."""
    import yaml

    path = Path(path)
    kind = "JSON" if path.suffix == ".json" else "YAML"
    try:
        with path.open("rb") as fh:
            raw = fh.read(MAX_CONFIG_BYTES + 1)
    except OSError as exc:
        raise RaynasError(f"cannot read config file {path}: {exc}", "give a readable YAML or JSON file") from None
    if len(raw) > MAX_CONFIG_BYTES:
        raise RaynasError(f"config file {path} is larger than {MAX_CONFIG_BYTES // 2**20} MiB, the most a config "
                          "file may hold", "check that this is the config file you meant: one that sets every "
                                           "field is a few KB")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise RaynasError(f"cannot read config file {path}: it is not UTF-8 text ({exc.reason} at byte {exc.start})",
                          "save it as UTF-8") from None
    try:
        data = json.loads(text) if kind == "JSON" else _load_yaml(text)
    except RaynasError as exc:
        raise RaynasError(f"config file {path} is refused: {exc.problem}", exc.fix) from None
    except (ValueError, yaml.YAMLError) as exc:
        raise RaynasError(f"config file {path} is not valid {kind}: {str(exc)[:500]}") from None
    except RecursionError:
        raise RaynasError(f"config file {path} is nested too deeply to read",
                          "a config holds sections of fields, nested two levels deep") from None
    if not isinstance(data, dict):
        raise RaynasError(f"config file {path} must hold a mapping of fields, got {_kind_name(data)}")
    return data
