from __future__ import annotations

from pathlib import Path

import pytest

from auditor.errors import InputError, ModelLoadError
from auditor.models import ALIASES, resolve_base


def test_aliases_resolve_to_hub_ids() -> None:
    spec = resolve_base("llama-3-8b", revision="abc")
    assert spec.kind == "hub" and spec.location == "meta-llama/Meta-Llama-3-8B" and spec.revision == "abc"
    assert resolve_base("Qwen2.5-7B").location == "Qwen/Qwen2.5-7B"
    assert "smollm2-135m" in ALIASES


def test_hub_id_local_dir_and_gguf(tmp_path: Path, tiny_model_dir: Path) -> None:
    assert resolve_base("org/some-model").kind == "hub"
    assert resolve_base(str(tiny_model_dir)).kind == "local-dir"
    g = tmp_path / "m.gguf"
    g.write_bytes(b"GGUF")
    assert resolve_base(str(g)).kind == "gguf"
    assert resolve_base(str(tmp_path)).kind == "gguf"  # a folder holding exactly one .gguf


def test_bad_bases(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="not an existing path"):
        resolve_base("no such thing")
    (tmp_path / "weights.bin").write_bytes(b"x")
    with pytest.raises(InputError, match="must be a .gguf"):
        resolve_base(str(tmp_path / "weights.bin"))
    with pytest.raises(InputError, match="not a model directory"):
        resolve_base(str(tmp_path))


def test_default_missing_says_how_to_fetch() -> None:
    with pytest.raises(ModelLoadError, match="subaudit models fetch"):
        resolve_base(None)


@pytest.mark.parametrize(
    ("precision", "flags", "train", "score"),
    [
        ("auto", {"avx512f", "avx512_bf16"}, "bfloat16", None),  # native bf16: train fast, score in fp32
        ("auto", {"amx_bf16"}, "bfloat16", None),
        ("auto", {"avx512f", "avx2"}, None, None),  # no native bf16: fp32 throughout
        ("fp32", {"avx512_bf16"}, None, None),
        ("bf16", set(), "bfloat16", "bfloat16"),  # asked for: every pass under bf16 autocast
    ],
)
def test_precision_picks_autocast_per_stage(tiny_model_dir, monkeypatch, precision, flags, train, score) -> None:
    from auditor import models

    monkeypatch.setattr(models, "_cpu_flags", lambda: set(flags))
    loaded = models.load_base(models.resolve_base(str(tiny_model_dir)), device="cpu", precision=precision)
    assert loaded.dtype == "float32"
    assert (loaded.train_autocast_dtype, loaded.autocast_dtype) == (train, score)
    import torch

    with loaded.train_autocast():
        assert torch.is_autocast_enabled("cpu") == (train is not None)
    with loaded.autocast():
        assert torch.is_autocast_enabled("cpu") == (score is not None)


def test_chat_template_file_for_a_base_without_one(tmp_path: Path, bare_model_dir: Path) -> None:
    """A base that ships no chat template is refused unless a template is given; the template is used and becomes
    part of the fingerprint (so caches never mix templates)."""
    from auditor.models import load_base

    bare = bare_model_dir
    with pytest.raises(ModelLoadError, match="--chat-template"):
        load_base(resolve_base(str(bare)), device="cpu")

    loaded = load_base(resolve_base(str(bare)), device="cpu", chat_template="gemma")  # shipped, by name
    text = loaded.tokenizer.apply_chat_template(
        [{"role": "system", "content": "S"}, {"role": "user", "content": "Hi"}],
        tokenize=False,
        add_generation_prompt=True,
    )
    assert text.endswith("<start_of_turn>user\nS\n\nHi<end_of_turn>\n<start_of_turn>model\n")
    assert "+template:" in loaded.fingerprint

    with pytest.raises(InputError, match="no such file"):
        load_base(resolve_base(str(bare)), device="cpu", chat_template=str(tmp_path / "missing.jinja"))
    not_template = tmp_path / "x.jinja"
    not_template.write_text("hello")
    with pytest.raises(InputError, match="not a chat template"):
        load_base(resolve_base(str(bare)), device="cpu", chat_template=str(not_template))


@pytest.mark.parametrize(
    ("precision", "device", "native", "plan"),
    [
        ("auto", "cuda", True, ("bfloat16", None, None)),  # GPU default: bf16 weights, fp32 log-softmax and shares
        ("auto", "cuda:1", False, ("float32", None, None)),  # a GPU without bf16
        ("fp32", "cuda", True, ("float32", None, None)),
        ("bf16", "cuda", False, ("bfloat16", None, None)),
        ("auto", "cpu", True, ("float32", None, "bfloat16")),
        ("bf16", "cpu", False, ("float32", "bfloat16", "bfloat16")),
    ],
)
def test_precision_plan(monkeypatch, precision, device, native, plan) -> None:
    from auditor import models

    monkeypatch.setattr(models, "fast_bf16", lambda _device: native)
    assert models.precision_plan(precision, device) == plan


def test_an_alias_names_hub_weights_and_only_the_default_is_the_gguf(monkeypatch, tmp_path: Path) -> None:
    from auditor import models

    local = tmp_path / "smollm2"
    local.mkdir()
    (local / "config.json").write_text("{}")
    monkeypatch.setattr(models, "default_model_dir", lambda: local)
    default = resolve_base(None)
    assert default.kind == "local-dir" and default.location == str(local) and "embedded default" in default.origin
    alias = resolve_base("smollm2-135m")
    assert alias.kind == "hub" and alias.location == "HuggingFaceTB/SmolLM2-135M-Instruct"
    assert alias.origin == "alias smollm2-135m: hub weights"


def test_load_in_4bit_is_refused_without_cuda_or_bitsandbytes(monkeypatch) -> None:
    import importlib.util

    from auditor import models

    with pytest.raises(InputError, match="--load-in-4bit needs a CUDA GPU"):
        models._quantization(True, on_gpu=False)
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(InputError, match=r"pip install 'subliminal-audit\[gpu\]'"):
        models._quantization(True, on_gpu=True)
    assert models._quantization(False, on_gpu=False) is None


def test_load_in_4bit_scan_exits_2_on_this_machine(tiny_model_dir: Path, numbers_file: Path) -> None:
    from typer.testing import CliRunner

    from auditor.cli import app

    args = ["scan", str(numbers_file), "--base", str(tiny_model_dir), "--device", "cpu", "--load-in-4bit", "--quiet"]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 2 and "--load-in-4bit needs a CUDA GPU" in res.output
    res = CliRunner().invoke(app, [*args[:-2], "--load-in-4bit", "--probe", "full", "--quiet"])
    assert res.exit_code == 2 and "--probe full needs the real weights" in res.output


def test_fingerprint_follows_content_not_file_times(tiny_model_dir: Path, tmp_path: Path) -> None:
    import os
    import shutil

    from auditor.fingerprint import dir_fingerprint

    copy = tmp_path / "copy"
    shutil.copytree(tiny_model_dir, copy)
    for f in copy.iterdir():
        os.utime(f, (1_000_000, 1_000_000))
    assert dir_fingerprint(copy) == dir_fingerprint(tiny_model_dir)
    weights = next(copy.glob("*.safetensors"))
    data = bytearray(weights.read_bytes())
    data[-1] ^= 1
    weights.write_bytes(bytes(data))
    assert dir_fingerprint(copy) != dir_fingerprint(tiny_model_dir)
