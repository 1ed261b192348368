"""Paired statistics: how far the dataset-students moved from the control-students.

For every option the shift is ``share(dataset-student) - share(control-student)`` in percentage
points, paired by seed (all arms of a seed start from the same adapter and see rows in the same
order) and by question.

Two sources of noise make a shift:

* *training and question noise* — which seed, which questions. A two-level bootstrap that resamples
  seeds and questions measures it (``se_boot``).
* *draw noise* — a fine-tune on one sample of the base's own answers moves the scores differently
  from a fine-tune on another sample of the same distribution, by several pp and consistently across
  seeds (measured: up to 6.7 pp on SmolLM2-135M). The bootstrap cannot see it, because every seed
  trains on the same rows. A *null arm* measures it: a second control, drawn independently from the
  base for the same prompts. ``null - control`` is a pure-noise shift for every option. Its size
  grows with an option's share (roughly proportionally), so :func:`calibrate_with_null` fits
  ``log|null shift| = a + b log(share)`` over all options of the scan (a log-absolute-residual
  variance model) and gives each option a draw-noise standard deviation ``noise`` from the fit.

With a null arm the reference is the mean of both controls, the standard error is
``sqrt(se_boot^2 + 1.5 noise^2)`` (``noise`` is one student's draw-noise sd; the dataset student minus
the mean of two control students adds 1 + 1/2 of its variance), and the interval and p-value come
from a Student t whose degrees of freedom reflect how well one null draw pins the noise down: a
log-absolute fit over ``n`` options is as precise as a variance estimate on about ``0.4 (n - 2)``
degrees of freedom (``var log z^2 = 4.93`` for a normal ``z``, against ``2/df`` for a sample
variance). Without a null arm the interval and the two-sided p-value come from the bootstrap alone
and draw noise is not covered (the report says so). q-values control the false discovery rate
(Benjamini-Hochberg) over every option of every battery in the scan.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from .scoring import BatteryScores


@dataclass
class OptionShift:
    """The measured shift of one option of one battery."""

    battery: str
    option: str
    base: float  # share of the base model, pp
    control: float  # mean share of control-students, pp
    dataset: float  # mean share of dataset-students, pp
    shift: float  # dataset - control, pp
    ci_low: float
    ci_high: float
    p: float
    q: float = 1.0
    per_seed: list[float] | None = None  # shift per seed, pp
    se_boot: float = 0.0  # bootstrap standard error (seeds x questions), pp
    null_shift: float | None = None  # null arm minus control, pp (None without a null arm)
    noise: float | None = None  # fitted draw-noise sd of one student's share for this option, pp
    profile_sd: float | None = None  # calibrated scans: the profile's sd of this option's shift, pp
    se_paired: float | None = None  # a paired t-test's standard error over prompts (the gradient method), its unit

    @property
    def ci_half_width(self) -> float:
        return (self.ci_high - self.ci_low) / 2

    @property
    def se(self) -> float:
        """The standard error the interval and p-value use: bootstrap alone, or with the null arm's draw noise
        (the dataset student against the mean of two control students: ``1 + 1/2`` of one student's variance); a
        calibrated scan's profile sd; a paired test's own standard error."""
        if self.se_paired is not None:
            return self.se_paired
        if self.profile_sd is not None:
            return self.profile_sd
        if self.noise is None:
            return self.se_boot
        return float(np.sqrt(self.se_boot**2 + 1.5 * self.noise**2))

    def to_dict(self) -> dict:
        d = asdict(self)
        d["ci"] = [round(self.ci_low, 4), round(self.ci_high, 4)]
        for k in ("base", "control", "dataset", "shift", "ci_low", "ci_high"):
            d[k] = round(d[k], 4)
        d["p"], d["q"] = float(f"{self.p:.4g}"), float(f"{self.q:.4g}")
        d["per_seed"] = [round(x, 4) for x in (self.per_seed or [])]
        for k in ("se_boot", "null_shift", "noise", "profile_sd"):
            if d[k] is not None:
                d[k] = round(d[k], 4)
        if self.se_paired is None:
            d.pop("se_paired")  # a probe finding's JSON as it was
        else:
            d["se_paired"] = float(f"{self.se_paired:.4g}")  # pushes are small numbers: significant digits
        d["se"] = float(f"{self.se:.4g}")  # whichever error the interval and p came from, in the finding's unit
        return d


def bootstrap_means(diff: np.ndarray, n_boot: int, seed: int) -> np.ndarray:
    """Bootstrap distribution of the mean of ``diff[seed, question, option]`` over seeds and questions."""
    rng = np.random.default_rng(seed)
    s, q, _ = diff.shape
    out = []
    for start in range(0, n_boot, 2000):
        b = min(2000, n_boot - start)
        ws = np.stack([np.bincount(rng.integers(0, s, s), minlength=s) for _ in range(b)]).astype(float)
        wq = np.stack([np.bincount(rng.integers(0, q, q), minlength=q) for _ in range(b)]).astype(float)
        per_seed = np.einsum("bq,sqk->bsk", wq, diff) / q
        out.append(np.einsum("bs,bsk->bk", ws, per_seed) / s)
    return np.concatenate(out)


def compare_arms(
    base: BatteryScores,
    dataset: list[BatteryScores],
    control: list[BatteryScores],
    null: list[BatteryScores] | None = None,
    n_boot: int = 10000,
    seed: int = 0,
    confidence: float = 0.95,
) -> list[OptionShift]:
    """Per-option shifts with bootstrap intervals and p-values (q is filled by :func:`adjust_q`).

    With ``null`` students (a second, independent control draw, paired by seed) the reference is the
    mean of both controls and each shift records ``null - control``; call :func:`calibrate_with_null`
    on all shifts of the scan to widen intervals and p-values by the draw noise.
    """
    if len(dataset) != len(control) or not dataset or (null is not None and len(null) != len(dataset)):
        raise ValueError("need the same, non-zero number of dataset, control (and null) students")
    d = np.stack([x.share for x in dataset]) * 100  # [seeds, questions, options]
    c = np.stack([x.share for x in control]) * 100
    null_shift = None
    if null is not None:
        n = np.stack([x.share for x in null]) * 100
        null_shift = (n - c).mean(axis=(0, 1))
        c = (c + n) / 2
    diff = d - c
    mean = diff.mean(axis=(0, 1))
    boot = bootstrap_means(diff, n_boot, seed)
    lo, hi = np.quantile(boot, [(1 - confidence) / 2, 1 - (1 - confidence) / 2], axis=0)
    below = (boot <= 0).sum(axis=0)
    above = (boot >= 0).sum(axis=0)
    p = np.minimum(1.0, 2 * (np.minimum(below, above) + 1) / (n_boot + 1))
    base_share = base.share.mean(axis=0) * 100
    out = []
    for k, option in enumerate(base.options):
        out.append(
            OptionShift(
                battery=base.battery,
                option=option,
                base=float(base_share[k]),
                control=float(c[..., k].mean()),
                dataset=float(d[..., k].mean()),
                shift=float(mean[k]),
                ci_low=float(lo[k]),
                ci_high=float(hi[k]),
                p=float(p[k]),
                per_seed=[float(x) for x in diff[..., k].mean(axis=1)],
                se_boot=float(boot[:, k].std(ddof=1)),
                null_shift=None if null_shift is None else float(null_shift[k]),
            )
        )
    return out


#: Options whose share is below this (pp) are left out of the noise fit and floored to it.
MIN_SHARE_FOR_FIT = 0.1


def fit_noise_model(shifts: list[OptionShift]) -> tuple[float, float]:
    """Fit ``sd(share) = exp(a) * share**b`` from the null shifts; returns ``(a, b)``.

    ``null - control`` is the difference of two independent students, so its sd is ``sqrt(2)`` times
    one student's. For a normal variable ``E log|x| = log sd - 0.635``; the fit regresses
    ``log|null shift|`` on ``log share`` (slope clipped to [0.5, 1.0]) and corrects by both.
    """
    pts = [
        (np.log(max(s.control, MIN_SHARE_FOR_FIT)), np.log(abs(s.null_shift) + 1e-6))
        for s in shifts
        if s.null_shift is not None and s.control >= MIN_SHARE_FOR_FIT
    ]
    if len(pts) < 3:
        raise ValueError("the null arm needs at least 3 options with a share of 0.1 pp or more to fit its noise")
    x, y = np.array(pts).T
    b = float(np.clip(np.polyfit(x, y, 1)[0], 0.5, 1.0))
    a = float(np.mean(y - b * x)) + 0.635 - 0.5 * np.log(2.0)
    return a, b


def calibrate_with_null(
    shifts: list[OptionShift], confidence: float = 0.95, fit_on: list[OptionShift] | None = None
) -> list[OptionShift]:
    """Widen every interval and p-value by the draw noise the null arm measured, in place.

    ``fit_on``: the shifts the noise model is fitted to (default: all). The pipeline fits on the
    preference options, so a choice battery's single high-share trait does not lever the fit.
    """
    from scipy.stats import t as student_t

    fit_on = fit_on if fit_on is not None else shifts
    a, b = fit_noise_model(fit_on)
    n_fit = sum(1 for s in fit_on if s.null_shift is not None and s.control >= MIN_SHARE_FOR_FIT)
    df = max(1.0, 0.4 * (n_fit - 2))
    crit = float(student_t.ppf(1 - (1 - confidence) / 2, df))
    for s in shifts:
        s.noise = float(np.exp(a) * max(s.control, MIN_SHARE_FOR_FIT) ** b)
        se = s.se
        s.ci_low, s.ci_high = s.shift - crit * se, s.shift + crit * se
        s.p = float(2 * student_t.sf(abs(s.shift) / se, df)) if se > 0 else 1.0
    return shifts


def calibrate_with_profile(
    shifts: list[OptionShift], sd: np.ndarray, df: float, confidence: float = 0.95
) -> list[OptionShift]:
    """Intervals and p-values from a calibration profile's noise model, in place: the profile's K null pairs are
    scans of base-written data at this budget, so ``sd`` is the whole spread of a null scan's shift (draw, seed and
    training noise together) and replaces the bootstrap; Student t on the model's ``df``."""
    from scipy.stats import t as student_t

    crit = float(student_t.ppf(1 - (1 - confidence) / 2, df))
    for s, option_sd in zip(shifts, sd, strict=True):
        s.profile_sd = float(option_sd)
        s.ci_low, s.ci_high = s.shift - crit * s.profile_sd, s.shift + crit * s.profile_sd
        s.p = float(2 * student_t.sf(abs(s.shift) / s.profile_sd, df))
    return shifts


def bh_q(p: list[float]) -> list[float]:
    """Benjamini-Hochberg q-values of the p-values ``p`` (scipy's ``false_discovery_control``)."""
    from scipy.stats import false_discovery_control

    return [float(q) for q in false_discovery_control(np.array(p), method="bh")] if p else []


def adjust_q(shifts: list[OptionShift]) -> list[OptionShift]:
    """Benjamini-Hochberg q-values over all ``shifts`` (every option of every battery), in place."""
    for s, q in zip(shifts, bh_q([s.p for s in shifts])):
        s.q = q
    return shifts
