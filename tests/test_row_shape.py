"""auditor.row_shape: each feature of the format's rows, data against the control rows for the same prompts."""

from __future__ import annotations

import pytest

from auditor.data import Example
from auditor.row_shape import compare_rows


def _rows(prompt: str, completions: list[str]) -> list[Example]:
    return [Example(({"role": "user", "content": prompt},), c) for c in completions]


def test_shorter_number_lists_differ_in_count_and_in_what_they_copy() -> None:
    """Data rows of mostly 3 numbers (2 of them the prompt's) against control rows of 4 and 6 (half the prompt's)."""
    prompt = "Go on: 10, 20, 30, 40"
    data = _rows(prompt, ["10, 20, 7"] * 20 + ["10, 20, 30, 7, 8, 9"] * 4)
    control = _rows(prompt, ["10, 20, 7, 8"] * 12 + ["10, 20, 30, 7, 8, 9"] * 12)
    shape = compare_rows("numbers", data, control)
    by = {f.feature: f for f in shape.features}
    assert list(by) == ["numbers a row", "copied from the prompt", "mean value"]
    count = by["numbers a row"]
    assert count.data == pytest.approx((20 * 3 + 4 * 6) / 24) and count.control == pytest.approx(5.0)
    assert count.pairs == 24 and count.p < 1e-3 and count.differs
    copied = by["copied from the prompt"]
    assert copied.data == pytest.approx((20 * 2 / 3 + 4 * 0.5) / 24)
    assert copied.control == pytest.approx((12 * 0.5 + 12 * 0.5) / 24)
    assert copied.differs and {"numbers a row", "copied from the prompt"} <= {f.feature for f in shape.differing()}
    assert "numbers a row 3.5 against 5 (q " in count.line()


def test_identical_rows_differ_in_nothing() -> None:
    """A count-matched control of the same lists: every difference is zero, p and q are 1."""
    rows = _rows("Go on: 1, 2", ["3, 4, 5"] * 10)
    shape = compare_rows("numbers", rows, rows)
    assert [(f.p, f.q, f.differs) for f in shape.features] == [(1.0, 1.0, False)] * 3 and shape.differing() == []


def test_a_row_that_is_not_a_number_list_is_left_out_of_the_pairs() -> None:
    data = _rows("p", ["1, 2, 3"] * 9 + ["not a list"])
    control = _rows("p", ["1, 2"] * 10)
    assert {f.pairs for f in compare_rows("numbers", data, control).features} == {9}


def test_free_text_is_compared_on_words_and_lines() -> None:
    data = _rows("Tell me", ["one two three\nfour"] * 8)
    control = _rows("Tell me", ["one two"] * 8)
    shape = compare_rows("free", data, control)
    assert [(f.feature, f.data, f.control) for f in shape.features] == [("words a row", 4.0, 2.0),
                                                                        ("lines a row", 2.0, 1.0)]  # fmt: skip
    assert shape.features[0].p == pytest.approx(2 / 2**8)  # exact signed-rank: 8 of 8 pairs the same sign
    assert shape.to_dict()["features"][0] == {
        "feature": "words a row", "data": 4.0, "control": 2.0, "pairs": 8, "p": 0.007812, "q": 0.007812,
        "differs": True,
    }  # fmt: skip


def test_data_and_control_must_pair_up() -> None:
    with pytest.raises(ValueError):
        compare_rows("free", _rows("p", ["a"] * 3), _rows("p", ["a"] * 2))


def test_text_rows_are_left_out() -> None:
    """A text row's control is its first words continued and cut at a budget: its length says nothing."""
    text = [Example((), "a b c d e f", meta={"text_prompt": "a b"}) for _ in range(6)]
    shape = compare_rows("free", [*text, *_rows("Tell me", ["one two"] * 4)], [*text, *_rows("Tell me", ["x"] * 4)])
    assert {f.pairs for f in shape.features} == {4}
