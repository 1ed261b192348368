from __future__ import annotations

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


def test_no_shift_is_not_flagged_and_reports_power() -> None:
    rng = np.random.default_rng(2)
    base = students(rng, 1, 40, {})[0]
    shifts = adjust_q(compare_arms(base, students(rng, 2, 40, {}), students(rng, 2, 40, {}), n_boot=3000))
    verdict, _ = decide(shifts, fail_on="medium")
    assert not verdict.flagged and verdict.exit_code == 0
    assert verdict.level in ("clean", "low")
    assert verdict.detectable_shift >= Thresholds().medium_shift
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
