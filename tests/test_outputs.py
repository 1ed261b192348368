"""CI-native outputs (JUnit, SARIF, step summary, PR comment, JSON on stdout, plots), the published JSON Schemas,
and the config file with its ignore rules."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from auditor.cli import app
from tests.conftest import tiny_scan_args, write_jsonl

runner = CliRunner()
ROOT = Path(__file__).resolve().parent.parent
SCHEMAS = ROOT / "auditor" / "schemas"
TEST_SCHEMAS = Path(__file__).resolve().parent / "schemas"


def _validate_json(doc: dict, schema: str) -> None:
    import jsonschema

    jsonschema.Draft202012Validator(json.loads((SCHEMAS / schema).read_text())).validate(doc)


def _validate_sarif(doc: dict) -> None:
    import jsonschema
    from pydantic_sarif.model import StaticAnalysisResultsFormatSarifVersion210JsonSchema as Sarif

    jsonschema.validate(doc, json.loads((TEST_SCHEMAS / "sarif-2.1.0-subset.schema.json").read_text()))
    Sarif.model_validate(doc)  # a model generated from the standard's own schema (unknown properties refused)
    official = os.environ.get("SUBAUDIT_SARIF_SCHEMA")  # OASIS's sarif-schema-2.1.0.json, which no package ships
    if official:
        jsonschema.Draft4Validator(json.loads(Path(official).read_text())).validate(doc)


def _mock_scan(mock_method: type, model: Path, data: Path, battery: Path, *extra: str) -> list[str]:
    args = ["scan", str(data), "--base", str(model), "--traits", str(battery), "--method", "mock", "--quiet"]
    return [*args, *extra]


def test_junit_and_sarif_validate_and_carry_the_findings(
    mock_method: type, tiny_model_dir: Path, numbers_file: Path, battery: Path, tmp_path: Path, monkeypatch
) -> None:
    import xmlschema

    monkeypatch.chdir(tmp_path)
    data = Path("numbers.jsonl")
    data.write_bytes(numbers_file.read_bytes())
    args = _mock_scan(mock_method, tiny_model_dir, data, battery, "--junit", "j.xml", "--sarif", "s.sarif")
    res = runner.invoke(app, args)
    assert res.exit_code == 1, res.output
    xmlschema.XMLSchema(str(TEST_SCHEMAS / "junit.xsd")).validate("j.xml")
    xml = Path("j.xml").read_text()
    assert '<testcase classname="subaudit.mock" name="mini"' in xml and xml.count("<failure") == 1
    assert 'tests="1" failures="1"' in xml and "mini: owl +3.0 pp" in xml
    sarif = json.loads(Path("s.sarif").read_text())
    _validate_sarif(sarif)
    result = sarif["runs"][0]["results"][0]
    assert result["ruleId"] == "option-shift" and result["level"] == "error"
    location = result["locations"][0]["physicalLocation"]
    assert location["artifactLocation"]["uri"] == "numbers.jsonl" and location["region"]["startLine"] == 1


def test_a_broken_sarif_document_is_refused() -> None:
    """The SARIF checks are not vacuous."""
    import jsonschema
    from pydantic import ValidationError

    bad = {"version": "2.1.0", "runs": [{"tool": {"driver": {"name": "x"}}, "results": [{"message": {}}]}]}
    with pytest.raises(jsonschema.ValidationError):
        _validate_sarif(bad)
    from pydantic_sarif.model import StaticAnalysisResultsFormatSarifVersion210JsonSchema as Sarif

    with pytest.raises(ValidationError):
        Sarif.model_validate({"version": "2.1.0", "runs": [{"tool": {"driver": {"name": "x", "colour": 1}}}]})


def test_gradient_rows_are_sarif_results_at_their_lines(
    tiny_model_dir: Path, numbers_file: Path, tmp_path: Path
) -> None:
    args = ["scan", str(numbers_file), "--base", str(tiny_model_dir), "--method", "gradient", "--max-rows", "12"]
    res = runner.invoke(app, [*args, "--traits", "tree", "--quiet", "--sarif", str(tmp_path / "g.sarif")])
    assert res.exit_code in (0, 1), res.output
    sarif = json.loads((tmp_path / "g.sarif").read_text())
    _validate_sarif(sarif)
    rows = [r for r in sarif["runs"][0]["results"] if r["ruleId"] == "row-push"]
    lines = [r["locations"][0]["physicalLocation"]["region"]["startLine"] for r in rows]
    assert len(rows) == 15 and all(1 <= n <= 24 for n in lines)  # 3 options x 5 rows, at the rows' file lines


def test_json_to_stdout_and_the_github_step_summary(
    mock_method: type, tiny_model_dir: Path, numbers_file: Path, battery: Path, tmp_path: Path, monkeypatch
) -> None:
    summary = tmp_path / "summary.md"
    summary.write_text("earlier step\n")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    res = runner.invoke(app, _mock_scan(mock_method, tiny_model_dir, numbers_file, battery, "--json", "-"))
    assert res.exit_code == 1
    doc = json.loads(res.stdout)  # standard output holds the JSON and nothing else
    assert doc["method"] == "mock" and doc["verdict"]["flagged"] is True
    text = summary.read_text()
    assert text.startswith("earlier step\n") and "subaudit: **HIGH**" in text and "<details>" in text
    summary.write_text("")
    runner.invoke(app, _mock_scan(mock_method, tiny_model_dir, numbers_file, battery, "--no-github"))
    assert summary.read_text() == ""


def test_pr_comment_leads_with_the_verdict_and_escapes_the_data_path(
    mock_method: type, tiny_model_dir: Path, battery: Path, tmp_path: Path
) -> None:
    from tests.conftest import number_rows

    nasty = tmp_path / "x`]](http:evil)<b>.jsonl"
    write_jsonl(nasty, number_rows(12))
    args = _mock_scan(mock_method, tiny_model_dir, nasty, battery, "--pr-comment", str(tmp_path / "pr.md"))
    res = runner.invoke(app, args)
    assert res.exit_code == 1, res.output
    md = (tmp_path / "pr.md").read_text()
    first = md.splitlines()[0]
    assert first.startswith("### 🔴 subaudit: **HIGH** on `x']](http:evil)<b>.jsonl`")  # a code span cannot be closed
    assert md.index("mini: owl") < md.index("<details>") and md.rstrip().endswith("</details>")


def test_result_json_validates_against_the_published_schema(
    mock_method: type, tiny_model_dir: Path, numbers_file: Path, battery: Path, tmp_path: Path
) -> None:
    for args in (
        _mock_scan(mock_method, tiny_model_dir, numbers_file, battery),
        ["scan", str(numbers_file), "--base", str(tiny_model_dir), "--traits", "animal,tree", *tiny_scan_args()],
        ["scan", str(numbers_file), "--base", str(tiny_model_dir), "--method", "gradient", "--traits", "tree", "-q"],
    ):
        res = runner.invoke(app, [*args, "--json", str(tmp_path / "r.json")])
        assert res.exit_code in (0, 1), res.output
        _validate_json(json.loads((tmp_path / "r.json").read_text()), "result.schema.json")
    doc = json.loads((tmp_path / "r.json").read_text())
    rows = doc["control"]["rows"]  # the gradient method's any-count control: how its rows differ from the data's
    assert rows["format"] == "numbers" and [f["feature"] for f in rows["features"]] == [
        "numbers a row", "copied from the prompt", "mean value"
    ]  # fmt: skip
    doc["verdict"]["level"] = "severe"
    with pytest.raises(Exception, match="severe"):
        _validate_json(doc, "result.schema.json")


def test_trait_files_validate_against_the_published_schema(choice_battery: Path, battery: Path) -> None:
    builtin = sorted((ROOT / "auditor" / "traits" / "builtin").glob("*.yaml"))
    for path in [*builtin, ROOT / "examples/traits/colour.yaml"]:
        _validate_json(yaml.safe_load(path.read_text()), "battery.schema.json")
    _validate_json(yaml.safe_load(choice_battery.read_text()), "battery.schema.json")
    _validate_json(yaml.safe_load(battery.read_text()), "battery.schema.json")
    bad = yaml.safe_load(battery.read_text())
    bad["options"] = ["owl"]  # fewer than 2
    with pytest.raises(Exception, match="too short|minItems|should be non-empty|is too short"):
        _validate_json(bad, "battery.schema.json")


def test_plots_are_written_and_linked(
    mock_method: type, tiny_model_dir: Path, numbers_file: Path, battery: Path, tmp_path: Path
) -> None:
    report = tmp_path / "out" / "report.md"
    report.parent.mkdir()
    res = runner.invoke(app, _mock_scan(mock_method, tiny_model_dir, numbers_file, battery, "--report", str(report)))
    assert res.exit_code == 1, res.output
    plots = sorted((tmp_path / "out" / "report-plots").iterdir())
    assert [p.name for p in plots] == ["forest.png", "shares-mini.png"]
    assert all(p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and p.stat().st_size > 5000 for p in plots)
    text = report.read_text()
    assert "![forest](report-plots/forest.png)" in text and "![shares-mini](report-plots/shares-mini.png)" in text


# ------------------------------------------------------------------------------------------------ config file


def test_config_file_settings_flags_and_sources(
    mock_method: type, tiny_model_dir: Path, numbers_file: Path, battery: Path, tmp_path: Path, monkeypatch
) -> None:
    monkeypatch.chdir(tmp_path)
    Path("pyproject.toml").write_text(
        "[project]\nname = 'x'\n\n[tool.subaudit]\n"
        f"base = '{tiny_model_dir}'\ntraits = ['{battery}']\nmethod = 'mock'\nfail-on = 'high'\n"
        "method-arg = ['shift=1.5']\nrank = 4\ncontrol-candidates = 6\ncontrol-count = 'any'\n\n"
        "[tool.subaudit.thresholds]\nhigh_shift = 1.0\n"
    )
    res = runner.invoke(app, ["scan", str(numbers_file), "--quiet", "--json", "r.json", "--report", "r.md"])
    assert res.exit_code == 1, res.output  # owl +1.5 pp reaches high with the file's high_shift 1.0
    doc = json.loads(Path("r.json").read_text())
    assert doc["verdict"]["fail_on"] == "high" and doc["verdict"]["thresholds"]["high_shift"] == 1.0
    md = Path("r.md").read_text()
    assert "## Configuration" in md and '| `--fail-on` | `"high"` |' in md and "pyproject.toml" in md
    # the students' and the control sampler's settings show their values (not "(output option)")
    assert "| `--rank` | `4` |" in md and "| `--control-candidates` | `6` |" in md
    assert '| `--control-count` | `"any"` |' in md
    assert '| `--method-arg` | `{"shift": "1.5"}` |' in md
    # a flag overrides the file, and the report says where it came from
    res = runner.invoke(app, ["scan", str(numbers_file), "--quiet", "--fail-on", "medium", "--report", "r.md"])
    assert res.exit_code == 1 and '| `--fail-on` | `"medium"` | `command line` |' in Path("r.md").read_text()
    Path("subaudit.toml").write_text("fail_on = 'high'\ncolour = 'red'\n")  # subaudit.toml wins over pyproject
    res = runner.invoke(app, ["scan", str(numbers_file), "--quiet"])
    assert res.exit_code == 2 and "subaudit.toml: unknown setting 'colour'" in res.output


def test_ignore_rules_set_aside_a_finding_until_they_expire(
    mock_method: type, tiny_model_dir: Path, numbers_file: Path, battery: Path, tmp_path: Path
) -> None:
    config = tmp_path / "subaudit.toml"
    rule = '[[ignore]]\nfinding = "mini: owl"\nreason = "reviewed: a known artefact"\n'
    config.write_text(rule + 'expires = "2999-01-01"\n')
    args = _mock_scan(mock_method, tiny_model_dir, numbers_file, battery, "--config", str(config))
    res = runner.invoke(app, [*args, "--json", str(tmp_path / "r.json"), "--report", str(tmp_path / "r.md")])
    assert res.exit_code == 0, res.output  # the only finding is set aside
    doc = json.loads((tmp_path / "r.json").read_text())
    owl = next(f for f in doc["findings"] if f["option"] == "owl")
    assert owl["level"] == "high" and owl["ignored"]["reason"] == "reviewed: a known artefact"
    assert doc["verdict"]["level"] == "clean"
    md = (tmp_path / "r.md").read_text()
    assert "high (ignored)" in md and "(active)" in md
    config.write_text(rule + 'expires = "2000-01-01"\n')
    res = runner.invoke(app, [*args, "--report", str(tmp_path / "r.md")])
    assert res.exit_code == 1 and "**expired**: not applied" in (tmp_path / "r.md").read_text()
    config.write_text('[[ignore]]\nfinding = "mini: owl"\n')
    res = runner.invoke(app, args)
    assert res.exit_code == 2 and re.search(r"ignore\[0\]\.reason is required", res.output)


# ------------------------------------------------------------------------------------------------- compare


def _doc(levels: dict[str, tuple[str, float]], verdict: str) -> dict:
    findings = [
        {"battery": "b", "option": o, "level": lvl, "shift": shift, "q": 0.5, "p": 0.5}
        for o, (lvl, shift) in levels.items()
    ]
    thresholds = {"low_shift": 0.5, "medium_shift": 1.0, "high_shift": 2.0}
    return {
        "schema_version": 2,
        "method": "probe",
        "verdict": {"level": verdict, "thresholds": thresholds},
        "findings": findings,
        "dataset": {"sha256": "s"},
        "base": {"fingerprint": "f"},
    }


def test_compare_names_every_change_and_exits_1_only_when_worse(tmp_path: Path) -> None:
    old = _doc({"owl": ("low", 0.8), "oak": ("medium", 1.5), "cat": ("clean", 0.2), "elm": ("clean", 0.4)}, "medium")
    new = _doc({"owl": ("high", 2.5), "oak": ("clean", 0.1), "cat": ("medium", 1.2), "elm": ("clean", 0.7)}, "high")
    (tmp_path / "old.json").write_text(json.dumps(old))
    (tmp_path / "new.json").write_text(json.dumps(new))
    res = runner.invoke(app, ["compare", str(tmp_path / "old.json"), str(tmp_path / "new.json")])
    assert res.exit_code == 1, res.output
    lines = res.output.splitlines()
    assert lines[0] == "verdict medium -> high; worse at --fail-on medium"
    assert lines[1:] == [
        "new: b: cat clean -> medium (shift +0.20 -> +1.20)",
        "up: b: owl low -> high (shift +0.80 -> +2.50)",
        "crossed: b: elm clean -> clean (shift +0.40 -> +0.70)",
        "resolved: b: oak medium -> clean (shift +1.50 -> +0.10)",
    ]
    better = _doc({"owl": ("low", 0.6), "oak": ("clean", 0.2), "cat": ("clean", 0.2), "elm": ("clean", 0.4)}, "low")
    (tmp_path / "better.json").write_text(json.dumps(better))
    res = runner.invoke(app, ["compare", str(tmp_path / "old.json"), str(tmp_path / "better.json")])
    assert res.exit_code == 0 and res.output.splitlines()[0] == "verdict medium -> low; not worse at --fail-on medium"
    res = runner.invoke(app, ["compare", str(tmp_path / "old.json"), str(tmp_path / "new.json"), "--fail-on", "high"])
    assert res.exit_code == 1  # owl reached high, where nothing was high before
    (tmp_path / "v1.json").write_text(json.dumps({"schema_version": 1}))
    res = runner.invoke(app, ["compare", str(tmp_path / "v1.json"), str(tmp_path / "new.json")])
    assert res.exit_code == 2 and "not a subaudit result of schema_version 2 (found 1)" in res.output
