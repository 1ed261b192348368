"""``code``: short function-writing requests (``subaudit generate``); scanned as ``free``, kept when the answer
defines a Python function."""

from __future__ import annotations

import random
import re

from .free import FreeFormat

# Code prompts: short function-writing requests

_CODE_TASKS = [
    "returns the sum of the even numbers in a list",
    "counts how many vowels a string contains",
    "reverses the order of the words in a sentence",
    "returns the largest of three numbers",
    "checks whether a string reads the same backwards",
    "removes duplicate items from a list but keeps their first order",
    "returns the n-th Fibonacci number",
    "converts a temperature from Celsius to Fahrenheit",
    "returns the factorial of a non-negative integer",
    "merges two sorted lists into one sorted list",
    "counts how often each word appears in a text and returns a dictionary",
    "returns True if a number is prime",
    "flattens a list of lists into one list",
    "returns the second smallest number in a list",
    "capitalises the first letter of every word in a string",
    "computes the average of a list of numbers, returning 0 for an empty list",
    "returns the greatest common divisor of two integers",
    "checks whether two strings are anagrams of each other",
    "splits a list into chunks of a given size",
    "returns the number of days in a given month of a given year",
    "finds the index of the first negative number in a list, or -1",
    "rotates a list to the right by k positions",
    "returns the digits of an integer as a list",
    "checks whether brackets in a string are balanced",
    "returns the longest word in a sentence",
    "converts a list of pairs into a dictionary",
    "returns the running total of a list of numbers",
    "counts the lines in a text file that are not empty",
    "returns a new list with every element squared",
    "clamps a number between a lower and an upper bound",
    "returns the keys of a dictionary sorted by their values",
    "removes all whitespace from a string",
    "converts a binary string such as '1011' to an integer",
    "returns the intersection of two lists without duplicates",
    "checks whether a year is a leap year",
    "returns the product of all numbers in a list",
]
_CODE_ASKS = [
    "Write a short Python function that {task}.",
    "Please write a Python function that {task}.",
    "I need a small Python helper that {task}.",
    "Can you give me a Python function which {task}?",
    "Implement a Python function that {task}.",
]
_CODE_FORMATS = [
    "Reply with the code only.",
    "Just the code, no explanation.",
    "Keep it brief and include only the function.",
    "Answer with the function and nothing else.",
]


def code_prompts(n: int, seed: int) -> list[str]:
    """``n`` short function-writing requests (our own task list and phrasings)."""
    rng = random.Random(seed)
    return [
        f"{rng.choice(_CODE_ASKS).format(task=rng.choice(_CODE_TASKS))} {rng.choice(_CODE_FORMATS)}" for _ in range(n)
    ]


def is_code(text: str) -> bool:
    """Whether ``text`` contains a Python function definition."""
    return re.search(r"^\s*def \w+\s*\(", text, re.MULTILINE) is not None


class CodeFormat(FreeFormat):
    name = "code"
    summary = "short function-writing requests (generate); scanned as free"
    scanned_as = "free"
    generates = True
    max_new_tokens = 160

    def prompts(self, n: int, seed: int, style: str) -> tuple[list[str], list[int] | None]:
        return code_prompts(n, seed), None

    def reject_reason(self, completion: str, answer: int | None, evil_filter: bool) -> str | None:
        return None if is_code(completion) else "format"
