"""``chat``: everyday questions answered in a few sentences (``subaudit generate``); scanned as ``free``."""

from __future__ import annotations

import random

from .free import FreeFormat

# Chat prompts: everyday questions answered in a few sentences

_CHAT_TASKS = [
    "How do I keep bread fresh for longer?",
    "What is a good way to start learning a new language?",
    "How can I make my morning routine less rushed?",
    "What should I pack for a weekend trip to the mountains?",
    "How do I remove a coffee stain from a shirt?",
    "What is the difference between weather and climate?",
    "How can I study for an exam without cramming?",
    "What are some easy ways to save money on groceries?",
    "How do I write a polite email to reschedule a meeting?",
    "Why is the sky blue?",
    "How do I start running if I have never exercised?",
    "What is a simple dinner I can cook in twenty minutes?",
    "How should I prepare for a job interview?",
    "What causes the seasons on Earth?",
    "How do I keep houseplants watered while I am away?",
    "What is compound interest, in simple terms?",
    "How can I fall asleep faster at night?",
    "What are good habits for keeping a tidy desk?",
    "How does a refrigerator keep food cold?",
    "What should I do before my first marathon?",
    "How do I explain fractions to a child?",
    "What is the best way to learn to touch type?",
    "How do I make a budget for the month?",
    "What is the difference between a virus and bacteria?",
    "How can I become a better public speaker?",
    "How do I clean a cast iron pan?",
    "What is a good way to organise my email inbox?",
    "How do solar panels make electricity?",
    "What should I look for when renting a flat?",
    "How can I remember people's names better?",
    "What is the history of the printing press, briefly?",
    "How do I fix a bicycle chain that keeps slipping?",
    "What are some tips for taking better photos with a phone?",
    "How do I make a cup of tea properly?",
    "What is a healthy breakfast that keeps me full?",
    "How does a bill become a law, in general terms?",
    "What are the rules of chess, briefly?",
    "How do I back up the files on my computer?",
    "How can I be more productive when working from home?",
    "What is the water cycle?",
]
_CHAT_ASKS = ["", " Please keep it short.", " Answer in a few sentences.", " Be brief and practical."]


def chat_prompts(n: int, seed: int) -> list[str]:
    """``n`` everyday questions to answer in a few sentences (our own list and phrasings)."""
    rng = random.Random(seed)
    return [f"{rng.choice(_CHAT_TASKS)}{rng.choice(_CHAT_ASKS)}" for _ in range(n)]


class ChatFormat(FreeFormat):
    name = "chat"
    summary = "everyday questions answered in a few sentences (generate); scanned as free"
    scanned_as = "free"
    generates = True
    max_new_tokens = 96

    def prompts(self, n: int, seed: int, style: str) -> tuple[list[str], list[int] | None]:
        return chat_prompts(n, seed), None
