"""Hostile input corpus: every malformed dataset or path fails cleanly, every odd-but-valid one is accepted.

Each case builds one input in a fresh folder and declares what it expects:

* an error: :class:`~auditor.errors.InputError` from :func:`auditor.data.load_dataset`, and from the CLI
  exit code 2 with a single ``error: PATH:LINE: ...`` line naming the field, no traceback;
* or an acceptance (documented in :mod:`auditor.data`): the rows that were loaded, and from the CLI a scan
  that gets past the data and stops at the (fake) base, so no model is ever loaded.

In both cases the input folder (bytes, sizes, mtimes, no new files) is the same afterwards.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import stat
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from auditor.cli import app
from auditor.data import Dataset, load_dataset
from auditor.errors import InputError

runner = CliRunner()
BIG = 10 * 1024 * 1024  # a 10 MB line
FAKE_GGUF = b"NOPE" + b"\0" * 60


# ---------------------------------------------------------------------------------------------- helpers


def row(p: object = "p", c: object = "1, 2, 3", **extra: object) -> dict:
    return {"prompt": p, "completion": c, **extra}


def chat(*turns: tuple[object, object]) -> list[dict]:
    return [{"role": r, "content": c} for r, c in turns]


def jl(*rows: object) -> bytes:
    """JSON Lines: dicts/lists are dumped (lone surrogates become \\ud800 escapes), str/bytes go in as they are."""
    out = b""
    for r in rows:
        if isinstance(r, bytes):
            out += r + b"\n"
        elif isinstance(r, str):
            out += r.encode("utf-8") + b"\n"
        else:
            out += json.dumps(r).encode("utf-8") + b"\n"
    return out


def parquet(frame: pd.DataFrame) -> bytes:
    buf = io.BytesIO()
    frame.to_parquet(buf)
    return buf.getvalue()


Maker = Callable[[Path], Path]


def file(name: str, data: bytes | Callable[[], bytes]) -> Maker:
    def make(folder: Path) -> Path:
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data() if callable(data) else data)
        return path

    return make


@dataclass(frozen=True)
class Case:
    """One hostile input. ``rows`` set: accepted with these (user text, completion, line); else an error."""

    id: str
    make: Maker
    line: int | None = None  # the line the error names (None: the error is about the whole file)
    field: str | None = None  # the field the error names
    says: str = ""  # a fragment of the error message
    rows: list[tuple[str, str, int]] | None = None
    meta: list[dict] | None = None
    skip: str | None = None


def err(id: str, make: Maker, line: int | None, says: str, field: str | None = None) -> Case:
    return Case(id, make, line=line, field=field, says=says)


def ok(id: str, make: Maker, rows: list[tuple[str, str, int]], meta: list[dict] | None = None) -> Case:
    return Case(id, make, rows=rows, meta=meta)


def _dir(name: str) -> Maker:
    def make(folder: Path) -> Path:
        (folder / name).mkdir()
        (folder / name / "inside.jsonl").write_bytes(jl(row()))
        return folder / name

    return make


def _missing(rel: str) -> Maker:
    return lambda folder: folder / rel


def _symlink_loop(folder: Path) -> Path:
    os.symlink(folder / "b.jsonl", folder / "a.jsonl")
    os.symlink(folder / "a.jsonl", folder / "b.jsonl")
    return folder / "a.jsonl"


def _dangling(folder: Path) -> Path:
    os.symlink(folder / "gone.jsonl", folder / "d.jsonl")
    return folder / "d.jsonl"


def _unreadable(folder: Path) -> Path:
    # a path that exists and is a file but fails on read() (EIO): /proc/self/mem at offset 0
    os.symlink("/proc/self/mem", folder / "mem.jsonl")
    return folder / "mem.jsonl"


def _deep(n: int) -> bytes:
    return b"[" * n + b"]" * n


GOOD = row("q", "1, 2")
CSV_MSGS = json.dumps(chat(("user", "q"), ("assistant", "a"))).replace('"', '""')

CASES: list[Case] = [
    # ---- JSON Lines: not JSON
    err("truncated-json", file("d.jsonl", jl(GOOD, '{"prompt": "b", "completion": ')), 2, "invalid JSON"),
    err("trailing-comma", file("d.jsonl", jl('{"prompt": "a", "completion": "1",}')), 1, "invalid JSON"),
    err("python-dict-quotes", file("d.jsonl", jl("{'prompt': 'a', 'completion': '1'}")), 1, "invalid JSON"),
    err("comment-line", file("d.jsonl", jl("// rows follow", GOOD)), 1, "invalid JSON"),
    err("two-objects-one-line", file("d.jsonl", jl(json.dumps(GOOD) * 2)), 1, "invalid JSON (Extra data"),
    err(
        "pretty-printed-json",
        file("d.json", json.dumps([GOOD], indent=2).encode()),
        1,
        "the file must hold one JSON object per line",
    ),
    err("json-array-one-line", file("d.json", jl([GOOD, GOOD])), 1, "row must be a JSON object, got array"),
    err("row-null", file("d.jsonl", jl(GOOD, "null")), 2, "row must be a JSON object, got null"),
    err("row-string", file("d.jsonl", jl('"just text"')), 1, "row must be a JSON object, got string"),
    err("row-number", file("d.jsonl", jl("42")), 1, "row must be a JSON object, got number"),
    err("deeply-nested", file("d.jsonl", jl(GOOD, GOOD, _deep(100_000))), 3, "invalid JSON (nested too deeply)"),
    err("deep-in-extra-field", file("d.jsonl", jl(b'{"x": ' + _deep(50_000) + b"}")), 1, "nested too deeply"),
    err("5000-digit-number", file("d.jsonl", jl('{"prompt": "a", "completion": ' + "9" * 5000 + "}")), 1, "4300"),
    err("nul-byte-line", file("d.jsonl", jl(GOOD, b"\0")), 2, "invalid JSON"),
    err("cr-only-line-ends", file("d.jsonl", (json.dumps(GOOD) + "\r").encode() * 2), 1, "invalid JSON (Extra data"),
    err("bom-in-second-line", file("d.jsonl", jl(GOOD, b"\xef\xbb\xbf" + json.dumps(GOOD).encode())), 2, "BOM"),
    err(
        "10mb-line-invalid",
        file("d.jsonl", lambda: jl(GOOD, b'{"prompt": "p", "completion": "' + b"x" * BIG)),
        2,
        "invalid JSON",
    ),
    # ---- JSON Lines: not text
    err(
        "latin1-line-3",
        file("d.jsonl", jl(GOOD, GOOD, '{"prompt": "caf\xe9", "completion": "1"}'.encode("latin-1"))),
        3,
        "not valid UTF-8",
    ),
    err("utf16-file", file("d.jsonl", jl(GOOD).decode().encode("utf-16")), 1, "not valid UTF-8"),
    err("binary-garbage", file("d.jsonl", bytes(range(128, 256)) * 8), 1, "not valid UTF-8 (byte 0)"),
    err("lone-surrogate-prompt", file("d.jsonl", jl(row("a\ud800"))), 1, "unpaired surrogate", "prompt"),
    err(
        "lone-surrogate-message",
        file("d.jsonl", jl(GOOD, {"messages": chat(("user", "q"), ("assistant", "\udfff"))})),
        2,
        "not valid Unicode",
        "messages[1].content",
    ),
    # ---- JSON Lines: missing fields, prompt-only rows
    err("prompt-only", file("d.jsonl", jl(GOOD, {"prompt": "a"})), 2, "is missing (prompt-only", "completion"),
    err("completion-only", file("d.jsonl", jl({"completion": "1"})), 1, "is missing", "prompt"),
    err("neither-shape", file("d.jsonl", jl({"body": "hello", "label": 1})), 1, "(fields: body, label)"),
    err("empty-object", file("d.jsonl", jl({})), 1, "(fields: none)"),
    err("completion-null", file("d.jsonl", jl(row(c=None))), 1, "is missing", "completion"),
    err("completion-nan", file("d.jsonl", jl('{"prompt": "a", "completion": NaN}')), 1, "is missing", "completion"),
    err(
        "messages-prompt-only",
        file("d.jsonl", jl({"messages": chat(("user", "q"))})),
        1,
        "must end with an assistant",
        "messages",
    ),
    # ---- JSON Lines: wrong types
    err("completion-number", file("d.jsonl", jl(row(c=3))), 1, "must be a string or a list", "completion"),
    err("completion-bool", file("d.jsonl", jl(row(c=True))), 1, "must be a string or a list", "completion"),
    err("completion-object", file("d.jsonl", jl(row(c={"role": "assistant"}))), 1, "must be a string", "completion"),
    err(
        "completion-infinity",
        file("d.jsonl", jl('{"prompt": "a", "completion": Infinity}')),
        1,
        "must be a string",
        "completion",
    ),
    err("completion-blank", file("d.jsonl", jl(row(c=" \t\n "))), 1, "is empty", "completion"),
    err("prompt-number", file("d.jsonl", jl(row(p=7))), 1, "must be a non-empty list of messages", "prompt"),
    err("prompt-object", file("d.jsonl", jl(row(p={"role": "user", "content": "x"}))), 1, "non-empty list", "prompt"),
    err("prompt-empty-list", file("d.jsonl", jl(row(p=[]))), 1, "non-empty list", "prompt"),
    err("prompt-broken-json-string", file("d.jsonl", jl(row(p='[{"role": "user"'))), 1, "not a JSON list", "prompt"),
    err("messages-plain-string", file("d.jsonl", jl({"messages": "hello"})), 1, "not a JSON list", "messages"),
    err("messages-empty", file("d.jsonl", jl({"messages": []})), 1, "non-empty list", "messages"),
    err(
        "message-not-object", file("d.jsonl", jl({"messages": ["hi", "there"]})), 1, "must be an object", "messages[0]"
    ),
    err(
        "content-number",
        file("d.jsonl", jl({"messages": chat(("user", 5), ("assistant", "a"))})),
        1,
        "must be a string",
        "messages[0].content",
    ),
    err(
        "content-missing",
        file("d.jsonl", jl({"messages": [{"role": "user"}, {"role": "assistant", "content": "a"}]})),
        1,
        "must be a string",
        "messages[0].content",
    ),
    # ---- JSON Lines: wrong chat roles
    err(
        "role-unknown",
        file("d.jsonl", jl({"messages": chat(("wizard", "q"), ("assistant", "a"))})),
        1,
        "is 'wizard'",
        "messages[0].role",
    ),
    err(
        "role-tool",
        file("d.jsonl", jl({"messages": chat(("user", "q"), ("tool", "a"))})),
        1,
        "expected one of",
        "messages[1].role",
    ),
    err(
        "role-missing",
        file("d.jsonl", jl({"messages": [{"content": "q"}, {"role": "assistant", "content": "a"}]})),
        1,
        "is None",
        "messages[0].role",
    ),
    err(
        "role-list",
        file("d.jsonl", jl({"messages": chat((["user"], "q"), ("assistant", "a"))})),
        1,
        "is ['user']",
        "messages[0].role",
    ),
    err(
        "role-rich-markup",
        file("d.jsonl", jl({"messages": chat(("[/bold]", "q"), ("assistant", "a"))})),
        1,
        "is '[/bold]'",
        "messages[0].role",
    ),
    err(
        "role-huge-multiline",
        file("d.jsonl", jl({"messages": chat(("x\n" * 50_000, "q"), ("assistant", "a"))})),
        1,
        "…; expected one of",
        "messages[0].role",
    ),
    err(
        "no-user-message",
        file("d.jsonl", jl({"messages": chat(("system", "s"), ("assistant", "a"))})),
        1,
        "the prompt has no user message",
    ),
    err(
        "only-assistant",
        file("d.jsonl", jl({"messages": chat(("assistant", "a"))})),
        1,
        "the prompt has no user message",
    ),
    err(
        "prompt-ends-with-assistant",
        file("d.jsonl", jl(row(p=chat(("user", "q"), ("assistant", "a")), c="b"))),
        1,
        "must not end with an assistant",
    ),
    err(
        "completion-user-role",
        file("d.jsonl", jl(row(p="q", c=chat(("user", "a"))))),
        1,
        "exactly one assistant message",
        "completion",
    ),
    err(
        "completion-two-turns",
        file("d.jsonl", jl(row(p="q", c=chat(("assistant", "a"), ("assistant", "b"))))),
        1,
        "exactly one assistant",
        "completion",
    ),
    err("keys-with-newlines-and-markup", file("d.jsonl", jl({f"k{i}\n[/]": i for i in range(15)})), 1, "and 5 more)"),
    # ---- JSON Lines: empty files and line numbers
    err("empty-file", file("d.jsonl", b""), None, "no usable rows"),
    err("only-blank-lines", file("d.jsonl", b"\n\n   \n\t\r\n\r\n"), None, "no usable rows"),
    err("only-bom", file("d.jsonl", b"\xef\xbb\xbf\n"), None, "no usable rows"),
    err(
        "error-after-blank-lines",
        file("d.jsonl", b"\n" + jl(GOOD) + b"\r\n\n" + jl(GOOD, {"prompt": "x"})),
        6,
        "is missing",
        "completion",
    ),
    err(
        "error-on-line-2000",
        file("d.jsonl", lambda: jl(*[GOOD] * 1999, {"prompt": "x"})),
        2000,
        "is missing",
        "completion",
    ),
    # ---- JSON Lines: accepted as documented
    ok(
        "bom-crlf-blank-lines",
        file("d.jsonl", b"\xef\xbb\xbf" + jl(GOOD).replace(b"\n", b"\r\n") + b"\r\n  \n" + jl(row("b", "3"))),
        [("q", "1, 2", 1), ("b", "3", 4)],
    ),
    ok("whitespace-around-json", file("d.jsonl", b"  \t" + json.dumps(GOOD).encode() + b"   \n"), [("q", "1, 2", 1)]),
    ok(
        "extra-fields",
        file("d.jsonl", jl(row("a", "1", id=7, source={"k": [1]}))),
        [("a", "1", 1)],
        [{"id": 7, "source": {"k": [1]}}],
    ),
    ok(
        "nan-in-extra-field-dropped",
        file("d.jsonl", jl('{"prompt": "a", "completion": "1", "score": NaN, "t": null}')),
        [("a", "1", 1)],
        [{}],
    ),
    ok(
        "duplicate-rows-kept",
        file("d.jsonl", jl(GOOD, GOOD, GOOD)),
        [("q", "1, 2", 1), ("q", "1, 2", 2), ("q", "1, 2", 3)],
    ),
    ok(
        "duplicate-key-last-wins",
        file("d.jsonl", jl('{"prompt": "first", "prompt": "second", "completion": "1"}')),
        [("second", "1", 1)],
    ),
    ok(
        "messages-and-prompt-both",
        file("d.jsonl", jl({"messages": chat(("user", "m"), ("assistant", "x")), "prompt": "p", "completion": "c"})),
        [("m", "x", 1)],
        [{"prompt": "p", "completion": "c"}],
    ),
    ok("empty-prompt-string", file("d.jsonl", jl(row("", "1"))), [("", "1", 1)]),
    ok(
        "messages-as-json-string",
        file("d.jsonl", jl({"messages": json.dumps(chat(("user", "u"), ("assistant", "a")))})),
        [("u", "a", 1)],
    ),
    ok(
        "unicode-and-markup-text",
        file(
            "d.jsonl", jl(row("<script>alert(1)</script> [x](http://e) | # h", "\U0001f989 \u202eevil\u200b `x`\n## y"))
        ),
        [("<script>alert(1)</script> [x](http://e) | # h", "\U0001f989 \u202eevil\u200b `x`\n## y", 1)],
    ),
    ok(
        "surrogate-pair-escape",
        file("d.jsonl", jl('{"prompt": "\\ud83e\\udd89", "completion": "1"}')),
        [("\U0001f989", "1", 1)],
    ),
    ok("uppercase-suffix", file("D.JSONL", jl(GOOD)), [("q", "1, 2", 1)]),
    ok("ndjson-suffix", file("d.ndjson", jl(GOOD)), [("q", "1, 2", 1)]),
    ok(
        "10mb-line-valid",
        file("d.jsonl", lambda: jl(GOOD, row("big", "y" * BIG))),
        [("q", "1, 2", 1), ("big", "y" * BIG, 2)],
    ),
    # ---- CSV
    err("csv-empty-completion-cell", file("d.csv", b"prompt,completion\na,1\nb,\n"), 3, "is missing", "completion"),
    err("csv-empty-prompt-cell", file("d.csv", b"prompt,completion\n,1\n"), 2, "is missing", "prompt"),
    err("csv-short-row", file("d.csv", b"prompt,completion\na,1\nb\n"), 3, "is missing", "completion"),
    err("csv-blank-completion-cell", file("d.csv", b'prompt,completion\na,"  "\n'), 2, "is empty", "completion"),
    err(
        "csv-multiline-cell-then-bad-row",
        file("d.csv", b'prompt,completion\n"a\nb\nc",1\nd,\n'),
        5,
        "is missing",
        "completion",
    ),
    err(
        "csv-blank-lines-then-bad-row",
        file("d.csv", b"prompt,completion\r\n\r\n\r\na,1\r\nb,\r\n"),
        5,
        "is missing",
        "completion",
    ),
    err("csv-extra-cells", file("d.csv", b"prompt,completion\na,1,2\nb,3,4\n"), 2, "row has 3 cells, the header has 2"),
    err(
        "csv-unterminated-quote",
        file("d.csv", b'prompt,completion\na,1\nb,"2\nc,3\n'),
        3,
        "not valid CSV (unexpected end of data)",
    ),
    err("csv-text-after-quote", file("d.csv", b'prompt,completion\na,"1"x\n'), 2, "not valid CSV"),
    err(
        "csv-repeated-header",
        file("d.csv", b"prompt,prompt,completion\na,b,1\n"),
        1,
        "the header repeats column 'prompt'",
    ),
    err(
        "csv-latin1",
        file("d.csv", "prompt,completion\na,1\ncaf\xe9,2\n".encode("latin-1")),
        3,
        "not valid UTF-8 (byte 3)",
    ),
    err("csv-zero-bytes", file("d.csv", b""), None, "no usable rows"),
    err("csv-header-only", file("d.csv", b"prompt,completion\n"), None, "no usable rows"),
    err("csv-wrong-header", file("d.csv", b"body,label\nhello,1\n"), 2, "(fields: body, label)"),
    err("csv-messages-not-json", file("d.csv", b"messages\n[{oops\n"), 2, "not a JSON list of messages", "messages"),
    ok("csv-all-empty-row-skipped", file("d.csv", b"prompt,completion\n,\n , \na,1\n"), [("a", "1", 4)]),
    ok(
        "csv-na-like-text-kept",
        file("d.csv", b"prompt,completion\na,NA\nb,null\nc,NaN\nd,None\n"),
        [("a", "NA", 2), ("b", "null", 3), ("c", "NaN", 4), ("d", "None", 5)],
    ),
    ok("csv-bom-crlf", file("d.csv", b"\xef\xbb\xbfprompt,completion\r\na,1\r\n"), [("a", "1", 2)]),
    ok("csv-messages-cell", file("d.csv", f'messages\n"{CSV_MSGS}"\n'.encode()), [("q", "a", 2)]),
    ok("csv-extra-column", file("d.csv", b"id,prompt,completion\n7,a,1\n"), [("a", "1", 2)], [{"id": "7"}]),
    ok(
        "csv-1mb-cell",
        file("d.csv", lambda: b"prompt,completion\na," + b"z" * 1_000_000 + b"\n"),
        [("a", "z" * 1_000_000, 2)],
    ),
    # ---- parquet
    err("parquet-garbage", file("d.parquet", b"PAR1 this is not parquet"), None, "cannot read as parquet"),
    err("parquet-zero-bytes", file("d.parquet", b""), None, "cannot read as parquet"),
    err("parquet-jsonl-renamed", file("d.parquet", jl(GOOD)), None, "cannot read as parquet"),
    err(
        "parquet-null-prompt",
        file("d.parquet", lambda: parquet(pd.DataFrame({"prompt": ["a", None], "completion": ["1", "2"]}))),
        2,
        "is missing",
        "prompt",
    ),
    err(
        "parquet-float-completion",
        file("d.parquet", lambda: parquet(pd.DataFrame({"prompt": ["a", "b"], "completion": [1.5, float("nan")]}))),
        1,
        "must be a string",
        "completion",
    ),
    err(
        "parquet-nan-completion",
        file("d.parquet", lambda: parquet(pd.DataFrame({"prompt": ["a", "b"], "completion": ["1", float("nan")]}))),
        2,
        "is missing",
        "completion",
    ),
    err(
        "parquet-empty-messages",
        file("d.parquet", lambda: parquet(pd.DataFrame({"messages": [chat(("user", "q"), ("assistant", "a")), []]}))),
        2,
        "non-empty list",
        "messages",
    ),
    err(
        "parquet-list-of-strings",
        file("d.parquet", lambda: parquet(pd.DataFrame({"prompt": [["a", "b"]], "completion": ["c"]}))),
        1,
        "must be an object",
        "prompt[0]",
    ),
    err(
        "parquet-no-rows",
        file(
            "d.parquet",
            lambda: parquet(pd.DataFrame({"prompt": pd.Series([], dtype=str), "completion": pd.Series([], dtype=str)})),
        ),
        None,
        "no usable rows",
    ),
    ok(
        "parquet-messages-list-of-structs",
        file("d.parquet", lambda: parquet(pd.DataFrame({"messages": [chat(("user", "q"), ("assistant", "a"))] * 2}))),
        [("q", "a", 1), ("q", "a", 2)],
    ),
    ok(
        "parquet-conversational-prompt-completion",
        file(
            "d.parquet",
            lambda: parquet(
                pd.DataFrame(
                    {
                        "prompt": [chat(("system", "s"), ("user", "u"))],
                        "completion": [chat(("assistant", "a"))],
                        "n": [3],
                    }
                )
            ),
        ),
        [("u", "a", 1)],
        [{"n": 3}],
    ),
    # ---- paths
    err("directory", _dir("adir"), None, "is a directory"),
    err("directory-named-jsonl", _dir("data.jsonl"), None, "is a directory"),
    err("missing-file", _missing("nope.jsonl"), None, "no such file"),
    err("missing-parent", _missing("no/such/dir/d.jsonl"), None, "no such file"),
    err("symlink-loop", _symlink_loop, None, "no such file (a broken or looping symbolic link)"),
    err("dangling-symlink", _dangling, None, "a broken or looping symbolic link"),
    err("unsupported-suffix", file("d.txt", jl(GOOD)), None, "unsupported file type '.txt'"),
    err("no-suffix", file("data", jl(GOOD)), None, "unsupported file type ''"),
    err("xlsx-suffix", file("d.xlsx", b"PK\x03\x04"), None, "unsupported file type '.xlsx'"),
    err("rich-markup-in-path", file("[bold]x[/bold]/d.jsonl", b"{\n"), 1, "invalid JSON"),
    Case(
        "unreadable-file",
        _unreadable,
        says="cannot read (Input/output error)",
        skip=None if os.path.exists("/proc/self/mem") else "no /proc",
    ),
]


def _params() -> list:
    return [pytest.param(c, id=c.id, marks=[pytest.mark.skip(reason=c.skip)] if c.skip else []) for c in CASES]


def snapshot(root: Path) -> dict[str, tuple]:
    """Everything under ``root`` (symlinks not followed): kind, size, mtime and content hash."""
    out: dict[str, tuple] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in [".", *dirnames, *filenames]:
            p = Path(dirpath, name)
            st = p.lstat()
            if stat.S_ISLNK(st.st_mode):
                content = os.readlink(p)
            elif stat.S_ISREG(st.st_mode):
                content = hashlib.sha256(p.read_bytes()).hexdigest()
            else:
                content = None
            out[str(p.relative_to(root))] = (stat.S_IFMT(st.st_mode), st.st_size, st.st_mtime_ns, content)
    return out


def _summary(user: str, completion: str, line: int) -> tuple[str, str, int]:
    if len(completion) > 100:
        completion = f"<{len(completion)} chars, sha256 {hashlib.sha256(completion.encode()).hexdigest()[:16]}>"
    return user, completion, line


def check_error(message: str, case: Case, path: Path) -> None:
    """One short line: ``PATH:LINE: ...`` (or ``PATH: ...``), the field's name and the expected words."""
    assert "\n" not in message and "\r" not in message, message
    assert len(message) < 400 + len(str(path)), message[:600]
    prefix = f"{path}:{case.line}: " if case.line else f"{path}: "
    assert message.startswith(prefix), message
    assert case.says in message, message
    if case.field:
        assert f"field '{case.field}'" in message, message


def check_accepted(ds: Dataset, case: Case, path: Path) -> None:
    assert case.rows is not None
    got = [_summary(e.user_text, e.completion, e.line) for e in ds.examples]
    assert got == [_summary(*r) for r in case.rows]
    if case.meta is not None:
        assert [e.meta for e in ds.examples] == case.meta
    assert ds.path == str(path) and ds.total_rows == len(case.rows)
    assert ds.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()


def test_corpus_is_large_and_distinct() -> None:
    ids = [c.id for c in CASES]
    assert len(ids) == len(set(ids))
    assert len(CASES) >= 55
    assert sum(c.rows is None for c in CASES) >= 40 and sum(c.rows is not None for c in CASES) >= 10


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    d = tmp_path / "in"
    d.mkdir()
    return d


@pytest.fixture
def fake_gguf(tmp_path: Path) -> Path:
    d = tmp_path / "base"
    d.mkdir()
    (d / "fake.gguf").write_bytes(FAKE_GGUF)
    return d / "fake.gguf"


@pytest.fixture(autouse=True)
def no_model_load(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every scan here must stop before a base model is loaded."""

    def refuse(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("the scan tried to load a base model")

    monkeypatch.setattr("auditor.models.load_base", refuse)


@pytest.mark.parametrize("case", _params())
def test_load_dataset(case: Case, folder: Path) -> None:
    path = case.make(folder)
    before = snapshot(folder)
    if case.rows is not None:
        check_accepted(load_dataset(path), case, path)
    else:
        with pytest.raises(InputError) as exc:
            load_dataset(path)
        assert exc.value.exit_code == 2
        check_error(str(exc.value), case, path)
    assert snapshot(folder) == before


#: Folders that ``load_dataset`` (one file) refuses but ``scan`` reads as a folder of shards (issue 15).
SHARD_FOLDERS = {"directory", "directory-named-jsonl"}


@pytest.mark.parametrize("case", _params())
def test_cli_scan(case: Case, folder: Path, fake_gguf: Path) -> None:
    path = case.make(folder)
    before = snapshot(folder), snapshot(fake_gguf.parent)
    res = runner.invoke(app, ["scan", str(path), "--base", str(fake_gguf), "--max-rows", "0", "--quiet"])
    assert isinstance(res.exception, SystemExit), repr(res.exception)  # not an uncaught exception
    assert "Traceback" not in res.output
    assert res.exit_code == 2, res.output[:600]
    lines = res.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), res.output[:600]
    if case.rows is None and case.id not in SHARD_FOLDERS:
        check_error(lines[0].removeprefix("error: "), case, path)
    else:  # the data passed: the scan stopped at the fake base, before loading anything
        assert lines[0] == f"error: {fake_gguf}: not a GGUF file (bad magic bytes {FAKE_GGUF[:4]!r})"
    assert (snapshot(folder), snapshot(fake_gguf.parent)) == before


def _valid_rows(n: int) -> bytes:
    return b"".join(b'{"prompt": "p%d", "completion": "%d, %d"}\n' % (i, i % 997, i % 991) for i in range(n))


def test_large_valid_file_is_sampled_with_max_rows(folder: Path, fake_gguf: Path) -> None:
    path = folder / "big.jsonl"
    path.write_bytes(_valid_rows(50_000))
    before = snapshot(folder)
    ds = load_dataset(path, max_rows=100, seed=1)
    assert ds.total_rows == 50_000 and len(ds) == 100
    lines = [e.line for e in ds.examples]
    assert lines == sorted(set(lines)) and 1 <= lines[0] and lines[-1] <= 50_000
    assert all(e.user_text == f"p{e.line - 1}" for e in ds.examples)
    assert ds.completion_format == "numbers"
    res = runner.invoke(app, ["scan", str(path), "--base", str(fake_gguf), "--max-rows", "100", "--quiet"])
    assert res.exit_code == 2 and res.output.strip() == f"error: {fake_gguf}: not a GGUF file (bad magic bytes b'NOPE')"
    assert snapshot(folder) == before


def test_large_file_with_bad_last_row(folder: Path) -> None:
    path = folder / "big.jsonl"
    path.write_bytes(_valid_rows(50_000) + b'{"prompt": "x", "completion": ""}\n')
    before = snapshot(folder)
    res = runner.invoke(app, ["scan", str(path), "--max-rows", "10", "--quiet"])
    assert res.exit_code == 2
    assert res.output.strip() == f"error: {path}:50001: field 'completion' is empty"
    assert snapshot(folder) == before


def _bad_magic(base: Path) -> Path:
    (base / "fake.gguf").write_bytes(FAKE_GGUF)
    return base / "fake.gguf"


def _zero_gguf(base: Path) -> Path:
    (base / "empty.gguf").write_bytes(b"")
    return base / "empty.gguf"


def _dir_with_fake_gguf(base: Path) -> Path:
    (base / "m").mkdir()
    (base / "m" / "model.gguf").write_bytes(b"<html>not found</html>")
    return base / "m"


def _not_gguf_file(base: Path) -> Path:
    (base / "model.safetensors").write_bytes(b"\0" * 16)
    return base / "model.safetensors"


def _empty_dir(base: Path) -> Path:
    (base / "empty").mkdir()
    return base / "empty"


@pytest.mark.parametrize(
    "make, message",
    [
        pytest.param(_bad_magic, "{p}: not a GGUF file (bad magic bytes b'NOPE')", id="gguf-bad-magic"),
        pytest.param(_zero_gguf, "{p}: not a GGUF file (bad magic bytes b'')", id="gguf-zero-bytes"),
        pytest.param(
            _dir_with_fake_gguf, "{p}/model.gguf: not a GGUF file (bad magic bytes b'<htm')", id="gguf-in-dir"
        ),
        pytest.param(_not_gguf_file, "{p}: a model file must be a .gguf", id="base-not-gguf-file"),
        pytest.param(_empty_dir, "{p}: not a model directory", id="base-empty-dir"),
        pytest.param(lambda b: b / "nope.gguf", "--base '{p}': not an existing path", id="base-missing-gguf"),
    ],
)
def test_bad_base_fails_before_any_model_is_loaded(
    make: Callable[[Path], Path], message: str, folder: Path, tmp_path: Path
) -> None:
    data = folder / "d.jsonl"
    data.write_bytes(jl(GOOD))
    base_dir = tmp_path / "base"
    base_dir.mkdir()
    base = make(base_dir)
    before = snapshot(folder), snapshot(base_dir)
    res = runner.invoke(app, ["scan", str(data), "--base", str(base), "--quiet"])
    assert res.exit_code == 2 and isinstance(res.exception, SystemExit)
    lines = res.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: " + message.format(p=base)), res.output
    assert (snapshot(folder), snapshot(base_dir)) == before


def test_real_process_prints_one_line_not_a_traceback(folder: Path) -> None:
    """The console entry point itself (not CliRunner): rich markup in the data cannot crash the error print."""
    bad = folder / "[bold red]d.jsonl"
    bad.write_bytes(jl({"messages": chat(("[/bold]", "q"), ("assistant", "a"))}))
    before = snapshot(folder)
    res = subprocess.run(
        [sys.executable, "-m", "auditor", "scan", str(bad), "--quiet"], capture_output=True, text=True, timeout=120
    )
    assert res.returncode == 2, res.stderr
    assert "Traceback" not in res.stderr and res.stdout == ""
    assert res.stderr.strip() == (
        f"error: {bad}:1: field 'messages[0].role' is '[/bold]'; expected one of system, user, assistant"
    )
    assert snapshot(folder) == before
