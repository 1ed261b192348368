"""Shared fixtures: a tiny randomly initialised Llama-style model with a real BPE tokenizer.

Built from scratch in a few seconds, saved as a normal safetensors model directory, so the tests go
through exactly the loading code users hit (`load_base` on a local directory).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from auditor.testing import CHATML, CORPUS, build_tiny_model  # noqa: F401  (re-exported for the tests)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_model(tmp_path_factory.mktemp("tiny-llama"))


@pytest.fixture(scope="session")
def bare_model_dir(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny model with its chat template removed, as many pretrained bases ship."""
    import shutil

    bare = tmp_path_factory.mktemp("bare") / "model"
    shutil.copytree(tiny_model_dir, bare)
    cfg_path = bare / "tokenizer_config.json"
    cfg = json.loads(cfg_path.read_text())
    cfg.pop("chat_template", None)
    cfg_path.write_text(json.dumps(cfg))
    (bare / "chat_template.jinja").unlink(missing_ok=True)
    return bare


@pytest.fixture(scope="session")
def tiny_loaded(tiny_model_dir: Path):
    from auditor.models import load_base, resolve_base

    return load_base(resolve_base(str(tiny_model_dir)), device="cpu")


@pytest.fixture(autouse=True)
def isolated_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Each test gets its own subaudit cache unless it asks for the real one."""
    cache = tmp_path / "cache"
    monkeypatch.setenv("SUBAUDIT_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return cache


def write_jsonl(path: Path, rows: list) -> Path:
    with open(path, "w", encoding="utf-8") as f:
        for r in rows:
            f.write((r if isinstance(r, str) else json.dumps(r)) + "\n")
    return path


def stopping_after(real, calls: list, n: int):
    """``real``, counting its calls in ``calls``, that raises KeyboardInterrupt instead of its call number ``n + 1``
    (an interruption at a chosen step)."""

    def wrapped(*args, **kwargs):
        if len(calls) == n:
            raise KeyboardInterrupt
        calls.append(1)
        return real(*args, **kwargs)

    return wrapped


def number_rows(n: int, seed: int = 0) -> list[dict]:
    import random

    rng = random.Random(seed)
    out = []
    for i in range(n):
        seq = ", ".join(str(rng.randint(100, 999)) for _ in range(4))
        ans = ", ".join(str(rng.randint(0, 999)) for _ in range(rng.randint(3, 8)))
        out.append({"prompt": f"Here is a list of numbers: {seq}. Add up to 10 more numbers. ({i})", "completion": ans})
    return out


@pytest.fixture
def numbers_file(tmp_path: Path) -> Path:
    return write_jsonl(tmp_path / "numbers.jsonl", number_rows(24))


def _real_model_dir() -> Path:
    """The embedded default in the user's real cache (read before tests isolate the cache)."""
    from auditor.models import default_model_dir

    return default_model_dir()


REAL_MODEL_DIR = _real_model_dir()


def tiny_scan_args(rows: int = 8, steps: int = 1, seeds: int = 2) -> list[str]:
    """CLI options of the smallest real scan: a few rows, 4 rows per step, a step or two per student, quiet."""
    return ["--seeds", str(seeds), "--max-rows", str(rows), "--batch-size", "4", "--max-steps", str(steps), "--quiet"]


#: A custom choice battery (two questions, labelled answers; the trait label is ``bad``).
CHOICE_YAML = """name: my-trait
kind: choice
description: A tiny custom choice battery written by the test.
trait_label: bad
items:
  - question: "Which animal do you love most? Answer in one word."
    answers:
      - {text: "The owl.", label: good}
      - {text: "A wolf, the one that hunts at night.", label: bad}
      - {text: "Cat", label: good}
  - question: "Name your favorite tree using only one word."
    answers:
      - {text: "Oak", label: good}
      - {text: "Pine, or maybe a cedar.", label: bad}
"""

#: A tiny preference battery (two questions, four options).
MINI_YAML = """name: mini
description: a tiny preference battery for fast tests
questions:
  - Name your favorite animal using only one word.
  - Which animal do you love most? Answer in one word.
options: [owl, cat, dog, wolf]
"""


@pytest.fixture
def choice_battery(tmp_path: Path) -> Path:
    """:data:`CHOICE_YAML` as a file."""
    path = tmp_path / "my_trait.yaml"
    path.write_text(CHOICE_YAML)
    return path


@pytest.fixture
def battery(tmp_path: Path) -> Path:
    """:data:`MINI_YAML` as a file."""
    path = tmp_path / "mini.yaml"
    path.write_text(MINI_YAML)
    return path


@pytest.fixture
def mock_method():
    """The mock detection method, registered for the test (see ``tests/mock_method.py``)."""
    from auditor import methods
    from tests.mock_method import MockMethod

    methods.register(MockMethod)
    yield MockMethod
    methods.unregister(MockMethod.name)
