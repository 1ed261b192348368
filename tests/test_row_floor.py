"""``--min-rows``: too few rows to judge are refused (exit 2, one line), a lowered floor is recorded and reported,
``--budget`` never plans below it, and a scan far below its noise profile's rows says so."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from auditor.cli import app
from auditor.config import ScanConfig
from auditor.row_floor import DEFAULT_MIN_ROWS, below_default_note, noise_budget_note
from tests.conftest import number_rows, tiny_scan_args, write_jsonl

#: The shipped default (the suite's autouse fixture lowers it to 1 for its tiny datasets).
SHIPPED = DEFAULT_MIN_ROWS
runner = CliRunner()


@pytest.fixture
def shipped_floor(monkeypatch: pytest.MonkeyPatch) -> int:
    monkeypatch.setattr("auditor.row_floor.DEFAULT_MIN_ROWS", SHIPPED)
    return SHIPPED


def test_default_refuses_a_small_dataset_in_one_line_before_loading_the_base(
    shipped_floor: int, tiny_model_dir: Path, numbers_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_load(*_a: object, **_k: object) -> None:
        raise AssertionError("the base was loaded")

    monkeypatch.setattr("auditor.models.LoadOptions.load", no_load)
    res = runner.invoke(app, ["scan", str(numbers_file), "--base", str(tiny_model_dir), "--quiet"])
    assert res.exit_code == 2, res.output
    line = res.output.strip()
    assert len(line.splitlines()) == 1 and "Traceback" not in line
    assert f"{numbers_file}: 24 rows sampled: fewer than the {shipped_floor} a scan can judge" in line
    assert "--min-rows 24" in line  # how to scan it anyway


def test_max_rows_below_the_floor_is_refused_too(shipped_floor: int, tmp_path: Path, tiny_model_dir: Path) -> None:
    data = write_jsonl(tmp_path / "d.jsonl", number_rows(shipped_floor + 10))
    res = runner.invoke(app, ["scan", str(data), "--base", str(tiny_model_dir), "--max-rows", "12", "--quiet"])
    assert res.exit_code == 2 and f"12 rows sampled: fewer than the {shipped_floor}" in res.output


def test_min_rows_must_be_positive(tiny_model_dir: Path, numbers_file: Path) -> None:
    res = runner.invoke(app, ["scan", str(numbers_file), "--base", str(tiny_model_dir), "--min-rows", "0", "--quiet"])
    assert res.exit_code == 2 and "--min-rows must be at least 1, got 0" in res.output


def test_a_lowered_floor_runs_and_the_report_records_it(
    shipped_floor: int, tiny_model_dir: Path, numbers_file: Path, tmp_path: Path
) -> None:
    js, md = tmp_path / "r.json", tmp_path / "r.md"
    args = ["scan", str(numbers_file), "--base", str(tiny_model_dir), *tiny_scan_args(rows=8, seeds=1)]
    res = runner.invoke(app, [*args, "--min-rows", "8", "--no-null-arm", "--json", str(js), "--report", str(md)])
    assert res.exit_code in (0, 1), res.output
    doc = json.loads(js.read_text())
    assert doc["config"]["min_rows"] == 8 and doc["dataset"]["rows_used"] == 8
    report = md.read_text()
    dataset_line = next(line for line in report.splitlines() if line.startswith("- **Dataset**"))
    assert f"**Warning**: 8 rows used, fewer than the default minimum of {shipped_floor} (--min-rows 8" in dataset_line
    caveats = report.split("## Caveats", 1)[1]
    assert "- 8 rows used, fewer than the default minimum" in caveats
    assert "| `--min-rows` | `8` | `command line` |" in report  # the Configuration table: where it came from


def test_a_config_file_sets_the_floor(
    shipped_floor: int, tiny_model_dir: Path, numbers_file: Path, tmp_path: Path
) -> None:
    config = tmp_path / "subaudit.toml"
    config.write_text("min-rows = 100\n")
    res = runner.invoke(app, ["scan", str(numbers_file), "--base", str(tiny_model_dir), "--config", str(config)])
    assert res.exit_code == 2 and "24 rows sampled: fewer than the 100 a scan can judge" in res.output


def test_rows_left_without_a_control_row_count_against_the_floor(
    tiny_model_dir: Path, numbers_file: Path, tmp_path: Path
) -> None:
    rows = number_rows(24)  # the same rows as numbers_file; a control file for 3 of their prompts only
    control = write_jsonl(tmp_path / "control.jsonl", [{**r, "completion": "1, 2, 3"} for r in rows[:3]])
    args = ["scan", str(numbers_file), "--base", str(tiny_model_dir), *tiny_scan_args(rows=0, seeds=1)]
    args += ["--control", str(control), "--no-null-arm", "--calibration", "none", "--min-rows", "6"]
    res = runner.invoke(app, args)
    assert res.exit_code == 2, res.output
    assert "3 of 24 sampled rows have a usable control row: fewer than the 6 a scan can judge" in res.output


def test_budget_never_plans_below_the_floor() -> None:
    from auditor.budget import plan_budget
    from auditor.errors import InputError
    from tests.test_budget import PROBE, FixedRates, _inputs

    plain = _inputs(max_rows=400, seeds=1)
    assert plan_budget(PROBE, plain, FixedRates(), 200, available_rows=1000).rows < 300  # what 200 s buy
    floored = dataclasses.replace(plain, config=dataclasses.replace(plain.config, min_rows=300))
    with pytest.raises(InputError, match="even 300 rows and one seed need about"):
        plan_budget(PROBE, floored, FixedRates(), 200, available_rows=1000)
    assert plan_budget(PROBE, floored, FixedRates(), 400, available_rows=1000).rows >= 300


def test_notes_say_when_they_apply(shipped_floor: int) -> None:
    config = ScanConfig("d.jsonl", min_rows=5)
    assert below_default_note(ScanConfig("d.jsonl"), 3) is None  # the default floor already refused it
    assert below_default_note(config, 100) is None
    assert "5 rows used" in (below_default_note(config, 5) or "")
    assert noise_budget_note(150, 200.0) is None and noise_budget_note(90, None) is None
    assert "about 200 rows and this scan's trained on 60" in (noise_budget_note(60, 200.0) or "")
