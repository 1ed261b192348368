"""``ScanResult``: what a scan found, the same type for every detection method, and its JSON document.

The parts every method shares (verdict, findings, dataset, base, control, batteries, run metadata) are fields
of :class:`ScanResult`; what only one method has (the probe's students and statistics, the gradient method's
rows) is its :class:`MethodDetails`, which renders its own JSON block, markdown sections and terminal table.
JSON schema: ``schema_version`` :data:`SCHEMA_VERSION`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from .budget_plan import BudgetPlan
from .config import ScanConfig
from .control import ControlInfo
from .data import DatasetInfo
from .models import BaseInfo
from .traits import Battery
from .verdict import Finding, Verdict

if TYPE_CHECKING:
    from rich.table import Table

#: 2: one document for every method (``method``; method-specific blocks under ``details``).
SCHEMA_VERSION = 2


class MethodDetails(Protocol):
    """What only one method knows about its scan, and how it is shown."""

    def to_json(self) -> dict[str, Any]:
        """The method's block of the JSON document (``details``)."""
        ...

    def describe(self, result: ScanResult) -> list[str]:
        """Markdown bullets for the report's "What was tested and how" (after dataset, base and control)."""
        ...

    def sections(self, result: ScanResult) -> list[str]:
        """The report's method-specific sections (markdown lines)."""
        ...

    def caveats(self, result: ScanResult) -> list[str]:
        """Markdown bullets for the report's caveats, after the ones every scan has."""
        ...

    def table(self, result: ScanResult) -> Table:
        """The terminal table printed above the verdict line."""
        ...


@dataclass(frozen=True)
class FirstRow:
    """The first training row, as the student sees it (the report shows it escaped)."""

    prompt: list[dict[str, str]]
    completion: str
    tokens: int
    loss_tokens: int


@dataclass
class ScanResult:
    """What a scan found; every report renders from this.

    Attributes:
        config: the scan's settings.
        method: the detection method's name.
        verdict, findings: the level per option and overall (findings in the method's ``unit``).
        dataset, base, control: what was scanned against what (``control`` is ``None`` for a method that drew none).
        batteries: the trait batteries measured.
        details: the method's own results (students, statistics, rows ...).
        timings: seconds per stage; versions: library versions; run_dir: where the stages are kept.
        command, created: how and when the scan ran.
        first_row: the first training row (``None`` when the method trains on none).
    """

    config: ScanConfig
    method: str
    verdict: Verdict
    findings: list[Finding]
    dataset: DatasetInfo
    base: BaseInfo
    control: ControlInfo | None
    batteries: list[Battery]
    details: MethodDetails
    timings: dict[str, float]
    versions: dict[str, str]
    run_dir: str
    command: str
    created: str
    first_row: FirstRow | None = None
    plots: list[str] = field(default_factory=list)  # PNG files written by --plots (the report links them)
    budget: BudgetPlan | None = None  # what --budget chose

    @property
    def exit_code(self) -> int:
        return self.verdict.exit_code

    def to_json(self) -> dict[str, Any]:
        """The JSON document (schema :data:`SCHEMA_VERSION`)."""
        findings = sorted(self.findings, key=lambda f: (f.shift.battery, -f.shift.shift))
        return {
            "schema_version": SCHEMA_VERSION,
            "tool": {"name": "subaudit", "version": self.versions.get("subaudit")},
            "method": self.method,
            "created": self.created,
            "command": self.command,
            "verdict": self.verdict.to_dict(),
            "findings": [f.to_dict() for f in findings],
            "dataset": self.dataset.to_dict(),
            "base": self.base.to_dict(),
            "control": None if self.control is None else self.control.to_dict(),
            "batteries": [b.summary() for b in self.batteries],
            "details": self.details.to_json(),
            "config": self.config.to_dict(),
            "timings_s": self.timings,
            "versions": self.versions,
            "run_dir": self.run_dir,
            "budget": None if self.budget is None else self.budget.to_dict(),
        }
