"""Every relative link of the documentation points at a file that exists and, for `#anchor`s into markdown, at a
heading that produces that anchor (GitHub's rules). Also keeps the README a front door: short, with CI's test command.
"""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import unquote

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
TEST_COMMAND = "bash scripts/setup.sh && .venv/bin/python -m pytest -q"
MAX_README_LINES = 250

FENCE = re.compile(r"^\s{0,3}(`{3,}|~{3,})")
HEADING = re.compile(r"^\s{0,3}(#{1,6})\s+(.*?)\s*#*\s*$")
CODE_SPAN = re.compile(r"(`+)(.+?)\1")
# [text](target) or ![alt](target), with an optional "title"; the target may be wrapped in <...>
LINK = re.compile(r"!?\[(?P<text>[^\]]*)\]\(\s*(?P<target><[^>]*>|[^)\s]+)(?:\s+\"[^\"]*\")?\s*\)")
EXTERNAL = re.compile(r"^(https?:|mailto:)", re.IGNORECASE)


def doc_files() -> list[Path]:
    files = [README, ROOT / "ARCHITECTURE.md", *sorted((ROOT / "docs").glob("*.md")), ROOT / "benchmarks" / "README.md"]
    return [f for f in files if f.exists()]


def prose_lines(text: str) -> list[tuple[int, str]]:
    """(line number, line) for every line outside fenced code blocks."""
    out = []
    fence = None
    for number, line in enumerate(text.splitlines(), 1):
        m = FENCE.match(line)
        if fence is None and m:
            fence = m.group(1)[0] * len(m.group(1))
            continue
        if fence is not None:
            if m and m.group(1).startswith(fence) and not line.strip()[len(m.group(1)) :].strip():
                fence = None
            continue
        out.append((number, line))
    return out


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: its text, lowercase, punctuation but '-' and '_' removed, spaces to '-'."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link in a heading anchors on its text
    text = re.sub(r"<[^>]+>", "", text)  # inline HTML
    text = text.strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    seen: dict[str, int] = {}
    out = set()
    for _, line in prose_lines(path.read_text(encoding="utf-8")):
        m = HEADING.match(line)
        if not m:
            continue
        base = slug(m.group(2))
        n = seen.get(base, 0)
        seen[base] = n + 1
        out.add(base if n == 0 else f"{base}-{n}")
    return out


def links(path: Path) -> list[tuple[int, str]]:
    out = []
    for number, line in prose_lines(path.read_text(encoding="utf-8")):
        line = CODE_SPAN.sub("code", line)  # `[x](y)` in a code span is not a link
        for m in LINK.finditer(line):
            target = m.group("target").strip("<>")
            if not EXTERNAL.match(target):
                out.append((number, target))
    return out


def test_slug_follows_github_rules():
    assert slug("How well does it work?") == "how-well-does-it-work"
    assert slug("GPUs, big bases, many processes") == "gpus-big-bases-many-processes"
    assert slug("The calibrated verdict: partial results") == "the-calibrated-verdict-partial-results"
    assert slug("A faster, cruder detector: `--method gradient`") == "a-faster-cruder-detector---method-gradient"
    assert slug("`kind: choice`") == "kind-choice"
    assert slug("snake_case and [a link](x.md)") == "snake_case-and-a-link"


def test_fenced_code_is_skipped():
    text = "[a](a.md)\n```bash\n[b](b.md)\n```\n[c](c.md)\n"
    assert [line for _, line in prose_lines(text)] == ["[a](a.md)", "[c](c.md)"]


@pytest.mark.parametrize("doc", doc_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_resolve(doc: Path):
    broken = []
    for number, target in links(doc):
        where = f"{doc.relative_to(ROOT)}:{number}: ({target})"
        file_part, _, anchor = target.partition("#")
        dest = (doc.parent / unquote(file_part)).resolve() if file_part else doc
        if not dest.exists():
            broken.append(f"{where} file not found")
            continue
        if anchor and dest.suffix.lower() == ".md" and unquote(anchor) not in anchors(dest):
            broken.append(f"{where} no heading in {dest.relative_to(ROOT)} makes #{anchor}")
    assert not broken, "broken links:\n" + "\n".join(broken)


def test_docs_are_found():
    names = {str(p.relative_to(ROOT)) for p in doc_files()}
    assert {"README.md", "ARCHITECTURE.md", "benchmarks/README.md"} <= names
    assert any(n.startswith("docs/") for n in names)


def test_readme_is_a_front_door():
    lines = README.read_text(encoding="utf-8").splitlines()
    assert len(lines) <= MAX_README_LINES, f"README.md has {len(lines)} lines, at most {MAX_README_LINES}"
    # CI (.ci/run) runs the README's test command: it must stay byte-identical
    assert TEST_COMMAND in lines
