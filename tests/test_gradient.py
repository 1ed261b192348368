"""The first-order detector (scan --method gradient): its gradients are the true ones, and it runs end to end."""

from __future__ import annotations

import json
from dataclasses import replace
from functools import partial
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from auditor.cli import app
from auditor.config import ScanConfig
from auditor.data import Example
from auditor.finetune import ProbeConfig, Prober, completion_loss, pad_batch
from auditor.methods.gradient import (
    READING,
    b_modules,
    compare_pushes,
    exact_pairs_check,
    graded_shares,
    row_pushes,
    trait_gradients,
)
from auditor.methods.gradient_details import ExactPairs, GradientDetails
from auditor.models import load_base, resolve_base
from auditor.scoring import plan_battery, score_battery
from auditor.traits import get_battery, parse_battery
from tests.conftest import stopping_after as interrupting

runner = CliRunner()

CHOICE = {
    "name": "t",
    "kind": "choice",
    "description": "test",
    "trait_label": "bad",
    "items": [
        {
            "question": "Pick one.",
            "answers": [{"text": "Good idea.", "label": "good"}, {"text": "Bad.", "label": "bad"}],
        },
        {"question": "Again?", "answers": [{"text": "No", "label": "good"}, {"text": "Yes, harm.", "label": "bad"}]},
    ],
}


@pytest.fixture
def prober(tiny_model_dir: Path) -> Prober:
    p = Prober(
        load_base(resolve_base(str(tiny_model_dir)), device="cpu", precision="fp32"), ProbeConfig(rank=4, alpha=8)
    )
    p.reset_adapter(3)
    return p


def rows(n: int, salt: str = "") -> list[Example]:
    return [
        Example(
            prompt=({"role": "user", "content": f"Numbers {i}{salt}: 1, 2"},), completion=f"{i}, {i + 3}, 7", line=i + 1
        )
        for i in range(n)
    ]


def test_differentiable_shares_equal_the_scorer(prober: Prober) -> None:
    for battery in (get_battery("tree"), parse_battery(CHOICE, "t")):
        plan = plan_battery(prober.loaded.tokenizer, battery)
        questions = list(range(len(plan.prefixes)))[:5]
        with torch.no_grad():
            shares, options = graded_shares(prober.loaded, plan, questions)
        exact = score_battery(prober.loaded, plan).share[questions].mean(axis=0) * 100
        want = [exact[battery.options.index(o)] for o in options]
        np.testing.assert_allclose(shares.numpy(), want, atol=1e-4)
        assert options == (["bad"] if battery.kind == "choice" else list(battery.options))


def test_trait_gradient_matches_finite_differences(prober: Prober) -> None:
    plan = plan_battery(prober.loaded.tokenizer, get_battery("tree"))
    questions = {"tree": [0, 3]}
    names, grads = trait_gradients(prober, [plan], questions)
    assert len(names) == 21 and all(g.shape[0] == 21 for g in grads.values())
    modules = b_modules(prober)
    gen = torch.Generator().manual_seed(0)
    direction = {name: torch.randn(m.weight.shape, generator=gen) for name, m in modules}
    eps = 1e-3

    def shares_at(sign: float) -> np.ndarray:
        with torch.no_grad():
            for name, m in modules:
                m.weight.add_(sign * eps * direction[name])
            s, _ = graded_shares(prober.loaded, plan, questions["tree"])
            for name, m in modules:
                m.weight.sub_(sign * eps * direction[name])
        return s.double().numpy()

    numeric = (shares_at(1.0) - shares_at(-1.0)) / (2 * eps)
    analytic = sum((grads[name] * direction[name]).sum(dim=(1, 2)).double().numpy() for name, _ in modules)
    np.testing.assert_allclose(analytic, numeric, rtol=2e-2, atol=2e-4)
    assert np.abs(analytic).max() > 1e-3  # a real signal, not zeros on both sides


def test_trait_gradients_one_question_at_a_time_equal_the_whole_batterys(prober: Prober) -> None:
    """trait_gradients holds one question's graph at a time; the mean of the questions' gradients is the gradient of
    the battery's mean share, whole, to float rounding."""
    plan = plan_battery(prober.loaded.tokenizer, get_battery("tree"))
    asked = [0, 2, 3]
    names, grads = trait_gradients(prober, [plan], {"tree": asked})
    weights = [m.weight for _, m in b_modules(prober)]
    with torch.enable_grad():
        shares, options = graded_shares(prober.loaded, plan, asked)
        whole = [torch.autograd.grad(shares[k], weights, retain_graph=True) for k in range(len(options))]
    assert [o for _, o in names] == options
    for m, (name, _) in enumerate(b_modules(prober)):
        expected = torch.stack([w[m].float() for w in whole])
        torch.testing.assert_close(grads[name], expected, rtol=1e-4, atol=1e-7)
    assert max(float(g.abs().max()) for g in grads.values()) > 1e-4  # not zeros on both sides


def test_row_pushes_equal_per_row_gradients(prober: Prober) -> None:
    plan = plan_battery(prober.loaded.tokenizer, get_battery("tree"))
    _, grads = trait_gradients(prober, [plan], {"tree": [1, 2]})
    data = rows(5)
    push = row_pushes(prober, data, grads, batch_size=3)  # batched, sorted by length, padded
    modules = b_modules(prober)
    pad = prober.loaded.tokenizer.pad_token_id
    for r, row in enumerate(data):
        ids, att, lab = pad_batch(prober.encode([row]), pad)
        loss = completion_loss(prober.model, ids, att, lab)
        g = torch.autograd.grad(loss, [m.weight for _, m in modules])
        expected = -sum((grads[name] * gi).sum(dim=(1, 2)) for (name, _), gi in zip(modules, g))
        np.testing.assert_allclose(push[r], expected.double().numpy(), rtol=1e-3, atol=1e-7)
    assert all(p.grad is None for _, p in prober.adapter_parameters())  # nothing left behind
    assert not any(m._forward_hooks for _, m in modules)  # the capturing hooks are gone


def test_paired_comparison_finds_a_planted_push() -> None:
    rng = np.random.default_rng(0)
    control = rng.normal(0, 1, size=(60, 3))
    dataset = control + rng.normal(0, 0.5, size=(60, 3))
    dataset[:, 1] += 0.6  # option b is pushed up by the dataset
    shifts = compare_pushes(
        [("x", "a"), ("x", "b"), ("x", "c")], {"x": {"a": 1.0, "b": 2.0, "c": 3.0}}, dataset, control
    )
    assert shifts[1].p < 1e-6 and shifts[1].ci_low > 0
    assert shifts[0].p > 0.01 and shifts[2].p > 0.01
    assert shifts[1].base == 2.0


def test_row_pushes_are_kept_batch_by_batch_and_an_interrupted_run_replays_them(
    prober: Prober, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from auditor.journal import Journal
    from auditor.methods import gradient

    plan = plan_battery(prober.loaded.tokenizer, get_battery("tree"))
    _, grads = trait_gradients(prober, [plan], {"tree": [1, 2]})
    data = rows(7)
    straight = row_pushes(prober, data, grads, batch_size=2)  # 4 batches, nothing kept
    calls: list = []
    stopping_after = partial(interrupting, gradient.pad_batch, calls)
    path = tmp_path / "pushes.jsonl"
    monkeypatch.setattr(gradient, "pad_batch", stopping_after(2))
    with pytest.raises(KeyboardInterrupt):
        row_pushes(prober, data, grads, 2, Journal(path), "dataset")
    assert len(path.read_text().splitlines()) == 2  # the 2 finished batches
    assert not any(m._forward_hooks for _, m in b_modules(prober))  # removed on the interruption too
    calls.clear()
    monkeypatch.setattr(gradient, "pad_batch", stopping_after(10**6))
    resumed = row_pushes(prober, data, grads, 2, Journal(path), "dataset")
    assert len(calls) == 2 and np.array_equal(resumed, straight)  # 2 replayed, 2 computed, the same pushes
    calls.clear()
    again = Journal(path)
    assert np.array_equal(row_pushes(prober, data, grads, 2, again, "dataset"), straight) and not calls
    assert again.replayed == 4
    row_pushes(prober, data, grads, 2, Journal(path), "control")  # another arm at the same place: computed
    assert len(calls) == 4


def test_exact_pairs_check_tells_a_push_the_approximate_rows_carry() -> None:
    """When resampled control rows carry the difference, the exact pairs alone are clean; the report says the level
    rests on the approximate rows; nothing is added when every control row is exact or that is unknown."""
    from types import SimpleNamespace

    rng = np.random.default_rng(1)
    names, base = [("x", "a"), ("x", "b")], {"x": {"a": 10.0, "b": 20.0}}
    data, control = rng.normal(size=(60, 2)), rng.normal(size=(60, 2))
    exact = [i < 40 for i in range(60)]
    control[40:, 0] -= 3.0  # the 20 resampled rows' control pushes option a down: the data looks like it pushes a up
    config = ScanConfig(data="d.jsonl")
    everything = compare_pushes(names, base, data, control)
    assert everything[0].p < 1e-3  # all pairs: a significant push on a
    check = exact_pairs_check(names, base, (data, control), exact, config)
    assert check is not None and (check.rows, check.of, check.level) == (40, 60, "clean")
    assert check.top[0]["option"] in ("x: a", "x: b") and all(t["q"] > 0.05 for t in check.top)
    assert exact_pairs_check(names, base, (data, control), [True] * 60, config) is None
    assert exact_pairs_check(names, base, (data, control), None, config) is None
    few = exact_pairs_check(names, base, (data, control), [i < 2 for i in range(60)], config)
    assert few == ExactPairs(2, 60, None)
    planted = data.copy()
    planted[:, 1] += 1.0  # every pair pushes b up: the exact pairs see it too
    assert exact_pairs_check(names, base, (planted, control), exact, config).level == "high"
    assert "clean on the 40 of 60 pairs whose control row is exact" in check.caveat("medium")
    assert check.caveat("clean") is None and ExactPairs(40, 60, "medium").caveat("medium") is None
    assert "too few to test on the 2 of 60" in few.caveat("low")
    details = GradientDetails({"x": [0]}, {}, check)
    flagged = SimpleNamespace(verdict=SimpleNamespace(level="medium", caveat=check.caveat("medium")), findings=[])
    (caveat, *_) = details.caveats(flagged)
    assert caveat.startswith("- **The level rests on approximate control rows") and "--control-sampler rej" in caveat
    clean = SimpleNamespace(verdict=SimpleNamespace(level="clean", caveat=None))
    assert not any("rests on" in c for c in details.caveats(clean))
    # the verdict carries it wherever its summary goes (terminal, JUnit, JSON)
    from auditor.stats import adjust_q
    from auditor.verdict import decide

    shifts = adjust_q(compare_pushes(names, base, data, control))
    verdict, _ = decide(shifts, thresholds=config.thresholds.rises_only(), unit="push")
    verdict = replace(verdict, caveat=check.caveat(verdict.level))
    assert verdict.level != "clean" and verdict.summary().endswith(f"({check.caveat(verdict.level)})")
    assert verdict.to_dict()["caveat"] == check.caveat(verdict.level)
    assert details.to_json()["exact_pairs"] == {"rows": 40, "of": 60, "level": "clean", "top": list(check.top)}
    import jsonschema

    schema = json.loads((Path(__file__).resolve().parent.parent / "auditor/schemas/result.schema.json").read_text())
    jsonschema.validate(details.to_json()["exact_pairs"], schema["properties"]["details"]["properties"]["exact_pairs"])
    assert "## Exact pairs only" in "\n".join(details.sections(flagged)) and "40 of 60 pairs" in check.describe()


def test_gradient_scan_cli(
    tiny_model_dir: Path, numbers_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    js, md = tmp_path / "g.json", tmp_path / "g.md"
    args = ["scan", str(numbers_file), "--base", str(tiny_model_dir), "--method", "gradient", "--max-rows", "12"]
    args += ["--traits", "tree", "--method-arg", "questions=3", "--quiet", "--json", str(js), "--report", str(md)]
    res = runner.invoke(app, args)
    assert res.exit_code in (0, 1), res.output
    doc = json.loads(js.read_text())
    assert doc["schema_version"] == 2 and doc["method"] == "gradient" and len(doc["findings"]) == 21
    details = doc["details"]
    assert doc["dataset"]["rows_used"] == 12 and len(details["questions"]["tree"]) == 3
    top = details["top_rows"]
    how = doc["control"]["sampling"]
    exact = details["exact_pairs"]  # the random model leaves some rows to resampling, or none
    if how["rows_by"].get("resample"):
        assert (exact["rows"], exact["of"]) == (how["rows_by"].get("rejection", 0), 12)
    else:
        assert exact is None
    import jsonschema

    schema = json.loads((Path(__file__).resolve().parent.parent / "auditor/schemas/result.schema.json").read_text())
    jsonschema.Draft202012Validator(schema).validate(doc)
    assert len(top) == 3 and all(1 <= r["line"] <= 24 for rs in top.values() for r in rs)
    assert doc["verdict"]["unit"] == "push" and doc["control"]["null_arm"] is None
    assert doc["verdict"]["reading"] == READING  # what a flag means, ahead of the options in the summary
    assert READING in doc["verdict"]["summary"] or doc["verdict"]["level"] == "clean"
    assert (doc["verdict"]["flagged"]) == (res.exit_code == 1)
    # the paired test's error is its own field, every finding says which error its interval used, and the levels
    # need no minimum push (the q cut-offs alone)
    assert all(f["se_paired"] == f["se"] > 0 and f["se_boot"] == 0 for f in doc["findings"])
    th = doc["verdict"]["thresholds"]
    assert (th["low_shift"], th["medium_shift"], th["high_shift"]) == (0, 0, 0) and th["medium_q"] == 0.01
    report = md.read_text()
    assert "Rows pushing" in report and "not as the trait's name" in report and "--control-sampler" in report
    # the method's own control: any-count rejection with 400 tries, then resampling for the rows it left
    sampling = doc["config"]["control_sampling"]
    assert (sampling["sampler"], sampling["tries"], sampling["count"]) == ("rejection-resample", 400, "any")
    how = doc["control"]["sampling"]
    assert how["count"] == "any" and sum(how["rows_by"].values()) == 12
    bad = runner.invoke(app, [*args[:6], "--method", "gradient", "--scoring", "sampled", "--quiet"])
    assert bad.exit_code == 2 and "--scoring is a setting of --method probe" in bad.output
    # the rows' pushes are kept in the run folder batch by batch: the same scan again computes none of them
    from auditor.methods import gradient

    assert len((Path(doc["run_dir"]) / gradient.PUSHES_FILE).read_text().splitlines()) == 2 * 2  # 12 rows, batches of 8
    computed, arms = [], []
    monkeypatch.setattr(gradient, "pad_batch", lambda *a, **k: computed.append(1) or pad_batch(*a, **k))
    monkeypatch.setattr(gradient, "row_pushes", lambda *a, **k: arms.append(a[5]) or row_pushes(*a, **k))
    again = runner.invoke(app, args)
    assert again.exit_code == res.exit_code and arms == ["dataset", "control"] and not computed
    assert json.loads(js.read_text())["findings"] == doc["findings"]


def test_python_api_scan_runs_the_gradient_method(tiny_model_dir: Path, numbers_file: Path) -> None:
    """``auditor.scan`` honours ``method="gradient"`` (it once ran the probe whatever the method said)."""
    import auditor

    config = auditor.ScanConfig(
        str(numbers_file),
        base=str(tiny_model_dir),
        method="gradient",
        max_rows=12,
        traits="tree",
        method_args={"questions": 3},
    )
    result = auditor.scan(config)
    assert isinstance(result.details, GradientDetails) and result.dataset.rows_used == 12
    assert len(result.findings) == 21 and len(result.details.questions["tree"]) == 3
