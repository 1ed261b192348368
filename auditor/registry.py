"""Named plugins imported when first asked for: the one registry behind methods, battery kinds and completion formats.

Built-in entries map a name to ``"module:Class"``; the class is imported, instantiated and kept the first time its
name is asked for, so ``subaudit --help`` imports none of them. :meth:`Registry.register` adds a class by its
``name`` (a class decorator: the tests register their mock method, toy kind and toy format this way).
"""

from __future__ import annotations

import importlib
from typing import Any, Generic, TypeVar

T = TypeVar("T")


class Registry(Generic[T]):
    """Instances of plugin classes by their ``name`` attribute, built-in first."""

    def __init__(self, builtin: dict[str, str]) -> None:
        self.builtin = builtin
        self._registered: dict[str, T] = {}

    def register(self, cls: type[Any]) -> type[Any]:
        """Make ``cls`` available by its ``name``; usable as a class decorator."""
        self._registered[cls.name] = cls()
        return cls

    def unregister(self, name: str) -> None:
        """Forget a registered class (a built-in one is imported again when next asked for)."""
        self._registered.pop(name, None)

    def names(self) -> list[str]:
        """Every name, built-in first."""
        return list(dict.fromkeys([*self.builtin, *self._registered]))

    def get(self, name: str) -> T:
        """The instance called ``name``; ``KeyError`` for an unknown name."""
        if name not in self._registered and name in self.builtin:
            module, cls = self.builtin[name].split(":")
            self.register(getattr(importlib.import_module(module), cls))
        return self._registered[name]
