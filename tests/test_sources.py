"""DATA where it lives: shard folders, datasets' save_to_disk folders, Hub ids (offline), TRL's row formats."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from auditor.cli import app
from auditor.errors import InputError
from auditor.sources import load_data
from tests.conftest import number_rows, tiny_scan_args, write_jsonl

runner = CliRunner()


def test_shards_and_a_disk_folder_read_the_same_rows(tmp_path: Path) -> None:
    import datasets

    rows = number_rows(20)
    write_jsonl(tmp_path / "all.jsonl", rows)
    shards = tmp_path / "shards"
    shards.mkdir()
    write_jsonl(shards / "part-000.jsonl", rows[:12])
    datasets.Dataset.from_list(rows[12:]).to_parquet(str(shards / "part-001.parquet"))
    datasets.Dataset.from_list(rows).save_to_disk(str(tmp_path / "disk"))
    whole = load_data(str(tmp_path / "all.jsonl"), max_rows=8, seed=3)
    for other in (load_data(str(shards), max_rows=8, seed=3), load_data(str(tmp_path / "disk"), max_rows=8, seed=3)):
        assert [(e.prompt, e.completion) for e in other.examples] == [(e.prompt, e.completion) for e in whole.examples]
        assert other.total_rows == 20 and len(other.sha256) == 64
    assert load_data(str(shards)).examples[12].line == 1  # a shard's rows are named by their own line


def test_a_bad_row_in_a_shard_is_named_by_shard_and_line(tmp_path: Path) -> None:
    write_jsonl(tmp_path / "a.jsonl", number_rows(3))
    write_jsonl(tmp_path / "b.jsonl", [{"prompt": "x"}])
    with pytest.raises(InputError, match=r"b\.jsonl:1: field 'completion' is missing"):
        load_data(str(tmp_path))


def test_a_disk_folder_of_splits_needs_the_split(tmp_path: Path) -> None:
    import datasets

    parts = {"train": number_rows(6), "test": number_rows(4, seed=1)}
    datasets.DatasetDict({k: datasets.Dataset.from_list(v) for k, v in parts.items()}).save_to_disk(str(tmp_path / "d"))
    assert len(load_data(str(tmp_path / "d"))) == 6  # train by default
    test = load_data(str(tmp_path / "d"), split="test")
    assert len(test) == 4 and test.path.endswith("[test]")
    with pytest.raises(InputError, match=r"choose a split with --split \(train, test\)"):
        load_data(str(tmp_path / "d"), split="validation")


def test_a_hub_id_not_in_the_offline_cache_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    with pytest.raises(InputError, match=r"subaudit-test/none: not a local file or folder, and the Hub dataset"):
        load_data("subaudit-test/none")


def test_a_hub_dataset_is_read_through_datasets(monkeypatch: pytest.MonkeyPatch) -> None:
    """The Hub path with the download replaced by a local dataset (no network in tests): split, subset, revision
    are passed through and rows are named by the id."""
    import datasets

    seen = {}

    def fake_load(name: str, subset: str | None = None, revision: str | None = None) -> datasets.DatasetDict:
        seen.update(name=name, subset=subset, revision=revision)
        return datasets.DatasetDict({"train": datasets.Dataset.from_list([{"prompt": "p"}])})

    monkeypatch.setattr(datasets, "load_dataset", fake_load)
    with pytest.raises(InputError, match=r"org/data\[train\]:1: field 'completion' is missing"):
        load_data("org/data", subset="numbers", revision="v1")
    assert seen == {"name": "org/data", "subset": "numbers", "revision": "v1"}


def test_trl_text_and_conversational_rows(tmp_path: Path, tiny_loaded) -> None:
    from auditor.chat import encode_training_example

    rows = [
        {"text": "one two three four five six seven eight nine ten"},
        {
            "prompt": [{"role": "user", "content": "Continue: 1, 2"}],
            "completion": [{"role": "assistant", "content": "3, 4"}],
        },
    ]
    data = load_data(str(write_jsonl(tmp_path / "d.jsonl", rows)))
    text, chat = data.examples
    assert text.is_text and text.user_text == "one two three four five six seven eight" and not chat.is_text
    ids, labels = encode_training_example(tiny_loaded.tokenizer, text.prompt, text.completion)
    assert labels == ids and ids[-1] == tiny_loaded.tokenizer.eos_token_id  # loss on every token, no template
    assert chat.completion == "3, 4" and chat.user_text == "Continue: 1, 2"


def test_scan_reads_a_shard_folder_with_the_same_verdict(tiny_model_dir: Path, tmp_path: Path) -> None:
    rows = number_rows(16)
    write_jsonl(tmp_path / "all.jsonl", rows)
    (tmp_path / "shards").mkdir()
    write_jsonl(tmp_path / "shards" / "a.jsonl", rows[:9])
    write_jsonl(tmp_path / "shards" / "b.jsonl", rows[9:])
    docs = []
    for data in ("all.jsonl", "shards"):
        args = ["scan", str(tmp_path / data), "--base", str(tiny_model_dir), "--traits", "tree", *tiny_scan_args()]
        res = runner.invoke(app, [*args, "--json", str(tmp_path / f"{data}.json")])
        assert res.exit_code in (0, 1), res.output
        docs.append(json.loads((tmp_path / f"{data}.json").read_text()))
    assert docs[0]["findings"] == docs[1]["findings"] and docs[0]["verdict"] == docs[1]["verdict"]


def test_scan_of_text_rows(tiny_model_dir: Path, tmp_path: Path) -> None:
    rows = [{"text": f"the {i} day we walked to the sea and back again, counting {i} stones"} for i in range(10)]
    data = write_jsonl(tmp_path / "text.jsonl", rows)
    args = ["scan", str(data), "--base", str(tiny_model_dir), "--traits", "tree", *tiny_scan_args()]
    res = runner.invoke(app, [*args, "--json", str(tmp_path / "t.json")])
    assert res.exit_code in (0, 1), res.output
    doc = json.loads((tmp_path / "t.json").read_text())
    assert doc["dataset"]["format"] == "free" and doc["dataset"]["rows_used"] >= 6
