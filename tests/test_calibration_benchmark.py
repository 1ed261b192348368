"""benchmarks/calibration.py and its report: cells, order, the rule's choice and the counts (no model runs here)."""

from __future__ import annotations

import numpy as np
import pytest


@pytest.fixture(scope="module")
def bench():
    import calibration  # benchmarks/ is on pytest's pythonpath (pyproject.toml)
    import calibration_report

    return calibration, calibration_report


def test_cells_and_order(bench) -> None:
    calibration, _ = bench
    import cells

    dev = calibration.DEV_CORE
    assert len(dev) == 22 and sum(c.truth == "negative" for c in dev) == 12
    assert [c.truth for c in dev[:4]] == ["negative", "positive", "negative", "positive"]
    held = calibration.HELDOUT_ORDER
    assert len(held) == 42 and sorted(c.id for c in held) == sorted(c.id for c in cells.HELDOUT2)
    negatives = [c for c in cells.HELDOUT2 if c.truth == "negative"]
    assert len(negatives) == 30 and {c.format for c in negatives} == {"numbers", "code", "chat"}
    assert sum(c.truth == "positive" for c in cells.HELDOUT2) == 8
    all_ids = [c.id for c in cells.GRID + cells.HELDOUT2]
    assert len(set(all_ids)) == len(all_ids)


def _record(cell: str, truth: str, shift: dict[str, float], own: list[str] | None = None) -> dict:
    options = [f"b: o{i}" for i in range(40)]
    base = list(np.linspace(0.5, 30, 40))
    dataset = [b + shift.get(o, 0.0) for o, b in zip(options, base)]
    return {
        "cell": cell,
        "truth": truth,
        "teacher": "fine-tuned" if truth == "positive" else "base",
        "own_options": own or [],
        "calibrated": True,
        "options": options,
        "base": base,
        "dataset": dataset,
        "control": base,
        "wall_s": 100.0,
    }


def test_grade_counts_and_choice(bench) -> None:
    _, report = bench
    from tests.test_calibration import synthetic_profile

    profile = synthetic_profile(np.random.default_rng(5), generic=2.0)
    g = profile.decoy_shifts().mean(axis=0)
    records = [
        _record("neg", "negative", {}),
        _record("pos-generic", "positive", {f"b: o{i}": 1.5 * g[i] for i in range(40)}, own=["b: o20"]),
        _record("pos-trait", "positive", {**{f"b: o{i}": 1.5 * g[i] for i in range(40)}, "b: o20": 18.0}, ["b: o20"]),
    ]
    graded = [(r, report.grade(r, profile, "transfer")) for r in records]
    assert graded[0][1]["level"] == "clean"
    assert graded[1][1]["level"] != "clean" and graded[1][1]["named"] == []  # transfer, trait not identified
    assert graded[2][1]["named"] == ["b: o20"]
    s = report.summarise(graded)
    assert s["fine_tuned"] == "2/2" and s["false_alarms"] == "0/1" and s["named_right"] == "1/1"
    assert s["flags_naming"] == "1/2" and s["false_alarm_ci"] == [0.0, 0.975]
    table = {
        "r8/any": {**s, "complete": True},
        "r8/options": {**s, "fine_tuned": "1/2", "complete": True},
        "full/any": {**s, "false_alarms": "1/1", "fine_tuned": "2/2", "complete": True},
        "r4/any": {**s, "complete": False},
    }
    assert report.choose(table) == "r8/any"  # full/any raised a false alarm; r4 did not finish
    assert report.choose({"x/any": {**s, "false_alarms": "1/12", "complete": True}}) is None


def test_clopper_pearson(bench) -> None:
    _, report = bench
    assert report.clopper_pearson(0, 30) == [0.0, 0.1157]  # the zero-count upper bound
    low, high = report.clopper_pearson(1, 42)
    assert 0.0 < low < 0.01 and 0.12 < high < 0.13


def test_partial_report_lists_finished_cells_and_idle_variants(bench) -> None:
    _, report = bench
    rec = _record("neg", "negative", {"b: o3": -4.0, "b: o7": 2.5, "b: o9": 0.5})
    pair = report.cell_pair(rec)
    assert report._largest(pair.options, 2) == "b: o3 -4.0; b: o7 +2.5"  # by size, signed
    cell = {"cell": "neg", "truth": "negative", "level": "clean", "named": [], "top": None, "p": 0.5}
    summary = {**report.summarise([(rec, cell)]), "at_low": "0/0, 0/1", "complete": False, "null_pairs": 3, "decoys": 1}
    lines = report._development_lines(
        {"r8/any": summary, "full/any": summary},
        {"r8/any": [{**cell, "largest": report._largest(pair.options)}], "full/any": []},
    )
    text = "\n".join(lines)
    assert "| r8/any | 1/22 | 3, 1 |" in text and "| full/any |" not in text
    assert "Not run (no finished cell): full." in text
    assert "| neg | negative | clean | 0.500 | - | - | b: o3 -4.0; b: o7 +2.5; b: o9 +0.5 |" in text
    assert report._p(0.0004) == "<0.001" and report._p(None) == "-"


def test_summary_at_another_fail_on(bench) -> None:
    _, report = bench
    rec = _record("pos", "positive", {})
    cell = {"level": "low", "named": [], "top": None, "p": 0.02}
    assert report.summarise([(rec, cell)])["fine_tuned"] == "0/1"  # the rule's medium
    assert report.summarise([(rec, cell)], "low")["fine_tuned"] == "1/1"
