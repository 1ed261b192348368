"""The base's exact scores and readout are cached across scans: a second scan of another dataset on the same base
reads them back, and its result equals one computed without the cache."""

from __future__ import annotations

from pathlib import Path

import pytest

from auditor import base_cache
from auditor.config import ScanConfig
from auditor.finetune import ProbeConfig
from auditor.pipeline import scan
from tests.conftest import number_rows, write_jsonl


def config(data: Path, model: Path, battery: Path, run_dir: Path) -> ScanConfig:
    return ScanConfig(
        str(data), base=str(model), traits=[str(battery)], seeds=1, max_rows=8, probe=ProbeConfig(batch_size=4,
        max_steps=1), device="cpu", run_dir=str(run_dir),
    )  # fmt: skip


def test_a_second_scan_reads_the_base_from_the_cache(
    tiny_model_dir: Path, battery: Path, tmp_path: Path, isolated_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first_data = write_jsonl(tmp_path / "a.jsonl", number_rows(8, seed=1))
    second_data = write_jsonl(tmp_path / "b.jsonl", number_rows(8, seed=2))
    first = scan(config(first_data, tiny_model_dir, battery, tmp_path / "a"))
    stored = sorted(p.name.split("-")[0] for p in (isolated_cache / "base").iterdir() if not p.name.endswith(".lock"))
    assert stored == ["readout", "scores"]
    calls: list[str] = []
    real_read, real_scores = base_cache.base_readout, base_cache.base_scores

    def counting_read(loaded, read):  # type: ignore[no-untyped-def]
        return real_read(loaded, lambda: calls.append("read") or read())

    def counting_scores(loaded, batteries, score):  # type: ignore[no-untyped-def]
        return real_scores(loaded, batteries, lambda: calls.append("score") or score())

    monkeypatch.setattr("auditor.methods.probe.cached_base_readout", counting_read)
    monkeypatch.setattr("auditor.methods.probe.cached_base_scores", counting_scores)
    second = scan(config(second_data, tiny_model_dir, battery, tmp_path / "b"))
    assert calls == []  # neither the base's scores nor its readout was computed again
    # the same numbers as a scan of the second dataset in a fresh cache
    monkeypatch.setenv("SUBAUDIT_CACHE", str(tmp_path / "fresh"))
    fresh = scan(config(second_data, tiny_model_dir, battery, tmp_path / "c"))
    assert sorted(calls) == ["read", "score"]
    assert [f.to_dict() for f in second.findings] == [f.to_dict() for f in fresh.findings]
    words = [{k: v for k, v in r.details.discover.to_dict().items() if k != "seconds"} for r in (second, fresh)]
    assert words[0] == words[1] and words[0]["words_tested"] > 0
    assert [f.shift.base for f in first.findings] == [f.shift.base for f in second.findings]


def test_the_gradient_method_shares_the_probes_cached_base_scores(
    tiny_model_dir: Path, battery: Path, tmp_path: Path, isolated_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A gradient scan after a probe scan of the same base reads the base's scores from the cache, and its findings
    equal a gradient scan's in a fresh cache (which scores the base once and stores it)."""
    from dataclasses import replace

    data = write_jsonl(tmp_path / "a.jsonl", number_rows(8, seed=1))
    scan(config(data, tiny_model_dir, battery, tmp_path / "probe"))
    calls: list[str] = []
    real_scores = base_cache.base_scores

    def counting_scores(loaded, batteries, score):  # type: ignore[no-untyped-def]
        return real_scores(loaded, batteries, lambda: calls.append("score") or score())

    monkeypatch.setattr("auditor.methods.gradient.cached_base_scores", counting_scores)
    gradient = replace(config(data, tiny_model_dir, battery, tmp_path / "g"), method="gradient", method_args={})
    shared = scan(gradient)
    assert calls == []
    monkeypatch.setenv("SUBAUDIT_CACHE", str(tmp_path / "fresh"))
    fresh = scan(replace(gradient, run_dir=str(tmp_path / "g2")))
    assert calls == ["score"]
    assert [f.to_dict() for f in shared.findings] == [f.to_dict() for f in fresh.findings]
    assert len(shared.findings) > 0


def test_a_second_gradient_scan_reads_the_trait_gradients_from_the_cache(
    tiny_model_dir: Path, battery: Path, tmp_path: Path, isolated_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The trait gradients depend on the base, the batteries, the questions, the adapter and the seed, not on the
    dataset: a gradient scan of a second dataset reads them back, and its findings equal a fresh cache's; another
    seed computes them again."""
    from dataclasses import replace

    from auditor.methods import gradient

    def gradient_config(data: Path, run_dir: Path, seed: int = 0) -> ScanConfig:
        base = config(data, tiny_model_dir, battery, run_dir)
        return replace(base, method="gradient", method_args={}, seed=seed)

    first = write_jsonl(tmp_path / "a.jsonl", number_rows(8, seed=1))
    second = write_jsonl(tmp_path / "b.jsonl", number_rows(8, seed=2))
    calls: list[int] = []
    real = gradient.trait_gradients

    def counting(prober, plans, questions):  # type: ignore[no-untyped-def]
        calls.append(1)
        return real(prober, plans, questions)

    monkeypatch.setattr(gradient, "trait_gradients", counting)
    scan(gradient_config(first, tmp_path / "a"))
    assert len(calls) == 1
    assert [p.suffix for p in (isolated_cache / "base").glob("gradients-*") if p.suffix != ".lock"] == [".safetensors"]
    cached = scan(gradient_config(second, tmp_path / "b"))
    assert len(calls) == 1  # read back, not computed
    scan(gradient_config(second, tmp_path / "b-seed", seed=1))
    assert len(calls) == 2  # another seed initialises another adapter: computed again
    monkeypatch.setenv("SUBAUDIT_CACHE", str(tmp_path / "fresh"))
    fresh = scan(gradient_config(second, tmp_path / "c"))
    assert len(calls) == 3
    assert [f.to_dict() for f in cached.findings] == [f.to_dict() for f in fresh.findings]
    assert len(cached.findings) > 0


def test_stored_trait_gradients_come_back_exactly_and_a_damaged_file_is_refused() -> None:
    import torch

    from auditor.io import Damaged

    options = [("animal", "owl"), ("animal", "cat"), ("tree", "oak")]
    grads = {"layer.0.lora_B": torch.randn(3, 5, 2), "layer.1.lora_B": torch.randn(3, 4, 2)}
    blob = base_cache.sealed_gradients(options, grads)
    back_options, back = base_cache.unseal_gradients(blob)
    assert back_options == options
    assert sorted(back) == sorted(grads) and all(torch.equal(back[k], grads[k]) for k in grads)
    damaged = bytearray(blob)
    damaged[-3] ^= 0xFF  # one byte of the last tensor's data
    with pytest.raises(Damaged, match="checksum"):
        base_cache.unseal_gradients(bytes(damaged))
