"""Choice batteries end to end: CLI commands and a tiny-model scan with a custom choice YAML."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from auditor import cli
from auditor.cli import app
from tests.conftest import CHOICE_YAML, tiny_scan_args

runner = CliRunner()
TINY = tiny_scan_args()


def test_traits_commands_on_choice_batteries(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, choice_battery: Path
) -> None:
    monkeypatch.setattr(cli.out, "width", 200)
    res = runner.invoke(app, ["traits", "list"])
    assert res.exit_code == 0
    for name in ("misalignment", "sycophancy", "power-seeking", "harmful-compliance", "choice", "preference"):
        assert name in res.output
    assert "12 per question" in res.output and "label 'misaligned'" in res.output
    res = runner.invoke(app, ["traits", "show", "misalignment"])
    assert res.exit_code == 0 and "trait label: misaligned" in res.output and "* misaligned" in res.output
    mine = choice_battery
    res = runner.invoke(app, ["traits", "validate", str(mine)])
    assert res.exit_code == 0 and "ok: my-trait (choice), 2 questions, 5 answers, trait label 'bad'" in res.output
    bad = tmp_path / "bad.yaml"
    bad.write_text(CHOICE_YAML.replace('{text: "Oak", label: good}', '{text: "Oak", label: Good}'))
    res = runner.invoke(app, ["traits", "validate", str(bad)])
    assert res.exit_code == 2 and "field 'items[1].answers[0].label' must be a lowercase label" in res.output


def test_choice_alone_needs_a_preference_battery_for_the_null_arm(
    numbers_file: Path, choice_battery: Path, tiny_model_dir: Path
) -> None:
    res = runner.invoke(app, ["scan", str(numbers_file), "--traits", str(choice_battery), "--null-arm", "--quiet"])
    assert res.exit_code == 2 and "at least 3 graded options" in res.output  # refused before any model loads
    # by default the probe's null arm runs when no profile calibrates the scan: refused too, before anything is written
    args = ["scan", str(numbers_file), "--traits", str(choice_battery), "--base", str(tiny_model_dir), "--quiet"]
    args += ["--method", "probe"]
    res = runner.invoke(app, args)
    assert res.exit_code == 2 and "at least 3 graded options" in res.output


def test_scan_with_custom_choice_and_builtin_preference(
    tiny_model_dir: Path, numbers_file: Path, tmp_path: Path, choice_battery: Path
) -> None:
    mine = choice_battery
    report, js = tmp_path / "r.md", tmp_path / "r.json"
    args = ["scan", str(numbers_file), "--base", str(tiny_model_dir), "--traits", f"tree,{mine}", *TINY]
    res = runner.invoke(app, [*args, "--report", str(report), "--json", str(js), "--run-dir", str(tmp_path / "run")])
    assert res.exit_code in (0, 1), res.output
    doc = json.loads(js.read_text())
    by_battery: dict[str, list[dict]] = {}
    for f in doc["findings"]:
        by_battery.setdefault(f["battery"], []).append(f)
    assert set(by_battery) == {"tree", "my-trait"}
    # the choice battery is one hypothesis: its trait label only
    assert [f["option"] for f in by_battery["my-trait"]] == ["bad"]
    assert len(by_battery["tree"]) == 21
    mine_f = by_battery["my-trait"][0]
    assert (
        0 < mine_f["base"] < 100
        and 0 < mine_f["control"] < 100
        and mine_f["level"] in ("clean", "low", "medium", "high")
    )
    (bat,) = [b for b in doc["batteries"] if b["name"] == "my-trait"]
    assert bat["kind"] == "choice" and bat["options"] == ["bad", "good"] and bat["graded"] == ["bad"]
    assert bat["answers"] == 5 and bat["length_normalisation"] == "mean"
    assert set(doc["verdict"]["by_battery"]) == {"tree", "my-trait"}
    md = report.read_text()
    assert "## Battery `tree`" in md and "## Battery `my-trait`" in md
    section = md.split("## Battery `my-trait`")[1].split("\n## ")[0]
    assert "share of the answers labelled `bad`" in section and "| bad |" in section and "| good |" not in section
    assert "(22 options tested)" in md
