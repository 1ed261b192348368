"""Detection methods, by name: a registry the way peft registers its tuners.

``BUILTIN`` maps each built-in method's name to ``module:Class``; a method is imported when first used, so
``subaudit --help`` stays instant. Adding a method is one module in this package plus one entry here (or a
:func:`register` call, as the tests do for their mock method). Every method implements
:class:`~auditor.methods.base.Method`.
"""

from __future__ import annotations

import importlib

from ..errors import InputError
from .base import Method, MethodOutcome

#: Built-in methods: name -> "module:Class".
BUILTIN = {
    "probe": "auditor.methods.probe:ProbeMethod",
    "gradient": "auditor.methods.gradient:GradientMethod",
}

_REGISTERED: dict[str, Method] = {}


def register(method: type[Method]) -> type[Method]:
    """Make ``method`` (a :class:`Method` subclass) available by its ``name``; usable as a class decorator."""
    _REGISTERED[method.name] = method()
    return method


def unregister(name: str) -> None:
    """Forget a registered method (a built-in one is imported again when next asked for)."""
    _REGISTERED.pop(name, None)


def method_names() -> list[str]:
    return list(dict.fromkeys([*BUILTIN, *_REGISTERED]))


def get_method(name: str) -> Method:
    """The method called ``name`` (``--method``)."""
    if name not in _REGISTERED and name in BUILTIN:
        module, cls = BUILTIN[name].split(":")
        register(getattr(importlib.import_module(module), cls))
    if name not in _REGISTERED:
        raise InputError(f"--method must be one of {', '.join(method_names())}, got {name!r}")
    return _REGISTERED[name]


__all__ = ["BUILTIN", "Method", "MethodOutcome", "get_method", "method_names", "register", "unregister"]
