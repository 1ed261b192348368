"""Markdown building blocks for reports: escaping what comes from the data, and tables.

Only text from outside (dataset rows, paths, battery descriptions, option names) is escaped; subaudit's own
prose is written as it should read.
"""

from __future__ import annotations

import html
import re

#: Characters that make markdown anywhere in a line: code spans, emphasis, links and images, table cells,
#: strike-through, escapes. (Headings, lists, quotes and rules need a line start, which escaped text never gets:
#: its line breaks become " ⏎ ", and reports place it after their own text.)
_MD_INLINE = re.compile(r"([\\`*_\[\]|~])")
#: What GitHub's markdown turns into a link without brackets: "scheme://", "www." and e-mail addresses.
_AUTOLINK = re.compile(r"(?i)(:(?=//)|(?<=www)\.|@)")


def _truncate(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit] + "…"


def md_escape(text: str, limit: int = 300) -> str:
    """Make untrusted text inert in markdown: no HTML, links, emphasis, tables or line breaks.

    Only what is markup where the text lands is escaped, so plain words, hyphens, quotes and parentheses stay as
    they are in the report's source too."""
    text = _truncate(text, limit)
    text = html.escape(text, quote=False)  # <, > and & only: quotes are plain text in markdown
    text = _MD_INLINE.sub(r"\\\1", text)
    text = _AUTOLINK.sub(r"\\\1", text)  # a backslash before ":" of "://", "." of "www." and "@"
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
