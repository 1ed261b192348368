"""Battery kinds, by name: a registry like :mod:`auditor.methods`.

``BUILTIN`` maps each built-in kind's name to ``module:Class``; a kind is imported when first asked for. Adding a
kind is one module in this package plus one entry here (or a :func:`register` call, as ``tests/test_kinds.py`` does
for its toy kind). Every kind implements :class:`~auditor.traits.kinds.base.BatteryKind`.
"""

from __future__ import annotations

from typing import Any

from ...errors import InputError
from ...registry import Registry
from .base import BatteryKind, BatteryPlan

#: Built-in kinds: name -> "module:Class" (the first is the default of a file without ``kind:``).
BUILTIN = {
    "preference": "auditor.traits.kinds.preference:PreferenceKind",
    "choice": "auditor.traits.kinds.choice:ChoiceKind",
}
DEFAULT_KIND = "preference"

_REGISTRY: Registry[BatteryKind] = Registry(BUILTIN)
#: Make a :class:`BatteryKind` subclass available by its ``name`` (a class decorator); forget one.
register, unregister = _REGISTRY.register, _REGISTRY.unregister


def kind_names() -> list[str]:
    """Every kind a battery file may name, built-in first."""
    return _REGISTRY.names()


def get_kind(name: str) -> BatteryKind:
    """The kind called ``name``; ``KeyError`` for an unknown one."""
    return _REGISTRY.get(name)


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
