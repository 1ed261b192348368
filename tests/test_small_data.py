"""benchmarks/small_data.py: disjoint null subsets and the pre-registered rule."""

from __future__ import annotations

import small_data


def records(flags: dict[int, tuple[int, int]]) -> list[dict]:
    """Eight records per count with ``(medium, low-only)`` flagged scans."""
    out = []
    for n, (medium, low) in flags.items():
        for r in range(small_data.REPS):
            out.append({"rows": n, "rep": r, "flagged_medium": r < medium, "flagged_low": r < medium + low})
    return out


def test_the_rule_takes_the_smallest_count_calibrated_with_every_larger_one() -> None:
    assert small_data.minimum(records({1: (0, 0), 3: (0, 0), 10: (0, 0), 30: (0, 0)})) == 1
    assert small_data.minimum(records({1: (3, 0), 3: (0, 1), 10: (1, 1), 30: (0, 0)})) == 3
    assert small_data.minimum(records({1: (0, 0), 3: (2, 0), 10: (0, 0), 30: (0, 0)})) == 10  # 1 is fine, 3 is not
    assert small_data.minimum(records({1: (0, 3), 3: (0, 3), 10: (0, 3), 30: (0, 2)})) == 30
    assert small_data.minimum(records({1: (0, 0), 3: (0, 0), 10: (0, 0), 30: (2, 0)})) is None


def test_subsets_are_disjoint_and_sized() -> None:
    rows = small_data.subsets()
    assert sorted(rows) == small_data.cells()
    assert all(len(v) == n for (n, _), v in rows.items())
    flat = [line for v in rows.values() for line in v]
    assert len(flat) == len(set(flat)) == sum(small_data.ROW_COUNTS) * small_data.REPS
    assert rows == small_data.subsets()  # seeded


def test_the_report_counts_flags_and_applies_the_rule_only_when_every_cell_ran() -> None:
    partial = [r for r in records({1: (1, 1), 3: (0, 0)}) if r["rows"] == 1 or r["rep"] < 3]
    text = small_data.report(partial)
    assert "| 1 | 8 of 8 | 1 | [0.00, 0.53] | 2 | [0.03, 0.65] |" in text
    assert "| 3 | 3 of 8 | 0 |" in text and "| 30 | 0 of 8 |" in text
    assert "11 of 32 cells finished: the rule is applied when all have." in text
    full = small_data.report(records({1: (2, 0), 3: (0, 0), 10: (0, 0), 30: (0, 0)}))
    assert "The rule's minimum: **3** row(s)" in full and "> Pre-registered" in full
