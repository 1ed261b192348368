"""A mock detection method (as simonw/llm keeps a MockModel): deterministic findings in milliseconds.

It trains and scores nothing. Every graded option of every battery gets a shift of 0 pp except ``option``,
which moves by ``shift`` pp with a tight interval; the first run writes one stage file to the run folder, a
resumed run reads it back (``details.reused``). Registered by the ``mock_method`` fixture (``conftest.py``);
this file plus that registration is all a method needs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from auditor.config import ScanConfig
from auditor.errors import InputError
from auditor.inputs import Controls, ScanInputs
from auditor.markdown import md_table
from auditor.methods.base import Estimator, Method, MethodOutcome
from auditor.result import ScanResult
from auditor.rundir import RunFolder, StageScores
from auditor.scoring import BatteryScores
from auditor.stats import OptionShift, adjust_q
from auditor.traits import Battery
from auditor.verdict import decide


@dataclass(frozen=True)
class MockSettings:
    """Settings of the mock method.

    Attributes:
        option: the option that moves.
        shift: how far it moves, pp.
        draws: control draws the method asks for (0 skips sampling control rows).
        fail: raise this exception class name while running (tests of failure paths).
    """

    option: str = "owl"
    shift: float = 3.0
    draws: int = 0
    fail: str = ""


@dataclass
class MockDetails:
    planted: str
    reused: bool

    def to_json(self) -> dict[str, Any]:
        return {"planted": self.planted, "reused": self.reused}

    def describe(self, result: ScanResult) -> list[str]:
        return [f"- **Method**: mock, planted {self.planted}."]

    def sections(self, result: ScanResult) -> list[str]:
        rows = [[f.cells()[c] for c in ("battery", "option", "shift", "level")] for f in result.findings]
        return ["## Mock findings", "", md_table(["battery", "option", "shift pp", "level"], rows), ""]

    def caveats(self, result: ScanResult) -> list[str]:
        return ["- The mock method measures nothing."]

    def table(self, result: ScanResult) -> Any:
        from rich.table import Table

        table = Table(title="mock")
        for col in ("battery", "option", "shift", "level"):
            table.add_column(col)
        for f in result.findings:
            cells = f.cells()
            table.add_row(*(cells[c] for c in ("battery", "option", "shift", "level")))
        return table


class MockMethod(Method):
    name = "mock"
    summary = "planted findings for tests"
    settings = MockSettings

    def validate(self, config: ScanConfig, settings: MockSettings, batteries: list[Battery]) -> None:
        if not any(settings.option in b.graded_options for b in batteries):
            raise InputError(f"--method-arg option: {settings.option!r} is not a graded option of the batteries")

    def control_draws(self, inputs: ScanInputs) -> int:
        return self.parse_settings(inputs.config.method_args).draws

    def run(self, inputs: ScanInputs, run: RunFolder, controls: Controls | None) -> MethodOutcome:
        settings: MockSettings = inputs.settings
        if settings.fail:
            raise {"KeyboardInterrupt": KeyboardInterrupt, "KeyError": KeyError}[settings.fail]("mock failure")
        stage = run.load_scores("mock")
        reused = stage is not None
        if stage is None:
            options = [b.graded_options for b in inputs.batteries]
            scores = {
                b.name: BatteryScores(b.name, list(opts), np.zeros((1, len(opts))))
                for b, opts in zip(inputs.batteries, options)
            }
            stage = StageScores(scores)
            run.save_scores("mock", stage)
        shifts = []
        for name, scores in stage.scores.items():
            for option in scores.options:
                moved = settings.shift if option == settings.option else 0.0
                p = 1e-6 if moved else 0.9
                shifts.append(OptionShift(name, option, 10.0, 10.0, 10.0 + moved, moved, moved - 0.5, moved + 0.5, p))
        config = inputs.config
        verdict, findings = decide(adjust_q(shifts), config.fail_on, config.thresholds, ignore=config.ignore)
        rows = len(controls.pairs(inputs.dataset)) if controls else len(inputs.dataset)
        return MethodOutcome(findings, verdict, MockDetails(settings.option, reused), rows_used=rows)

    def cost(
        self, inputs: ScanInputs, measured: Estimator, rows: int, settings: Any, calibrated: bool | None = None
    ) -> dict[str, float]:
        return {"mock": 0.0}
