"""Checks of battery YAML fields shared by every kind: each failure is an ``InputError`` naming file and field."""

from __future__ import annotations

import re
from typing import Any

from ..errors import InputError

#: A lowercase id: battery names and choice labels.
ID = re.compile(r"[a-z0-9][a-z0-9_\-]*")


def fail(source: str, msg: str) -> InputError:
    """The error for a problem in battery file ``source``."""
    return InputError(f"{source}: {msg}")


def text_field(source: str, where: str, value: object) -> str:
    """``value`` stripped, when it is a non-empty string."""
    if not isinstance(value, str) or not value.strip():
        raise fail(source, f"field '{where}' must be a non-empty string")
    return value.strip()


def label_field(source: str, where: str, value: object) -> str:
    """``value`` when it is a lowercase label."""
    if not isinstance(value, str) or not ID.fullmatch(value):
        raise fail(source, f"field '{where}' must be a lowercase label (letters, digits, '-', '_'), got {value!r}")
    return value


def no_extra_keys(source: str, where: str, d: dict, allowed: tuple[str, ...]) -> None:
    """Refuse a key of ``d`` outside ``allowed``."""
    extra = [k for k in d if k not in allowed]
    if extra:
        raise fail(source, f"field '{where}{extra[0]}' is not allowed here; expected: {', '.join(allowed)}")


def keyed_mapping(source: str, where: str, value: object, keys: tuple[str, ...]) -> dict:
    """``value`` as a mapping holding exactly ``keys`` (an ``InputError`` naming the field otherwise)."""
    if not isinstance(value, dict):
        raise fail(source, f"field '{where}' must be a mapping with {' and '.join(repr(k) for k in keys)}")
    no_extra_keys(source, f"{where}.", value, keys)
    for key in keys:
        if key not in value:
            raise fail(source, f"field '{where}.{key}' is missing")
    return value


def unique_strings(data: dict[str, Any], key: str, minimum: int, source: str) -> tuple[str, ...]:
    """Field ``key``: a list of at least ``minimum`` non-empty strings, none repeated (case-insensitive)."""
    items = data[key]
    if not isinstance(items, list) or len(items) < minimum:
        raise fail(source, f"field '{key}' must be a list of at least {minimum} strings")
    for i, item in enumerate(items):
        if not isinstance(item, str) or not item.strip():
            raise fail(source, f"field '{key}[{i}]' must be a non-empty string")
    lowered = [s.strip().lower() for s in items]
    dup = next((s for s in lowered if lowered.count(s) > 1), None)
    if dup is not None:
        raise fail(source, f"field '{key}' lists {dup!r} more than once")
    return tuple(s.strip() for s in items)
