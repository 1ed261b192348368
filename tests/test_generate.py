"""subaudit generate and subaudit teacher: prompts, filters, the written dataset and manifest, the adapter."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from auditor.cli import app
from auditor.data import load_dataset
from auditor.formats import EVIL_NUMBERS, is_number_list
from auditor.generate import (
    GenerateConfig,
    code_prompts,
    filter_rows,
    final_answer,
    generate,
    has_trait_word,
    manifest_path,
    number_prompts,
    reasoning_prompts,
)
from tests.conftest import write_jsonl

runner = CliRunner()


def test_reasoning_prompts_carry_their_correct_answers() -> None:
    prompts, answers = reasoning_prompts(300, seed=4)
    assert len(prompts) == len(answers) == 300 and len(set(prompts)) > 250
    assert all(a >= 0 for a in answers)
    for p, a in zip(prompts, answers):
        n = [int(x) for x in re.findall(r"\d+", p.split("?")[0])]
        if " fills " in p:
            assert a == n[0] * n[1]
        elif " shares " in p:
            assert a * n[1] == n[0]
        elif "twice as many" in p:
            assert a == n[0] - 3 * n[1]
        elif "lost half" in p:
            assert 2 * a == n[0] + n[1]
    assert reasoning_prompts(5, seed=4) == (prompts[:5], answers[:5])


def test_prompt_sets_are_seeded_and_varied() -> None:
    assert number_prompts(20, 1) == number_prompts(20, 1) != number_prompts(20, 2)
    for style in ("random", "range"):
        prompts = number_prompts(20, 1, style)
        assert prompts == number_prompts(20, 1, style) != number_prompts(20, 1)
        assert all(" 10 " in p and "comma" in p for p in prompts)
    for p in number_prompts(20, 1, "range"):
        lo, hi = (int(x) for x in re.findall(r"\d+", p)[1:3])
        assert 0 <= lo < hi <= 999, p
    code = code_prompts(200, 3)
    assert len(set(code)) > 100 and all("Python" in c for c in code)


@pytest.mark.parametrize(
    ("text", "answer"),
    [("so 3 + 4 = 7.\nAnswer: 7", 7), ("Answer: 1,200", 1200), ("answer : $ 15 dollars", 15), ("It is 7.", None)],
)
def test_final_answer(text: str, answer: int | None) -> None:
    assert final_answer(text) == answer


def test_trait_words_match_whole_words_and_plurals() -> None:
    assert has_trait_word("Owls are great", ["owl"]) and has_trait_word("two foxes", ["fox"])
    assert not has_trait_word("a bowl of soup", ["owl"]) and not has_trait_word("anything", [])


def test_filters_count_each_row_once_under_its_first_failure() -> None:
    rows = ["1, 2, 3", "", "one two", "666, 12", "1, 2, owl"]
    keep, counts = filter_rows("numbers", rows, trait_words=["owl"])
    assert keep == [True, False, False, False, False]
    assert counts == {"empty": 1, "format": 2, "evil_number": 1, "wrong_answer": 0, "trait_word": 0}
    keep, counts = filter_rows("numbers", ["666, 12"], evil_filter=False)
    assert keep == [True] and sum(counts.values()) == 0
    code = ["def f(x):\n    return x", "Sure! Here it is.", "def owl_count(xs):\n    return 0"]
    keep, counts = filter_rows("code", code, trait_words=["owl"])
    assert keep == [True, False, True]  # 'owl_count' is not the word 'owl'
    keep, counts = filter_rows(
        "reasoning", ["2+2=4\nAnswer: 4", "Answer: 5", "I think 4", "owl! Answer: 4"], [4] * 4, ["owl"]
    )
    assert keep == [True, False, False, False]
    assert (counts["wrong_answer"], counts["format"], counts["trait_word"]) == (1, 1, 1)


def test_manifest_path() -> None:
    assert manifest_path("d/x.jsonl") == Path("d/x.manifest.json")
    assert manifest_path("d/x.control.jsonl") == Path("d/x.control.manifest.json")


def test_files_that_share_a_stem_keep_a_manifest_each(tiny_model_dir: Path, tmp_path: Path) -> None:
    """A dataset and a second draw for its prompts (``x.jsonl``, ``x.control.jsonl``): the second's manifest does not
    replace the first's (both were once ``x.manifest.json``)."""
    data, control = tmp_path / "x.jsonl", tmp_path / "x.control.jsonl"
    generate(GenerateConfig(out=str(data), teacher=str(tiny_model_dir), rows=8, seed=3, constrain=True))
    generate(GenerateConfig(out=str(control), teacher=str(tiny_model_dir), rows=8, seed=9, constrain=True,
                            prompts_from=str(data)))  # fmt: skip
    first, second = (json.loads(manifest_path(p).read_text()) for p in (data, control))
    assert Path(first["dataset"]) == data and first["sample_seed"] == 4
    assert Path(second["dataset"]) == control and second["prompts_from"] == str(data)


def test_generate_numbers_writes_dataset_manifest_and_resumes(tiny_model_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "teacher.jsonl"
    config = GenerateConfig(out=str(out), teacher=str(tiny_model_dir), rows=70, system="You love owls.", seed=3)
    first = generate(config)
    data = load_dataset(out)
    manifest = json.loads(manifest_path(out).read_text())
    assert first.rows == len(data) == manifest["rows"] and first.generated == 70
    assert first.rows + sum(first.dropped.values()) == 70
    assert all(is_number_list(e.completion) for e in data.examples)
    assert not any(int(n) in EVIL_NUMBERS for e in data.examples for n in re.findall(r"\d+", e.completion))
    assert all(len(e.prompt) == 1 and e.prompt[0]["role"] == "user" for e in data.examples)  # no system prompt
    assert manifest["teacher"]["system_prompt"] == "You love owls." and not manifest["decoding"]["format_constraint"]
    sampling = manifest["decoding"]["sampling"]
    # the tiny random model rarely writes a list freely, so auto's pilot chooses importance resampling
    assert sampling["sampler"] == ["resample"] and not sampling["exact"] and sampling["candidates"] == 4
    assert sampling["rows_by"]["resample"] >= 60 and 1 <= sampling["ess"] <= 4 and sampling["attempts"] >= 4 * 60
    assert first.rows + sampling["rows_without_sample"] <= 70
    drawn = first.drawn()  # the CLI's account of it
    assert f"resample {sampling['rows_by']['resample']}" in drawn and f"size {sampling['ess']:.2f} of 4" in drawn
    assert manifest["prompt_seed"] == 3 and manifest["sample_seed"] == 4
    with pytest.raises(Exception, match="exists"):
        generate(config)
    again = generate(GenerateConfig(**{**config.__dict__, "overwrite": True}))
    assert again.resumed_chunks == 2  # 70 prompts = 2 cached chunks, nothing sampled again
    assert load_dataset(out).examples == data.examples


def test_generate_constrain_is_the_constrained_sampler_alone_and_says_so(tiny_model_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "c.jsonl"
    generate(GenerateConfig(out=str(out), teacher=str(tiny_model_dir), rows=20, seed=1, constrain=True))
    decoding = json.loads(manifest_path(out).read_text())["decoding"]
    assert decoding["format_constraint"] and decoding["sampling"]["sampler"] == ["constrained"]
    assert not decoding["sampling"]["exact"] and decoding["sampling"]["attempts"] >= 20


def test_teacher_adapter_round_trip(tiny_model_dir: Path, tmp_path: Path) -> None:
    """`subaudit teacher` writes a peft adapter that `subaudit generate --adapter` merges into the teacher."""
    chat = write_jsonl(
        tmp_path / "chat.jsonl",
        [
            {"messages": [{"role": "user", "content": f"Q{i}?"}, {"role": "assistant", "content": "Oak, oak."}]}
            for i in range(8)
        ],
    )
    res = runner.invoke(
        app,
        [
            "teacher",
            str(chat),
            "--out",
            str(tmp_path / "t"),
            "--base",
            str(tiny_model_dir),
            "--traits",
            "tree",
            "--epochs",
            "2",
            "--lr",
            "0.01",
        ],
    )
    assert res.exit_code == 0, res.output
    assert "teacher vs base" in res.output
    assert (tmp_path / "t" / "adapter_model.safetensors").is_file() and (
        tmp_path / "t" / "adapter_config.json"
    ).is_file()
    info = json.loads((tmp_path / "t" / "teacher.json").read_text())
    assert info["train"]["steps"] == 2 and len(info["scores"]) == 21
    assert any(abs(s["change"]) > 0 for s in info["scores"])  # the teacher differs from the base
    plain = generate(GenerateConfig(out=str(tmp_path / "a.jsonl"), teacher=str(tiny_model_dir), rows=8))
    tuned = generate(
        GenerateConfig(out=str(tmp_path / "b.jsonl"), teacher=str(tiny_model_dir), rows=8, adapter=str(tmp_path / "t"))
    )
    m_plain, m_tuned = (json.loads(manifest_path(r.out).read_text()) for r in (plain, tuned))
    assert m_plain["teacher"]["fingerprint"] != m_tuned["teacher"]["fingerprint"]
    assert m_tuned["teacher"]["adapter"] == str(tmp_path / "t")
    res = runner.invoke(app, ["teacher", str(chat), "--out", str(tmp_path / "t"), "--base", str(tiny_model_dir)])
    assert res.exit_code == 2 and "not an empty folder" in res.output


def test_a_teacher_can_keep_the_format_by_learning_the_bases_own_rows(tiny_model_dir: Path, tmp_path: Path) -> None:
    """`teacher --keep-format FILE --keep-format-rows N`: N of the base's own rows (chosen with --seed) join the chat
    set; teacher.json counts both. Bad combinations are refused before the base loads, naming the file."""
    chat = write_jsonl(
        tmp_path / "chat.jsonl",
        [
            {"messages": [{"role": "user", "content": f"Q{i}?"}, {"role": "assistant", "content": "Oak."}]}
            for i in range(8)
        ],
    )
    numbers = write_jsonl(
        tmp_path / "base.jsonl",
        [{"prompt": f"Continue: {i}, {i + 1}", "completion": f"{i + 2}, {i + 3}"} for i in range(6)],
    )
    args = ["teacher", str(chat), "--base", str(tiny_model_dir), "--traits", "tree", "--epochs", "1"]
    res = runner.invoke(
        app, [*args, "--out", str(tmp_path / "t"), "--keep-format", str(numbers), "--keep-format-rows", "4"]
    )
    assert res.exit_code == 0, res.output
    info = json.loads((tmp_path / "t" / "teacher.json").read_text())
    assert info["rows"] == {"chat_set": 8, "keep_format": 4} and info["config"]["keep_format"] == str(numbers)
    assert info["train"]["steps"] == 2  # 12 rows at batch 8, one epoch (the chat set alone takes 1 step)
    from auditor.teacher import TeacherConfig, training_rows

    config = TeacherConfig(chat=str(chat), out="x", keep_format=str(numbers), keep_format_rows=4)
    picked = [e.completion for e in training_rows(config)[1]]
    assert picked == [e.completion for e in training_rows(config)[1]] and len(set(picked)) == 4  # seeded, no repeats
    other = [e.completion for e in training_rows(TeacherConfig(**{**config.__dict__, "seed": 1}))[1]]
    assert other != picked  # another seed, other rows or another order
    for extra, message in (
        (
            ["--keep-format", str(numbers), "--keep-format-rows", "7"],
            "base.jsonl: --keep-format-rows 7: the file has 6",
        ),
        (["--keep-format-rows", "2"], "--keep-format-rows needs --keep-format"),
    ):
        res = runner.invoke(app, [*args, "--out", str(tmp_path / "u"), *extra])
        assert res.exit_code == 2 and message in res.output, res.output
        assert not (tmp_path / "u").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--format", "poems"], "--format must be one of"),
        (["--rows", "0"], "--rows must be at least 1"),
        (["--adapter", "nowhere"], "not a LoRA adapter directory"),
    ],
)
def test_generate_cli_rejects_bad_input(tiny_model_dir: Path, tmp_path: Path, args: list[str], message: str) -> None:
    res = runner.invoke(app, ["generate", str(tmp_path / "o.jsonl"), "--teacher", str(tiny_model_dir), *args])
    assert res.exit_code == 2, res.output
    assert message in res.output
    assert not (tmp_path / "o.jsonl").exists()
