"""One settings vocabulary for the CLI and the Python API (:mod:`auditor.settings`): a config file merges the same way
into both (explicit > file > defaults), ``auditor.scan`` writes what ``subaudit scan`` writes, the defaults agree."""

from __future__ import annotations

import inspect
import json
import re
import shutil
import typing
from pathlib import Path

import pytest
from typer.testing import CliRunner

import auditor
from auditor.cli import NOT_SETTINGS, app, scan
from auditor.config import DEFAULT_METHOD, ScanConfig
from auditor.finetune import DEFAULT_LR, ProbeConfig
from auditor.outputs import Outputs
from auditor.settings import KINDS, flatten, from_values, resolve

runner = CliRunner()

TOML = """seeds = 2
max-rows = 8
batch-size = 4
max-steps = 1
traits = ["animal"]
report = "out/report.md"
json-out = "out/result.json"
junit = "out/junit.xml"
sarif = "out/result.sarif"
pr-comment = "out/pr.md"
quiet = true
[thresholds]
low_shift = 0.5
[[ignore]]
finding = "animal: owl"
reason = "reviewed"
"""


def _cli_params() -> dict[str, inspect.Parameter]:
    return {n: p for n, p in inspect.signature(scan).parameters.items() if n not in NOT_SETTINGS | {"ctx"}}


# -------------------------------------------------------------------------------------- the vocabulary agrees


def test_the_library_knows_every_scan_option_with_its_type() -> None:
    params, hints = _cli_params(), typing.get_type_hints(scan)
    assert set(KINDS) == set(params)
    for name in params:
        kinds = [t for t in typing.get_args(hints[name]) or (hints[name],) if t is not type(None)]
        assert (typing.get_origin(kinds[0]) or kinds[0]) is KINDS[name], name


def test_the_cli_defaults_are_the_library_defaults() -> None:
    """Every option's default on the command line is what a ScanConfig, ProbeConfig and Outputs built in Python hold,
    so a scan from Python and one from the shell agree when neither says more."""
    library = flatten(ScanConfig("data.jsonl"), Outputs())
    cli = {name: p.default for name, p in _cli_params().items()}
    assert cli == {**library, "method": None}  # the CLI's method is settled by choose_method: the library's default
    assert library["method"] == DEFAULT_METHOD == "gradient"


def test_probe_config_takes_the_kinds_learning_rate() -> None:
    assert ProbeConfig().learning_rate == DEFAULT_LR["lora"] == 1e-3
    assert ProbeConfig(kind="full").learning_rate == DEFAULT_LR["full"] == 3e-5
    assert ProbeConfig(kind="full", learning_rate=1e-4).learning_rate == 1e-4


# --------------------------------------------------------------------------------------------- precedence


def _write(folder: Path, text: str) -> Path:
    path = folder / "subaudit.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_python_fields_win_the_file_fills_the_rest(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _write(tmp_path, 'seeds = 3\nmax-rows = 0\nprobe-kind = "full"\nfail-on = "low"\n[thresholds]\nlow_shift = 0.25\n')
    monkeypatch.chdir(tmp_path)
    settings = resolve(ScanConfig("d.jsonl", seeds=5, fail_on="medium"))
    c = settings.config
    assert c.seeds == 5  # set in Python (not its default): wins
    assert c.max_rows is None and c.probe.kind == "full" and c.probe.learning_rate == DEFAULT_LR["full"]
    assert c.fail_on == "low"  # "medium" is the default: a field at its default cannot be told from one left alone
    assert c.thresholds.low_shift == 0.25
    assert c.sources["seeds"] == "python" and c.sources["max_rows"] == str(tmp_path / "subaudit.toml")
    assert settings.outputs is None  # the file names no output: auditor.scan writes nothing


def test_an_explicit_learning_rate_survives_the_files_kind(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _write(tmp_path, 'probe-kind = "full"\n')
    monkeypatch.chdir(tmp_path)
    c = resolve(ScanConfig("d.jsonl", probe=ProbeConfig(learning_rate=5e-4))).config
    assert c.probe.kind == "full" and c.probe.learning_rate == 5e-4
    _write(tmp_path, 'probe-kind = "full"\nlr = 2e-5\n')
    assert resolve(ScanConfig("d.jsonl")).config.probe.learning_rate == 2e-5


def test_a_files_teacher_system_reaches_the_probe_and_not_another_method(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mock_method: type
) -> None:
    _write(tmp_path, 'teacher-system = "You love owls."\n')
    monkeypatch.chdir(tmp_path)
    c = resolve(ScanConfig("d.jsonl")).config
    needs = f"{tmp_path / 'subaudit.toml'}: setting 'teacher-system'"
    assert c.method == "probe" and c.sources["method"] == f"default: the probe, which {needs} needs"
    assert c.method_args["teacher_system"] == "You love owls." and c.setting("teacher_system") == "You love owls."
    assert "teacher_system" not in c.setting("method_arg") and c.sources["teacher_system"].endswith("subaudit.toml")
    with pytest.raises(auditor.InputError, match="setting 'teacher-system' is a setting of --method probe"):
        resolve(ScanConfig("d.jsonl", method=mock_method.name))


# ---------------------------------------------------------------------------------------------- the method


def _cli(**given: object) -> auditor.ScanConfig:
    """The config the command line builds with ``given`` options (the others at their defaults), no config file."""
    values = {name: p.default for name, p in _cli_params().items()}
    return from_values("d.jsonl", {**values, **given}, set(given), None).config


def test_the_default_method_is_the_gradient_unless_a_probe_only_setting_is_given() -> None:
    assert ScanConfig("d.jsonl").method == _cli().method == "gradient"
    assert _cli().sources["method"] == "default"
    for python in (ScanConfig("d.jsonl", teacher="t"), ScanConfig("d.jsonl", seeds=1),
                   ScanConfig("d.jsonl", method_args={"discover": False}),
                   ScanConfig("d.jsonl", probe=ProbeConfig(kind="full"))):  # fmt: skip
        assert python.method == "probe"
    assert ScanConfig("d.jsonl", probe=ProbeConfig(rank=4, batch_size=2)).method == "gradient"  # its adapter's too
    for option, value in (("teacher", "t"), ("seeds", 2), ("discover", False), ("epochs", 2.0), ("gate", "options")):
        c = _cli(**{option: value})
        flag = "--" + option
        assert c.method == "probe" and c.sources["method"] == f"default: the probe, which {flag} needs", option
    assert _cli(rank=4, batch_size=2, max_rows=20).method == "gradient"


def test_a_named_method_refuses_the_probes_settings_rather_than_ignore_them() -> None:
    with pytest.raises(auditor.InputError, match="--teacher is a setting of --method probe, which --method gradient"):
        _cli(method="gradient", teacher="t")
    with pytest.raises(auditor.InputError, match="--seeds is a setting of --method probe"):
        _cli(method="gradient", seeds=2)
    assert _cli(method="probe", seeds=2).method_args["seeds"] == 2
    # a config built in Python keeps the old leniency (the benchmarks name the gradient with calibration="none")
    assert ScanConfig("d.jsonl", method="gradient", calibration="none").method == "gradient"


def test_a_named_method_in_the_file_refuses_a_probe_option_and_names_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _write(tmp_path, 'method = "gradient"\n')
    monkeypatch.chdir(tmp_path)
    values = {name: p.default for name, p in _cli_params().items()}
    refused = rf"--seeds is a setting of --method probe, which {re.escape(str(path))}"
    with pytest.raises(auditor.InputError, match=refused):
        from_values("d.jsonl", {**values, "seeds": 2}, {"seeds"}, path)


def test_which_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _write(tmp_path, "seeds = 3\n")
    other = tmp_path / "other.toml"
    other.write_text("seeds = 4\n")
    (tmp_path / "sub").mkdir()
    monkeypatch.chdir(tmp_path / "sub")  # found from the working directory up
    assert resolve(ScanConfig("d.jsonl")).config.seeds == 3
    assert resolve(ScanConfig("d.jsonl"), config_file=False).config.seeds == 1
    assert resolve(ScanConfig("d.jsonl"), config_file=other).config.seeds == 4
    resolved = resolve(ScanConfig("d.jsonl"), config_file=other).config
    assert resolve(resolved).config.seeds == 4  # a config that records its sources is used as it is


def test_a_bad_value_in_the_file_names_file_and_setting(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _write(tmp_path, 'fail-on = "never"\n')
    monkeypatch.chdir(tmp_path)
    with pytest.raises(auditor.InputError, match=r"set by 'fail-on' in .*subaudit\.toml"):
        resolve(ScanConfig("d.jsonl"))


# ----------------------------------------------------------------------- auditor.scan == subaudit scan


VOLATILE = {"timings", "timings_s", "created", "seconds", "tokens_per_second", "run_dir", "command"}


def _plain(value: object) -> object:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items() if k not in VOLATILE}
    return [_plain(v) for v in value] if isinstance(value, list) else value


def _text(path: Path, command: str) -> str:
    text = path.read_text(encoding="utf-8").replace(command, "COMMAND").replace(json.dumps(command)[1:-1], "COMMAND")
    text = re.sub(r"run-(cli|py)", "RUN", text).replace("`command line`", "`python`").replace("cache-py", "cache")
    text = re.sub(r"\d{4}-\d\d-\d\dT[\d:+.]+", "TIME", text)
    text = re.sub(r'time="[\d.]+"', 'time="T"', text)
    text = re.sub(r"\| \d+ \|\n", "| N |\n", text)  # tokens per second
    return re.sub(r"timings s:.*", "", text)


def test_python_scan_with_a_subaudit_toml_gives_the_cli_result_and_files(
    tiny_model_dir: Path, numbers_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    work = tmp_path / "work"
    work.mkdir()
    _write(work, TOML)
    monkeypatch.chdir(work)
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(work / "out" / "summary.md"))
    base = ["--base", str(tiny_model_dir), "--device", "cpu"]
    res = runner.invoke(app, ["scan", str(numbers_file), *base, "--run-dir", str(tmp_path / "run-cli")])
    assert res.exit_code in (0, 1), res.output
    shutil.move(work / "out", work / "out-cli")
    monkeypatch.setenv("SUBAUDIT_CACHE", str(tmp_path / "cache-py"))  # computed afresh: no control from the cache
    config = ScanConfig(str(numbers_file), base=str(tiny_model_dir), device="cpu", run_dir=str(tmp_path / "run-py"))
    result = auditor.scan(config)
    assert result.exit_code == res.exit_code
    cli_files = sorted(p.relative_to(work / "out-cli") for p in (work / "out-cli").rglob("*") if p.is_file())
    py_files = sorted(p.relative_to(work / "out") for p in (work / "out").rglob("*") if p.is_file())
    assert py_files == cli_files and len(cli_files) == 8  # 5 named, 2 plots beside the report, the step summary
    cli_json = json.loads((work / "out-cli" / "result.json").read_text())
    py_json = json.loads((work / "out" / "result.json").read_text().replace("cache-py", "cache"))
    assert py_json["config"]["seeds"] == 2 and py_json["config"]["thresholds"]["low_shift"] == 0.5
    assert _plain(py_json) == _plain(cli_json)
    for rel in cli_files:
        if rel.suffix not in (".png", ".json"):
            cli_text = _text(work / "out-cli" / rel, cli_json["command"])
            assert _text(work / "out" / rel, py_json["command"]) == cli_text, rel
