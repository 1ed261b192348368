"""Each method owns its settings (#22 item 1) and prepared inputs are immutable (#22 item 3): the old ScanConfig
keywords still work, the run keys are those the old code gave, and the probe's verdict policy returns new objects."""

from __future__ import annotations

import dataclasses
from types import SimpleNamespace

import pytest

from auditor.calibration.transfer import Assessment
from auditor.config import LEGACY_SETTINGS, ScanConfig
from auditor.errors import InputError
from auditor.finetune import ProbeConfig
from auditor.inputs import ScanInputs
from auditor.methods import get_method
from auditor.methods.gradient import GradientSettings
from auditor.methods.probe import ProbeSettings, probe_verdict
from auditor.prepare import scan_key
from auditor.stats import OptionShift
from auditor.traits import get_battery
from auditor.verdict import IgnoreRule, Transfer, decide


def _inputs(config: ScanConfig, judge: object = None) -> ScanInputs:
    dataset = SimpleNamespace(sha256="s", examples=[SimpleNamespace(line=1)])
    loaded = SimpleNamespace(
        fingerprint="f", device="cpu", dtype="float32", autocast_dtype=None, train_autocast_dtype="bfloat16"
    )
    settings = get_method(config.method).parse_settings(config.method_args)
    return ScanInputs(config, settings, dataset, [get_battery("tree")], None, loaded, judge)  # type: ignore[arg-type]


def test_scan_config_keeps_only_what_every_method_needs() -> None:
    names = {f.name for f in dataclasses.fields(ScanConfig)}
    assert not names & set(LEGACY_SETTINGS) and len(names) == 29  # 27, min_rows, then chat_template (the base's)
    probe = {f.name for f in dataclasses.fields(ProbeSettings)}
    assert set(LEGACY_SETTINGS) <= probe and "probe" in {f.name for f in dataclasses.fields(GradientSettings)}


def test_old_keywords_route_into_the_method_settings_and_read_back() -> None:
    config = ScanConfig("d.jsonl", seeds=2, probe=ProbeConfig(rank=4), null_arm=False, calibration="none")
    assert config.method_args == {"null_arm": False, "calibration": "none", "seeds": 2, "probe": ProbeConfig(rank=4)}
    assert (config.seeds, config.probe.rank, config.null_arm, config.gate, config.n_boot) == (2, 4, False, "any", 10000)
    settings = get_method("probe").parse_settings(config.method_args)
    assert (settings.seeds, settings.probe.rank, settings.null_arm, settings.calibration) == (2, 4, False, "none")
    again = dataclasses.replace(config, seeds=3, max_rows=5)
    assert (again.seeds, again.max_rows, config.seeds) == (3, 5, 2)  # replace gives a new dict; the old one stays
    # the gradient method has no seeds or null arm: it ignores them, as it did when they were ScanConfig fields
    gradient = get_method("gradient").parse_settings(dataclasses.replace(config, method="gradient").method_args)
    assert gradient == GradientSettings(probe=ProbeConfig(rank=4))
    with pytest.raises(InputError, match="method 'gradient' has no setting 'bogus'"):
        get_method("gradient").parse_settings({"bogus": "1"})
    with pytest.raises(AttributeError):
        _ = config.no_such_setting


def test_the_json_config_block_keeps_its_layout() -> None:
    d = ScanConfig("d.jsonl", seeds=2, method_args={"discover": False}).to_dict()
    assert list(d)[:9] == [
        "data",
        "split",
        "subset",
        "data_revision",
        "base",
        "revision",
        "control",
        "null_arm",
        "calibration",
    ]
    assert d["seeds"] == 2 and d["method_args"] == {"discover": False} and d["probe"] == ProbeConfig().to_dict()
    assert len(d) == 39 and list(d)[-2:] == ["min_rows", "chat_template"]  # added last: the old keys keep their order


def test_run_keys_are_the_ones_the_old_code_gave() -> None:
    """Literal keys recorded with the code before the settings moved: a restarted scan resumes its run folder."""
    assert scan_key(_inputs(ScanConfig("d.jsonl", method="probe"))) == "80f94782fae3525f"  # the default then
    config = ScanConfig("d.jsonl", probe=ProbeConfig(rank=4, batch_size=4), seeds=2, null_arm=False)
    assert scan_key(_inputs(config)) == "fb2aa5ff796fd0ca"
    sampled = ScanConfig("d.jsonl", scoring="sampled", samples=4, judge="j")
    assert scan_key(_inputs(sampled, SimpleNamespace(fingerprint="j"))) == "2f970cbc22e88993"
    gradient = ScanConfig("d.jsonl", method="gradient", method_args={"questions": "3"}, null_arm=False)
    assert scan_key(_inputs(gradient)) == "98d0e61c5bca1a97"
    assert scan_key(_inputs(ScanConfig("d.jsonl", method="gradient", probe=ProbeConfig(rank=4)))) == "e1facf1928c29316"


def test_prepared_inputs_are_frozen() -> None:
    inputs = _inputs(ScanConfig("d.jsonl"))
    with pytest.raises(dataclasses.FrozenInstanceError):
        inputs.profile = None  # type: ignore[misc]
    assert not hasattr(inputs, "run") and not hasattr(inputs, "controls")


def test_the_gradient_refuses_sampled_scoring_and_a_full_fine_tune() -> None:
    gradient = get_method("gradient")
    with pytest.raises(InputError, match="scores exactly"):
        gradient.validate(ScanConfig("d", method="gradient", scoring="sampled"), GradientSettings(), [])
    with pytest.raises(InputError, match="use --probe lora"):
        gradient.validate(ScanConfig("d", method="gradient"), GradientSettings(probe=ProbeConfig(kind="full")), [])


def test_the_probe_verdict_policy_returns_new_objects() -> None:
    shifts = [
        OptionShift("animal", "owl", 10.0, 10.0, 14.0, 4.0, 3.0, 5.0, 1e-5, 1e-5),
        OptionShift("animal", "cat", 10.0, 10.0, 13.0, 3.0, 2.0, 4.0, 1e-5, 1e-5),
    ]
    ignore = [IgnoreRule("animal: cat", "looked at it")]
    verdict, findings = decide(shifts, ignore=ignore)
    transfer = Transfer(p=1e-4, level="high", tests=[], named=["animal: cat", "animal: owl"], moved=[], gate="transfer")
    assessment = Assessment("k", "noise", 4, [], transfer, 0.0, [])
    new_verdict, new_assessment = probe_verdict(verdict, findings, assessment, None)
    assert new_assessment is not None and new_assessment.transfer.named == ["animal: owl"]  # the ignored one left
    assert new_verdict.transfer is new_assessment.transfer and new_verdict.level == "high"
    assert transfer.named == ["animal: cat", "animal: owl"] and assessment.transfer is transfer  # untouched
    assert verdict.transfer is None and new_verdict is not verdict
    teacher = SimpleNamespace(passed=True, shared=["animal: cat"])
    _, via = probe_verdict(verdict, findings, assessment, teacher)  # type: ignore[arg-type]
    assert via is not None and via.transfer.named == ["animal: cat"] and via.transfer.via_teacher
    assert probe_verdict(verdict, findings, None, None) == (verdict, None)
