"""Tests of a scan's shift vector against a calibration profile: per option, transfer (all options at once),
and the part of each option's shift that the generic fine-tune direction does not explain.

Notation: ``s`` is the scan's shift per option (dataset-student minus control-student, pp), ``d_k`` the shift of
null pair ``k`` of the profile, ``g`` the mean shift of the decoy pairs (the generic direction), ``sd`` the noise
model's per-option standard deviation.

* :func:`option_tests`: ``t = s / sd`` on the noise model's degrees of freedom, two-sided p.
* :func:`omnibus_test`: ``Q = sum t^2`` over all options. Options are correlated (shares sum to 100 within a
  battery), so ``Q`` is referred to a scaled chi-square ``c chi2_nu`` whose mean and variance are those of ``Q``
  over the K null pairs (each standardised by a noise model fitted without it).
* :func:`direction_test`: the projection ``L = sum w s`` with ``w = g / sd^2`` (the weights that detect a shift
  along ``g`` best), on the null pairs' projections: ``t = L / sqrt(mean_k (w . d_k)^2)`` with K degrees of
  freedom, one-sided (only a move *along* the generic direction is transfer of this kind).
* :func:`specific_shifts`: ``r = s - beta g`` with ``beta`` the weighted least-squares coefficient of ``s`` on
  ``g``; its standard error adds the decoys' spread around ``g`` (``beta^2 var(g)``) to the option's noise.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from ..stats import OptionShift, bh_q
from ..verdict import Thresholds, Transfer, p_level
from .profile import NoiseModel, NoiseProfile


@dataclass(frozen=True)
class TransferTest:
    """One test of "does this data move the student unlike the base's own data does?".

    Attributes:
        method: ``omnibus`` or ``direction``.
        statistic: ``Q`` (omnibus) or ``t`` (direction).
        p: its p-value under the profile's null.
        df: degrees of freedom of the reference distribution.
        detail: how the null was formed, in words.
    """

    method: str
    statistic: float
    p: float
    df: float
    detail: str


def option_tests(shift: np.ndarray, noise: NoiseModel) -> tuple[np.ndarray, np.ndarray]:
    """``t`` and two-sided ``p`` per option."""
    from scipy.stats import t as student_t

    t = shift / noise.sd
    return t, 2 * student_t.sf(np.abs(t), noise.df)


def omnibus_test(shift: np.ndarray, profile: NoiseProfile, idx: list[int]) -> TransferTest:
    """``Q = sum (s / sd)^2`` against a scaled chi-square matched to the null pairs (leave-one-out)."""
    from scipy.stats import chi2

    noise = profile.noise(idx)
    q = float(((shift / noise.sd) ** 2).sum())
    nulls = profile.null_shifts(idx)
    k = len(nulls)
    q_null = np.array([((nulls[i] / profile.noise(idx, leave_out=i).sd) ** 2).sum() for i in range(k)])
    mean, var = float(q_null.mean()), float(q_null.var(ddof=1)) if k > 1 else 0.0
    if var <= 0:
        var = 2 * mean  # an uncorrelated chi-square's variance when the draws cannot tell
    c, nu = var / (2 * mean), 2 * mean**2 / var
    p = float(chi2.sf(q / c, nu))
    return TransferTest(
        "omnibus",
        q,
        p,
        nu,
        f"Q = sum of squared standardised shifts over {len(idx)} options; null: {c:.2f} x chi2({nu:.1f}), matched "
        f"to Q of the {k} null pairs (mean {mean:.1f}, sd {var**0.5:.1f})",
    )


def direction_weights(profile: NoiseProfile, idx: list[int], noise: NoiseModel) -> np.ndarray | None:
    """``w = g / sd^2`` for the decoys' mean shift ``g`` (``None`` without decoys)."""
    decoys = profile.decoy_shifts(idx)
    if not len(decoys):
        return None
    return decoys.mean(axis=0) / noise.sd**2


def direction_test(shift: np.ndarray, profile: NoiseProfile, idx: list[int]) -> TransferTest | None:
    """The shift's projection on the generic direction, against the null pairs' projections (one-sided)."""
    from scipy.stats import t as student_t

    noise = profile.noise(idx)
    w = direction_weights(profile, idx, noise)
    if w is None:
        return None
    nulls = profile.null_shifts(idx)
    k = len(nulls)
    scale = float(np.sqrt(np.mean((nulls @ w) ** 2)))
    t = float(shift @ w) / scale
    return TransferTest(
        "direction",
        t,
        float(student_t.sf(t, k)),
        float(k),
        f"projection on the mean shift of {len(profile.decoys)} decoy teachers' students (weights g / sd^2), "
        f"over its spread in the {k} null pairs; one-sided Student t, {k} df",
    )


@dataclass(frozen=True)
class SpecificShift:
    """An option's shift split into the generic fine-tune part and the part specific to this data (pp)."""

    option: str
    shift: float
    generic: float  # beta * g
    specific: float  # shift - beta * g
    se: float
    t: float
    p: float  # one-sided: the option rose more than the generic direction explains


def specific_shifts(
    shift: np.ndarray, profile: NoiseProfile, idx: list[int], noise: NoiseModel
) -> tuple[float, list[SpecificShift]]:
    """``beta`` and, per option, ``s - beta g`` with its standard error and one-sided p (see the module docstring).

    Without decoys the generic part is zero and the specific shift is the shift itself.
    """
    from scipy.stats import t as student_t

    names = [profile.options[i] for i in idx]
    decoys = profile.decoy_shifts(idx)
    if len(decoys):
        g = decoys.mean(axis=0)
        w = 1 / noise.sd**2
        beta = float(max(0.0, (w * g * shift).sum() / (w * g * g).sum()))
        g_var = decoys.var(axis=0, ddof=1) / len(decoys) if len(decoys) > 1 else np.zeros_like(g)
    else:
        g, beta, g_var = np.zeros_like(shift), 0.0, np.zeros_like(shift)
    specific = shift - beta * g
    se = np.sqrt(noise.sd**2 + beta**2 * g_var)
    t = specific / se
    p = student_t.sf(t, noise.df)
    out = [
        SpecificShift(n, float(s), float(beta * gi), float(r), float(e), float(ti), float(pi))
        for n, s, gi, r, e, ti, pi in zip(names, shift, g, specific, se, t, p)
    ]
    return beta, out


@dataclass
class Assessment:
    """What a profile says about a scan: the noise model, the transfer tests, each option's specific shift."""

    profile_key: str
    noise: str
    draws: int
    decoys: list[str]
    transfer: Transfer
    beta: float
    specific: list[SpecificShift]
    rows: float | None = None  # mean rows of the null pairs' students (what the noise model was measured at)

    def to_dict(self) -> dict:
        return {
            "profile": self.profile_key,
            "noise_model": self.noise,
            "null_draws": self.draws,
            "null_rows": None if self.rows is None else round(self.rows, 1),
            "decoys": self.decoys,
            "generic_coefficient": round(self.beta, 4),
            "specific_shifts": [
                {k: (round(v, 5) if isinstance(v, float) else v) for k, v in asdict(x).items()} for x in self.specific
            ],
        }


def assess(shifts: list[OptionShift], profile: NoiseProfile, thresholds: Thresholds, gate: str) -> Assessment:
    """Test ``shifts`` (every graded option of the scan) against ``profile``, in place: each option's interval and
    p from the noise model, q over all options; then transfer (omnibus, and direction when the profile has decoys)
    and the options named as the trait (specific shift's one-sided q <= ``medium_q`` and at least ``medium_shift``
    pp)."""
    from ..stats import adjust_q, calibrate_with_profile

    names = [f"{s.battery}: {s.option}" for s in shifts]
    idx = profile.index(names)
    noise = profile.noise(idx)
    calibrate_with_profile(shifts, noise.sd, noise.df)
    adjust_q(shifts)
    s = np.array([x.shift for x in shifts])
    tests = [omnibus_test(s, profile, idx)]
    direction = direction_test(s, profile, idx)
    if direction is not None:
        tests.append(direction)
    p = min(1.0, min(t.p for t in tests) * len(tests))
    beta, specific = specific_shifts(s, profile, idx, noise)
    q = bh_q([x.p for x in specific])
    named = sorted(
        (x for x, qx in zip(specific, q) if qx <= thresholds.medium_q and x.specific >= thresholds.medium_shift),
        key=lambda x: -x.t,
    )
    moved = sorted(shifts, key=lambda x: -x.shift / x.se if x.se > 0 else 0.0)
    transfer = Transfer(
        p=p,
        level=p_level(p, thresholds),
        tests=[asdict(t) for t in tests],
        named=[x.option for x in named],
        moved=[f"{x.battery}: {x.option} {x.shift:+.1f} pp" for x in moved if x.shift > 0][:5],
        gate=gate,
    )
    rows = float(np.mean([d.rows for d in profile.draws])) if profile.draws else None
    return Assessment(
        profile.key,
        noise.describe(),
        len(profile.draws),
        [d.name for d in profile.decoys],
        transfer,
        beta,
        specific,
        rows,
    )
