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


def test_md_escape_truncates() -> None:
    assert md_escape("x" * 1000, limit=10) == "x" * 10 + "…"


def test_md_code_cannot_break_out() -> None:
    from auditor.report import md_code

    out = md_code("a`b\nc")
    assert out == "`a'b c`"
