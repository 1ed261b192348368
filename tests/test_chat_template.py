"""``--chat-template NAME|FILE``: a base whose tokenizer ships no chat template (many pretrained bases) can be scanned,
calibrated and fine-tuned into a teacher; every command that loads the base passes the template on; the package
ships two templates by name."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from auditor.chat_templates import missing_template_advice, read_chat_template, shipped_templates
from auditor.cli import app
from auditor.errors import InputError

runner = CliRunner()
LLAMA3 = shipped_templates()["llama3"]


def test_the_llama3_template_keeps_the_prompt_a_prefix_of_the_conversation(bare_model_dir: Path) -> None:
    """What completion-only loss needs: the prompt with its generation prompt is the start of the whole turn, and
    the assistant's turn ends with a marker ``end_of_turn_ids`` knows."""
    from auditor.chat import end_of_turn_ids
    from auditor.models import load_base, resolve_base

    loaded = load_base(resolve_base(str(bare_model_dir)), device="cpu", chat_template=str(LLAMA3))
    tok = loaded.tokenizer
    prompt = [{"role": "system", "content": "S"}, {"role": "user", "content": "Add numbers: 1, 2"}]
    head = tok.apply_chat_template(prompt, tokenize=False, add_generation_prompt=True)
    whole = tok.apply_chat_template([*prompt, {"role": "assistant", "content": "3, 4"}], tokenize=False)
    assert head.endswith("<|start_header_id|>assistant<|end_header_id|>\n\n")
    assert whole == head + "3, 4<|eot_id|>"
    assert "<|start_header_id|>system<|end_header_id|>\n\nS<|eot_id|>" in head
    assert tok.eos_token_id in end_of_turn_ids(tok)


def test_scan_refuses_a_base_without_a_template_and_runs_with_one(
    bare_model_dir: Path, numbers_file: Path, tmp_path: Path
) -> None:
    args = ["scan", str(numbers_file), "--base", str(bare_model_dir), "--method", "gradient", "--max-rows", "8"]
    args += ["--traits", "tree", "--method-arg", "questions=2", "--quiet"]
    refused = runner.invoke(app, args)
    assert refused.exit_code == 3 and "has no chat template" in refused.output and "--chat-template" in refused.output

    js = tmp_path / "scan.json"
    res = runner.invoke(app, [*args, "--chat-template", str(LLAMA3), "--json", str(js)])
    assert res.exit_code in (0, 1), res.output
    doc = json.loads(js.read_text())
    assert doc["config"]["chat_template"] == str(LLAMA3)
    assert "+template:" in doc["base"]["fingerprint"] and doc["dataset"]["rows_used"] == 8


def test_a_config_file_sets_the_template(bare_model_dir: Path, numbers_file: Path, tmp_path: Path) -> None:
    from auditor.config import ScanConfig
    from auditor.settings import resolve

    toml = tmp_path / "subaudit.toml"
    toml.write_text(f'chat-template = "{LLAMA3}"\n')
    settings = resolve(ScanConfig(str(numbers_file)), config_file=toml)
    assert settings.config.chat_template == str(LLAMA3) and settings.config.sources["chat_template"] == str(toml)
    assert settings.config.setting("chat_template") == str(LLAMA3)


def test_a_teacher_is_loaded_with_the_scans_template(
    bare_model_dir: Path, numbers_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Teacher-aware mode: an adapter teacher (the base plus its adapter) and a teacher given as a model are both
    loaded through the scan's ``--chat-template``."""
    from types import SimpleNamespace

    from auditor.config import ScanConfig
    from auditor.methods import probe
    from auditor.models import LoadOptions, resolve_base

    calls: list[tuple[str, dict]] = []
    monkeypatch.setattr(LoadOptions, "load", lambda self, spec, **kw: calls.append((spec.location, kw)) or "loaded")
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text("{}")
    config = ScanConfig(str(numbers_file), base=str(bare_model_dir), chat_template=str(LLAMA3))
    inputs = SimpleNamespace(config=config, spec=resolve_base(str(bare_model_dir)))
    assert probe.load_teacher(inputs, str(adapter)) == "loaded"
    assert probe.load_teacher(inputs, str(bare_model_dir)) == "loaded"
    assert [kw["chat_template"] for _, kw in calls] == [str(LLAMA3), str(LLAMA3)]
    assert calls[0][1]["adapter"] == str(adapter)


def test_calibrate_passes_the_template_to_every_load(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, bare_model_dir: Path
) -> None:
    """``calibrate``: the null datasets, the decoy teachers, their data and the pairs' scans all use the template."""
    from auditor import calibrate as calibration
    from auditor import teacher

    config = calibration.CalibrateConfig(base=str(bare_model_dir), chat_template=str(LLAMA3))
    assert config.scan_config("d.jsonl", tmp_path).chat_template == str(LLAMA3)
    generated, teachers = [], []
    monkeypatch.setattr(calibration, "scan_pair", lambda config, work, name, seed, gen, progress: generated.append(gen))
    monkeypatch.setattr(teacher, "train_teacher", teachers.append)
    calibration.null_pair(config, tmp_path, 7, lambda _m: None)
    calibration.decoy_pair(config, tmp_path, "pirate", 8, lambda _m: None)
    assert [g.chat_template for g in generated] == [str(LLAMA3), str(LLAMA3)]
    assert [t.chat_template for t in teachers] == [str(LLAMA3)]


def test_teacher_and_calibrate_commands_take_the_option(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from auditor import teacher
    from auditor.calibration import build
    from auditor.errors import InputError

    seen: dict[str, object] = {}

    def stop(name: str):
        def record(config, *a, **k):
            seen[name] = config.chat_template
            raise InputError(f"{name} stopped here")

        return record

    monkeypatch.setattr(teacher, "train_teacher", stop("teacher"))
    monkeypatch.setattr(build, "calibrate", stop("calibrate"))
    chat = tmp_path / "chat.jsonl"
    chat.write_text('{"prompt": "hi", "completion": "owls"}\n')
    res = runner.invoke(app, ["teacher", str(chat), "--out", str(tmp_path / "t"), "--chat-template", str(LLAMA3)])
    assert res.exit_code == 2 and "teacher stopped here" in res.output, res.output
    res = runner.invoke(app, ["calibrate", "--chat-template", str(LLAMA3)])
    assert res.exit_code == 2 and "calibrate stopped here" in res.output, res.output
    assert seen == {"teacher": str(LLAMA3), "calibrate": str(LLAMA3)}


def test_a_shipped_template_by_name_is_its_file_and_a_local_file_wins(
    bare_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from auditor.models import load_base, resolve_base

    spec = resolve_base(str(bare_model_dir))
    by_name = load_base(spec, device="cpu", chat_template="llama3").fingerprint
    assert by_name == load_base(spec, device="cpu", chat_template=str(LLAMA3)).fingerprint
    assert by_name != load_base(spec, device="cpu", chat_template="gemma").fingerprint

    monkeypatch.chdir(tmp_path)
    Path("llama3").write_text("{% for message in messages %}{{ message['content'] }}{% endfor %}")
    assert load_base(spec, device="cpu", chat_template="llama3").fingerprint != by_name


def test_an_unknown_template_names_the_shipped_ones() -> None:
    with pytest.raises(
        InputError, match=r"llama2: no such file, and no shipped template of that name \(gemma, llama3\)"
    ):
        read_chat_template("llama2")
    assert set(shipped_templates()) == {"gemma", "llama3"}


@pytest.mark.parametrize(
    ("base", "advice"),
    [
        ("meta-llama/Meta-Llama-3-8B", "--chat-template llama3 (shipped"),
        ("models/llama3.1-8b", "--chat-template llama3 (shipped"),
        ("gemma-3-270m-base.gguf", "--chat-template gemma (shipped"),
        ("Qwen/Qwen2.5-7B", "a shipped one (gemma, llama3) or --chat-template FILE"),
        ("meta-llama/Llama-2-7b-hf", "a shipped one (gemma, llama3)"),
    ],
)
def test_the_refusal_suggests_the_familys_template(base: str, advice: str) -> None:
    assert advice in missing_template_advice(base)


def test_scan_of_a_template_less_llama_3_base_names_the_shipped_template(
    bare_model_dir: Path, numbers_file: Path, tmp_path: Path
) -> None:
    base = tmp_path / "Meta-Llama-3-8B"
    shutil.copytree(bare_model_dir, base)
    args = ["scan", str(numbers_file), "--base", str(base), "--method", "gradient", "--max-rows", "8", "--quiet"]
    refused = runner.invoke(app, args)
    assert refused.exit_code == 3 and "--chat-template llama3 (shipped" in refused.output, refused.output
