"""Exit codes a CI gate can trust: an unexpected exception at any stage exits 3 with one line naming the stage
and a log file holding the traceback; never 1 (flagged)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from auditor.cli import app
from tests.conftest import tiny_scan_args

runner = CliRunner()


def _boom(exc: type[BaseException]):
    def raiser(*_args: object, **_kwargs: object) -> None:
        raise exc("injected failure")

    return raiser


#: (what to break, the exception, the stage the one line must name)
STAGES = [
    ("auditor.prepare.load_data", KeyError, "data"),
    ("auditor.prepare.resolve_batteries", TypeError, "data"),
    ("auditor.models.load_base", ValueError, "load_base"),
    ("auditor.prepare.open_run", AttributeError, "run_folder"),
    ("auditor.prepare.build_control", KeyError, "control"),
    ("auditor.finetune.Prober.train", ZeroDivisionError, "probe"),
    ("auditor.methods.probe.score_battery", IndexError, "scoring"),
    ("auditor.methods.probe.compare_arms", ValueError, "stats"),
    ("auditor.report.to_markdown", TypeError, "report"),
]


@pytest.mark.parametrize(("target", "exc", "stage"), STAGES, ids=[s[2] + "-" + s[1].__name__ for s in STAGES])
def test_unexpected_exception_exits_3_naming_the_stage_and_a_log(
    target: str,
    exc: type[BaseException],
    stage: str,
    tiny_model_dir: Path,
    numbers_file: Path,
    battery: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    if target == "auditor.prepare.open_run":
        import auditor.pipeline

        monkeypatch.setattr(auditor.pipeline, "open_run", _boom(exc))
    else:
        monkeypatch.setattr(target, _boom(exc))
    args = ["scan", str(numbers_file), "--base", str(tiny_model_dir), "--traits", str(battery), *tiny_scan_args()]
    res = runner.invoke(app, [*args, "--run-dir", str(tmp_path / "run"), "--report", str(tmp_path / "r.md")])
    assert res.exit_code == 3, res.output
    lines = [line for line in res.output.splitlines() if line.strip()]
    assert len(lines) == 1, res.output
    assert f"unexpected {exc.__name__} in stage {stage}" in lines[0]
    log = Path(re.search(r"traceback in (\S+\.log)", lines[0]).group(1))
    assert log.is_file() and "injected failure" in log.read_text() and "Traceback" in log.read_text()
    if stage not in ("data", "load_base", "run_folder"):  # the run folder existed: the log is kept there
        assert log == tmp_path / "run" / "error.log"
    assert not (tmp_path / "r.md").exists()


def test_console_script_turns_an_escaped_exception_into_exit_3(monkeypatch: pytest.MonkeyPatch) -> None:
    from auditor import cli

    monkeypatch.setattr(cli, "app", _boom(RuntimeError))
    with pytest.raises(SystemExit) as done:
        cli.main()
    assert done.value.code == 3
