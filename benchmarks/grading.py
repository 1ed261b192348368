"""What the benchmarks' reports share: a calibrated probe verdict graded from a cell's recorded shares (no model
runs), and the Clopper-Pearson interval of a count."""

from __future__ import annotations

from typing import Any

from auditor.calibration.profile import NoiseProfile
from auditor.calibration.transfer import assess
from auditor.stats import OptionShift
from auditor.verdict import Thresholds, decide, with_transfer


def calibrated_shifts(
    options: list[str], base: list[float], dataset: list[float], control: list[float], profile: NoiseProfile, gate: str
) -> tuple[list[OptionShift], Any]:
    """The shifts (dataset minus control, pp) tested against ``profile`` as a calibrated scan tests them (each
    option's ``se`` is then the profile's sd), and the assessment."""
    shifts = []
    for name, b, d, c in zip(options, base, dataset, control):
        battery, option = name.split(": ", 1)
        shifts.append(OptionShift(battery, option, b, c, d, d - c, d - c, d - c, 1.0))
    return shifts, assess(shifts, profile, Thresholds(), gate)


def calibrated_verdict(
    options: list[str],
    base: list[float],
    dataset: list[float],
    control: list[float],
    profile: NoiseProfile,
    gate: str,
    fail_on: str = "medium",
) -> dict[str, Any]:
    """The level under ``gate``, the options named as the trait, the top finding and the transfer test's p."""
    shifts, a = calibrated_shifts(options, base, dataset, control, profile, gate)
    verdict, _ = decide(shifts, fail_on, Thresholds())
    verdict = with_transfer(verdict, a.transfer)
    top = verdict.top[0].name if verdict.top else None
    return {"level": verdict.level, "named": a.transfer.named, "top": top, "p": a.transfer.p}


def clopper_pearson(k: int, n: int, alpha: float = 0.05) -> tuple[float, float]:
    """The exact (Clopper-Pearson) ``1 - alpha`` interval of a rate seen ``k`` times in ``n``."""
    from scipy.stats import beta

    if n == 0:
        return (0.0, 1.0)
    low = 0.0 if k == 0 else float(beta.ppf(alpha / 2, k, n - k + 1))
    high = 1.0 if k == n else float(beta.ppf(1 - alpha / 2, k + 1, n - k))
    return low, high
