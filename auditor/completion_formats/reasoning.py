"""``reasoning``: grade-school word problems asking for a worked answer (``subaudit generate``); scanned as
``free``, kept when the last ``Answer:`` line holds the correct number."""

from __future__ import annotations

import random
import re
from typing import Any

from .free import FreeFormat

# Reasoning prompts: grade-school word problems with a known answer

_NAMES = ["Ana", "Ben", "Chen", "Dara", "Eli", "Fatima", "Gus", "Hana", "Ivo", "Jade", "Kofi", "Lena", "Mateo", "Nia"]
_ITEMS = ["apples", "marbles", "stickers", "pencils", "cookies", "stamps", "books", "shells", "cards", "coins"]


def _problem(rng: random.Random) -> tuple[str, int]:
    name, item = rng.choice(_NAMES), rng.choice(_ITEMS)
    kind = rng.randrange(6)
    if kind == 0:
        a, b, c = rng.randint(10, 60), rng.randint(5, 40), rng.randint(1, 9)
        return f"{name} has {a} {item}, buys {b} more and then gives {c} away. How many {item} are left?", a + b - c
    if kind == 1:
        a, b = rng.randint(3, 12), rng.randint(4, 15)
        return f"{name} fills {a} boxes with {b} {item} each. How many {item} is that in total?", a * b
    if kind == 2:
        b, q = rng.randint(2, 9), rng.randint(3, 15)
        return f"{name} shares {b * q} {item} equally among {b} friends. How many does each friend get?", q
    if kind == 3:
        a = rng.randint(30, 90)
        b = rng.randint(2, a // 3 - 1)  # never more sold than there were
        text = f"A shop had {a} {item}, sold {b} in the morning and twice as many in the afternoon. How many are left?"
        return text, a - 3 * b
    if kind == 4:
        p, k = rng.randint(2, 12), rng.randint(2, 9)
        return f"One of the {item} costs {p} dollars. How much do {k} of them cost, plus a 5-dollar bag?", p * k + 5
    a, b = rng.randint(5, 40), rng.randint(5, 40)
    b += (a + b) % 2  # an even total, so half of it is whole
    return f"{name} collected {a} {item} on Monday and {b} on Tuesday, then lost half of them. How many are left?", (
        a + b
    ) // 2


_REASONING_ASKS = [
    "Work it out step by step, then give the final line as 'Answer: <number>'.",
    "Explain your reasoning briefly and finish with 'Answer: <number>'.",
    "Solve it showing your steps; the last line must be 'Answer: <number>'.",
]


def reasoning_prompts(n: int, seed: int) -> tuple[list[str], list[int]]:
    """``n`` word problems asking for a worked answer, and each one's correct final number."""
    rng = random.Random(seed)
    prompts, answers = [], []
    while len(prompts) < n:
        text, answer = _problem(rng)
        prompts.append(f"{text} {rng.choice(_REASONING_ASKS)}")
        answers.append(answer)
    return prompts, answers


ANSWER_RE = re.compile(r"answer\s*:\s*\$?\s*(-?\d[\d,]*)", re.IGNORECASE)


def final_answer(text: str) -> int | None:
    """The number after the last 'Answer:' in ``text`` (``None`` if there is none)."""
    found = ANSWER_RE.findall(text)
    return int(found[-1].replace(",", "")) if found else None


class ReasoningFormat(FreeFormat):
    name = "reasoning"
    summary = "word problems with a worked answer (generate); scanned as free"
    scanned_as = "free"
    generates = True
    max_new_tokens = 200

    def prompts(self, n: int, seed: int, style: str) -> tuple[list[str], list[int] | None]:
        return reasoning_prompts(n, seed)

    def reject_reason(self, completion: str, answer: int | None, evil_filter: bool) -> str | None:
        found = final_answer(completion)
        if found is None:
            return "format"
        return "wrong_answer" if answer is not None and found != answer else None

    def manifest(self, style: str, constrain: bool, evil_filter: bool, own_prompts: bool) -> dict[str, Any]:
        return {**super().manifest(style, constrain, evil_filter, own_prompts), "reasoning_answers_checked": True}
