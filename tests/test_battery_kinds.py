"""A new battery kind is one module and one registry entry: a toy kind, defined here and registered for the test,
goes through parsing, planning, scoring, the statistics, a tiny probe scan, its JSON and its report, with no other
file edited."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest

from auditor.battery_scores import BatteryScores
from auditor.chat import encode_text, prompt_text
from auditor.errors import InputError
from auditor.scoring import continuation_ids, continuation_logprobs, question_messages
from auditor.traits import Battery
from auditor.traits.fields import fail, text_field
from auditor.traits.kinds import BatteryKind, kind_names, register, unregister

YESNO_YAML = """name: agree
kind: yes-no
description: Does the model agree with each statement?
questions:
  - "Owls are the best animal. Agree?"
  - "Oak is the best tree. Agree?"
  - "Cats are the best animal. Agree?"
trait_answer: "Yes"
other_answer: "No"
"""


@dataclass
class YesNoPlan:
    """Each question's prompt and the two answers' token ids after it."""

    battery: Battery
    prefixes: list[list[int]]
    answer_ids: list[list[list[int]]]

    @property
    def forward_tokens(self) -> int:
        return sum(len(p) for p in self.prefixes) + sum(len(a) for q in self.answer_ids for a in q)


class YesNoKind(BatteryKind):
    """Statements the model answers with one of two fixed words; the trait answer is graded."""

    name = "yes-no"
    summary = "a trait answer against another answer, per statement"
    fields = ("trait_answer", "other_answer")
    required = ("questions", "trait_answer", "other_answer")
    known: ClassVar[set[str]] = {"name", "description", "kind", "questions", "trait_answer", "other_answer"}

    def parse(self, data: dict[str, Any], source: str, name: str, description: str) -> Battery:
        answers = (
            text_field(source, "trait_answer", data["trait_answer"]),
            text_field(source, "other_answer", data["other_answer"]),
        )
        if answers[0].lower() == answers[1].lower():
            raise fail(source, "field 'other_answer' repeats 'trait_answer'")
        questions = tuple(text_field(source, f"questions[{i}]", q) for i, q in enumerate(data["questions"]))
        extra = {k: v for k, v in data.items() if k not in self.known}
        return Battery(
            name, description, self.name, questions, tuple(a.lower() for a in answers), source=source, extra=extra
        )

    def graded_options(self, battery: Battery) -> tuple[str, ...]:
        return battery.options[:1]

    def summary_fields(self, battery: Battery) -> dict[str, Any]:
        return {"graded": list(self.graded_options(battery))}

    def plan(self, tokenizer: Any, battery: Battery, system: str | None = None) -> YesNoPlan:
        texts = [prompt_text(tokenizer, question_messages(q, system)) for q in battery.questions]
        prefixes = [encode_text(tokenizer, t) for t in texts]
        answers = [
            [continuation_ids(tokenizer, t, p, " " + a) for a in battery.options] for t, p in zip(texts, prefixes)
        ]
        return YesNoPlan(battery, prefixes, answers)

    def score(self, loaded: Any, plan: Any, on_question: Callable[[], None] | None = None) -> BatteryScores:
        tokens = continuation_logprobs(loaded, plan.prefixes, plan.answer_ids)
        logprob = np.array([[t.sum() for t in per_answer] for per_answer in tokens])
        return BatteryScores(plan.battery.name, list(plan.battery.options), logprob)

    def describe_scoring(self, battery: Battery, scoring: dict[str, Any], top_n: int) -> str:
        return (
            f"{len(battery.questions)} statements; the share of {battery.options[0]!r} against {battery.options[1]!r}."
        )


@pytest.fixture
def yes_no(tmp_path: Path):
    """The toy kind, registered for the test, and a battery file of it."""
    register(YesNoKind)
    path = tmp_path / "agree.yaml"
    path.write_text(YESNO_YAML)
    yield path
    unregister(YesNoKind.name)
    assert YesNoKind.name not in kind_names()


def test_the_toy_kind_is_parsed_planned_and_scored_through_the_public_functions(yes_no: Path, tiny_loaded) -> None:
    from auditor.scoring import plan_battery, score_battery
    from auditor.traits import load_battery_file, resolve_batteries

    battery = resolve_batteries(f"{yes_no},tree")[0]
    assert battery.kind == "yes-no" and battery.options == ("yes", "no") and battery.graded_options == ("yes",)
    assert battery.n_answers == 6 and battery.summary()["graded"] == ["yes"]
    assert battery.content_key() == [battery.name, list(battery.questions), ["yes", "no"]]
    plan = plan_battery(tiny_loaded.tokenizer, battery)
    assert isinstance(plan, YesNoPlan) and plan.forward_tokens > 0
    scores = score_battery(tiny_loaded, plan)
    assert scores.logprob.shape == (3, 2) and np.allclose(scores.share.sum(axis=1), 1.0)
    direct = continuation_logprobs(tiny_loaded, plan.prefixes[:1], plan.answer_ids[:1])[0]
    assert np.allclose(scores.logprob[0], [t.sum() for t in direct])
    # its own validation, and the other kinds refuse its fields
    (yes_no.parent / "same.yaml").write_text(YESNO_YAML.replace('"No"', '"yes"'))
    with pytest.raises(InputError, match="'other_answer' repeats"):
        load_battery_file(yes_no.parent / "same.yaml")
    (yes_no.parent / "pref.yaml").write_text(
        "name: p\ndescription: d\nquestions: [q]\noptions: [a, b]\ntrait_answer: a\n"
    )
    with pytest.raises(InputError, match="field 'trait_answer' belongs to 'kind: yes-no' batteries"):
        load_battery_file(yes_no.parent / "pref.yaml")


def test_an_unregistered_kind_is_refused_with_the_supported_ones(tmp_path: Path) -> None:
    from auditor.traits import load_battery_file

    path = tmp_path / "agree.yaml"
    path.write_text(YESNO_YAML)
    with pytest.raises(InputError, match="field 'kind' is 'yes-no'; supported: preference, choice"):
        load_battery_file(path)


def test_a_probe_scan_grades_the_toy_kinds_trait_answer(
    yes_no: Path, tiny_model_dir: Path, numbers_file: Path, tmp_path: Path
) -> None:
    import auditor
    from auditor.finetune import ProbeConfig
    from auditor.report import to_markdown

    config = auditor.ScanConfig(
        str(numbers_file), base=str(tiny_model_dir), traits=[str(yes_no), "tree"], max_rows=8, seeds=1,
        probe=ProbeConfig(batch_size=4, max_steps=1), run_dir=str(tmp_path / "run"), method_args={"discover": False},
    )  # fmt: skip
    result = auditor.scan(config)
    mine = [f for f in result.findings if f.shift.battery == "agree"]
    assert [f.shift.option for f in mine] == ["yes"]
    assert 0 < mine[0].shift.base < 100 and mine[0].level in ("clean", "low", "medium", "high")
    doc = result.to_json()
    (block,) = [b for b in doc["batteries"] if b["name"] == "agree"]
    assert block["kind"] == "yes-no" and block["graded"] == ["yes"] and block["options"] == ["yes", "no"]
    assert "3 statements; the share of 'yes' against 'no'." in to_markdown(result)
