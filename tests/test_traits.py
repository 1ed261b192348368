from __future__ import annotations

from pathlib import Path

import pytest

from auditor.errors import InputError
from auditor.traits import builtin_names, get_battery, load_battery_file, resolve_batteries


def test_builtin_batteries_validate_and_meet_minimums() -> None:
    names = builtin_names()
    assert {"animal", "tree"} <= set(names)
    for name in names:
        b = get_battery(name)
        assert b.description and b.kind == "preference"
        assert len(set(q.lower() for q in b.questions)) == len(b.questions)
    assert len(get_battery("animal").questions) >= 30 and len(get_battery("animal").options) >= 15
    assert len(get_battery("tree").questions) >= 20 and len(get_battery("tree").options) >= 10
    assert "owl" in get_battery("animal").options


def test_custom_battery_file(tmp_path: Path) -> None:
    p = tmp_path / "colour.yaml"
    p.write_text(
        "name: colour\ndescription: favourite colour\nquestions: ['Your favourite colour? One word.']\n"
        "options: [red, blue, green]\n"
    )
    (b,) = resolve_batteries(str(p))
    assert b.name == "colour" and b.options == ("red", "blue", "green")
    assert [x.name for x in resolve_batteries(f"animal,{p}")] == ["animal", "colour"]


@pytest.mark.parametrize(
    "text, message",
    [
        ("name: x\n", "field 'description' is missing"),
        ("name: X Y\ndescription: d\nquestions: [q]\noptions: [a, b]\n", "field 'name' must be a lowercase id"),
        ("name: x\ndescription: d\nquestions: []\noptions: [a, b]\n", "field 'questions' must be a list"),
        ("name: x\ndescription: d\nquestions: [q]\noptions: [a]\n", "field 'options' must be a list of at least 2"),
        ("name: x\ndescription: d\nquestions: [q]\noptions: [a, A]\n", "lists 'a' more than once"),
        ("name: x\ndescription: d\nkind: vibes\nquestions: [q]\noptions: [a, b]\n", "field 'kind' is 'vibes'"),
        ("- just\n- a list\n", "must be a YAML mapping"),
        ("name: [unclosed\n", "not valid YAML"),
    ],
)
def test_bad_battery_files(tmp_path: Path, text: str, message: str) -> None:
    p = tmp_path / "bad.yaml"
    p.write_text(text)
    with pytest.raises(InputError, match=message.replace("[", r"\[").replace("(", r"\(")):
        load_battery_file(p)


def test_unknown_and_duplicate_batteries() -> None:
    with pytest.raises(InputError, match="unknown trait battery 'unicorn'"):
        resolve_batteries("unicorn")
    with pytest.raises(InputError, match="given twice"):
        resolve_batteries("animal,animal")
