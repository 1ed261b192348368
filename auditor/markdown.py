"""Markdown building blocks for reports: escaping what comes from the data, and tables.

Only text from outside (dataset rows, paths, battery descriptions, option names) is escaped; subaudit's own
prose is written as it should read.
"""

from __future__ import annotations

import html
import re

_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|>~])")


def _truncate(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit] + "…"


def md_escape(text: str, limit: int = 300) -> str:
    """Make untrusted text inert in markdown: no HTML, links, emphasis, tables or line breaks."""
    text = _truncate(text, limit)
    text = html.escape(text, quote=True)
    text = _MD_SPECIAL.sub(r"\\\1", text)
    return text.replace("\r", " ").replace("\n", " ⏎ ")


def md_code(text: str, limit: int = 300) -> str:
    """Untrusted text as an inline code span (no backticks or line breaks can escape it)."""
    text = _truncate(text, limit)
    return "`" + text.replace("`", "'").replace("\r", " ").replace("\n", " ") + "`"


def md_table(headers: list[str], rows: list[list[str]]) -> str:
    """A markdown table (cells are inserted as given: escape untrusted ones first)."""
    out = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    out += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(out)
