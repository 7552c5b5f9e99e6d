"""Command-line flags made from config dataclasses, and configs made from flags and files.

Each field declared with :func:`raynas.config.option` becomes a flag with the field's help
and default; nothing is restated here. Flags are only set when given (``SUPPRESS``), so
``--config FILE`` (YAML or JSON) can set any field and the flags given override it.
"""

from __future__ import annotations

import argparse
import dataclasses
from typing import Any

from raynas.config import field_types, flag_name
from raynas.errors import RaynasError


def _number(kind: type, flag: str):
    def parse(text: str):
        try:
            return kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{flag} takes {'an integer' if kind is int else 'a number'}, "
                                             f"got {text!r}") from None
    parse.__name__ = kind.__name__
    return parse


def _names(text: str) -> tuple[str, ...]:
    """Comma-separated names; empty ones are kept (``""`` gives ``("",)``) for the config to
    refuse with its own message, instead of an empty flag silently meaning the default."""
    return tuple(t.strip() for t in text.split(","))


def split_names(text: str | None, flag: str) -> list[str]:
    """The names of a comma-separated option; an empty option or an empty name between commas is
    refused (``--datasets ""`` must not mean every dataset). ``None`` (not given) gives []."""
    if text is None:
        return []
    names = [t.strip() for t in text.split(",")]
    if not any(names):
        raise RaynasError(f"{flag} is empty", f"name at least one, separated by commas, or leave {flag} out")
    if not all(names):
        raise RaynasError(f"{flag} {text!r} has an empty name", "remove the extra comma")
    return names


def add_config_flags(parser: argparse.ArgumentParser | Any, cls: type, section: str, *,
                     skip: tuple[str, ...] = (), rename: dict[str, str] | None = None) -> None:
    """Add a flag per command-line field of ``cls``; parsed values land in ``args`` as
    ``<section>.<field>``. ``rename`` gives some fields another flag here."""
    kinds, rename = field_types(cls), rename or {}
    for f in dataclasses.fields(cls):
        if f.name in skip or not f.metadata.get("cli", True):
            continue
        flag, kind, dest = rename.get(f.name) or flag_name(f), kinds[f.name], f"{section}.{f.name}"
        default = f.default if f.default is not dataclasses.MISSING else None
        text = f.metadata.get("help", "")
        if kind is bool:
            if default:  # on by default: the flag turns it off
                parser.add_argument("--no-" + flag[2:], dest=dest, action="store_false", default=argparse.SUPPRESS,
                                    help=text.replace("%", "%%") + " (on by default; this turns it off)")
            else:
                parser.add_argument(flag, dest=dest, action="store_true", default=argparse.SUPPRESS,
                                    help=text.replace("%", "%%"))
            continue
        parse = _number(kind, flag) if kind in (int, float) else _names if kind is tuple else str
        shown = ",".join(default) if isinstance(default, tuple) else default
        suffix = f" (default {shown})" if shown is not None and shown != () and "(default" not in text else ""
        parser.add_argument(flag, dest=dest, type=parse, default=argparse.SUPPRESS, metavar=flag[2:].upper(),
                            help=text.replace("%", "%%") + suffix)


def given(args: argparse.Namespace, section: str) -> dict[str, Any]:
    """The fields of ``section`` given on the command line."""
    prefix = section + "."
    return {k[len(prefix):]: v for k, v in vars(args).items() if k.startswith(prefix)}


def merged(file_values: dict[str, Any] | None, args: argparse.Namespace, section: str) -> dict[str, Any]:
    """A section's values: the config file's, overridden by the flags given."""
    if file_values is not None and not isinstance(file_values, dict):
        raise RaynasError(f"the config file's section '{section}' is a {type(file_values).__name__}, not a mapping "
                          "of field names to values",
                          f"write it as '{section}:' followed by indented 'field: value' lines, e.g. "
                          f"'{section}: {{epochs: 5}}' in YAML or {{\"{section}\": {{\"epochs\": 5}}}} in JSON")
    values = dict(file_values or {})
    values.update(given(args, section))
    return values


RETRAIN_FLAGS = {"epochs": "--retrain-epochs"}  # retrain fields with other flags in `raynas search`


def build(cls: type, values: dict[str, Any], rename: dict[str, str] | None = None):
    """``cls.from_json(values)``; errors name the flags as this command spells them."""
    try:
        return cls.from_json(values)
    except RaynasError as exc:
        problem = exc.problem
        for name, flag in (rename or {}).items():
            problem = problem.replace(f"{name} ({flag_name(cls.__dataclass_fields__[name])})", f"{name} ({flag})")
        raise RaynasError(problem, exc.fix) from None
