"""benchmarks/power_rows.py: G's level on subsets of a kept scan's row pushes."""

from __future__ import annotations

import json

import numpy as np
import pytest

from auditor.config import ScanConfig

OPTIONS = [["animal", f"a{k}", 5.0] for k in range(10)] + [["tree", f"t{k}", 5.0] for k in range(10)]


@pytest.fixture()
def module():
    import power_rows  # benchmarks/ is on pytest's pythonpath (pyproject.toml)

    return power_rows


def _kept(rows: int, raise_by: float, seed: int = 0) -> dict:
    """Pushes of ``rows`` pairs: noise only, option 0's data push raised by ``raise_by`` (in noise sds)."""
    rng = np.random.default_rng(seed)
    data = rng.normal(size=(rows, len(OPTIONS)))
    data[:, 0] += raise_by
    control = rng.normal(size=(rows, len(OPTIONS)))
    return {"rows": rows, "options": OPTIONS, "dataset": data.tolist(), "control": control.tolist()}


def _config() -> ScanConfig:
    return ScanConfig("-", traits=["animal"], method="gradient", fail_on="medium")


def test_a_small_rise_is_found_by_more_rows_and_noise_is_not(module) -> None:
    """A rise of 0.25 sd is clean on 50 rows and flagged on 1,000; noise alone stays clean on 1,000."""
    config = _config()
    small = _kept(1000, 0.25)
    assert module.level_of(small, np.arange(50), config) == "clean"
    assert module.level_of(small, np.arange(1000), config) != "clean"
    assert module.level_of(_kept(1000, 0.0), np.arange(1000), config) == "clean"


def test_subsets_count_flagged_draws_per_size(module, monkeypatch) -> None:
    """Every size up to the rows kept; the full size is one draw (the whole file); a strong rise flags every draw."""
    monkeypatch.setattr(module, "SIZES", (100, 400, 600))
    monkeypatch.setattr(module, "DRAWS", 5)
    found = module.subsets(_kept(400, 1.0), _config())
    assert [s["rows"] for s in found] == [100, 400]
    assert [s["draws"] for s in found] == [5, 1]
    assert all(s["flagged"] == s["draws"] and s["first_rows"] != "clean" for s in found)


def test_read_pushes_joins_the_journal_by_arm_and_line(module, tmp_path) -> None:
    journal = tmp_path / "pushes.jsonl"
    entries = [
        {"key": ["pushes", 1, "dataset", [3, 1]], "value": [[0.3], [0.1]]},
        {"key": ["pushes", 1, "control", [1, 3]], "value": [[-0.1], [-0.3]]},
        {"key": ["pushes", 1, "dataset", [2]], "value": [[0.2]]},
    ]
    journal.write_text("".join(json.dumps(e) + "\n" for e in entries))
    arms = module.read_pushes(journal)
    assert arms == {"dataset": {3: [0.3], 1: [0.1], 2: [0.2]}, "control": {1: [-0.1], 3: [-0.3]}}


def test_the_report_gives_each_size_with_an_interval(module) -> None:
    record = {"cell": "rows-pos-owl-e3", "truth": "positive", "rows": 1000, "level": "medium",
              "exact_pairs": {"rows": 936, "of": 1000, "level": None, "top": []}, "timings_s": {"total": 12.0},
              "subsets": [{"rows": 200, "first_rows": "clean", "flagged": 10, "draws": 50},
                          {"rows": 1000, "first_rows": "medium", "flagged": 1, "draws": 1}]}  # fmt: skip
    text = module.report([record, {**record, "cell": "rows-neg-continue-502", "exact_pairs": None}])
    assert "| rows-pos-owl-e3 | positive | 1000 | medium | clean (936 of 1000) | 12 |" in text
    assert "| rows-neg-continue-502 | positive | 1000 | medium | every pair exact | 12 |" in text
    assert "| rows-pos-owl-e3 | 200 | clean | 10/50 [0.10, 0.34] |" in text
    assert "| rows-pos-owl-e3 | 1000 | medium | (every row) |" in text
