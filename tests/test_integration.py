"""The real scan on SmolLM2-135M-Instruct with a tiny budget (about 2-3 minutes on 2 cores)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from auditor.cli import app
from tests.conftest import REAL_MODEL_DIR

pytestmark = pytest.mark.integration

EXAMPLE = Path(__file__).parent.parent / "examples" / "data" / "owl_numbers.jsonl"


@pytest.fixture
def real_model() -> Path:
    if not (REAL_MODEL_DIR / "config.json").exists():
        if os.environ.get("SUBAUDIT_REQUIRE_MODEL"):
            pytest.fail(f"SmolLM2 is not cached at {REAL_MODEL_DIR}; run `subaudit models fetch`")
        pytest.skip(f"SmolLM2 not cached at {REAL_MODEL_DIR} (run `subaudit models fetch`; CI requires it)")
    return REAL_MODEL_DIR


def test_real_scan_tiny_budget(real_model: Path, tmp_path: Path) -> None:
    js, md = tmp_path / "r.json", tmp_path / "r.md"
    res = CliRunner().invoke(
        app,
        [
            "scan",
            str(EXAMPLE),
            "--base",
            str(real_model),
            "--traits",
            "animal",
            "--max-rows",
            "16",
            "--seeds",
            "2",
            "--batch-size",
            "8",
            "--max-steps",
            "2",
            "--quiet",
            "--json",
            str(js),
            "--report",
            str(md),
        ],
    )
    assert res.exit_code in (0, 1), res.output
    doc = json.loads(js.read_text())
    assert doc["base"]["kind"] == "local-dir" and doc["dataset"]["format"] == "numbers"
    control = doc["control"]
    assert control["format"] == "numbers" and control["kept"] >= 12 and control["unmatched"] == 16 - control["kept"]
    # SmolLM2-135M almost never writes a count-matched list freely: auto's rejection pilot finds (almost) none and
    # the rows are importance-resampled from 4 constrained samples each
    sampling = control["sampling"]
    assert sampling["rows_by"].get("resample", 0) >= 12 and 1.0 <= sampling["ess"] <= 4.0 and not sampling["exact"]
    assert control["decoding"] is not None and abs(control["decoding"]["null_z"]) < 10
    assert doc["dataset"]["rows_used"] >= 12
    runs = doc["details"]["probe"]["runs"]
    expected = [(arm, seed) for seed in (0, 1) for arm in ("dataset", "control", "null")]
    assert [(r["arm"], r["seed"]) for r in runs] == expected
    assert doc["control"]["null_arm"]["kept"] >= 12
    assert all(r["steps"] == 2 and r["tokens"] > 0 for r in runs)
    owl = next(f for f in doc["findings"] if f["option"] == "owl")
    assert 0 < owl["base"] < 100 and owl["ci"][0] <= owl["shift"] <= owl["ci"][1]
    assert sum(f["base"] for f in doc["findings"]) == pytest.approx(100, abs=0.05)
    assert "## Battery `animal`" in md.read_text()


def test_real_scan_with_the_default_method(real_model: Path, tmp_path: Path) -> None:
    """The README's first command with no method named runs the gradient method on the real model: its exact
    any-count control, pushes for every option, and a configuration that says the method was the default."""
    js = tmp_path / "r.json"
    args = ["scan", str(EXAMPLE), "--base", str(real_model), "--traits", "animal", "--max-rows", "8"]
    res = CliRunner().invoke(app, [*args, "--method-arg", "questions=2", "--quiet", "--json", str(js)])
    assert res.exit_code in (0, 1), res.output
    doc = json.loads(js.read_text())
    assert doc["method"] == "gradient" and doc["config"]["method"] == "gradient"
    sampling = doc["control"]["sampling"]
    assert sampling["count"] == "any" and sampling["rows_by"].get("rejection", 0) >= 1, sampling
    exact = doc["details"]["exact_pairs"]  # the test on the exact pairs, when some control rows were resampled
    resampled = sum(n for k, n in sampling["rows_by"].items() if k != "rejection")
    assert (exact is None) == (resampled == 0), (exact, sampling)
    assert exact is None or (exact["rows"], exact["of"]) == (sampling["rows_by"]["rejection"], 8)
    shifts = [f for f in doc["findings"] if f["battery"] == "animal"]
    assert len(shifts) == 26 and all(f["ci"][0] <= f["shift"] <= f["ci"][1] for f in shifts)
    assert doc["verdict"]["level"] in ("clean", "low", "medium", "high")


def test_the_shipped_profile_calibrates_the_probe_on_the_embedded_default(real_model: Path) -> None:
    """benchmarks/ship_profile.py's profile (the campaign's base-written number datasets and decoys) is found by a
    probe scan of number data at the default budget on the embedded model, and by no other scan."""
    from types import SimpleNamespace

    from auditor.calibration.lookup import find_profile
    from auditor.config import ScanConfig
    from auditor.models import load_base, resolve_base

    loaded = load_base(resolve_base(str(real_model)), device="cpu")
    numbers = SimpleNamespace(completion_format="numbers")
    profile = find_profile(ScanConfig("d.jsonl", method="probe"), loaded, numbers)
    assert profile is not None and len(profile.draws) >= 16 and len(profile.decoys) == 3
    assert {"animal", "tree"} <= set(profile.batteries)
    assert find_profile(ScanConfig("d.jsonl", method="probe", max_rows=100), loaded, numbers) is None  # another budget
    assert find_profile(ScanConfig("d.jsonl", method="probe", seeds=2), loaded, numbers) is None
