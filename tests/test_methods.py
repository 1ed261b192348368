"""The method seam: the registry, a mock method through every path (scan, CLI, dry run, report, JSON, resume),
``--method-arg``, and the import graph of the package."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from auditor.cli import app
from auditor.errors import InputError

runner = CliRunner()
PACKAGE = Path(__file__).resolve().parent.parent / "auditor"


def test_registry_knows_the_builtin_methods_and_refuses_others() -> None:
    from auditor.methods import get_method, method_names

    assert {"probe", "gradient"} <= set(method_names())
    assert get_method("probe").name == "probe" and get_method("gradient").unit == "push"
    with pytest.raises(InputError, match="--method must be one of probe, gradient"):
        get_method("nope")


def test_methods_command_lists_methods_and_settings(mock_method: type) -> None:
    res = runner.invoke(app, ["methods"], terminal_width=200)
    assert res.exit_code == 0
    for text in ("probe", "gradient (default)", "questions=8", "mock", "option=owl", "probe=ProbeConfig()"):
        assert text in res.output
    assert "MISSING" not in res.output  # a factory-made default is shown as what it builds


def test_mock_method_through_scan_report_json_and_resume(
    mock_method: type, tiny_model_dir: Path, numbers_file: Path, battery: Path, tmp_path: Path
) -> None:
    js, md, run = tmp_path / "r.json", tmp_path / "r.md", tmp_path / "run"
    base = ["scan", str(numbers_file), "--base", str(tiny_model_dir), "--traits", str(battery), "--method", "mock"]
    args = [*base, "--method-arg", "shift=2.5", "--quiet", "--run-dir", str(run)]
    res = runner.invoke(app, [*args, "--json", str(js), "--report", str(md)])
    assert res.exit_code == 1, res.output  # owl moved 2.5 pp at q ~ 1e-6: high
    doc = json.loads(js.read_text())
    assert doc["schema_version"] == 2 and doc["method"] == "mock" and doc["control"] is None
    assert doc["details"] == {"planted": "owl", "reused": False}
    assert doc["verdict"]["level"] == "high" and doc["verdict"]["top"][0].startswith("mini: owl +2.5 pp")
    levels = {f["option"]: f["level"] for f in doc["findings"]}
    assert levels == {"owl": "high", "cat": "clean", "dog": "clean", "wolf": "clean"}
    report = md.read_text()
    for text in ("**Verdict: HIGH**", "- **Method**: mock, planted owl.", "## Mock findings", "mock method measures"):
        assert text in report
    assert json.loads((run / "manifest.json").read_text())["status"] == "finished"
    again = runner.invoke(app, [*args, "--json", str(js)])
    assert again.exit_code == 1 and json.loads(js.read_text())["details"]["reused"] is True
    clean = runner.invoke(app, [*base, "--method-arg", "option=cat", "--method-arg", "shift=0", "--quiet"])
    assert clean.exit_code == 0 and "CLEAN at this power" in clean.output


def test_mock_method_dry_run(mock_method: type, tiny_model_dir: Path, numbers_file: Path, battery: Path) -> None:
    args = ["scan", str(numbers_file), "--base", str(tiny_model_dir), "--traits", str(battery), "--method", "mock"]
    res = runner.invoke(app, [*args, "--dry-run"], terminal_width=200)
    assert res.exit_code == 0, res.output
    assert "method mock" in res.output and "mock" in res.output and "load_base" in res.output


def test_method_args_are_checked(mock_method: type, tiny_model_dir: Path, numbers_file: Path, battery: Path) -> None:
    args = ["scan", str(numbers_file), "--base", str(tiny_model_dir), "--traits", str(battery), "--method", "mock"]
    for bad, message in [
        ("colour=red", "method 'mock' has no setting 'colour' (settings: option, shift, draws, fail)"),
        ("shift=lots", "--method-arg shift: expected float, got 'lots'"),
        ("shift", "expected KEY=VALUE"),
        ("option=lion", "'lion' is not a graded option"),
    ]:
        res = runner.invoke(app, [*args, "--method-arg", bad, "--quiet"])
        assert res.exit_code == 2 and message in res.output, (bad, res.output)


def test_mock_method_draws_controls_when_asked(
    mock_method: type, tiny_model_dir: Path, numbers_file: Path, battery: Path, tmp_path: Path
) -> None:
    import auditor

    config = auditor.ScanConfig(
        str(numbers_file),
        base=str(tiny_model_dir),
        traits=[str(battery)],
        method="mock",
        method_args={"draws": 1},
        max_rows=6,
        run_dir=str(tmp_path / "run"),
    )
    result = auditor.scan(config)
    assert result.control is not None and result.control.source == "generated" and result.control.null_arm is None
    assert 1 <= result.dataset.rows_used <= 6 and result.first_row is not None


def test_no_module_uses_another_modules_private_names() -> None:
    offenders = []
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.level or (node.module or "").startswith("auditor")):
                private = [a.name for a in node.names if a.name.startswith("_") and not a.name.startswith("__")]
                offenders += [f"{path.name}: {name}" for name in private]
    assert not offenders, offenders
