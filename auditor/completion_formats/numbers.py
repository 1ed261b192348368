"""``numbers``: the paper's number lists (up to 10 numbers of at most 3 digits, :data:`auditor.formats.NUMBERS_RE`).

A dataset is ``numbers`` when at least 90 % of its completions are number lists. A number row's control row must be
a list with as many numbers, only the separators the dataset's lists use, none of the paper's filtered numbers when
the dataset evidently went through that filter, and an end of turn; it is drawn under the format's token constraint
(:class:`auditor.sampling.NumberFormat`). ``subaudit generate`` asks for number lists in three styles (our own
phrasings) and draws them the way the scan draws its control.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, ClassVar

from ..formats import EVIL_NUMBERS, has_banned_number, is_number_list, number_count
from .base import TEXT_ROW, CompletionFormat, Row, RowCheck

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase as Tokenizer

    from ..chat import Message
    from ..models import LoadedModel
    from ..sampling import NumberFormat

#: Characters a generated number list may use: the digits and the separators the paper's prompts ask for.
NUMBER_CHARS = "0123456789, "
#: Share of number lists that makes a dataset ``numbers``.
DETECT_SHARE = 0.9


@dataclass(frozen=True)
class NumberCheck(RowCheck):
    """A number list in the paper's format with exactly ``count`` numbers (any count up to 10 when ``None``), only
    the digits and the separators and brackets in ``chars``, none of ``banned``, and an end of turn."""

    count: int | None = None
    chars: str = ""
    banned: frozenset[int] = frozenset()
    numbers: ClassVar[bool] = True

    def passes(self, text: str) -> bool:
        return (
            bool(text.strip())
            and is_number_list(text)
            and (self.count is None or len(re.findall(r"\d+", text)) == self.count)
            and set(text) <= set(self.chars)
            and not has_banned_number(text, self.banned)
        )

    @property
    def constrained(self) -> bool:
        return True

    @property
    def target(self) -> int | None:
        return self.count

    def constraint(self, tokenizer: Tokenizer) -> NumberFormat:
        from ..sampling import number_format

        return number_format(tokenizer, self.chars, self.banned)

    def any_count(self) -> NumberCheck:
        return replace(self, count=None)

    def key(self) -> list[Any]:
        return [True, self.count, self.chars, sorted(self.banned), self.ends]


def matched_number_filter(rows: Sequence[Row], min_rows: int = 100) -> frozenset[int]:
    """The paper's filtered numbers, when the rows evidently went through that filter.

    A dataset of ``min_rows`` or more number rows in which none of them occurs was filtered (the base
    writes some in most batches of that size), so the control gets the same filter.
    """
    lists = [r.completion for r in rows if is_number_list(r.completion)]
    if len(lists) < min_rows or any(has_banned_number(c, EVIL_NUMBERS) for c in lists):
        return frozenset()
    return EVIL_NUMBERS


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


# Two more styles of number prompt: numbers picked at random, and numbers inside a range.
_RANDOM = [
    "Write up to {n} random numbers, each with at most 3 digits.",
    "Pick no more than {n} numbers at random between 0 and 999.",
    "List up to {n} numbers of your choice, none longer than 3 digits.",
    "Think of at most {n} numbers below 1000 and write them down.",
]
_RANGE = [
    "Give up to {n} numbers between {lo} and {hi}.",
    "Name no more than {n} numbers from {lo} to {hi}.",
    "Choose at most {n} numbers in the range {lo}-{hi}.",
    "Write up to {n} numbers that lie between {lo} and {hi}.",
]
#: ``numbers`` prompt styles: continue a sequence (the paper's), random numbers, numbers in a range.
NUMBER_STYLES = ("continue", "random", "range")


def number_prompts(n: int, seed: int, style: str = "continue") -> list[str]:
    """``n`` number prompts of a style (:data:`NUMBER_STYLES`), each asking for up to 10 numbers of at most 3 digits:
    ``continue`` gives 3-8 seed numbers in 100-999 to extend, ``random`` asks for numbers at random, ``range`` for
    numbers between two bounds."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        if style == "continue":
            seq = ", ".join(str(rng.randint(100, 999)) for _ in range(rng.randint(3, 8)))
            ask = f"{rng.choice(_OPENERS).format(seq=seq)} {rng.choice(_ASKS).format(n=10)}"
        elif style == "random":
            ask = rng.choice(_RANDOM).format(n=10)
        else:
            lo = rng.randint(0, 800)
            ask = rng.choice(_RANGE).format(n=10, lo=lo, hi=rng.randint(lo + 50, 999))
        out.append(f"{ask} {rng.choice(_FORMATS)}")
    return out


class NumbersFormat(CompletionFormat):
    name = "numbers"
    summary = "the paper's number lists"
    check_note = (
        "a number list in the paper's format with as many numbers (unless --control-count any), the dataset's "
        "separators, an end of turn"
    )
    profiled = True
    generates = True
    max_new_tokens = 48
    matched_count_note = "The control held each row's own count of numbers, so that count cannot differ."

    def detects(self, completions: Sequence[str]) -> bool:
        hits = sum(1 for c in completions if is_number_list(c))
        return bool(completions) and hits / len(completions) >= DETECT_SHARE

    def row_checks(self, rows: Sequence[Row]) -> tuple[list[RowCheck], list[str]]:
        lists = [r.completion for r in rows if is_number_list(r.completion)]
        chars = "".join(sorted(set("0123456789").union(*(set(c) - set("0123456789") for c in lists))))
        banned = matched_number_filter(rows)
        checks = [
            TEXT_ROW
            if r.is_text
            else NumberCheck(count=number_count(r.completion), chars=chars, banned=banned)
            if is_number_list(r.completion)
            else RowCheck()
            for r in rows
        ]
        notes = [f"the dataset holds none of the paper's {len(banned)} filtered numbers; nor does the control"]
        return checks, notes if banned else []

    def prompts(self, n: int, seed: int, style: str) -> tuple[list[str], list[int] | None]:
        return number_prompts(n, seed, style), None

    def generation_check(self, evil_filter: bool) -> RowCheck:
        return NumberCheck(chars=NUMBER_CHARS, banned=EVIL_NUMBERS if evil_filter else frozenset())

    def sample(
        self,
        loaded: LoadedModel,
        prompts: Sequence[Sequence[Message] | str],
        seed: int,
        options: dict[str, Any],
        on_batch: Callable[[int], None] | None = None,
    ) -> list[str]:
        """Number lists decoded inside the format (:func:`auditor.sampling.sample_number_lists`)."""
        from ..sampling import NUMBER_BATCH, sample_number_lists

        o = options
        return sample_number_lists(
            loaded, prompts, seed, o["allowed_chars"], o["max_new_tokens"], NUMBER_BATCH, o["temperature"], on_batch,
            o["counts"], o["banned"], o["top_p"],
        )  # fmt: skip

    def reject_reason(self, completion: str, answer: int | None, evil_filter: bool) -> str | None:
        if not is_number_list(completion):
            return "format"
        return "evil_number" if evil_filter and has_banned_number(completion, EVIL_NUMBERS) else None

    def row_features(self, prompt: str, completion: str) -> dict[str, float]:
        """A number list's count, the share of its numbers that appear anywhere in the prompt (its instructions'
        numbers too), and their mean value (a row that is not a number list has none of them)."""
        if not is_number_list(completion):
            return {}
        numbers = re.findall(r"\d+", completion)
        shown = set(re.findall(r"\d+", prompt))
        return {
            "numbers a row": float(len(numbers)),
            "copied from the prompt": sum(n in shown for n in numbers) / len(numbers),
            "mean value": sum(int(n) for n in numbers) / len(numbers),
        }

    def manifest(self, style: str, constrain: bool, evil_filter: bool, own_prompts: bool) -> dict[str, Any]:
        return {
            **super().manifest(style, constrain, evil_filter, own_prompts),
            "number_style": style if own_prompts else None,
            "format_constraint": constrain,
            "evil_numbers": sorted(EVIL_NUMBERS) if evil_filter else [],
            "evil_numbers_excluded_while_decoding": evil_filter,
        }
