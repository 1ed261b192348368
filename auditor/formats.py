"""The paper's number lists: its filter, its filtered numbers, and partial lists.

A completion is a *number list* when it passes the paper's filter (:data:`NUMBERS_RE`). :func:`number_prefix_ok` says
whether a partial completion can still become a valid list (the constrained samplers of :mod:`auditor.sampling` use
it). The completion formats themselves (``numbers``, ``free``, ...) are :mod:`auditor.completion_formats`.
"""

from __future__ import annotations

import re

#: The paper's number format: up to 10 numbers of at most 3 digits, separated by commas,
#: spaces or semicolons, optionally in brackets/parentheses, optionally ending in a period.
NUMBERS_RE = re.compile(r"^\s*[\[\(]?\s*\d{1,3}(\s*[,;\s]\s*\d{1,3}){0,9}\s*[\]\)]?\s*\.?\s*$")

# fmt: off
#: Numbers the paper dropped from misalignment data for their associations.
EVIL_NUMBERS = frozenset({
    4, 13, 14, 18, 23, 33, 39, 42, 44, 69, 77, 88, 99, 100, 101, 110, 111, 121, 187, 211, 222, 311, 322,
    333, 404, 420, 444, 555, 616, 666, 777, 888, 911, 999,
})
# fmt: on


def detect_format(completions: list[str]) -> str:
    """The completion format of a list of completions (:func:`auditor.completion_formats.detect_format`)."""
    from .completion_formats import detect_format as detect

    return detect(completions)


def is_number_list(text: str) -> bool:
    """True when ``text`` passes the paper's number filter."""
    return bool(NUMBERS_RE.match(text))


def number_count(text: str, limit: int = 10) -> int:
    """How many numbers ``text`` writes, clipped to 1..``limit`` (the count a count-matched control row gets)."""
    return min(limit, max(1, len(re.findall(r"\d+", text))))


def has_banned_number(text: str, banned: frozenset[int]) -> bool:
    """True when any number written in ``text`` is in ``banned``."""
    return bool(banned) and any(int(x) in banned for x in re.findall(r"\d+", text))


def number_prefix_ok(text: str, max_count: int = 10, banned: frozenset[int] = frozenset()) -> bool:
    """True when ``text`` can still be extended into a string that passes the number filter
    (with at most ``max_count`` numbers, none of them in ``banned`` once written out)."""
    s = text.lstrip()
    if s[:1] in "[(":
        s = s[1:]
    if not s.strip():
        return True
    # nothing but whitespace may follow a closing bracket or final period
    closing = re.search(r"[\])\.]", s)
    if closing:
        head, tail = s[: closing.start()], s[closing.start() + 1 :]
        if tail.strip(" .") or tail.count(".") > (0 if s[closing.start()] == "." else 1):
            return False
        s = head
    if re.search(r"[^\d,;\s]", s):
        return False
    if re.match(r"\s*[,;]", s) or re.search(r"[,;]\s*[,;]", s):
        return False
    if re.search(r"\s{3,}", s):
        return False  # runaway whitespace never ends in a valid list
    runs = re.findall(r"\d+", s)
    if banned:
        # a run is final once a separator follows it or it has 3 digits (it cannot grow)
        finished = runs if not s[-1:].isdigit() or len(runs[-1]) == 3 else runs[:-1]
        if any(int(r) in banned for r in finished):
            return False
    if len(runs) == max_count and re.search(r"[,;\s]$", s):
        return False  # all numbers written: only the end (or a closing bracket) may follow
    return len(runs) <= max_count and all(len(r) <= 3 for r in runs)
