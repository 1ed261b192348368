"""Battery kinds, by name: a registry like :mod:`auditor.methods`.

``BUILTIN`` maps each built-in kind's name to ``module:Class``; a kind is imported when first asked for. Adding a
kind is one module in this package plus one entry here (or a :func:`register` call, as ``tests/test_kinds.py`` does
for its toy kind). Every kind implements :class:`~auditor.traits.kinds.base.BatteryKind`.
"""

from __future__ import annotations

import importlib
from typing import Any

from ...errors import InputError
from .base import BatteryKind, BatteryPlan

#: Built-in kinds: name -> "module:Class" (the first is the default of a file without ``kind:``).
BUILTIN = {
    "preference": "auditor.traits.kinds.preference:PreferenceKind",
    "choice": "auditor.traits.kinds.choice:ChoiceKind",
}
DEFAULT_KIND = "preference"

_REGISTERED: dict[str, BatteryKind] = {}


def register(kind: type[BatteryKind]) -> type[BatteryKind]:
    """Make ``kind`` (a :class:`BatteryKind` subclass) available by its ``name``; usable as a class decorator."""
    _REGISTERED[kind.name] = kind()
    return kind


def unregister(name: str) -> None:
    """Forget a registered kind (a built-in one is imported again when next asked for)."""
    _REGISTERED.pop(name, None)


def kind_names() -> list[str]:
    """Every kind a battery file may name, built-in first."""
    return list(dict.fromkeys([*BUILTIN, *_REGISTERED]))


def get_kind(name: str) -> BatteryKind:
    """The kind called ``name``; ``KeyError`` for an unknown one."""
    if name not in _REGISTERED and name in BUILTIN:
        module, cls = BUILTIN[name].split(":")
        register(getattr(importlib.import_module(module), cls))
    return _REGISTERED[name]


def find_kind(value: object, source: str) -> BatteryKind:
    """The kind a battery file's ``kind:`` field names, or an ``InputError`` listing the supported ones."""
    if not isinstance(value, str) or value not in kind_names():
        raise InputError(f"{source}: field 'kind' is {value!r}; supported: {', '.join(kind_names())}")
    return get_kind(value)


def refuse_foreign_fields(kind: BatteryKind, data: dict[str, Any], source: str) -> None:
    """Refuse a field that only another kind uses."""
    for other in map(get_kind, kind_names()):
        for key in other.fields:
            if key in data and key not in kind.fields and other is not kind:
                raise InputError(f"{source}: field '{key}' belongs to 'kind: {other.name}' batteries")


def check_spellings(data: dict[str, Any], source: str) -> None:
    """Refuse a field spelt another way than any kind spells it (``length_normalization``)."""
    for kind in map(get_kind, kind_names()):
        for wrong, right in kind.misspellings.items():
            if wrong in data:
                raise InputError(f"{source}: field '{wrong}' is spelt '{right}'")


__all__ = ["BUILTIN", "BatteryKind", "BatteryPlan", "find_kind", "get_kind", "kind_names", "register", "unregister"]
