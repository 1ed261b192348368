"""Completion formats, by name: a registry like :mod:`auditor.methods`.

A *completion format* is what a dataset's completions look like (``numbers``, ``free``) or what ``subaudit
generate`` asks for (``numbers``, ``code``, ``reasoning``, ``chat``, which scan as ``free``); not the file type and
not a battery. ``BUILTIN`` maps each built-in format's name to ``module:Class``; a format is imported when first
asked for. Adding a format is one module in this package plus one entry here (or a :func:`register` call, as
``tests/test_completion_formats.py`` does for its toy format). Every format implements
:class:`~auditor.completion_formats.base.CompletionFormat`.
"""

from __future__ import annotations

from collections.abc import Sequence

from ..errors import InputError
from ..registry import Registry
from .base import TEXT_ROW, CompletionFormat, RowCheck

#: Built-in formats: name -> "module:Class" (detection tries them in this order).
BUILTIN = {
    "numbers": "auditor.completion_formats.numbers:NumbersFormat",
    "free": "auditor.completion_formats.free:FreeFormat",
    "code": "auditor.completion_formats.code:CodeFormat",
    "reasoning": "auditor.completion_formats.reasoning:ReasoningFormat",
    "chat": "auditor.completion_formats.chat:ChatFormat",
}
#: The format of a dataset no other format detects.
FALLBACK = "free"

_REGISTRY: Registry[CompletionFormat] = Registry(BUILTIN)
#: Make a :class:`CompletionFormat` subclass available by its ``name`` (a class decorator); forget one.
register, unregister = _REGISTRY.register, _REGISTRY.unregister


def format_names() -> list[str]:
    """Every format, built-in first."""
    return _REGISTRY.names()


def get_format(name: str) -> CompletionFormat:
    """The format called ``name``; ``KeyError`` for an unknown one."""
    return _REGISTRY.get(name)


def generate_formats() -> list[str]:
    """The formats ``subaudit generate`` writes (those with a prompt set)."""
    return [n for n in format_names() if get_format(n).generates]


def generate_format(name: str) -> CompletionFormat:
    """``--format``'s format, or an ``InputError`` listing the ones ``subaudit generate`` writes."""
    if name not in generate_formats():
        raise InputError(f"--format must be one of {', '.join(generate_formats())}, got {name!r}")
    return get_format(name)


def detect_format(completions: Sequence[str]) -> str:
    """The first format that detects these completions (:data:`FALLBACK` when none does)."""
    for name in format_names():
        fmt = get_format(name)
        if not fmt.scanned_as and fmt.detects(list(completions)):
            return name
    return FALLBACK


__all__ = [
    "BUILTIN",
    "FALLBACK",
    "TEXT_ROW",
    "CompletionFormat",
    "RowCheck",
    "detect_format",
    "format_names",
    "generate_format",
    "generate_formats",
    "get_format",
    "register",
    "unregister",
]
