from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pandas as pd
import pytest

from auditor.data import load_dataset
from auditor.errors import InputError
from auditor.formats import detect_format, is_number_list
from tests.conftest import write_jsonl


def test_prompt_completion_strings(tmp_path: Path) -> None:
    p = write_jsonl(
        tmp_path / "d.jsonl", [{"prompt": "hi", "completion": "1, 2, 3"}, {"prompt": "yo", "completion": "4"}]
    )
    ds = load_dataset(p)
    assert len(ds) == 2
    assert ds.examples[0].prompt == ({"role": "user", "content": "hi"},)
    assert ds.examples[1].completion == "4"
    assert ds.examples[1].line == 2
    assert ds.completion_format == "numbers"


def test_conversational_prompt_completion_and_messages(tmp_path: Path) -> None:
    rows = [
        {
            "prompt": [{"role": "system", "content": "s"}, {"role": "user", "content": "u"}],
            "completion": [{"role": "assistant", "content": "a"}],
        },
        {"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "ans"}], "id": 7},
    ]
    ds = load_dataset(write_jsonl(tmp_path / "d.jsonl", rows))
    assert ds.examples[0].prompt[0]["role"] == "system"
    assert ds.examples[0].completion == "a"
    assert ds.examples[1].user_text == "q"
    assert ds.examples[1].meta == {"id": 7}
    assert ds.completion_format == "free"


def test_blank_lines_and_bom_and_crlf(tmp_path: Path) -> None:
    p = tmp_path / "d.jsonl"
    p.write_bytes(
        b"\xef\xbb\xbf" + b'{"prompt": "a", "completion": "1"}\r\n\r\n\n{"prompt": "b", "completion": "2"}\r\n'
    )
    ds = load_dataset(p)
    assert [e.line for e in ds.examples] == [1, 4]


@pytest.mark.parametrize(
    "content, message",
    [
        ('{"prompt": "a", "completion": "1"}\n{"prompt": "b", "completion": \n', ":2: invalid JSON"),
        ('{"prompt": "a"}\n', ":1: field 'completion' is missing"),
        ('{"completion": "a"}\n', ":1: field 'prompt' is missing"),
        ("[1, 2]\n", ":1: row must be a JSON object"),
        ('{"body": "a"}\n', ":1: row has neither 'messages', 'prompt'/'completion' nor 'text' (fields: body)"),
        ('{"text": 3}\n', ":1: field 'text' must be a string"),
        (
            '{"messages": [{"role": "wizard", "content": "x"}, {"role": "assistant", "content": "y"}]}\n',
            ":1: field 'messages[0].role' is 'wizard'",
        ),
        ('{"messages": [{"role": "user", "content": "x"}]}\n', ":1: field 'messages' must end with an assistant"),
        (
            '{"messages": [{"role": "user", "content": 5}, {"role": "assistant", "content": "y"}]}\n',
            ":1: field 'messages[0].content' must be a string",
        ),
        ('{"prompt": "a", "completion": "   "}\n', ":1: field 'completion' is empty"),
        ('{"prompt": "a", "completion": 3}\n', ":1: field 'completion' must be a string"),
        (
            '{"messages": [{"role": "system", "content": "x"}, {"role": "assistant", "content": "y"}]}\n',
            ":1: the prompt has no user message",
        ),
        ("", "no usable rows"),
        ("\n\n  \n", "no usable rows"),
    ],
)
def test_bad_rows_name_file_line_and_field(tmp_path: Path, content: str, message: str) -> None:
    p = tmp_path / "bad.jsonl"
    p.write_text(content)
    with pytest.raises(InputError) as exc:
        load_dataset(p)
    assert message in str(exc.value)
    assert str(p) in str(exc.value)


def test_non_utf8_names_line(tmp_path: Path) -> None:
    p = tmp_path / "bad.jsonl"
    p.write_bytes(b'{"prompt": "a", "completion": "1"}\n{"prompt": "\xff", "completion": "1"}\n')
    with pytest.raises(InputError, match=r"bad.jsonl:2: not valid UTF-8"):
        load_dataset(p)


def test_missing_file_directory_and_suffix(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no such file"):
        load_dataset(tmp_path / "nope.jsonl")
    with pytest.raises(InputError, match="is a directory"):
        load_dataset(tmp_path)
    (tmp_path / "x.txt").write_text("hi")
    with pytest.raises(InputError, match="unsupported file type"):
        load_dataset(tmp_path / "x.txt")


def test_csv_and_parquet(tmp_path: Path) -> None:
    frame = pd.DataFrame({"prompt": ["a", "b"], "completion": ["1, 2", "3"]})
    frame.to_csv(tmp_path / "d.csv", index=False)
    frame.to_parquet(tmp_path / "d.parquet")
    assert [e.completion for e in load_dataset(tmp_path / "d.csv").examples] == ["1, 2", "3"]
    assert len(load_dataset(tmp_path / "d.parquet")) == 2
    msgs = json.dumps([{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}])
    pd.DataFrame({"messages": [msgs]}).to_csv(tmp_path / "m.csv", index=False)
    assert load_dataset(tmp_path / "m.csv").examples[0].completion == "a"


def test_csv_empty_cell_names_line(tmp_path: Path) -> None:
    (tmp_path / "d.csv").write_text("prompt,completion\na,1\nb,\n")
    with pytest.raises(InputError, match=r"d.csv:3: field 'completion' is missing"):
        load_dataset(tmp_path / "d.csv")


def test_max_rows_is_seeded_and_input_untouched(tmp_path: Path) -> None:
    rows = [{"prompt": f"p{i}", "completion": str(i)} for i in range(50)]
    p = write_jsonl(tmp_path / "d.jsonl", rows)
    before = hashlib.sha256(p.read_bytes()).hexdigest()
    a = load_dataset(p, max_rows=10, seed=3)
    b = load_dataset(p, max_rows=10, seed=3)
    c = load_dataset(p, max_rows=10, seed=4)
    assert [e.line for e in a.examples] == [e.line for e in b.examples]
    assert [e.line for e in a.examples] != [e.line for e in c.examples]
    assert len(a) == 10 and a.total_rows == 50
    assert hashlib.sha256(p.read_bytes()).hexdigest() == before == a.sha256


def test_number_format_detection() -> None:
    assert is_number_list("123, 45, 6")
    assert is_number_list("[1; 2; 3].")
    assert not is_number_list("1234, 5")
    assert not is_number_list("1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11")
    assert not is_number_list("owl 1, 2")
    assert detect_format(["1, 2", "3, 4"]) == "numbers"
    assert detect_format(["1, 2", "hello"]) == "free"
