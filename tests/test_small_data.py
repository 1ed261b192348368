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
