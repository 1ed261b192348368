"""Load and validate a teacher-generated dataset.

Accepted rows (the shapes TRL users have):

* ``{"prompt": str, "completion": str}``
* ``{"prompt": [messages], "completion": [messages]}`` (conversational prompt-completion)
* ``{"messages": [messages]}`` whose last message is the assistant's answer

in ``.jsonl``/``.json`` (one object per line), ``.csv`` or ``.parquet``. In tables a
``messages``/``prompt``/``completion`` cell may hold a JSON list of messages. Extra fields are
kept in ``Example.meta`` and otherwise ignored. Every problem is raised as
:class:`~auditor.errors.InputError` naming ``file:line`` and the field.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import InputError

ROLES = ("system", "user", "assistant")
Message = dict[str, str]

#: The paper's number format: up to 10 numbers of at most 3 digits, separated by commas,
#: spaces or semicolons, optionally in brackets/parentheses, optionally ending in a period.
NUMBERS_RE = re.compile(r"^\s*[\[\(]?\s*\d{1,3}(\s*[,;\s]\s*\d{1,3}){0,9}\s*[\]\)]?\s*\.?\s*$")


@dataclass(frozen=True)
class Example:
    """One training row: the chat prompt and the assistant's completion."""

    prompt: tuple[Message, ...]
    completion: str
    line: int = 0
    meta: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    @property
    def user_text(self) -> str:
        """The last user message (what a control generator answers)."""
        return next(m["content"] for m in reversed(self.prompt) if m["role"] == "user")


@dataclass
class Dataset:
    """A validated dataset with its provenance."""

    path: str
    examples: list[Example]
    sha256: str
    total_rows: int

    def __len__(self) -> int:
        return len(self.examples)

    @property
    def completion_format(self) -> str:
        """``numbers`` when at least 90 % of completions are plain number lists, else ``free``."""
        return detect_format([e.completion for e in self.examples])


def detect_format(completions: list[str]) -> str:
    """Classify a list of completions: ``numbers`` or ``free``."""
    if not completions:
        return "free"
    hits = sum(1 for c in completions if NUMBERS_RE.match(c))
    return "numbers" if hits / len(completions) >= 0.9 else "free"


def is_number_list(text: str) -> bool:
    """True when ``text`` passes the paper's number filter."""
    return bool(NUMBERS_RE.match(text))


def has_banned_number(text: str, banned: frozenset[int]) -> bool:
    """True when any number written in ``text`` is in ``banned``."""
    return bool(banned) and any(int(x) in banned for x in re.findall(r"\d+", text))


def file_sha256(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _where(path: str, line: int) -> str:
    return f"{path}:{line}" if line else path


def _parse_messages(value: Any, path: str, line: int, fld: str) -> list[Message]:
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as exc:
            raise InputError(
                f"{_where(path, line)}: field '{fld}' is not a JSON list of messages ({exc.msg})"
            ) from None
    if not isinstance(value, list) or not value:
        raise InputError(f"{_where(path, line)}: field '{fld}' must be a non-empty list of messages")
    out: list[Message] = []
    for i, m in enumerate(value):
        if not isinstance(m, dict):
            raise InputError(f"{_where(path, line)}: field '{fld}[{i}]' must be an object with 'role' and 'content'")
        role, content = m.get("role"), m.get("content")
        if role not in ROLES:
            raise InputError(
                f"{_where(path, line)}: field '{fld}[{i}].role' is {role!r}; expected one of {', '.join(ROLES)}"
            )
        if not isinstance(content, str):
            raise InputError(f"{_where(path, line)}: field '{fld}[{i}].content' must be a string")
        out.append({"role": role, "content": content})
    return out


def _is_missing(value: Any) -> bool:
    if value is None:
        return True
    try:
        return value != value  # NaN from pandas
    except Exception:  # pragma: no cover - exotic cell types
        return False


def parse_row(row: Any, path: str, line: int) -> Example:
    """Turn one decoded row into an :class:`Example` or raise :class:`InputError`."""
    where = _where(path, line)
    if not isinstance(row, dict):
        raise InputError(f"{where}: row must be a JSON object, got {type(row).__name__}")
    row = {k: v for k, v in row.items() if not _is_missing(v)}
    if "messages" in row:
        msgs = _parse_messages(row["messages"], path, line, "messages")
        if msgs[-1]["role"] != "assistant":
            raise InputError(f"{where}: field 'messages' must end with an assistant message (the completion)")
        prompt, completion = msgs[:-1], msgs[-1]["content"]
        extra = {k: v for k, v in row.items() if k != "messages"}
    elif "prompt" in row or "completion" in row:
        if "completion" not in row:
            raise InputError(f"{where}: field 'completion' is missing (prompt-only rows cannot be trained on)")
        if "prompt" not in row:
            raise InputError(f"{where}: field 'prompt' is missing")
        p, c = row["prompt"], row["completion"]
        if isinstance(p, str) and not p.lstrip().startswith("[{"):
            prompt = [{"role": "user", "content": p}]
        else:
            prompt = _parse_messages(p, path, line, "prompt")
        if isinstance(c, str) and not c.lstrip().startswith("[{"):
            completion = c
        elif isinstance(c, (str, list)):
            cm = _parse_messages(c, path, line, "completion")
            if len(cm) != 1 or cm[0]["role"] != "assistant":
                raise InputError(f"{where}: field 'completion' must hold exactly one assistant message")
            completion = cm[0]["content"]
        else:
            raise InputError(f"{where}: field 'completion' must be a string or a list of messages")
        extra = {k: v for k, v in row.items() if k not in ("prompt", "completion")}
    else:
        keys = ", ".join(sorted(map(str, row))) or "none"
        raise InputError(f"{where}: row has neither 'messages' nor 'prompt'/'completion' (fields: {keys})")
    if not any(m["role"] == "user" for m in prompt):
        raise InputError(f"{where}: the prompt has no user message")
    if any(m["role"] == "assistant" for m in prompt) and prompt[-1]["role"] == "assistant":
        raise InputError(f"{where}: the prompt must not end with an assistant message")
    if not completion.strip():
        raise InputError(f"{where}: field 'completion' is empty")
    return Example(prompt=tuple(prompt), completion=completion, line=line, meta=extra)


def _read_jsonl(path: Path) -> list[Example]:
    out: list[Example] = []
    with open(path, "rb") as f:
        for line_no, raw in enumerate(f, start=1):
            try:
                text = raw.decode("utf-8-sig" if line_no == 1 else "utf-8")
            except UnicodeDecodeError as exc:
                raise InputError(f"{path}:{line_no}: not valid UTF-8 (byte {exc.start})") from None
            if not text.strip():
                continue
            try:
                row = json.loads(text)
            except json.JSONDecodeError as exc:
                raise InputError(f"{path}:{line_no}: invalid JSON ({exc.msg} at column {exc.colno})") from None
            out.append(parse_row(row, str(path), line_no))
    return out


def _read_table(path: Path) -> list[Example]:
    import pandas as pd

    try:
        if path.suffix == ".csv":
            frame = pd.read_csv(path, dtype=object, keep_default_na=True)
            first_line = 2  # header is line 1
        else:
            frame = pd.read_parquet(path)
            first_line = 1
    except Exception as exc:  # pandas raises many types
        raise InputError(f"{path}: cannot read as {path.suffix[1:]} ({exc.__class__.__name__}: {exc})") from None
    return [parse_row(rec, str(path), i + first_line) for i, rec in enumerate(frame.to_dict(orient="records"))]


def load_dataset(path: str | Path, max_rows: int | None = None, seed: int = 0) -> Dataset:
    """Read, validate and optionally subsample a dataset (sampling uses ``seed``)."""
    p = Path(path)
    if not p.exists():
        raise InputError(f"{p}: no such file")
    if p.is_dir():
        raise InputError(f"{p}: is a directory, expected a .jsonl, .csv or .parquet file")
    suffix = p.suffix.lower()
    if suffix in (".jsonl", ".json", ".ndjson"):
        examples = _read_jsonl(p)
    elif suffix in (".csv", ".parquet"):
        examples = _read_table(p)
    else:
        raise InputError(f"{p}: unsupported file type '{suffix}' (use .jsonl, .csv or .parquet)")
    if not examples:
        raise InputError(f"{p}: no usable rows (the file is empty or only blank lines)")
    total = len(examples)
    if max_rows is not None:
        if max_rows < 1:
            raise InputError(f"--max-rows must be at least 1, got {max_rows}")
        if max_rows < total:
            keep = sorted(random.Random(seed).sample(range(total), max_rows))
            examples = [examples[i] for i in keep]
    return Dataset(path=str(p), examples=examples, sha256=file_sha256(p), total_rows=total)


def write_jsonl(path: str | Path, examples: list[Example]) -> None:
    """Write examples as ``{"prompt": [...], "completion": str}`` rows (atomically)."""
    from .io import atomic_write_text

    lines = [
        json.dumps({"prompt": list(e.prompt), "completion": e.completion, **e.meta}, ensure_ascii=False)
        for e in examples
    ]
    atomic_write_text(path, "\n".join(lines) + "\n")
