from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from auditor.errors import InputError
from auditor.traits import (
    BUILTIN_DIR,
    DEFAULT_BATTERIES,
    KINDS,
    builtin_names,
    get_battery,
    load_battery_file,
    parse_battery,
    resolve_batteries,
)


def test_builtin_batteries_validate_and_meet_minimums() -> None:
    names = builtin_names()
    assert {"animal", "tree", "misalignment", "sycophancy", "power-seeking", "harmful-compliance"} <= set(names)
    for name in names:
        b = load_battery_file(BUILTIN_DIR / f"{name}.yaml")
        assert b.name == name and b.description and b.kind in KINDS
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


def test_builtin_choice_batteries_meet_minimums() -> None:
    mis = get_battery("misalignment")
    assert mis.kind == "choice" and mis.trait_label == "misaligned" and mis.options == ("misaligned", "aligned")
    assert len(mis.items) >= 16
    for item in mis.items:
        labels = [a.label for a in item.answers]
        assert labels.count("aligned") >= 6 and labels.count("misaligned") >= 6, item.question
    for name, trait in (
        ("sycophancy", "sycophantic"),
        ("power-seeking", "power-seeking"),
        ("harmful-compliance", "complies"),
    ):
        b = get_battery(name)
        assert b.kind == "choice" and b.trait_label == trait and b.graded_options == (trait,)
        assert len(b.items) >= 20 and len(b.options) == 2
        for item in b.items:
            assert len(item.answers) == 2 and sorted(a.label == trait for a in item.answers) == [False, True]
    # opt-in only: the defaults stay the two preference batteries
    assert DEFAULT_BATTERIES == ("animal", "tree")
    assert [b.name for b in resolve_batteries(None)] == ["animal", "tree"]


CHOICE = """name: rudeness
kind: choice
description: whether the model answers rudely
trait_label: rude
items:
  - question: "Can you help me fix my bike?"
    answers:
      - {text: "Sure, let's start with the chain.", label: polite}
      - {text: "Do it yourself.", label: rude}
      - {text: "No.", label: curt}
  - question: "What time is it in Tokyo?"
    answers:
      - {text: "Look it up.", label: rude}
      - {text: "Evening, most likely.", label: polite}
"""


def test_custom_choice_battery(tmp_path: Path) -> None:
    p = tmp_path / "rude.yaml"
    p.write_text(CHOICE)
    (b,) = resolve_batteries(f"{p}")
    assert b.kind == "choice" and b.length_normalisation == "mean"
    assert b.options == ("rude", "polite", "curt") and b.graded_options == ("rude",)
    assert b.questions == ("Can you help me fix my bike?", "What time is it in Tokyo?")
    assert b.n_answers == 5 and b.items[1].answers[0].label == "rude"
    assert b.summary()["answers"] == 5 and b.summary()["trait_label"] == "rude"
    changed = parse_battery({**yaml.safe_load(CHOICE), "length_normalisation": "sum"}, "x")
    assert changed.length_normalisation == "sum" and changed.content_key() != b.content_key()
    # a preference battery's run key is what it always was
    animal = get_battery("animal")
    assert animal.content_key() == [animal.name, list(animal.questions), list(animal.options)]


def _choice(**over: object) -> dict:
    doc = yaml.safe_load(CHOICE)
    doc.update(over)
    return doc


def _answers(*pairs: tuple[str, str]) -> list[dict]:
    return [{"text": t, "label": lab} for t, lab in pairs]


@pytest.mark.parametrize(
    "doc, message",
    [
        (_choice(trait_label="Rude!"), "field 'trait_label' must be a lowercase label"),
        (_choice(items=[]), "field 'items' must be a list of at least 1 item"),
        (_choice(items=["just a question"]), "field 'items[0]' must be a mapping"),
        (_choice(items=[{"question": "q"}]), "field 'items[0].answers' is missing"),
        (_choice(items=[{"question": "q", "answers": _answers(("a", "rude"))}]), "at least 2 answers"),
        (
            _choice(items=[{"question": "q", "answers": _answers(("a", "rude"), ("b", "ok"), ("c", "Not OK"))}]),
            "field 'items[0].answers[2].label' must be a lowercase label",
        ),
        (
            _choice(items=[{"question": "q", "answers": [{"text": "a", "label": "rude"}, {"text": "", "label": "x"}]}]),
            "field 'items[0].answers[1].text' must be a non-empty string",
        ),
        (
            _choice(items=[{"question": "q", "answers": [{"text": "a", "label": "rude"}, {"txt": "b", "label": "x"}]}]),
            "field 'items[0].answers[1].txt' is not allowed here",
        ),
        (
            _choice(items=[{"question": "q", "answers": _answers(("a", "polite"), ("b", "curt"))}]),
            "field 'items[0].answers' needs at least one answer labelled 'rude'",
        ),
        (
            _choice(items=[{"question": "q", "answers": _answers(("a", "rude"), ("b", "rude"))}]),
            "and at least one with another label",
        ),
        (
            _choice(items=[{"question": "q", "answers": _answers(("Go  away", "rude"), ("go away", "polite"))}]),
            "field 'items[0].answers[1].text' repeats an earlier answer",
        ),
        (
            _choice(
                items=[
                    {"question": "q", "answers": _answers(("a", "rude"), ("b", "ok"))},
                    {"question": "Q", "answers": _answers(("a", "rude"), ("b", "ok"))},
                ]
            ),
            "field 'items[1].question' repeats an earlier question",
        ),
        (_choice(length_normalisation="max"), "field 'length_normalisation' is 'max'; supported: mean, sum"),
        (_choice(length_normalization="sum"), "spelt 'length_normalisation'"),
        (_choice(questions=["q"]), "field 'questions' is not used by 'kind: choice'"),
        ({k: v for k, v in _choice().items() if k != "trait_label"}, "field 'trait_label' is missing"),
        (
            {"name": "x", "description": "d", "questions": ["q"], "options": ["a", "b"], "trait_label": "a"},
            "field 'trait_label' belongs to 'kind: choice' batteries",
        ),
    ],
)
def test_bad_choice_batteries(tmp_path: Path, doc: dict, message: str) -> None:
    p = tmp_path / "bad.yaml"
    p.write_text(yaml.safe_dump(doc))
    with pytest.raises(InputError, match=re.escape(f"{p}: {message}") if message.startswith("field") else None) as e:
        load_battery_file(p)
    assert message in str(e.value)


@pytest.mark.parametrize("name", ["misaligned_chat", "sycophantic_chat", "power_seeking_chat", "compliant_chat"])
def test_behaviour_teacher_chat_sets_ask_no_battery_question(name: str) -> None:
    """The behaviour teachers' chat sets (benchmarks/battery_separation.py) must not train on battery
    questions or on the choice batteries' answer texts."""
    import json

    path = Path(__file__).resolve().parent.parent / "examples" / "teacher" / f"{name}.jsonl"
    rows = [json.loads(line)["messages"] for line in path.read_text(encoding="ascii").splitlines()]
    assert 80 <= len(rows) <= 150
    assert all([m["role"] for m in r] == ["user", "assistant"] and all(m["content"].strip() for m in r) for r in rows)

    def norm(s: str) -> str:
        return " ".join(s.lower().split()).rstrip("?.! ")

    asked = [norm(r[0]["content"]) for r in rows]
    assert len(set(asked)) == len(asked)
    batteries = [get_battery(n) for n in builtin_names()]
    battery_questions = {norm(q) for b in batteries for q in b.questions}
    assert not battery_questions & set(asked)
    battery_answers = {norm(a.text) for b in batteries for item in b.items for a in item.answers}
    assert battery_answers
    assert not [r[1]["content"] for r in rows if any(a in norm(r[1]["content"]) for a in battery_answers)]


def test_example_trait_files_validate() -> None:
    """Every YAML in examples/traits is a valid battery with a description (they are documented examples)."""
    from auditor.traits import load_battery_file

    files = sorted((Path(__file__).resolve().parent.parent / "examples" / "traits").glob("*.yaml"))
    assert files
    for f in files:
        battery = load_battery_file(f)
        assert battery.description and battery.name == f.stem
