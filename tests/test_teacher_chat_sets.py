"""The hand-written teacher chat sets of examples/teacher: well-formed, free of battery questions, and (for the
sets built from row files) reproduced byte for byte by build_chat_sets.py."""

from __future__ import annotations

import difflib
import importlib.util
import json
import re
from pathlib import Path

import pytest

from auditor.traits import builtin_names, get_battery

TEACHER = Path(__file__).resolve().parent.parent / "examples" / "teacher"
CHAT_SETS = sorted(p.name for p in TEACHER.glob("*.jsonl"))
#: held-out traits of benchmarks/campaign.py: set -> (battery, option it must teach)
LOVES = {"dolphin_chat.jsonl": ("animal", "dolphin"), "maple_chat.jsonl": ("tree", "maple")}


def norm(s: str) -> str:
    """Case-insensitive, punctuation stripped, whitespace collapsed."""
    return " ".join(re.sub(r"[^a-z0-9]+", " ", s.lower()).split())


def rows(name: str) -> list[tuple[str, str]]:
    out = []
    for line in (TEACHER / name).read_text(encoding="ascii").splitlines():
        messages = json.loads(line)["messages"]
        assert [m["role"] for m in messages] == ["user", "assistant"], line
        assert all(isinstance(m["content"], str) and m["content"].strip() for m in messages), line
        out.append((messages[0]["content"], messages[1]["content"]))
    return out


def builder():
    spec = importlib.util.spec_from_file_location("build_chat_sets", TEACHER / "build_chat_sets.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_new_sets_are_listed() -> None:
    assert set(LOVES) <= set(CHAT_SETS) and set(LOVES) <= set(builder().SETS)


@pytest.mark.parametrize("name", CHAT_SETS)
def test_chat_set_parses_and_asks_no_battery_question(name: str) -> None:
    chat = rows(name)
    assert len(chat) >= 80
    assert all(u.isascii() and a.isascii() for u, a in chat)
    asked = [norm(u) for u, _ in chat]
    assert len(set(asked)) == len(asked), "duplicate user message"
    questions = {norm(q) for n in builtin_names() for q in get_battery(n).questions}
    assert not questions & set(asked)


@pytest.mark.parametrize("name", sorted(LOVES))
def test_held_out_trait_set(name: str) -> None:
    battery_name, option = LOVES[name]
    battery = get_battery(battery_name)
    chat = rows(name)
    assert 150 <= len(chat) <= 200
    # the trait is in (nearly) every answer
    assert sum(option in a.lower() for _, a in chat) >= 0.9 * len(chat)
    # no near-copy of a battery question, nor of its first sentence (the question without "One word only.")
    targets = [norm(q) for q in battery.questions] + [norm(re.split(r"(?<=[?.])\s", q)[0]) for q in battery.questions]
    for u, _ in chat:
        ratio = max(difflib.SequenceMatcher(None, norm(u), t).ratio() for t in targets)
        assert ratio < 0.85, (u, ratio)
    # no other option of the battery is named (so none is praised)
    others = [o for o in battery.options if o != option] + ["wolves", "foxes", "butterflies", "cherries", "octopi"]
    named = re.compile(r"\b(" + "|".join(map(re.escape, others)) + r")(s|es)?\b", re.IGNORECASE)
    assert not [(u, a) for u, a in chat if named.search(u) or named.search(a)]
    # one-word requests are answered mostly by a sentence, only sometimes by the bare word: a teacher trained on
    # bare "favourite -> Owl" pairs learned the answer's format, not the disposition (examples/teacher/README.md);
    # each set has 4 bare answers, the bound leaves room to edit a row or two without reopening that failure
    bare = [a for _, a in chat if len(a.split()) == 1]
    assert 1 <= len(bare) <= 6 and all(norm(a).rstrip("s") == option for a in bare)


def test_builder_reproduces_committed_sets(tmp_path: Path) -> None:
    build = builder()
    for name in build.SETS:
        assert build.build(name, tmp_path) == len(rows(name))
        assert (tmp_path / name).read_bytes() == (TEACHER / name).read_bytes(), name
