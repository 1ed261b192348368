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
