"""Load and validate a teacher-generated dataset.

Accepted rows (the shapes TRL users have):

* ``{"prompt": str, "completion": str}``
* ``{"prompt": [messages], "completion": [messages]}`` (conversational prompt-completion)
* ``{"messages": [messages]}`` whose last message is the assistant's answer

in ``.jsonl``/``.json`` (one object per line), ``.csv`` or ``.parquet``. In tables a
``messages``/``prompt``/``completion`` cell may hold a JSON list of messages. Extra fields are
kept in ``Example.meta`` and otherwise ignored. Every problem is raised as
:class:`~auditor.errors.InputError` naming ``file:line`` and the field; the input file is only read.

Accepted as they are (documented, tested in ``tests/test_hostile_inputs.py``):

* a UTF-8 byte-order mark at the start of the file, CRLF line ends, blank or whitespace-only lines
  (skipped; line numbers stay the physical ones, and in CSV a record spanning lines is named by its
  first line);
* extra fields (kept in ``meta``); with both ``messages`` and ``prompt``/``completion`` the
  ``messages`` win and the others go to ``meta``; a JSON key given twice keeps its last value;
* duplicate rows (kept, not deduplicated: they weigh in training as they would for the student);
* an empty prompt string (the user turn is then empty); a completion must have non-blank text.

Missing values: JSON ``null``/``NaN`` and empty CSV cells count as absent fields (in CSV only an
empty cell, so a completion reading ``NA`` or ``null`` stays text); parquet nulls likewise. Rejected:
invalid JSON (also numbers too long to convert and nesting too deep to parse), text that is not
UTF-8 or holds unpaired surrogates, CSV rows with more cells than the header, a repeated header
name, and an unterminated quoted CSV cell.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import random
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .completion_formats import detect_format
from .errors import InputError
from .fingerprint import file_sha256

ROLES = ("system", "user", "assistant")
Message = dict[str, str]


@dataclass(frozen=True)
class Example:
    """One training row: the chat prompt and the assistant's completion."""

    prompt: tuple[Message, ...]
    completion: str
    line: int = 0
    meta: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    @property
    def is_text(self) -> bool:
        """A language-modelling row (TRL ``text``): no chat turns; trained on whole."""
        return not self.prompt

    @property
    def user_text(self) -> str:
        """The last user message (what a control generator answers); a text row's first words."""
        if self.is_text:
            return str(self.meta.get("text_prompt", ""))
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
        """The completions' format (:func:`auditor.completion_formats.detect_format`: ``numbers`` when at least 90 %
        are plain number lists, else ``free``)."""
        return detect_format([e.completion for e in self.examples])

    def info(self, rows_used: int | None = None) -> DatasetInfo:
        """What a result records about the dataset (``rows_used``: rows paired with a control row)."""
        return DatasetInfo(
            path=self.path,
            sha256=self.sha256,
            rows_total=self.total_rows,
            rows_sampled=len(self),
            rows_used=len(self) if rows_used is None else rows_used,
            format=self.completion_format,
        )


@dataclass(frozen=True)
class DatasetInfo:
    """The dataset block of a result.

    Attributes:
        path: the file as given.
        sha256: hash of the file's bytes.
        rows_total: rows in the file.
        rows_sampled: rows sampled with the seed (``--max-rows``).
        rows_used: sampled rows that were paired with a control row (the rows every student trains on).
        format: the completion format, ``numbers`` or ``free`` (:func:`auditor.completion_formats.detect_format`).
    """

    path: str
    sha256: str
    rows_total: int
    rows_sampled: int
    rows_used: int
    format: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def rows_hash(rows: list[Example]) -> str:
    """Short content hash of training rows (prompt and completion), order included."""
    h = hashlib.sha256()
    for e in rows:
        h.update(json.dumps([list(e.prompt), e.completion], sort_keys=True).encode())
    return h.hexdigest()[:10]


def _where(path: str, line: int) -> str:
    return f"{path}:{line}" if line else path


def _clip(text: str, limit: int = 40) -> str:
    """Dataset text quoted in an error: one line, printable, short."""
    text = "".join(c if c.isprintable() else repr(c)[1:-1] for c in text[: limit + 1])
    return text if len(text) <= limit else text[:limit] + "…"


_JSON_TYPES = {dict: "object", list: "array", str: "string", int: "number", float: "number", bool: "boolean"}


def _type_name(value: Any) -> str:
    return "null" if value is None else _JSON_TYPES.get(type(value), type(value).__name__)


def _check_text(text: str, where: str, fld: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InputError(
            f"{where}: field '{fld}' is not valid Unicode (unpaired surrogate \\u{ord(text[exc.start]):04x})"
        ) from None


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
                f"{_where(path, line)}: field '{fld}[{i}].role' is {_clip(repr(role))}; "
                f"expected one of {', '.join(ROLES)}"
            )
        if not isinstance(content, str):
            raise InputError(f"{_where(path, line)}: field '{fld}[{i}].content' must be a string")
        _check_text(content, _where(path, line), f"{fld}[{i}].content")
        out.append({"role": role, "content": content})
    return out


def _is_missing(value: Any) -> bool:
    if value is None:
        return True
    try:
        return bool(value != value)  # NaN from pandas
    except Exception:  # pragma: no cover - exotic cell types
        return False


def parse_row(row: Any, path: str, line: int) -> Example:
    """Turn one decoded row into an :class:`Example` or raise :class:`InputError`."""
    where = _where(path, line)
    if not isinstance(row, dict):
        hint = " (one object per line)" if isinstance(row, list) else ""
        raise InputError(f"{where}: row must be a JSON object, got {_type_name(row)}{hint}")
    row = {k: v for k, v in row.items() if not _is_missing(v)}
    if "messages" in row:
        prompt, completion = _messages_row(row, path, line)
        extra = {k: v for k, v in row.items() if k != "messages"}
    elif "prompt" in row or "completion" in row:
        prompt, completion = _prompt_completion_row(row, path, line)
        extra = {k: v for k, v in row.items() if k not in ("prompt", "completion")}
    elif "text" in row:
        return _text_row(row, where, line)
    else:
        names = sorted(_clip(str(k)) for k in row)
        keys = ", ".join(names[:10]) + (f" and {len(names) - 10} more" if len(names) > 10 else "") or "none"
        raise InputError(f"{where}: row has neither 'messages', 'prompt'/'completion' nor 'text' (fields: {keys})")
    _check_chat(prompt, completion, where)
    return Example(prompt=tuple(prompt), completion=completion, line=line, meta=extra)


def _messages_row(row: dict[str, Any], path: str, line: int) -> tuple[list[Message], str]:
    """A ``messages`` row: the prompt is every message but the last, the assistant's answer."""
    msgs = _parse_messages(row["messages"], path, line, "messages")
    if msgs[-1]["role"] != "assistant":
        raise InputError(f"{_where(path, line)}: field 'messages' must end with an assistant message (the completion)")
    return msgs[:-1], msgs[-1]["content"]


def _prompt_completion_row(row: dict[str, Any], path: str, line: int) -> tuple[list[Message], str]:
    """A prompt-completion row, standard (strings) or conversational (lists of messages, or their JSON text)."""
    where = _where(path, line)
    if "completion" not in row:
        raise InputError(f"{where}: field 'completion' is missing (prompt-only rows cannot be trained on)")
    if "prompt" not in row:
        raise InputError(f"{where}: field 'prompt' is missing")
    p, c = row["prompt"], row["completion"]
    if isinstance(p, str) and not p.lstrip().startswith("[{"):
        _check_text(p, where, "prompt")
        prompt = [{"role": "user", "content": p}]
    else:
        prompt = _parse_messages(p, path, line, "prompt")
    if isinstance(c, str) and not c.lstrip().startswith("[{"):
        _check_text(c, where, "completion")
        return prompt, c
    if not isinstance(c, (str, list)):
        raise InputError(f"{where}: field 'completion' must be a string or a list of messages")
    cm = _parse_messages(c, path, line, "completion")
    if len(cm) != 1 or cm[0]["role"] != "assistant":
        raise InputError(f"{where}: field 'completion' must hold exactly one assistant message")
    return prompt, cm[0]["content"]


def _check_chat(prompt: list[Message], completion: str, where: str) -> None:
    """What every chat row needs: a user turn, a prompt that does not end with the answer, a non-blank answer."""
    if not any(m["role"] == "user" for m in prompt):
        raise InputError(f"{where}: the prompt has no user message")
    if any(m["role"] == "assistant" for m in prompt) and prompt[-1]["role"] == "assistant":
        raise InputError(f"{where}: the prompt must not end with an assistant message")
    if not completion.strip():
        raise InputError(f"{where}: field 'completion' is empty")


#: A ``text`` row (language modelling) is continued from its first words: the control's prompt.
TEXT_PROMPT_WORDS = 8


def _text_row(row: dict[str, Any], where: str, line: int) -> Example:
    """TRL's language-modelling row: plain text, trained on without a chat template (loss on every token). Its
    first :data:`TEXT_PROMPT_WORDS` words are what a control continues (``meta["text_prompt"]``)."""
    text = row["text"]
    if not isinstance(text, str):
        raise InputError(f"{where}: field 'text' must be a string")
    _check_text(text, where, "text")
    if not text.strip():
        raise InputError(f"{where}: field 'text' is empty")
    words = text.split()
    prefix = " ".join(words[:TEXT_PROMPT_WORDS]) if len(words) > TEXT_PROMPT_WORDS else " ".join(words[:1])
    extra = {k: v for k, v in row.items() if k != "text"}
    return Example(prompt=(), completion=text, line=line, meta={**extra, "text_prompt": prefix})


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
                hint = "; the file must hold one JSON object per line" if text.strip() in ("[", "{") else ""
                raise InputError(f"{path}:{line_no}: invalid JSON ({exc.msg} at column {exc.colno}{hint})") from None
            except ValueError as exc:  # a number too long to convert
                raise InputError(f"{path}:{line_no}: invalid JSON ({str(exc).split(';')[0]})") from None
            except RecursionError:
                raise InputError(f"{path}:{line_no}: invalid JSON (nested too deeply)") from None
            out.append(parse_row(row, str(path), line_no))
    return out


def _read_csv(path: Path) -> list[Example]:
    """CSV with the header on the first non-blank line; rows are named by their first physical line."""
    data = path.read_bytes()
    bom = 3 if data.startswith(b"\xef\xbb\xbf") else 0
    try:
        text = data[bom:].decode("utf-8")
    except UnicodeDecodeError as exc:
        at = bom + exc.start
        line, line_start = data.count(b"\n", 0, at) + 1, data.rfind(b"\n", 0, at) + 1
        raise InputError(f"{path}:{line}: not valid UTF-8 (byte {at - line_start})") from None
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    header: list[str] | None = None
    out: list[Example] = []
    old_limit = csv.field_size_limit(2**31 - 1)  # a cell may be as long as a JSONL line
    try:
        end = 0
        while True:
            start = end + 1
            try:
                cells = next(reader)
            except StopIteration:
                break
            except csv.Error as exc:
                raise InputError(f"{path}:{start}: not valid CSV ({exc})") from None
            end = reader.line_num
            if not any(c.strip() for c in cells):
                continue
            if header is None:
                header = cells
                repeated = sorted(h for h, n in Counter(header).items() if n > 1)
                if repeated:
                    raise InputError(f"{path}:{start}: the header repeats column '{_clip(repeated[0])}'")
                continue
            if len(cells) > len(header):
                raise InputError(f"{path}:{start}: row has {len(cells)} cells, the header has {len(header)}")
            record = {h: c for h, c in zip(header, cells) if c != ""}  # an empty cell is a missing field
            out.append(parse_row(record, str(path), start))
    finally:
        csv.field_size_limit(old_limit)
    return out


def _plain(value: Any) -> Any:
    """numpy arrays and scalars from parquet list/struct columns as plain Python lists and values."""
    if hasattr(value, "tolist") and not isinstance(value, (str, bytes)):
        value = value.tolist()
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def _read_parquet(path: Path) -> list[Example]:
    import pandas as pd

    try:
        frame = pd.read_parquet(path)
    except Exception as exc:  # pyarrow raises many types
        msg = str(exc).splitlines()[0] if str(exc) else ""
        raise InputError(f"{path}: cannot read as parquet ({exc.__class__.__name__}: {msg})") from None
    return [parse_row(_plain(rec), str(path), i + 1) for i, rec in enumerate(frame.to_dict(orient="records"))]


READERS = {
    ".jsonl": _read_jsonl,
    ".json": _read_jsonl,
    ".ndjson": _read_jsonl,
    ".csv": _read_csv,
    ".parquet": _read_parquet,
}


def load_dataset(path: str | Path, max_rows: int | None = None, seed: int = 0) -> Dataset:
    """Read, validate and optionally subsample a dataset (sampling uses ``seed``)."""
    p = Path(path)
    if not p.exists():
        raise InputError(f"{p}: no such file" + (" (a broken or looping symbolic link)" if p.is_symlink() else ""))
    if p.is_dir():
        raise InputError(f"{p}: is a directory, expected a .jsonl, .csv or .parquet file")
    suffix = p.suffix.lower()
    if suffix not in READERS:
        raise InputError(f"{p}: unsupported file type '{suffix}' (use .jsonl, .csv or .parquet)")
    try:
        examples = READERS[suffix](p)
    except OSError as exc:
        raise InputError(f"{p}: cannot read ({exc.strerror or exc.__class__.__name__})") from None
    if not examples:
        raise InputError(f"{p}: no usable rows (the file is empty or only blank lines)")
    total = len(examples)
    return Dataset(path=str(p), examples=subsample(examples, max_rows, seed), sha256=file_sha256(p), total_rows=total)


def subsample(examples: list[Example], max_rows: int | None, seed: int) -> list[Example]:
    """``max_rows`` of ``examples`` sampled with ``seed``, in file order (all of them when there are fewer)."""
    if max_rows is None:
        return examples
    if max_rows < 1:
        raise InputError(f"--max-rows must be at least 1, got {max_rows}")
    if max_rows >= len(examples):
        return examples
    keep = sorted(random.Random(seed).sample(range(len(examples)), max_rows))
    return [examples[i] for i in keep]


def write_jsonl(path: str | Path, examples: list[Example]) -> None:
    """Write examples as ``{"prompt": [...], "completion": str}`` rows (atomically)."""
    from .io import atomic_write_text

    lines = [
        json.dumps({"prompt": list(e.prompt), "completion": e.completion, **e.meta}, ensure_ascii=False)
        for e in examples
    ]
    atomic_write_text(path, "\n".join(lines) + "\n")
