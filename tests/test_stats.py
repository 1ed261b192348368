from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from auditor.scoring import BatteryScores
from auditor.stats import adjust_q, bootstrap_means, compare_arms
from auditor.verdict import Thresholds, decide

OPTIONS = ["owl", "cat", "dog", "fox", "eel"]


def scores_from_shares(shares: np.ndarray) -> BatteryScores:
    return BatteryScores("animal", OPTIONS, np.log(shares))


def students(rng: np.random.Generator, n_seeds: int, n_q: int, boost: dict[int, float], noise: float = 0.05):
    out = []
    for _ in range(n_seeds):
        logits = rng.normal(0, noise, size=(n_q, len(OPTIONS)))
        for k, v in boost.items():
            logits[:, k] += v
        p = np.exp(logits)
        out.append(scores_from_shares(p / p.sum(axis=1, keepdims=True)))
    return out


def test_bootstrap_mean_matches_plain_mean_when_one_resample_is_identity() -> None:
    diff = np.random.default_rng(0).normal(size=(2, 30, 4))
    boot = bootstrap_means(diff, 4000, seed=0)
    assert boot.shape == (4000, 4)
    np.testing.assert_allclose(boot.mean(axis=0), diff.mean(axis=(0, 1)), atol=0.05)


def test_planted_shift_is_found_and_named() -> None:
    rng = np.random.default_rng(1)
    base = students(rng, 1, 40, {})[0]
    control = students(rng, 3, 40, {})
    dataset = students(rng, 3, 40, {0: 0.4})  # owl up by ~8 pp
    shifts = adjust_q(compare_arms(base, dataset, control, n_boot=3000))
    verdict, findings = decide(shifts, fail_on="medium")
    owl = next(f for f in findings if f.shift.option == "owl")
    assert owl.shift.shift > 5 and owl.shift.ci_low > 0 and owl.level == "high"
    assert verdict.flagged and verdict.top[0].shift.option == "owl"
    assert verdict.exit_code == 1
    assert "animal: owl +" in verdict.top[0].headline()
    assert verdict.summary().startswith("HIGH: animal: owl +") and verdict.to_dict()["reading"] is None
    # a method whose options are not a trait's name (the gradient method) puts what a flag means first
    read = replace(verdict, reading="rows unlike the base's own samples")
    assert read.summary().startswith("HIGH: rows unlike the base's own samples; most significant: animal: owl +")
    assert read.to_dict()["reading"] == "rows unlike the base's own samples"


def test_no_shift_is_not_flagged_and_reports_power() -> None:
    rng = np.random.default_rng(2)
    base = students(rng, 1, 40, {})[0]
    shifts = adjust_q(compare_arms(base, students(rng, 2, 40, {}), students(rng, 2, 40, {}), n_boot=3000))
    verdict, _ = decide(shifts, fail_on="medium")
    assert not verdict.flagged and verdict.exit_code == 0
    assert verdict.level in ("clean", "low")
    assert verdict.detectable_shift >= Thresholds().medium_shift
    name, worst = verdict.least_sensitive
    assert worst >= verdict.detectable_shift and name.startswith("animal: ")
    if verdict.level == "clean":
        assert f"{worst:.1f} pp for the noisiest option, {name}" in verdict.summary()
    assert "safe" not in verdict.summary().lower().replace("not a proof of safety", "")


def test_q_values_are_bh_adjusted() -> None:
    rng = np.random.default_rng(3)
    base = students(rng, 1, 20, {})[0]
    shifts = adjust_q(compare_arms(base, students(rng, 2, 20, {1: 0.3}), students(rng, 2, 20, {}), n_boot=2000))
    for s in shifts:
        assert s.q >= s.p - 1e-12
        assert s.ci_low <= s.shift <= s.ci_high


@pytest.mark.parametrize(
    "shift, q, ci_low, level",
    [
        (3.0, 0.0001, 1.0, "high"),
        (3.0, 0.0001, 0.1, "medium"),
        (1.2, 0.005, 0.5, "medium"),
        (0.6, 0.04, 0.1, "low"),
        (0.6, 0.2, 0.1, "clean"),
        (0.2, 0.0001, 0.1, "clean"),
        (-3.0, 0.0001, -4, "clean"),
    ],
)
def test_threshold_grading(shift: float, q: float, ci_low: float, level: str) -> None:
    from auditor.stats import OptionShift

    s = OptionShift("a", "owl", 1, 1, 1, shift, ci_low, shift + 1, q, q)
    assert Thresholds().grade(s) == level


def test_fail_on_levels() -> None:
    rng = np.random.default_rng(4)
    base = students(rng, 1, 40, {})[0]
    shifts = adjust_q(compare_arms(base, students(rng, 2, 40, {0: 0.4}), students(rng, 2, 40, {}), n_boot=2000))
    assert decide(shifts, fail_on="high")[0].flagged
    with pytest.raises(ValueError):
        decide(shifts, fail_on="clean")


# --- draw noise and the null arm -------------------------------------------------------------------

MANY = [f"opt{i}" for i in range(24)]


def drawn_students(
    rng: np.random.Generator, n_seeds: int, n_q: int, draw_sd: float, boost: dict[int, float] | None = None
) -> list[BatteryScores]:
    """Students of one arm: a per-draw logit offset shared by all seeds (the rows are the same), plus
    small per-seed and per-question noise. ``draw_sd`` is the draw noise the bootstrap cannot see."""
    prior = np.linspace(2.0, -2.0, len(MANY))
    draw = rng.normal(0, draw_sd, size=len(MANY))
    for k, v in (boost or {}).items():
        draw[k] += v
    out = []
    for _ in range(n_seeds):
        logits = prior + draw + rng.normal(0, 0.02, size=len(MANY)) + rng.normal(0, 0.02, size=(n_q, len(MANY)))
        p = np.exp(logits)
        out.append(BatteryScores("many", MANY, np.log(p / p.sum(axis=1, keepdims=True))))
    return out


def _false_alarms(with_null: bool, trials: int = 12) -> int:
    from auditor.stats import calibrate_with_null

    alarms = 0
    for t in range(trials):
        rng = np.random.default_rng(100 + t)
        base = drawn_students(rng, 1, 30, 0.0)[0]
        arms = [drawn_students(rng, 2, 30, 0.15) for _ in range(3)]  # dataset, control, null: all null draws
        shifts = compare_arms(base, arms[0], arms[1], arms[2] if with_null else None, n_boot=1000, seed=t)
        if with_null:
            calibrate_with_null(shifts)
        adjust_q(shifts)
        alarms += decide(shifts, fail_on="medium")[0].flagged
    return alarms


def test_draw_noise_fools_the_bootstrap_but_not_the_null_arm() -> None:
    # every seed of an arm trains on the same rows, so a draw's offset looks like a consistent shift
    assert _false_alarms(with_null=False) >= 8
    assert _false_alarms(with_null=True) <= 1


def test_null_arm_keeps_a_large_planted_shift() -> None:
    from auditor.stats import calibrate_with_null

    rng = np.random.default_rng(7)
    base = drawn_students(rng, 1, 30, 0.0)[0]
    dataset = drawn_students(rng, 2, 30, 0.15, boost={3: 1.0})
    shifts = compare_arms(base, dataset, drawn_students(rng, 2, 30, 0.15), drawn_students(rng, 2, 30, 0.15))
    calibrate_with_null(shifts)
    adjust_q(shifts)
    verdict, _ = decide(shifts, fail_on="medium")
    assert verdict.flagged and verdict.top[0].shift.option == "opt3"
    top = verdict.top[0].shift
    assert top.noise is not None and top.noise > 0 and top.null_shift is not None
    # the interval is wider than the bootstrap alone would make it
    assert (top.ci_high - top.ci_low) / 2 > 1.96 * top.se_boot


def test_noise_fit_recovers_a_proportional_model() -> None:
    from auditor.stats import OptionShift, fit_noise_model

    rng = np.random.default_rng(3)
    shifts = []
    for i in range(400):
        share = float(np.exp(rng.uniform(np.log(0.5), np.log(40))))
        sd_one = 0.1 * share  # one student's draw-noise sd: 10 % of its share
        null = rng.normal(0, np.sqrt(2) * sd_one)  # null - control: two students
        shifts.append(OptionShift("b", f"o{i}", share, share, share, 0.0, 0.0, 0.0, 1.0, null_shift=null))
    a, b = fit_noise_model(shifts)
    assert b == pytest.approx(1.0, abs=0.1)
    assert np.exp(a) * 10**b == pytest.approx(1.0, rel=0.2)  # sd at share 10 pp


def test_null_arm_needs_matching_students() -> None:
    rng = np.random.default_rng(0)
    base = students(rng, 1, 10, {})[0]
    with pytest.raises(ValueError):
        compare_arms(base, students(rng, 2, 10, {}), students(rng, 2, 10, {}), students(rng, 1, 10, {}))
