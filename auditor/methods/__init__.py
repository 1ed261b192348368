"""Detection methods, by name: a registry the way peft registers its tuners.

``BUILTIN`` maps each built-in method's name to ``module:Class``; a method is imported when first used, so
``subaudit --help`` stays instant. Adding a method is one module in this package plus one entry here (or a
:func:`register` call, as the tests do for their mock method). Every method implements
:class:`~auditor.methods.base.Method`.
"""

from __future__ import annotations

from ..errors import InputError
from ..registry import Registry
from .base import Method, MethodOutcome

#: Built-in methods: name -> "module:Class".
BUILTIN = {
    "probe": "auditor.methods.probe:ProbeMethod",
    "gradient": "auditor.methods.gradient:GradientMethod",
}

_REGISTRY: Registry[Method] = Registry(BUILTIN)
#: Make a :class:`Method` subclass available by its ``name`` (a class decorator); forget one.
register, unregister = _REGISTRY.register, _REGISTRY.unregister


def method_names() -> list[str]:
    return _REGISTRY.names()


def get_method(name: str) -> Method:
    """The method called ``name`` (``--method``)."""
    try:
        return _REGISTRY.get(name)
    except KeyError:
        raise InputError(f"--method must be one of {', '.join(method_names())}, got {name!r}") from None


__all__ = ["BUILTIN", "Method", "MethodOutcome", "get_method", "method_names", "register", "unregister"]
