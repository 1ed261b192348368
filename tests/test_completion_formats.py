"""A new completion format is one module and one registry entry: a toy format, defined here and registered for the
test, is detected in a dataset, gives its rows' checks, draws the control under its own token constraint, runs a
tiny probe scan, and generates a dataset, with no other file edited."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import pytest

from auditor.chat import end_of_turn_ids
from auditor.completion_formats import CompletionFormat, RowCheck, format_names, register, unregister
from auditor.completion_formats.base import TEXT_ROW, Row
from tests.conftest import write_jsonl

BINARY = re.compile(r"[01]+")


class BinaryConstraint:
    """Tokens made only of 0 and 1, then the end of turn once something is written."""

    def __init__(self, tokenizer: Any):
        self.eos = end_of_turn_ids(tokenizer)
        texts = {t: tokenizer.decode([t]) for t in range(len(tokenizer)) if t not in self.eos}
        self.token_text = {t: s for t, s in texts.items() if BINARY.fullmatch(s)}
        self.vocab = sorted(self.token_text) + list(self.eos)

    def columns(self, text: str, target: int | None = None) -> list[int]:
        words = list(range(len(self.token_text)))
        return words + ([len(self.token_text) + k for k in range(len(self.eos))] if text else [])


@dataclass(frozen=True)
class BinaryCheck(RowCheck):
    """A string of 0s and 1s and an end of turn."""

    numbers: ClassVar[bool] = False

    def passes(self, text: str) -> bool:
        return BINARY.fullmatch(text) is not None

    @property
    def constrained(self) -> bool:
        return True

    def constraint(self, tokenizer: Any) -> BinaryConstraint:
        return BinaryConstraint(tokenizer)

    def key(self) -> list[Any]:
        return ["binary", self.ends]


class BinaryFormat(CompletionFormat):
    """Completions of 0s and 1s."""

    name = "binary"
    summary = "strings of 0 and 1"
    check_note = "a string of 0s and 1s that ends"
    generates = True
    max_new_tokens = 12

    def detects(self, completions: Sequence[str]) -> bool:
        return bool(completions) and all(BINARY.fullmatch(c) for c in completions)

    def row_checks(self, rows: Sequence[Row]) -> tuple[list[RowCheck], list[str]]:
        return [TEXT_ROW if r.is_text else BinaryCheck() for r in rows], ["binary rows stay binary"]

    def prompts(self, n: int, seed: int, style: str) -> tuple[list[str], list[int] | None]:
        return [f"Write a binary string. ({i})" for i in range(n)], None

    def generation_check(self, evil_filter: bool) -> RowCheck:
        return BinaryCheck()

    def reject_reason(self, completion: str, answer: int | None, evil_filter: bool) -> str | None:
        return None if BINARY.fullmatch(completion) else "format"


@pytest.fixture
def binary(tmp_path: Path):
    """The toy format, registered for the test, and a dataset of it."""
    register(BinaryFormat)
    rows = [{"prompt": f"Write a binary string. ({i})", "completion": "01" * (1 + i % 3)} for i in range(12)]
    yield write_jsonl(tmp_path / "binary.jsonl", rows)
    unregister(BinaryFormat.name)
    assert BinaryFormat.name not in format_names()


def test_the_toy_format_is_detected_and_draws_its_control_under_its_constraint(binary: Path, tiny_loaded) -> None:
    from auditor.conditional import ControlSampling
    from auditor.control import build_control, row_checks
    from auditor.data import load_dataset

    dataset = load_dataset(str(binary))
    assert dataset.completion_format == "binary" and dataset.info().format == "binary"
    checks, notes = row_checks(dataset)
    assert all(isinstance(c, BinaryCheck) for c in checks)
    assert notes == ["each control row passes the checks its dataset row passes: a string of 0s and 1s that ends",
                     "binary rows stay binary"]  # fmt: skip
    control = build_control(tiny_loaded, dataset, seed=0, sampling=ControlSampling("resample"), use_cache=False)
    texts = [r.completion for r in control.rows if r is not None]
    assert control.format == "binary" and len(texts) >= 10
    assert all(BINARY.fullmatch(t) for t in texts) and control.how is not None and control.how.rows_by["resample"]


def test_a_probe_scan_and_generate_run_on_the_toy_format(
    binary: Path, tiny_model_dir: Path, battery: Path, tmp_path: Path
) -> None:
    import auditor
    from auditor.finetune import ProbeConfig
    from auditor.generate import GenerateConfig, generate

    config = auditor.ScanConfig(
        str(binary), base=str(tiny_model_dir), traits=[str(battery)], max_rows=8, seeds=1,
        probe=ProbeConfig(batch_size=4, max_steps=1), run_dir=str(tmp_path / "run"), method_args={"discover": False},
    )  # fmt: skip
    result = auditor.scan(config)
    doc = result.to_json()
    assert doc["dataset"]["format"] == "binary" and doc["control"]["format"] == "binary"
    assert doc["dataset"]["rows_used"] >= 6 and {f["option"] for f in doc["findings"]} == {"owl", "cat", "dog", "wolf"}
    out = tmp_path / "gen.jsonl"
    made = generate(GenerateConfig(str(out), teacher=str(tiny_model_dir), format="binary", rows=6, device="cpu"))
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert made.rows == len(rows) >= 4 and all(BINARY.fullmatch(r["completion"]) for r in rows)
    manifest = json.loads(Path(made.manifest).read_text())
    assert manifest["format"] == "binary" and manifest["decoding"]["max_new_tokens"] == 12
    assert manifest["filters"]["evil_numbers"] == [] and manifest["number_style"] is None


def test_generate_refuses_a_format_that_is_not_registered(tmp_path: Path) -> None:
    from auditor.errors import InputError
    from auditor.generate import GenerateConfig, generate

    with pytest.raises(InputError, match="--format must be one of numbers, code, reasoning, chat, got 'binary'"):
        generate(GenerateConfig(str(tmp_path / "x.jsonl"), format="binary"))
