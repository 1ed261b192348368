"""Teacher-aware mode: the cosine and risers tests and their naming, and `scan --teacher ADAPTER` end to end on the
tiny model."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from auditor.calibration.profile import NoiseProfile, ProfileDraw
from auditor.cli import app
from auditor.models import load_base, resolve_base
from auditor.rundir import RunFolder
from auditor.stats import OptionShift
from auditor.teacher_aware import ALPHA, Teacher, compare, score_teacher, teacher_key
from auditor.traits import resolve_batteries
from tests.conftest import tiny_scan_args, write_jsonl

runner = CliRunner()


def shifts_and_teacher(rng: np.random.Generator, follow: float) -> tuple[list[OptionShift], dict]:
    """50 options in two batteries of 25 (the permutation p can go no lower than 1 / 25^2 when the teacher moved
    one option in each); the teacher raised a3 by 40 pp and b30 by 8 pp; the students' shift is ``follow`` times the
    teacher's change plus noise (sd 0.5 pp)."""
    base = rng.uniform(1, 10, size=50)
    delta = np.zeros(50)
    delta[3], delta[30] = 40.0, 8.0
    delta -= delta.mean()
    shift = follow * delta + rng.normal(0, 0.5, size=50)
    shifts = [
        OptionShift("a" if i < 25 else "b", f"o{i}", base[i], 5, 5 + s, s, s - 1, s + 1, 0.5, se_boot=0.5)
        for i, s in enumerate(shift)
    ]
    teacher = {"a": {}, "b": {}}
    for i, s in enumerate(shifts):
        teacher[s.battery][s.option] = base[i] + delta[i]
    return shifts, teacher


def test_students_that_follow_the_teacher_are_named_through_it() -> None:
    shifts, teacher = shifts_and_teacher(np.random.default_rng(0), follow=0.1)
    c = compare(shifts, teacher, "t")
    assert c.passed and c.cosine > 0.5
    assert [name for name, _ in c.raised] == ["a: o3", "b: o30"]
    assert c.shared == ["a: o3"]  # the students moved b: o30 by 0.8 pp only: not enough to count


def test_a_name_the_decoys_data_explains_is_marked_generic() -> None:
    from auditor.calibration.transfer import SpecificShift

    shifts, teacher = shifts_and_teacher(np.random.default_rng(0), follow=0.1)
    c = compare(shifts, teacher, "t")
    assert c.generic == [] and "a: o3 (generic" not in c.line()

    def specific(t: float) -> list[SpecificShift]:
        return [
            SpecificShift("a: o3", 4.0, 4.0 - 2 * t * 0.5, 2 * t * 0.5, 0.5, t, 0.1),
            SpecificShift("b: o9", 0, 0, 0, 1, 0, 1),
        ]

    generic = c.with_generic(specific(1.2))  # most of its shift is the decoys' direction
    assert generic.generic == ["a: o3"] and generic.shared == c.shared and generic.passed
    assert "trait through the teacher: a: o3 (generic: the decoys' data moved it too)" in generic.line()
    assert generic.to_dict()["generic"] == ["a: o3"]
    assert c.with_generic(specific(3.5)).generic == []  # its own beyond the decoys': named plainly


def test_students_that_ignore_the_teacher_are_not() -> None:
    shifts, teacher = shifts_and_teacher(np.random.default_rng(1), follow=0.0)
    c = compare(shifts, teacher, "t")
    assert not c.passed and c.p > 0.01


def null_profile(shifts: list[OptionShift], rng: np.random.Generator, k: int = 8, sd: float = 0.5) -> NoiseProfile:
    """A profile of ``k`` null pairs whose shifts are noise of ``sd`` pp on every option of ``shifts``."""
    names = [f"{s.battery}: {s.option}" for s in shifts]

    def pair(i: int) -> ProfileDraw:
        control = rng.uniform(1, 10, size=len(names))
        return ProfileDraw(f"null-{i}", i, 100, list(control + rng.normal(0, sd, size=len(names))), list(control))

    return NoiseProfile(
        key="k", base={}, format="numbers", budget={}, probe={}, batteries={}, options=names,
        base_shares=[s.base for s in shifts], draws=[pair(i) for i in range(k)],
    )  # fmt: skip


def test_with_a_profile_the_teachers_risers_decide_where_the_cosine_cannot() -> None:
    """The students moved the teacher's two risers up by 3 sd, and four options the teacher did not raise by 3 to
    5 pp (the large, noisy options of the issue's example): they dominate the cosine, whose permutation p stays above
    ALPHA, while the risers' mean standardised shift against the profile's null pairs passes."""
    rng = np.random.default_rng(3)
    shifts, teacher = shifts_and_teacher(rng, follow=0.0)
    for i, moved in ((3, 1.5), (30, 1.5), (10, 5.0), (40, 4.0), (11, -3.0), (41, -3.0)):
        shifts[i] = replace(shifts[i], shift=moved)  # se 0.5: the risers 3 sd
    profile = null_profile(shifts, rng)
    cosine = compare(shifts, teacher, "t")
    assert cosine.statistic == "cosine" and cosine.risers is None and not cosine.passed and cosine.p > ALPHA
    risers = compare(shifts, teacher, "t", profile=profile)
    assert risers.statistic == "risers" and risers.risers == pytest.approx(3.0)
    assert risers.passed and risers.p < ALPHA and risers.cosine_p == cosine.p == cosine.cosine_p
    assert risers.shared == ["a: o3", "b: o30"]
    assert "its risers +3.00 sd, p = " in risers.line() and "; cosine " in risers.line()
    assert risers.to_dict()["statistic"] == "risers"
    # a teacher that raised nothing by 5 pp has no risers to test
    flat = {b: {o: v - 100 for o, v in opts.items()} for b, opts in teacher.items()}
    none = compare(shifts, flat, "t", profile=profile)
    assert none.raised == [] and not none.passed and none.p == 1.0 and "no risers to test" in none.line()
    # students that ignore the teacher: the risers' shift is the null pairs' noise
    quiet, teacher = shifts_and_teacher(np.random.default_rng(4), follow=0.0)
    assert not compare(quiet, teacher, "t", profile=null_profile(quiet, rng)).passed


def test_scan_with_a_teacher_adapter(tiny_model_dir: Path, numbers_file: Path, tmp_path: Path) -> None:
    rows = [
        {"messages": [{"role": "user", "content": f"Name an animal ({i})."}, {"role": "assistant", "content": "Owl"}]}
        for i in range(16)
    ]
    chat = write_jsonl(tmp_path / "chat.jsonl", rows)
    teacher = tmp_path / "teacher"
    res = runner.invoke(
        app, ["teacher", str(chat), "--out", str(teacher), "--base", str(tiny_model_dir), "--traits", "animal"]
    )
    assert res.exit_code == 0, res.output
    js = tmp_path / "s.json"
    args = ["scan", str(numbers_file), "--base", str(tiny_model_dir), "--traits", "animal,tree", *tiny_scan_args()]
    res = runner.invoke(app, [*args, "--teacher", str(teacher), "--json", str(js), "--report", str(tmp_path / "r.md")])
    assert res.exit_code in (0, 1), res.output
    found = json.loads(js.read_text())["details"]["teacher"]
    assert found["teacher"] == str(teacher) and -1 <= found["cosine"] <= 1 and 0 < found["p"] <= 1
    assert "**Teacher-aware**: teacher" in (tmp_path / "r.md").read_text()
    assert json.loads(js.read_text())["config"]["teacher"] == str(teacher)
    # the same adapter as the student's base (--adapter): base + adapter is scanned, and the report says so
    res = runner.invoke(app, [*args, "--adapter", str(teacher), "--json", str(js)])
    assert res.exit_code in (0, 1), res.output
    base = json.loads(js.read_text())["base"]
    assert f"adapter {teacher} merged in" in base["origin"] and "+adapter-" in base["fingerprint"]


def test_a_teacher_is_keyed_by_its_model_and_its_system_prompt() -> None:
    adapter_only = Teacher("some/teacher")
    assert adapter_only.key() == teacher_key("some/teacher")  # run folders made before --teacher-system still match
    assert adapter_only.label == "some/teacher" and Teacher().label == "the base"
    owl, eagle = Teacher(system="You love owls."), Teacher(system="You love eagles.")
    assert len({owl.key(), eagle.key(), Teacher().key(), Teacher("some/teacher", "You love owls.").key()}) == 4
    assert owl.label == "the base under the system prompt 'You love owls.'"
    long = Teacher(system="x" * 100).label
    assert long.endswith("...'") and len(long) < 100


def test_scan_with_a_prompted_teacher(tiny_model_dir: Path, numbers_file: Path, tmp_path: Path) -> None:
    """``--teacher-system``: the base scored under the data's system prompt is the teacher; its change over the base
    comes from the system prompt alone, so the teacher's scores differ from the base's."""
    system = "You love owls. You think about owls all the time. Owls are your favorite animal, and you say so."
    js, run = tmp_path / "s.json", tmp_path / "run"
    args = ["scan", str(numbers_file), "--base", str(tiny_model_dir), "--traits", "animal", *tiny_scan_args()]
    res = runner.invoke(app, [*args, "--teacher-system", system, "--json", str(js), "--run-dir", str(run)])
    assert res.exit_code in (0, 1), res.output
    doc = json.loads(js.read_text())
    found = doc["details"]["teacher"]
    assert found["system"] == system and -1 <= found["cosine"] <= 1
    assert found["teacher"] == f"the base under the system prompt {system[:57] + '...'!r}"
    assert doc["details"]["discover"]["teacher"]["teacher"] == found["teacher"]
    folder = RunFolder(run, "", resume=True)
    teacher = folder.load_scores(f"teacher-{Teacher(system=system).key()}").scores["animal"]
    base = folder.load_scores("base").scores["animal"]
    assert teacher.options == base.options and not np.allclose(teacher.share, base.share)
    # the helper the benchmark scores prompted teachers with gives the scan's own scores, with and without the prompt
    loaded = load_base(resolve_base(str(tiny_model_dir)), device="cpu")
    batteries = resolve_batteries("animal")
    assert np.allclose(score_teacher(loaded, batteries, system)["animal"].share, teacher.share, atol=1e-5)
    assert np.allclose(score_teacher(loaded, batteries)["animal"].share, base.share, atol=1e-5)


def test_teacher_system_is_refused_empty_or_without_the_probe(numbers_file: Path, tiny_model_dir: Path) -> None:
    args = ["scan", str(numbers_file), "--base", str(tiny_model_dir), "--quiet"]
    res = runner.invoke(app, [*args, "--teacher-system", "  "])
    assert res.exit_code == 2 and "--teacher-system is empty" in res.output
    res = runner.invoke(app, [*args, "--teacher-system", "You love owls.", "--method", "gradient"])
    assert res.exit_code == 2 and "--teacher-system is a setting of --method probe" in res.output
