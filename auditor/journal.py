"""A journal of a deterministic computation's finished steps, so that an interrupted run keeps them.

A long draw (an exact control on a small CPU base takes tens of minutes) is many steps, each a pure function of
what came before. :class:`Journal` appends each finished step's result to a JSON-lines file beside the cache entry
the computation will fill; a run that finds the file replays the recorded steps in order (same keys, same results,
so the computation reaches the same state) and computes only the rest. The caller removes the file once the
entry is written.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from .io import atomic_write_text

T = TypeVar("T")


class Journal:
    """Finished steps in ``path`` (``None``: nothing kept, every step computed).

    :meth:`step` replays the recorded step at the current place when its key matches, else computes it and appends
    it; a key that differs from the recorded one (other inputs, other code) ends the replay and drops the rest of
    the file. A last line cut short by the interruption is ignored.
    """

    def __init__(self, path: str | Path | None):
        self.path = None if path is None else Path(path)
        self._recorded, whole = read_steps(self.path) if self.path is not None else ([], True)
        self._at = 0
        self.replayed = 0
        if not whole:  # what follows a torn line would never be read: rewrite the file without it
            self._drop_from(len(self._recorded))

    def step(self, key: Any, compute: Callable[[], T], encode: Callable[[T], Any], decode: Callable[[Any], T]) -> T:
        """The step's result: replayed from the journal, or ``compute()`` recorded there (``encode`` and ``decode``
        turn it into JSON and back)."""
        key = json.loads(json.dumps(key))  # as the file holds it (tuples become lists)
        if self._at < len(self._recorded):
            if self._recorded[self._at]["key"] == key:
                self._at += 1
                self.replayed += 1
                return decode(self._recorded[self._at - 1]["value"])
            self._drop_from(self._at)
        value = compute()
        if self.path is not None:
            line = {"key": key, "value": encode(value)}
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.path, "a", encoding="utf-8") as f:
                f.write(json.dumps(line) + "\n")
                f.flush()
                os.fsync(f.fileno())
            self._recorded.append(line)
        self._at += 1
        return value

    def _drop_from(self, at: int) -> None:
        self._recorded = self._recorded[:at]
        assert self.path is not None
        atomic_write_text(self.path, "".join(json.dumps(line) + "\n" for line in self._recorded))


def read_steps(path: Path) -> tuple[list[dict[str, Any]], bool]:
    """The recorded steps, up to the first line that is not a whole step (an interrupted write), and whether every
    line was one."""
    if not path.exists():
        return [], True
    lines = path.read_text(encoding="utf-8").splitlines()
    steps = []
    for line in lines:
        try:
            step = json.loads(line)
        except json.JSONDecodeError:
            break
        if not isinstance(step, dict) or "key" not in step or "value" not in step:
            break
        steps.append(step)
    return steps, len(steps) == len(lines)
