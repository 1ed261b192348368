from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from auditor.cli import app
from tests.conftest import tiny_scan_args, write_jsonl

runner = CliRunner()
TINY = tiny_scan_args(rows=12, steps=2)


def test_help_does_not_import_torch() -> None:
    code = "import sys; from auditor.cli import app; print('torch' in sys.modules, 'transformers' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False False"
    res = subprocess.run([sys.executable, "-m", "auditor", "--help"], capture_output=True, text=True)
    assert res.returncode == 0 and "scan" in res.stdout


def test_scan_end_to_end_on_tiny_model(tiny_model_dir: Path, numbers_file: Path, tmp_path: Path) -> None:
    before = hashlib.sha256(numbers_file.read_bytes()).hexdigest()
    report, js = tmp_path / "r.md", tmp_path / "r.json"
    res = runner.invoke(
        app,
        [
            "scan",
            str(numbers_file),
            "--base",
            str(tiny_model_dir),
            *TINY,
            "--report",
            str(report),
            "--json",
            str(js),
            "--run-dir",
            str(tmp_path / "run"),
        ],
    )
    assert res.exit_code in (0, 1), res.output
    doc = json.loads(js.read_text())
    assert doc["schema_version"] == 2 and doc["method"] == "probe"
    assert doc["verdict"]["level"] in ("clean", "low", "medium", "high")
    assert doc["verdict"]["flagged"] == (res.exit_code == 1)
    assert {f["battery"] for f in doc["findings"]} == {"animal", "tree"}
    f0 = doc["findings"][0]
    assert {"battery", "option", "shift", "ci", "q", "level"} <= set(f0)
    assert [r["arm"] for r in doc["details"]["probe"]["runs"]] == ["dataset", "control", "null"] * 2
    assert doc["control"]["source"] == "generated" and doc["control"]["null_arm"]["seed"] == 1000
    assert all(f["noise"] is not None and f["noise"] > 0 and f["null_shift"] is not None for f in doc["findings"])
    assert "Student t" in doc["details"]["statistics"]["interval"]
    md = report.read_text()
    assert md.startswith("# subaudit risk report") and "**Verdict:" in md.splitlines()[2]
    for section in ("## What was tested and how", "## Battery `animal`", "## Caveats", "## Reproducibility"):
        assert section in md
    assert hashlib.sha256(numbers_file.read_bytes()).hexdigest() == before
    # same command again: every stage comes from the run folder and the numbers are identical
    res2 = runner.invoke(
        app,
        [
            "scan",
            str(numbers_file),
            "--base",
            str(tiny_model_dir),
            *TINY,
            "--json",
            str(tmp_path / "r2.json"),
            "--run-dir",
            str(tmp_path / "run"),
        ],
    )
    doc2 = json.loads((tmp_path / "r2.json").read_text())
    assert res2.exit_code == res.exit_code
    assert doc2["findings"] == doc["findings"]


def test_fail_on_low_vs_high(tiny_model_dir: Path, numbers_file: Path, tmp_path: Path) -> None:
    args = [
        "scan",
        str(numbers_file),
        "--base",
        str(tiny_model_dir),
        *TINY,
        "--run-dir",
        str(tmp_path / "run"),
        "--json",
        str(tmp_path / "r.json"),
    ]
    runner.invoke(app, args)
    doc = json.loads((tmp_path / "r.json").read_text())
    level = doc["verdict"]["level"]
    for fail_on in ("low", "medium", "high"):
        res = runner.invoke(app, [*args, "--fail-on", fail_on])
        ranks = ["clean", "low", "medium", "high"]
        assert res.exit_code == (1 if ranks.index(level) >= ranks.index(fail_on) else 0)


def test_no_null_arm_trains_two_arms(tiny_model_dir: Path, numbers_file: Path, tmp_path: Path) -> None:
    js = tmp_path / "r.json"
    args = ["scan", str(numbers_file), "--base", str(tiny_model_dir), *TINY, "--no-null-arm", "--json", str(js)]
    res = runner.invoke(app, [*args, "--run-dir", str(tmp_path / "run")])
    assert res.exit_code in (0, 1), res.output
    doc = json.loads(js.read_text())
    assert [r["arm"] for r in doc["details"]["probe"]["runs"]] == ["dataset", "control"] * 2
    assert doc["control"]["null_arm"] is None and all(f["noise"] is None for f in doc["findings"])
    assert "draw noise not covered" in doc["details"]["statistics"]["interval"]


def test_bad_input_exits_2_with_location(tiny_model_dir: Path, tmp_path: Path) -> None:
    bad = write_jsonl(tmp_path / "bad.jsonl", [{"prompt": "a", "completion": "1"}, '{"prompt": "b"'])
    res = runner.invoke(app, ["scan", str(bad), "--base", str(tiny_model_dir), "--quiet"])
    assert res.exit_code == 2
    assert "bad.jsonl:2: invalid JSON" in res.output
    assert "Traceback" not in res.output
    res = runner.invoke(app, ["scan", str(tmp_path / "missing.jsonl"), "--quiet"])
    assert res.exit_code == 2 and "no such file" in res.output
    res = runner.invoke(app, ["scan", str(bad), "--fail-on", "extreme"])
    assert res.exit_code == 2


def test_missing_default_model_explains_fetch(numbers_file: Path) -> None:
    res = runner.invoke(app, ["scan", str(numbers_file), "--quiet"])
    assert res.exit_code == 3
    assert "subaudit models fetch" in res.output


def test_bad_base_and_fake_gguf(numbers_file: Path, tmp_path: Path) -> None:
    res = runner.invoke(app, ["scan", str(numbers_file), "--base", "not a model", "--quiet"])
    assert res.exit_code == 2 and "not an existing path" in res.output
    fake = tmp_path / "fake.gguf"
    fake.write_bytes(b"NOPE" + b"\0" * 64)
    res = runner.invoke(app, ["scan", str(numbers_file), "--base", str(fake), "--quiet"])
    assert res.exit_code == 2 and "not a GGUF file" in res.output


def test_models_and_traits_commands(tmp_path: Path) -> None:
    res = runner.invoke(app, ["models"])
    assert res.exit_code == 0 and "llama-3-8b" in res.output and "smollm2-135m" in res.output
    res = runner.invoke(app, ["traits", "list"])
    assert res.exit_code == 0 and "animal" in res.output and "tree" in res.output
    res = runner.invoke(app, ["traits", "show", "tree"])
    assert res.exit_code == 0 and "oak" in res.output
    bad = tmp_path / "t.yaml"
    bad.write_text("name: t\n")
    res = runner.invoke(app, ["traits", "validate", str(bad)])
    assert res.exit_code == 2 and "description" in res.output


def test_python_api_scan_stays_a_function_after_import() -> None:
    import auditor
    import auditor.pipeline  # noqa: F401  (importing the module must not shadow the function)

    assert callable(auditor.scan) and auditor.scan is auditor.pipeline.scan


def test_dry_run_trains_nothing_and_estimates_each_stage(
    tiny_model_dir: Path, numbers_file: Path, tmp_path: Path
) -> None:
    run = tmp_path / "run"
    res = runner.invoke(
        app,
        ["scan", str(numbers_file), "--base", str(tiny_model_dir), *TINY, "--run-dir", str(run), "--dry-run"],
    )
    assert res.exit_code == 0, res.output
    out = res.output
    assert "dry run" in out and "first training example" in out and "as tokens" in out
    assert "arms dataset, control, null x seeds [0, 1] = 6 runs of 2 steps" in out
    for stage in ("load_base", "control", "probe", "scoring", "total"):
        assert stage in out
    assert "*" in out  # loss-carrying tokens are marked
    assert not run.exists()  # nothing was written: no run folder, no students


def test_dry_run_estimate_scales_with_runs(tiny_model_dir: Path, numbers_file: Path) -> None:
    from auditor.config import ScanConfig
    from auditor.dryrun import dry_run
    from auditor.finetune import ProbeConfig

    cfg = ScanConfig(str(numbers_file), base=str(tiny_model_dir), max_rows=12, seeds=2, probe=ProbeConfig(batch_size=4))
    plan = dry_run(cfg)
    assert plan.method == "probe" and "arms dataset, control, null x seeds [0, 1] = 6 runs of 3 steps" in plan.plan
    assert plan.tokens_per_row_mean > 0 and plan.dataset.rows_sampled == 12
    assert sum(plan.first_example["loss_mask"]) > 0
    assert len(plan.first_example["tokens"]) == len(plan.first_example["token_ids"])
    per_run = plan.estimate_s["probe"] / 6
    assert per_run == pytest.approx(3 * plan.measured["train_step_s"], rel=0.05, abs=0.05)


def test_help_shows_every_bracketed_word_of_the_docs() -> None:
    """Rich reads ``[word]`` in a help text as markup and drops it (``[tool.subaudit]`` once vanished from
    ``scan --help``): every bracketed word of a command's docstring and its options' help must be shown."""
    import re

    import typer

    group = typer.main.get_command(app)
    checked = 0
    for name, command in group.commands.items():
        texts = [command.help or ""] + [getattr(p, "help", None) or "" for p in command.params]
        words = {w.replace("\\[", "[") for t in texts for w in re.findall(r"\\?\[[^\]\s]+\]", t)}
        if not words:
            continue
        res = runner.invoke(app, [name, "--help"], terminal_width=200)
        assert res.exit_code == 0, res.output
        shown = " ".join(res.output.split())
        for word in words:
            assert word in shown, f"{name} --help lost {word!r}"
            checked += 1
    assert checked >= 1


def test_a_path_with_brackets_is_printed_as_it_is(tiny_model_dir: Path, tmp_path: Path) -> None:
    """Paths are shown verbatim, never read as rich markup (a folder named ``run[dim]`` lost its brackets)."""
    out = tmp_path / "run[dim]" / "data.jsonl"
    out.parent.mkdir()
    res = runner.invoke(
        app, ["generate", str(out), "--teacher", str(tiny_model_dir), "--rows", "4", "--constrain"], terminal_width=400
    )
    assert res.exit_code == 0, res.output
    assert str(out) in "".join(res.output.split()) and out.exists()  # the console wraps a long path
