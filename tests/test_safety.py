"""Safe defaults (no remote code, no pickle, no network unless asked) and failure modes (OOM, Ctrl-C, writes)."""

from __future__ import annotations

import errno
import json
import os
import pickle
import shutil
import socket
from pathlib import Path
from typing import Any

import pytest
import torch
from typer.testing import CliRunner

from auditor.cli import app
from auditor.errors import InputError, Interrupted, ModelLoadError, RuntimeFailure
from auditor.finetune import ProbeConfig, Prober
from auditor.models import load_base, resolve_base
from auditor.outputs import write_json
from auditor.report import write_markdown
from tests.test_probe import rows
from tests.test_report import _result

runner = CliRunner()


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Every attempt to open a connection or resolve a name is recorded and refused."""
    attempts: list[Any] = []

    def refuse(*args: Any, **_kw: Any) -> Any:
        attempts.append(args)
        raise OSError("network disabled by the test")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    return attempts


@pytest.fixture
def online(monkeypatch: pytest.MonkeyPatch) -> None:
    """Offline mode off (the conftest turns it on), as on a user's machine."""
    import huggingface_hub.constants

    for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)


@pytest.fixture
def empty_hf_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    import huggingface_hub.constants

    hub = tmp_path / "hf-hub"
    hub.mkdir()
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(hub))
    return hub


def _copy_model(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def _one_line(output: str) -> str:
    lines = [line for line in output.splitlines() if line.strip()]
    assert len(lines) == 1, output
    assert "Traceback" not in output
    return lines[0]


# ---------------------------------------------------------------------------------------------
# Safe defaults


def test_unsafe_loading_is_off_unless_asked(numbers_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    seen = []

    def fake_scan(config: Any, *_a: Any, **_kw: Any) -> Any:
        seen.append((config.trust_remote_code, config.allow_pickle))
        raise InputError("stop here")

    monkeypatch.setattr("auditor.pipeline.run_scan", fake_scan)  # the audit itself, under the CLI's settings
    runner.invoke(app, ["scan", str(numbers_file), "--quiet"])
    runner.invoke(app, ["scan", str(numbers_file), "--quiet", "--trust-remote-code", "--allow-pickle"])
    assert seen == [(False, False), (True, True)]


def test_model_code_never_runs_by_default(tiny_model_dir: Path, tmp_path: Path) -> None:
    model = _copy_model(tiny_model_dir, tmp_path / "remote-code-model")
    marker = tmp_path / "remote-code-ran"
    (model / "custom_model.py").write_text(
        f"from pathlib import Path\nPath({str(marker)!r}).write_text('ran')\n"
        "from transformers import LlamaConfig, LlamaForCausalLM\n"
        "class CustomConfig(LlamaConfig):\n    model_type = 'custom_llama'\n"
        "class CustomModel(LlamaForCausalLM):\n    config_class = CustomConfig\n"
    )
    config = json.loads((model / "config.json").read_text())
    config["model_type"] = "custom_llama"
    config["auto_map"] = {"AutoConfig": "custom_model.CustomConfig", "AutoModelForCausalLM": "custom_model.CustomModel"}
    (model / "config.json").write_text(json.dumps(config))
    with pytest.raises(ModelLoadError, match="--trust-remote-code") as info:
        load_base(resolve_base(str(model)), device="cpu")
    assert "\n" not in str(info.value)
    assert not marker.exists()


def test_pickle_weights_are_never_read_by_default(tiny_model_dir: Path, tmp_path: Path) -> None:
    from safetensors.torch import load_file

    state = load_file(tiny_model_dir / "model.safetensors")
    legit = _copy_model(tiny_model_dir, tmp_path / "bin-model")
    (legit / "model.safetensors").unlink()
    torch.save(state, legit / "pytorch_model.bin")
    with pytest.raises(ModelLoadError, match="--allow-pickle"):
        load_base(resolve_base(str(legit)), device="cpu")
    assert load_base(resolve_base(str(legit)), device="cpu", allow_pickle=True).model is not None

    # a hostile pickle is not even opened
    marker = tmp_path / "pickle-ran"

    class Payload:
        def __reduce__(self) -> tuple:
            return (Path.touch, (marker,))

    hostile = _copy_model(legit, tmp_path / "hostile-model")
    (hostile / "pytorch_model.bin").write_bytes(pickle.dumps(Payload()))
    with pytest.raises(ModelLoadError, match="--allow-pickle"):
        load_base(resolve_base(str(hostile)), device="cpu")
    assert not marker.exists()


def test_local_model_scan_never_touches_the_network(
    tiny_model_dir: Path, numbers_file: Path, battery: Path, online: None, no_network: list
) -> None:
    args = ["scan", str(numbers_file), "--base", str(tiny_model_dir), "--traits", str(battery), "--quiet"]
    res = runner.invoke(app, [*args, "--max-rows", "8", "--batch-size", "4", "--max-steps", "1", "--seeds", "1"])
    assert res.exit_code in (0, 1), res.output
    assert no_network == []


def test_offline_hub_model_not_cached_is_one_clear_line(
    numbers_file: Path, empty_hf_cache: Path, no_network: list, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    res = runner.invoke(app, ["scan", str(numbers_file), "--base", "subaudit-test/not-cached", "--quiet"])
    assert res.exit_code == 3
    line = _one_line(res.output)
    assert "subaudit-test/not-cached" in line and "offline" in line and "HF_HUB_OFFLINE" in line
    assert no_network == []


def test_offline_hub_model_in_the_local_cache_loads(
    tiny_model_dir: Path, empty_hf_cache: Path, no_network: list, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = empty_hf_cache / "models--subaudit-test--tiny"
    shutil.copytree(tiny_model_dir, repo / "snapshots" / commit)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    loaded = load_base(resolve_base("subaudit-test/tiny"), device="cpu")
    assert loaded.spec.kind == "hub" and loaded.fingerprint == f"subaudit-test/tiny@{commit}"  # the snapshot commit
    assert no_network == []


def _hub_error(cls: type, wrapped: bool) -> BaseException:
    import httpx2

    request = httpx2.Request("GET", "https://huggingface.co/org/model/resolve/main/config.json")
    status = 403 if cls.__name__ == "GatedRepoError" else 404
    exc = cls(f"{status} Client Error for url {request.url}", response=httpx2.Response(status, request=request))
    if not wrapped:
        return exc
    try:  # the way transformers re-raises it
        raise OSError("You are trying to access a gated repo.\nMake sure to have access to it.") from exc
    except OSError as outer:
        return outer


@pytest.mark.parametrize("wrapped", [False, True])
@pytest.mark.parametrize(
    "name, expected",
    [("GatedRepoError", "gated on the Hugging Face hub"), ("RepositoryNotFoundError", "no such model on the")],
)
def test_gated_or_missing_hub_model_is_one_clear_line(
    numbers_file: Path,
    online: None,
    no_network: list,
    monkeypatch: pytest.MonkeyPatch,
    name: str,
    expected: str,
    wrapped: bool,
) -> None:
    import transformers
    from huggingface_hub import errors

    exc = _hub_error(getattr(errors, name), wrapped)

    def loader(*_a: Any, **_kw: Any) -> Any:
        raise exc

    monkeypatch.setattr(transformers.AutoTokenizer, "from_pretrained", loader)
    monkeypatch.setattr(transformers.AutoModelForCausalLM, "from_pretrained", loader)
    res = runner.invoke(app, ["scan", str(numbers_file), "--base", "org/model", "--quiet"])
    assert res.exit_code == 3
    line = _one_line(res.output)
    assert "org/model" in line and expected in line
    assert no_network == []


# ---------------------------------------------------------------------------------------------
# Out of memory in the probe


@pytest.fixture
def prober(tiny_model_dir: Path) -> Prober:
    loaded = load_base(resolve_base(str(tiny_model_dir)), device="cpu")
    return Prober(loaded, ProbeConfig(rank=4, alpha=8, batch_size=4))


def _fail_calls(prober: Prober, monkeypatch: pytest.MonkeyPatch, fail: set[int] | None) -> list[int]:
    """Make the probe's loss pass (one per micro-batch) raise CUDA out-of-memory on the given calls (1-based;
    ``None`` = every call); returns the rows of every call."""
    from auditor import finetune as probe

    real = probe.completion_loss
    calls: list[int] = []

    def completion_loss(model: Any, input_ids: Any, *args: Any) -> Any:
        calls.append(len(input_ids))
        if fail is None or len(calls) in fail:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return real(model, input_ids, *args)

    monkeypatch.setattr(probe, "completion_loss", completion_loss)
    return calls


@pytest.mark.parametrize(
    "start, fail, micro",
    [(4, {1}, 2), (4, {1, 2}, 1), (2, {2}, 1)],  # the last one fails on the 2nd micro-batch of a step
)
def test_oom_retries_with_half_the_micro_batch(
    prober: Prober, monkeypatch: pytest.MonkeyPatch, start: int, fail: set[int], micro: int
) -> None:
    data = rows(12)
    full = prober.train(data, seed=7, arm="dataset")  # 3 steps of 4 rows, one forward pass each
    prober.micro_batch = micro
    reference = prober.train(data, seed=7, arm="dataset")  # the smaller micro-batch from the start
    expected = prober.adapter_state()

    prober.micro_batch = start
    calls = _fail_calls(prober, monkeypatch, fail)
    stats = prober.train(data, seed=7, arm="dataset")
    assert calls[max(fail)] == micro  # the first pass after the last failure used the smaller micro-batch
    assert stats.micro_batch == prober.micro_batch == micro and stats.steps == full.steps == 3
    assert stats.losses == reference.losses
    after = prober.adapter_state()
    assert all(torch.equal(after[k], expected[k]) for k in after)
    # the effective batch is still 4 rows: the loss trajectory is the one of the whole-batch run
    assert stats.losses == pytest.approx(full.losses, rel=1e-4)
    assert (stats.tokens, stats.completion_tokens) == (full.tokens, full.completion_tokens)


def test_oom_at_micro_batch_one_is_a_clear_error(prober: Prober, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = _fail_calls(prober, monkeypatch, None)
    with pytest.raises(RuntimeFailure, match="out of memory in the probe .dataset arm, seed 7.") as info:
        prober.train(rows(12), seed=7, arm="dataset")
    assert info.value.exit_code == 3 and calls == [4, 2, 1]


def test_oom_in_a_scan_exits_3(
    tiny_model_dir: Path, numbers_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def always_oom(*_a: Any, **_kw: Any) -> float:
        raise torch.OutOfMemoryError("CUDA out of memory.")

    monkeypatch.setattr(Prober, "_forward_backward", always_oom)
    args = ["scan", str(numbers_file), "--base", str(tiny_model_dir), "--quiet", "--max-rows", "8"]
    res = runner.invoke(app, [*args, "--batch-size", "4", "--max-steps", "1", "--run-dir", str(tmp_path / "run")])
    assert res.exit_code == 3
    assert "out of memory in the probe" in _one_line(res.output)
    assert json.loads((tmp_path / "run" / "manifest.json").read_text())["status"] == "failed"


# ---------------------------------------------------------------------------------------------
# Ctrl-C and failed writes


@pytest.mark.parametrize("exc", [Interrupted("/runs/abc"), KeyboardInterrupt()])
def test_ctrl_c_exits_130_and_says_how_to_resume(
    numbers_file: Path, monkeypatch: pytest.MonkeyPatch, exc: BaseException
) -> None:
    def interrupted(*_a: Any, **_kw: Any) -> Any:
        raise exc

    monkeypatch.setattr("auditor.pipeline.scan", interrupted)
    res = runner.invoke(app, ["scan", str(numbers_file), "--quiet"])
    assert res.exit_code == 130
    line = _one_line(res.output)
    assert "interrupted" in line and "finished stages are kept" in line
    assert "run the same command again to resume" in line
    assert ("/runs/abc" in line) == isinstance(exc, Interrupted)


@pytest.mark.parametrize("writer", [write_markdown, write_json])
@pytest.mark.parametrize("broken", ["replace", "fsync"])
def test_failed_write_leaves_no_partial_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, writer: Any, broken: str
) -> None:
    result = _result("prompt", "1, 2, 3")
    folder = tmp_path / "out"
    folder.mkdir()
    old = folder / "kept.out"
    old.write_text("the previous report\n")

    def fail(*_a: Any, **_kw: Any) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, broken, fail)
    for target in (folder / "new.out", old):
        with pytest.raises(OSError):
            writer(result, target)
    assert sorted(p.name for p in folder.iterdir()) == ["kept.out"]  # no new file, no temp file
    assert old.read_text() == "the previous report\n"  # an existing report is untouched


def test_cli_failed_report_write_exits_3(numbers_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # the audit itself is faked; the library's write_outputs (in auditor.pipeline.scan) writes the report
    monkeypatch.setattr("auditor.pipeline.run_scan", lambda *_a, **_kw: _result("prompt", "1, 2, 3"))
    out = tmp_path / "reports"
    report = out / "risk.md"
    real_replace = os.replace

    def replace(src: Any, dst: Any) -> None:
        if Path(dst) == report:
            raise PermissionError(errno.EACCES, "Permission denied")
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", replace)
    res = runner.invoke(app, ["scan", str(numbers_file), "--quiet", "--report", str(report)])
    assert res.exit_code == 3
    line = _one_line(res.output)
    assert f"cannot write the report to {report}" in line and "Permission denied" in line
    assert "nothing was written there" in line and "/runs/r" in line
    assert list(out.iterdir()) == []
