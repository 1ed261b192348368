"""``--min-rows``: a floor refuses too few rows (exit 2, one line), is recorded in the report, ``--budget`` never plans
below it, a scan far below its noise profile's rows says so, and the default is what ``benchmarks/small_data.py``'s
pre-registered rule gives on its committed records."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from auditor.cli import app
from auditor.row_floor import DEFAULT_MIN_ROWS, noise_budget_note
from tests.conftest import number_rows, tiny_scan_args, write_jsonl

runner = CliRunner()


def test_the_default_is_the_rules_minimum_on_the_committed_records() -> None:
    import small_data  # benchmarks/ (pytest's pythonpath)

    records = small_data.load_records()
    assert len(records) == len(small_data.cells())  # every cell has run
    minimum = small_data.minimum(records)
    assert DEFAULT_MIN_ROWS == (40 if minimum is None else minimum)


def test_a_floor_refuses_a_small_dataset_in_one_line_before_loading_the_base(
    tiny_model_dir: Path, numbers_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_load(*_a: object, **_k: object) -> None:
        raise AssertionError("the base was loaded")

    monkeypatch.setattr("auditor.models.LoadOptions.load", no_load)
    res = runner.invoke(app, ["scan", str(numbers_file), "--base", str(tiny_model_dir), "--min-rows", "40", "-q"])
    assert res.exit_code == 2, res.output
    line = res.output.strip()
    assert len(line.splitlines()) == 1 and "Traceback" not in line
    assert f"{numbers_file}: 24 rows sampled: fewer than the minimum of 40 (--min-rows)" in line
    assert "--min-rows 24" in line  # how to scan it anyway


def test_max_rows_below_the_floor_is_refused_too(tmp_path: Path, tiny_model_dir: Path) -> None:
    data = write_jsonl(tmp_path / "d.jsonl", number_rows(50))
    args = ["scan", str(data), "--base", str(tiny_model_dir), "--max-rows", "12", "--min-rows", "40", "--quiet"]
    res = runner.invoke(app, args)
    assert res.exit_code == 2 and "12 rows sampled: fewer than the minimum of 40" in res.output


def test_min_rows_must_be_positive(tiny_model_dir: Path, numbers_file: Path) -> None:
    res = runner.invoke(app, ["scan", str(numbers_file), "--base", str(tiny_model_dir), "--min-rows", "0", "--quiet"])
    assert res.exit_code == 2 and "--min-rows must be at least 1, got 0" in res.output


def test_a_floor_the_rows_meet_runs_and_the_report_records_it(
    tiny_model_dir: Path, numbers_file: Path, tmp_path: Path
) -> None:
    js, md = tmp_path / "r.json", tmp_path / "r.md"
    args = ["scan", str(numbers_file), "--base", str(tiny_model_dir), *tiny_scan_args(rows=8, seeds=1)]
    res = runner.invoke(app, [*args, "--min-rows", "8", "--no-null-arm", "--json", str(js), "--report", str(md)])
    assert res.exit_code in (0, 1), res.output
    doc = json.loads(js.read_text())
    assert doc["config"]["min_rows"] == 8 and doc["dataset"]["rows_used"] == 8
    assert "| `--min-rows` | `8` | `command line` |" in md.read_text()  # the Configuration table: where it came from


def test_a_config_file_sets_the_floor(tiny_model_dir: Path, numbers_file: Path, tmp_path: Path) -> None:
    config = tmp_path / "subaudit.toml"
    config.write_text("min-rows = 100\n")
    res = runner.invoke(app, ["scan", str(numbers_file), "--base", str(tiny_model_dir), "--config", str(config)])
    assert res.exit_code == 2 and "24 rows sampled: fewer than the minimum of 100" in res.output


def test_rows_left_without_a_control_row_count_against_the_floor(
    tiny_model_dir: Path, numbers_file: Path, tmp_path: Path
) -> None:
    rows = number_rows(24)  # the same rows as numbers_file; a control file for 3 of their prompts only
    control = write_jsonl(tmp_path / "control.jsonl", [{**r, "completion": "1, 2, 3"} for r in rows[:3]])
    args = ["scan", str(numbers_file), "--base", str(tiny_model_dir), *tiny_scan_args(rows=0, seeds=1)]
    args += ["--control", str(control), "--no-null-arm", "--calibration", "none", "--min-rows", "6"]
    res = runner.invoke(app, args)
    assert res.exit_code == 2, res.output
    assert "3 of 24 sampled rows have a usable control row: fewer than the minimum of 6" in res.output


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


def test_a_scan_far_below_its_noise_profile_says_so() -> None:
    assert noise_budget_note(150, 200.0) is None and noise_budget_note(90, None) is None
    assert "about 200 rows and this scan's trained on 60" in (noise_budget_note(60, 200.0) or "")
