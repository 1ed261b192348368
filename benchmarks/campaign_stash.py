"""The campaign's cache between machines (issue #21): what a session's end stashes under results, and what a fresh
machine puts back before its workers start (``campaign.py stash`` / ``campaign.py unstash``).

A cell's control draws are what its scans spend most on (the gradient method's exact control: 900 to 3,500 s a cell)
and are a few KB each, so they are committed with the records; a cell interrupted by a session's end on a machine
that does not come back then resumes its draw on the next one instead of starting it again.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from auditor.io import cache_dir

RESULTS = Path(__file__).resolve().parent / "results"


#: The cache's folders a session's end stashes under results (:func:`stash`): control draws (finished entries and an
#: interrupted draw's journal, ``KEY.partial.jsonl``) and the decoding check's log-probabilities, a few KB each.
STASHED = ("controls", "logprobs")


def stash_dir() -> Path:
    """Where :func:`stash` keeps them (committed with the records: the cache does not outlive a machine)."""
    return RESULTS / "campaign" / "stash"


def stash() -> int:
    """Copy the cache's control draws and log-probabilities into :func:`stash_dir` (new or changed files; a journal
    whose draw is finished is dropped), so that a session on a fresh machine resumes a cell's control draw, the
    gradient method's exact control being 900 to 3,500 s a cell, instead of drawing it again. Returns files copied."""
    copied = 0
    for folder in STASHED:
        src, dst = cache_dir() / folder, stash_dir() / folder
        for path in sorted(src.glob("*.json*")) if src.exists() else []:
            if path.name.endswith((".lock", ".tmp")) or path.name.startswith("."):
                continue  # locks, and files an atomic write has not finished
            target = dst / path.name
            if not target.exists() or target.read_bytes() != path.read_bytes():
                dst.mkdir(parents=True, exist_ok=True)
                shutil.copy(path, target)
                copied += 1
        for journal in sorted(dst.glob("*.partial.jsonl")) if dst.exists() else []:
            if (dst / journal.name.replace(".partial.jsonl", ".json")).exists():
                journal.unlink()
    return copied


def unstash() -> int:
    """Copy :func:`stash_dir`'s files into the cache where the cache has none (a journal only while its draw is
    unfinished there); what a session draws itself is never overwritten. Returns files copied."""
    copied = 0
    for folder in STASHED:
        src, dst = stash_dir() / folder, cache_dir() / folder
        for path in sorted(src.glob("*.json*")) if src.exists() else []:
            finished_draw = dst / path.name.replace(".partial.jsonl", ".json")
            if (dst / path.name).exists() or (path.name.endswith(".partial.jsonl") and finished_draw.exists()):
                continue
            dst.mkdir(parents=True, exist_ok=True)
            shutil.copy(path, dst / path.name)
            copied += 1
    return copied
