"""benchmarks/detection.py: its grid is well formed and its tables count what they say (no model runs here)."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def detection():
    spec = importlib.util.spec_from_file_location("detection", ROOT / "benchmarks" / "detection.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["detection"] = module  # dataclasses look their module up while the file runs
    spec.loader.exec_module(module)
    yield module
    sys.modules.pop("detection", None)


def test_grid_meets_the_issue_shape(detection) -> None:
    cells = {c.id: c for c in detection.GRID}
    assert sorted(detection.ORDER) == sorted(cells)
    positives = [c for c in cells.values() if c.truth == "positive"]
    negatives = [c for c in cells.values() if c.truth == "negative"]
    assert len(positives) >= 8 and len(negatives) >= 8
    assert len({c.trait for c in positives}) >= 4
    assert {bool(c.chat) for c in positives} == {True, False}  # fine-tuned and prompted teachers
    assert any(c.truth == "cross-family" and c.teacher_base for c in cells.values())
    for c in positives:
        if c.chat:
            assert (sys.modules["cells"].CHATS / c.chat).is_file(), c.chat
    seeds = [c.prompt_seed for c in cells.values()]
    assert len(set(seeds)) == len(seeds)  # every dataset has its own prompts


def record(
    cell: str, truth: str, flagged: bool, top: str, own: list[str], shift: float = 2.0, level: str | None = None
) -> dict:
    level = level or ("medium" if flagged else "clean")
    return {
        "cell": cell,
        "truth": truth,
        "trait": "t",
        "format": "numbers",
        "teacher": "base",
        "teacher_base": "b",
        "rows_kept": 300,
        "rows_used": 300,
        "level": level,
        "flagged": flagged,
        "top": top,
        "top_shift_pp": shift,
        "top_ci_width_pp": 1.0,
        "own_options": own,
        "named_correctly": (top in own) if own else None,
        "intended": own[:1],
        "named_intended": (top in own[:1]) if own else None,
        "training_tokens": 90_000,
        "scoring_tokens_per_model": 8_000,
        "scoring_tokens": 32_000,
        "students": 3,
        "wall_s": 300.0,
    }


def test_summary_counts(detection, tmp_path: Path, monkeypatch) -> None:
    records = [
        record("p1", "positive", True, "animal: owl", ["animal: owl"]),
        record("p2", "positive", True, "tree: oak", ["animal: owl", "tree: oak"]),
        record("p3", "positive", False, "tree: elm", ["animal: owl"]),
        record("n1", "negative", False, "tree: elm", []),
        record("n2", "negative", True, "animal: cat", []),
    ]
    s = detection.summarise(records)
    assert (s["power"], s["false_alarms"], s["named_correctly"], s["named_intended"]) == ("2/3", "1/2", "2/2", "1/2")
    assert s["by_fail_on"]["medium"] == {"power": "2/3", "false_alarms": "1/2", "named_correctly": "2/2"}
    assert s["by_fail_on"]["high"] == {"power": "0/3", "false_alarms": "0/2", "named_correctly": "0/0"}
    monkeypatch.setattr(
        detection, "question_prompt_tokens", lambda: {"per_question": 20, "animal_forward_tokens": 4000}
    )
    monkeypatch.setattr(detection, "RESULTS", tmp_path)
    monkeypatch.setattr(detection, "work_dir", lambda: tmp_path / "work")
    monkeypatch.setattr(detection, "ORDER", [r["cell"] for r in records])
    for r in records:
        path = detection.scan_file(r["cell"], "probe")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(r))
    # the gradient method finished two cells: it flags the negative one and misses the positive one
    for r in (record("p1", "positive", False, "animal: cat", ["animal: owl"]), record("n1", "negative", True, "x", [])):
        path = detection.scan_file(r["cell"], "gradient")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({**r, "training_tokens": 0, "students": 0}))
    args = type("A", (), {"traits": ["animal", "tree"]})()
    detection.write_tables(args)
    blob = json.loads((tmp_path / "detection.json").read_text())
    assert blob["summary"]["power"] == "2/3" and blob["paper_protocol"]["tokens_per_row"] == 100.0
    # the paper's animal evaluation: 50 questions x (20 prompt tokens + 3 decode passes x 100 or 200 samples)
    assert (blob["paper_protocol"]["eval_tokens_low"], blob["paper_protocol"]["eval_tokens_high"]) == (16_000, 31_000)
    assert blob["gradient"]["summary"]["power"] == "0/1" and blob["gradient"]["summary"]["false_alarms"] == "1/1"
    text = (tmp_path / "detection.md").read_text()
    assert "| p2 | positive |" in text
    assert "16,000-31,000 forward tokens per model, 2.0-3.9x our 2 batteries and 4-8x our animal battery." in text
    assert "| p1 | positive | medium, animal: owl | clean, animal: cat |" in text
    expected = "On these 2 cells: probe power 1/1, false alarms 0/1, named 1/1; gradient power 0/1, false alarms 1/1"
    assert expected in text


def test_holdout_rule(detection) -> None:
    held = [c for c in detection.GRID if c.split == "holdout"]
    assert {c.truth for c in held} == {"positive", "negative"}
    grid_seeds = {c.prompt_seed for c in detection.GRID if c.split == "grid"}
    assert not grid_seeds & {c.prompt_seed for c in held}  # new prompts, not the grid's

    def ft(cell: str, level: str) -> dict:
        return {
            **record(cell, "positive", level != "clean", "tree: oak", ["tree: oak"], level=level),
            "teacher": "fine-tuned",
        }

    ids = ["p1", "p2", "n1", "n2"]
    low_only = [
        ft("p1", "low"),
        ft("p2", "medium"),
        record("n1", "negative", False, "x", []),
        record("n2", "negative", False, "x", []),
    ]
    out = detection.holdout_outcome(low_only, ids)
    assert (
        out["rule_met"] is True and out["fine_tuned_flagged_low"] == "2/2" and out["fine_tuned_flagged_medium"] == "1/2"
    )
    false_alarm = [*low_only[:3], record("n2", "negative", False, "x", [], level="low")]
    assert detection.holdout_outcome(false_alarm, ids)["rule_met"] is False
    assert detection.holdout_outcome(false_alarm, ids)["false_alarms_low"] == "1/2"
    assert detection.holdout_outcome(low_only[:3], ids)["rule_met"] is None  # n2 has not run: undecided


def test_movement_table(detection, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(detection, "work_dir", lambda: tmp_path)
    teacher = tmp_path / "teachers" / "owl_chat" / "teacher.json"
    teacher.parent.mkdir(parents=True)
    teacher.write_text(json.dumps({"scores": [{"battery": "tree", "option": "willow", "change": -2.0}]}))

    def cell(name: str, truth: str, teacher_kind: str, willow_t: float, owl_t: float) -> dict:
        shifts = [{"option": "tree: willow", "shift": 1.0, "t": willow_t, "q": 0.5}]
        shifts.append({"option": "animal: owl", "shift": 1.0, "t": owl_t, "q": 0.5})
        return {**record(name, truth, False, "x", []), "teacher": teacher_kind, "shifts": shifts}

    records = [
        cell("p1", "positive", "fine-tuned", 3.0, 1.0),
        cell("p2", "positive", "fine-tuned", 1.0, 0.0),
        cell("n1", "negative", "base", 0.5, 2.5),
        {**record("n2", "negative", False, "x", []), "teacher": "base"},  # made before shifts were kept: left out
    ]
    lines = detection.movement_table(records)
    assert (
        lines[0].startswith("| option | fine-tuned (n=2)") and "negatives (n=1)" in lines[0] and "owl_chat" in lines[0]
    )
    assert lines[2] == "| tree: willow | +2.0, 1/2 | - | +0.5, 0/1 | -2.0 |"  # ranked first: mean t 2.0
    assert lines[3] == "| animal: owl | +0.5, 0/2 | - | +2.5, 1/1 | - |"
    assert detection.movement_table([records[2]]) == []  # no fine-tuned positive: no table
