"""What ``--budget`` chose (see :mod:`auditor.budget`), as the scan's result records it."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class BudgetPlan:
    """What ``--budget`` chose: rows, the method's repeats (``seeds``), whether a profile calibrates it, and the
    estimate behind it; ``how``: how the method runs it, in words (the report's line; not in the JSON)."""

    budget_s: float  # what the stages may take (the budget less what loading and measuring already took)
    rows: int
    seeds: int
    calibrated: bool
    estimate_s: dict[str, float]
    reason: str
    considered: list[dict[str, Any]] = field(default_factory=list)
    requested_s: float | None = None  # the budget as given
    how: str = ""

    @property
    def total_s(self) -> float:
        return sum(self.estimate_s.values())

    def line(self) -> str:
        how = self.how or (
            "calibrated (two students per seed)" if self.calibrated else "null arm (three students per seed)"
        )
        given = self.requested_s if self.requested_s is not None else self.budget_s
        return (
            f"--budget {given:.0f} s ({self.budget_s:.0f} s left for the stages): {self.rows} rows x {self.seeds} "
            f"seed(s), {how}; estimated {self.total_s:.0f} s. {self.reason}"
        )

    def to_dict(self) -> dict[str, Any]:
        out = {**dataclasses.asdict(self), "total_s": round(self.total_s, 1)}
        out.pop("how")
        return out
