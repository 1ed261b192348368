"""--budget: plans from measured throughput (rows first, then seeds; calibrated budgets first) and the CLI path."""

from __future__ import annotations

import json
import re
from pathlib import Path
from types import SimpleNamespace

import pytest
from typer.testing import CliRunner

from auditor.budget import parse_duration, plan_budget
from auditor.cli import app
from auditor.config import ScanConfig
from auditor.errors import InputError
from auditor.inputs import ScanInputs
from auditor.methods import get_method
from auditor.traits import get_battery

runner = CliRunner()


class FixedRates:
    """Measured rates as a dry run would report them (seconds)."""

    def generation_per_row(self) -> float:
        return 0.2

    def train_step(self) -> float:
        return 1.0

    def score_question(self) -> float:
        return 0.1


PROBE = get_method("probe")


def _inputs(max_rows: int | None = 400, seeds: int = 3, method: str = "probe") -> ScanInputs:
    config = ScanConfig(
        "d.jsonl", max_rows=max_rows, method=method, method_args={"seeds": seeds, "calibration": "none"}
    )
    settings = get_method(method).parse_settings(config.method_args)
    dataset = SimpleNamespace(completion_format="numbers", total_rows=1000)
    loaded = SimpleNamespace(fingerprint="f")
    return ScanInputs(config, settings, dataset, [get_battery("tree")], None, loaded)  # type: ignore[arg-type]


def test_durations() -> None:
    assert parse_duration("90s") == 90 and parse_duration("10m") == 600 and parse_duration("1.5h") == 5400
    assert parse_duration("45") == 45
    with pytest.raises(InputError, match="expected a duration"):
        parse_duration("soon")


def test_rows_first_then_seeds() -> None:
    # per row: 2 draws x 0.2 s + 3 arms x 1 s / 8 rows = 0.775 s; scoring (1 + 3 s) x 32 questions x 0.1 s
    plan = plan_budget(PROBE, _inputs(max_rows=200, seeds=3), FixedRates(), 1000, available_rows=1000)
    assert plan.rows == 200 and plan.seeds > 1 and plan.total_s <= 1000 and not plan.calibrated
    tight = plan_budget(PROBE, _inputs(), FixedRates(), 200, available_rows=1000)
    assert tight.seeds == 1 and 40 <= tight.rows < 400 and tight.total_s <= 200
    assert "rows first, then seeds" in tight.reason
    with pytest.raises(InputError, match="give more time"):
        plan_budget(PROBE, _inputs(), FixedRates(), 5, available_rows=1000)


def test_a_calibrated_budget_is_preferred(monkeypatch: pytest.MonkeyPatch) -> None:
    from auditor.calibration import lookup

    monkeypatch.setattr(lookup, "budgets_with_profiles", lambda inputs: [(320, 1), (2000, 1)])
    plan = plan_budget(PROBE, _inputs(max_rows=None, seeds=1), FixedRates(), 600, available_rows=1000)
    assert (plan.rows, plan.seeds, plan.calibrated) == (320, 1, True)  # 2000 rows would not fit
    assert plan.estimate_s["probe"] == 2 * 40 * 1.0  # two students of 40 steps: no null arm


def test_a_gradient_budget_plans_the_gradient_stages() -> None:
    """--budget --method gradient plans with the gradient's cost model: its stages, no seeds, no null arm."""
    inputs = _inputs(max_rows=400, seeds=3, method="gradient")
    plan = plan_budget(get_method("gradient"), inputs, FixedRates(), 300, available_rows=1000)
    assert set(plan.estimate_s) == {"control", "trait_gradients", "row_gradients"}
    assert plan.seeds == 1 and not plan.calibrated and plan.rows == 400  # 400 x 0.2 s + 2 x 50 steps + ~54 s
    # the probe's plan of the same rows would not fit: two draws and three students per seed
    assert "gradient pass per row" in plan.line() and "students" not in plan.line()
    assert (
        sum(PROBE.cost(_inputs(400, 1), FixedRates(), 400, _inputs(400, 1).settings, calibrated=False).values()) > 300
    )
    tight = plan_budget(get_method("gradient"), inputs, FixedRates(), 150, available_rows=1000)
    assert 40 <= tight.rows < 400 and tight.total_s <= 150


def test_budget_in_a_dry_run_and_a_scan(tiny_model_dir: Path, numbers_file: Path, tmp_path: Path) -> None:
    args = ["scan", str(numbers_file), "--base", str(tiny_model_dir), "--traits", "tree", "--batch-size", "4"]
    args += ["--method", "probe"]
    res = runner.invoke(app, [*args, "--budget", "20m", "--dry-run"], terminal_width=200)
    assert res.exit_code == 0, res.output
    text = " ".join(res.output.split())
    assert "--budget 1200 s (" in text and "24 rows x 1 seed(s), null arm" in text  # every row fits; seeds capped
    outputs = ["--json", str(tmp_path / "r.json"), "--report", str(tmp_path / "r.md")]
    res = runner.invoke(app, [*args, "--budget", "20m", "--seeds", "2", "--quiet", *outputs])
    assert res.exit_code in (0, 1), res.output
    budget = next(line for line in (tmp_path / "r.md").read_text().splitlines() if line.startswith("- **Budget**"))
    assert "24 rows x 2 seed(s)" in budget and re.search(r"It bought a detectable shift of [\d.e+-]+ pp", budget)
    doc = json.loads((tmp_path / "r.json").read_text())
    assert doc["budget"]["rows"] == 24 and doc["budget"]["seeds"] == 2 and doc["config"]["seeds"] == 2
    assert doc["dataset"]["rows_sampled"] == 24
