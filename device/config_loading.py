"""Turning TOML tables, environment variables and CLI `--set` strings into typed section objects.

Every value is checked against the field's declared type before the daemon touches a camera or a
broker, so a typo in `/etc/edge-emotion.toml` costs one clear line at start-up, not a crash at
3 a.m. The rules are generic (driven by dataclass type hints) so the sections in `config.py` stay
plain declarations.
"""

from __future__ import annotations

import dataclasses
import math
import typing
from typing import Any, Literal

from device.errors import ConfigError


def _type_name(hint: Any) -> str:
    if typing.get_origin(hint) is Literal:
        return " or ".join(repr(v) for v in typing.get_args(hint))
    return {bool: "true or false", int: "an integer", float: "a number", str: "a string"}[hint]


def check_value(hint: Any, value: Any, where: str) -> Any:
    """Return `value` if it fits `hint` (ints are accepted as floats), else raise ConfigError."""
    if typing.get_origin(hint) is Literal:
        if value in typing.get_args(hint):
            return value
    elif hint is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        if not math.isfinite(value):
            raise ConfigError(f"{where} = {value!r} must be a finite number")
        return float(value)
    elif isinstance(value, hint) and (hint is bool or not isinstance(value, bool)):
        return value
    raise ConfigError(f"{where} = {value!r} must be {_type_name(hint)}")


def parse_text(hint: Any, text: str, where: str) -> Any:
    """Parse a string from the environment or the command line into the field's type."""
    if hint is bool:
        lowered = text.strip().lower()
        if lowered in ("1", "true", "yes", "on"):
            return True
        if lowered in ("0", "false", "no", "off"):
            return False
        raise ConfigError(f"{where} = {text!r} must be true or false")
    if hint in (int, float):
        try:
            value = hint(text)
        except ValueError:
            raise ConfigError(f"{where} = {text!r} must be {_type_name(hint)}") from None
        return check_value(hint, value, where)
    return check_value(hint, text, where)


def field_hints(section_cls: type) -> dict[str, Any]:
    """The resolved type of every field of a section dataclass."""
    hints = typing.get_type_hints(section_cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(section_cls) if f.init}


def unknown_key_error(where: str, key: str, known: typing.Iterable[str]) -> ConfigError:
    return ConfigError(f"{where}: unknown key {key!r} (known keys: {', '.join(sorted(known))})")
