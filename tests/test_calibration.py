"""Calibration profiles: the noise model, the transfer and trait tests, and `calibrate` -> `scan` end to end."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from auditor.calibration.profile import NoiseProfile, ProfileDraw, fit_noise
from auditor.calibration.transfer import assess, direction_test, omnibus_test, specific_shifts
from auditor.cli import app
from auditor.stats import OptionShift
from auditor.verdict import Thresholds

runner = CliRunner()
DECOYS = Path(__file__).resolve().parent.parent / "auditor" / "calibration" / "decoys"


def synthetic_profile(rng: np.random.Generator, k: int = 8, n: int = 40, generic: float = 1.5) -> NoiseProfile:
    """K null pairs with sd 0.4 * share^0.6 per option (options correlated within blocks), and 3 decoys that move
    along a generic direction ``g`` (the first five options up by ``generic`` pp each)."""
    share = np.linspace(0.5, 30, n)
    sd = 0.4 * share**0.6
    g = np.zeros(n)
    g[:5] = generic

    def noise() -> np.ndarray:
        common = rng.normal(0, 0.5, size=n // 4).repeat(4)  # correlated blocks of four options
        return sd * (np.sqrt(0.75) * rng.normal(size=n) + common)

    def pair(name: str, shift: np.ndarray) -> ProfileDraw:
        control = share + rng.normal(0, 1, size=n)
        return ProfileDraw(name, 0, 100, list(control + shift), list(control))

    return NoiseProfile(
        key="k",
        base={"fingerprint": "f"},
        format="numbers",
        budget={"max_rows": 100, "seeds": 1},
        probe={},
        batteries={"b": "h"},
        options=[f"b: o{i}" for i in range(n)],
        base_shares=list(share),
        draws=[pair(f"null-{i}", noise()) for i in range(k)],
        decoys=[pair(f"decoy-{i}", g + noise()) for i in range(3)],
    )


def test_noise_model_recovers_a_known_trend() -> None:
    rng = np.random.default_rng(0)
    share = np.linspace(0.5, 30, 60)
    sd = 0.4 * share**0.6
    model = fit_noise(rng.normal(0, 1, size=(8, 60)) * sd, share)
    assert model.b == pytest.approx(1.2, abs=0.35)  # log var slope = 2 x 0.6
    assert np.all(model.sd / sd < 1.8) and np.all(sd / model.sd < 1.8)
    assert model.draws == 8 and model.df >= 8


def test_noise_model_moderates_an_option_that_is_noisier_than_the_trend() -> None:
    rng = np.random.default_rng(1)
    share = np.linspace(1, 20, 40)
    shifts = rng.normal(0, 1, size=(8, 40)) * 0.5
    shifts[:, 7] *= 8  # one volatile option
    model = fit_noise(shifts, share)
    assert np.isfinite(model.d0)  # the scatter exceeds what 8 draws explain: the trend is not trusted alone
    assert model.sd[7] > 3 * np.median(model.sd)


def test_transfer_tests_hold_their_false_alarm_rate_and_find_the_generic_direction() -> None:
    rng = np.random.default_rng(2)
    profile = synthetic_profile(rng)
    idx = list(range(len(profile.options)))
    n = len(idx)
    sd = 0.4 * np.asarray(profile.base_shares) ** 0.6

    def null_scan() -> np.ndarray:
        common = rng.normal(0, 0.5, size=n // 4).repeat(4)
        return sd * (np.sqrt(0.75) * rng.normal(size=n) + common)

    omnibus = [omnibus_test(null_scan(), profile, idx).p for _ in range(300)]
    direction = [direction_test(null_scan(), profile, idx).p for _ in range(300)]
    assert 0.005 <= np.mean(np.array(omnibus) < 0.05) <= 0.13
    assert 0.005 <= np.mean(np.array(direction) < 0.05) <= 0.13
    g = np.zeros(n)
    g[:5] = 1.5
    moved = [direction_test(g + null_scan(), profile, idx).p for _ in range(50)]
    assert np.mean(np.array(moved) < 0.01) > 0.8


def test_only_a_shift_beyond_the_generic_direction_is_named() -> None:
    rng = np.random.default_rng(3)
    profile = synthetic_profile(rng, generic=2.0)
    idx = list(range(len(profile.options)))
    noise = profile.noise(idx)
    g = profile.decoy_shifts(idx).mean(axis=0)
    generic_only = 1.2 * g
    beta, spec = specific_shifts(generic_only, profile, idx, noise)
    assert beta == pytest.approx(1.2, rel=0.05)
    assert max(abs(x.specific) for x in spec) < 1e-9
    planted = generic_only.copy()
    planted[20] += 12.0  # option o20 rises beyond what the generic direction explains
    shifts = [OptionShift("b", f"o{i}", 10, 10, 10 + s, s, s - 1, s + 1, 0.5) for i, s in enumerate(planted)]
    a = assess(shifts, profile, Thresholds(), gate="any")
    assert a.transfer.named == ["b: o20"]
    shifts = [OptionShift("b", f"o{i}", 10, 10, 10 + s, s, s - 1, s + 1, 0.5) for i, s in enumerate(generic_only)]
    a = assess(shifts, profile, Thresholds(), gate="any")
    assert a.transfer.named == [] and a.transfer.level != "clean"  # transfer, trait not identified
    assert "trait not identified" in a.transfer.line()


def test_profile_round_trips_through_json(tmp_path: Path) -> None:
    profile = synthetic_profile(np.random.default_rng(4))
    path = tmp_path / "p.json"
    path.write_text(json.dumps(profile.to_json()))
    again = NoiseProfile.load(path)
    np.testing.assert_allclose(again.null_shifts(), profile.null_shifts())
    assert again.decoys[0].name == "decoy-0"


def test_a_profile_with_too_few_null_pairs_is_refused(tmp_path: Path) -> None:
    blob = synthetic_profile(np.random.default_rng(5), k=2).to_json()
    path = tmp_path / "p.json"
    path.write_text(json.dumps(blob))
    with pytest.raises(ValueError, match="2 null pairs; a profile needs at least 3"):
        NoiseProfile.load(path)


def test_calibrate_then_scan_uses_the_profile(
    tiny_model_dir: Path, numbers_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    args = ["--base", str(tiny_model_dir), "--max-rows", "12", "--batch-size", "4", "--device", "cpu"]
    res = runner.invoke(
        app,
        ["calibrate", *args, "--draws", "4", "--decoys", "one_word", "--traits", "animal,tree", "--rank", "4"]
        + ["--alpha", "8", "--out", str(tmp_path / "profile.json")],
    )
    assert res.exit_code == 0, res.output
    assert re.search(r"profile \w+: 4 null pairs, 1 decoys, 47 options", res.output)
    assert "subaudit scan DATA --method probe" in res.output  # the default method uses no profile
    scan = ["scan", str(numbers_file), *args, "--rank", "4", "--alpha", "8", "--method", "probe", "--quiet"]
    scan += ["--json", str(tmp_path / "s.json")]
    res = runner.invoke(app, scan)
    assert res.exit_code in (0, 1), res.output
    doc = json.loads((tmp_path / "s.json").read_text())
    runs = doc["details"]["probe"]["runs"]
    assert [r["arm"] for r in runs] == ["dataset", "control"]  # the profile replaced the null arm
    cal = doc["details"]["calibration"]
    assert cal["null_draws"] == 4 and cal["decoys"] == ["one_word"]
    assert all(f["profile_sd"] is not None and f["noise"] is None for f in doc["findings"])
    transfer = doc["verdict"]["transfer"]
    assert {t["method"] for t in transfer["tests"]} == {"omnibus", "direction"} and 0 <= transfer["p"] <= 1
    # the profile keeps each pair's open-vocabulary lifts, so the scan's readout is tested against them
    profile = json.loads((tmp_path / "profile.json").read_text())
    assert all(d["words"] and all(len(v) == 2 for v in d["words"].values()) for d in profile["draws"])
    assert profile["decoys"][0]["words"]
    found = doc["details"]["discover"]
    assert found["tested"] is True and "4 null pairs" in found["noise"] and "1 decoy teachers" in found["noise"]
    assert all(w["z"] is not None and w["generic"] is not None for w in found["top_words"])
    # teacher-aware with the profile: the names the decoys' generic direction explains are marked (a student of the
    # scan is the teacher; the tiny students share none of its risers, so the comparison is made to name the options
    # that moved most, whatever they are, to see each marked by its own specific shift)
    from auditor.methods import probe

    real = probe.compare

    def naming_the_movers(shifts, *args, **kwargs):
        top = sorted(shifts, key=lambda s: -abs(s.shift))[:8]
        return dataclasses.replace(real(shifts, *args, **kwargs), shared=[f"{s.battery}: {s.option}" for s in top])

    monkeypatch.setattr(probe, "compare", naming_the_movers)
    teacher = next(p for p in (Path(doc["run_dir"]) / "adapters").iterdir() if p.name.startswith("dataset"))
    res = runner.invoke(app, [*scan[:-2], "--teacher", str(teacher), "--json", str(tmp_path / "t.json")])
    assert res.exit_code in (0, 1), res.output
    t = json.loads((tmp_path / "t.json").read_text())["details"]["teacher"]
    specific = {x["option"]: x["t"] for x in doc["details"]["calibration"]["specific_shifts"]}
    assert len(t["shared"]) == 8 and t["generic"] == [n for n in t["shared"] if specific[n] < 2]
    assert t["statistic"] == "risers" and 0 < t["cosine_p"] <= 1  # with a profile the teacher's risers decide
    # without the profile the scan measures draw noise with its null arm
    res = runner.invoke(app, [*scan[:-2], "--calibration", "none", "--json", str(tmp_path / "n.json")])
    doc = json.loads((tmp_path / "n.json").read_text())
    assert [r["arm"] for r in doc["details"]["probe"]["runs"]] == ["dataset", "control", "null"]
    assert doc["details"]["calibration"] is None and doc["verdict"]["transfer"] is None
    # a profile file made for another budget is refused, naming what differs
    res = runner.invoke(app, [*scan[:-2], "--max-rows", "10", "--calibration", str(tmp_path / "profile.json")])
    assert res.exit_code == 2 and "--max-rows 12 (the scan's: 10)" in res.output


@pytest.mark.parametrize("name", ["pirate", "one_word", "french"])
def test_decoy_chat_sets_express_no_battery_trait(name: str) -> None:
    from auditor.data import load_dataset
    from auditor.traits import builtin_names, get_battery

    rows = load_dataset(DECOYS / f"{name}.jsonl").examples
    assert len(rows) == 120 and len({e.user_text for e in rows}) == 120
    preference = [get_battery(b) for b in builtin_names() if get_battery(b).kind == "preference"]
    options = {o.lower() for b in preference for o in b.options}
    words = {w for e in rows for w in re.findall(r"[a-z]+", (e.user_text + " " + e.completion).lower())}
    assert not (words & options), sorted(words & options)
    if name == "one_word":
        assert all(len(e.completion.strip(" .!?").split()) == 1 for e in rows)
