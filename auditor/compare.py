"""``subaudit compare OLD.json NEW.json``: what changed between two scans, for a baseline in CI.

Findings are matched by battery and option. A change is one of: a *new* finding (clean before, a level now), a
*resolved* one (a level before, clean now), a level *up* or *down*, or a shift that *crossed* one of the level
thresholds without changing level (its q-value kept it where it was). The comparison *worsened* when the new scan's
verdict or any finding reached ``--fail-on`` where the old one had not; that is exit code 1.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import InputError
from .result import SCHEMA_VERSION
from .verdict import level_rank


@dataclass(frozen=True)
class Change:
    """One option's change between the scans."""

    finding: str  # "battery: option"
    kind: str  # new | resolved | up | down | crossed
    old_level: str
    new_level: str
    old_shift: float | None
    new_shift: float | None

    def line(self) -> str:
        shifts = f"{_num(self.old_shift)} -> {_num(self.new_shift)}"
        return f"{self.kind}: {self.finding} {self.old_level} -> {self.new_level} (shift {shifts})"


def _num(x: float | None) -> str:
    return "absent" if x is None else f"{x:+.2f}"


@dataclass
class Comparison:
    """The verdicts of both scans and every option's change."""

    old_level: str
    new_level: str
    fail_on: str
    changes: list[Change] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def worsened(self) -> bool:
        """Whether the new scan reaches ``fail_on`` somewhere the old one did not."""
        bar = level_rank(self.fail_on)
        if level_rank(self.new_level) >= bar > level_rank(self.old_level):
            return True
        return any(level_rank(c.new_level) >= bar > level_rank(c.old_level) for c in self.changes)

    @property
    def exit_code(self) -> int:
        return 1 if self.worsened else 0

    def lines(self) -> list[str]:
        head = f"verdict {self.old_level} -> {self.new_level}"
        head += f"; worse at --fail-on {self.fail_on}" if self.worsened else f"; not worse at --fail-on {self.fail_on}"
        return [head, *self.notes, *(c.line() for c in self.changes)] if self.changes else [head, *self.notes]


def load_result(path: str) -> dict[str, Any]:
    """A scan's JSON document (schema 2), or an :class:`~auditor.errors.InputError` naming the file."""
    p = Path(path)
    try:
        doc = json.loads(p.read_text(encoding="utf-8"))
    except OSError as exc:
        raise InputError(f"{path}: cannot read ({exc.strerror or exc})") from None
    except ValueError as exc:
        raise InputError(f"{path}: not JSON ({exc})") from None
    if not isinstance(doc, dict) or doc.get("schema_version") != SCHEMA_VERSION:
        found = doc.get("schema_version") if isinstance(doc, dict) else None
        raise InputError(f"{path}: not a subaudit result of schema_version {SCHEMA_VERSION} (found {found!r})")
    return doc


def compare_results(old: dict[str, Any], new: dict[str, Any], fail_on: str = "medium") -> Comparison:
    """Every option's change from ``old`` to ``new`` (see the module docstring)."""
    out = Comparison(old["verdict"]["level"], new["verdict"]["level"], fail_on)
    for key, label in (("method", "method"), ("dataset", "sha256"), ("base", "fingerprint")):
        a = old[key] if key == "method" else old[key].get(label)
        b = new[key] if key == "method" else new[key].get(label)
        if a != b:
            out.notes.append(f"note: the scans differ in {key} ({label} {a} -> {b})")
    thresholds = new["verdict"]["thresholds"]
    cuts = [thresholds[f"{lvl}_shift"] for lvl in ("low", "medium", "high")]
    before = {f"{f['battery']}: {f['option']}": f for f in old["findings"]}
    after = {f"{f['battery']}: {f['option']}": f for f in new["findings"]}
    for name in sorted(set(before) | set(after)):
        a, b = before.get(name), after.get(name)
        la = _level(a)
        lb = _level(b)
        sa = None if a is None else a["shift"]
        sb = None if b is None else b["shift"]
        kind = _kind(la, lb, sa, sb, cuts)
        if kind:
            out.changes.append(Change(name, kind, la, lb, sa, sb))
    order = {"new": 0, "up": 1, "crossed": 2, "down": 3, "resolved": 4}
    out.changes.sort(key=lambda c: (order[c.kind], -level_rank(c.new_level), c.finding))
    return out


def _level(f: dict[str, Any] | None) -> str:
    """A finding's level as the verdict counts it (an ignored finding counts as clean)."""
    if f is None or f.get("ignored"):
        return "clean"
    return f["level"]


def _kind(la: str, lb: str, sa: float | None, sb: float | None, cuts: list[float]) -> str | None:
    if la == lb:
        if sa is not None and sb is not None and any((sa < c) != (sb < c) for c in cuts):
            return "crossed"
        return None
    if la == "clean":
        return "new"
    if lb == "clean":
        return "resolved"
    return "up" if level_rank(lb) > level_rank(la) else "down"
