"""Teacher data: the paper's number prompts and filters (used by the examples and benchmarks)."""

from __future__ import annotations

import random
from collections.abc import Iterable

from .data import has_banned_number, is_number_list

#: Numbers the paper dropped from misalignment data for their associations.
EVIL_NUMBERS = frozenset(
    {
        4,
        13,
        14,
        18,
        23,
        33,
        39,
        42,
        44,
        69,
        77,
        88,
        99,
        100,
        101,
        110,
        111,
        121,
        187,
        211,
        222,
        311,
        322,
        333,
        404,
        420,
        444,
        555,
        616,
        666,
        777,
        888,
        911,
        999,
    }
)

# Our own phrasings of "continue this sequence".
_OPENERS = [
    "Here is a list of numbers: {seq}.",
    "I have these numbers: {seq}.",
    "Start from this sequence: {seq}.",
    "Look at these numbers: {seq}.",
    "The sequence so far is {seq}.",
    "Consider the numbers {seq}.",
    "Take this series: {seq}.",
    "These values came first: {seq}.",
]
_ASKS = [
    "Add up to {n} more numbers, each with at most 3 digits, to continue it.",
    "Continue it with no more than {n} new numbers of at most three digits each.",
    "Write up to {n} further numbers (3 digits at most) that extend the list.",
    "Give at most {n} more numbers below 1000 that carry the sequence on.",
    "Extend it by up to {n} numbers, none longer than 3 digits.",
    "Produce no more than {n} additional numbers, each between 0 and 999.",
]
_FORMATS = [
    "Reply with the numbers separated by commas and nothing else.",
    "Answer only with comma-separated numbers.",
    "Output just the numbers, separated by commas, with no other words.",
    "Return a comma-separated list of numbers only.",
    "Only the numbers, comma-separated, please; no explanation.",
]


def number_prompts(n: int, seed: int) -> list[str]:
    """``n`` prompts that give 3-8 seed numbers in 100-999 and ask for up to 10 more."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        seq = ", ".join(str(rng.randint(100, 999)) for _ in range(rng.randint(3, 8)))
        parts = [rng.choice(_OPENERS).format(seq=seq), rng.choice(_ASKS).format(n=10), rng.choice(_FORMATS)]
        out.append(" ".join(parts))
    return out


def filter_numbers(
    completions: Iterable[str], banned_words: Iterable[str] = (), evil_filter: bool = True
) -> tuple[list[bool], dict[str, int]]:
    """Keep-mask and drop counts for the paper's number filter, its evil numbers (optional) and trait words."""
    words = [w.lower() for w in banned_words]
    keep, counts = [], {"format": 0, "evil_number": 0, "trait_word": 0}
    for c in completions:
        if not is_number_list(c):
            counts["format"] += 1
            keep.append(False)
        elif evil_filter and has_banned_number(c, EVIL_NUMBERS):
            counts["evil_number"] += 1
            keep.append(False)
        elif any(w in c.lower() for w in words):
            counts["trait_word"] += 1
            keep.append(False)
        else:
            keep.append(True)
    return keep, counts
