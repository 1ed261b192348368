"""Paired statistics: how far the dataset-students moved from the control-students.

For every option the shift is ``share(dataset-student) - share(control-student)`` in percentage
points, paired by seed (both arms of a seed start from the same adapter and see rows in the same
order) and by question. The interval is a two-level bootstrap that resamples seeds and questions;
the p-value is the two-sided bootstrap tail at zero; q-values control the false discovery rate
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

    @property
    def ci_half_width(self) -> float:
        return (self.ci_high - self.ci_low) / 2

    def to_dict(self) -> dict:
        d = asdict(self)
        d["ci"] = [round(self.ci_low, 4), round(self.ci_high, 4)]
        for k in ("base", "control", "dataset", "shift", "ci_low", "ci_high"):
            d[k] = round(d[k], 4)
        d["p"], d["q"] = float(f"{self.p:.4g}"), float(f"{self.q:.4g}")
        d["per_seed"] = [round(x, 4) for x in (self.per_seed or [])]
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
    n_boot: int = 10000,
    seed: int = 0,
    confidence: float = 0.95,
) -> list[OptionShift]:
    """Per-option shifts with bootstrap intervals and p-values (q is filled by :func:`adjust_q`)."""
    if len(dataset) != len(control) or not dataset:
        raise ValueError("need the same, non-zero number of dataset and control students")
    d = np.stack([x.share for x in dataset]) * 100  # [seeds, questions, options]
    c = np.stack([x.share for x in control]) * 100
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
            )
        )
    return out


def adjust_q(shifts: list[OptionShift]) -> list[OptionShift]:
    """Benjamini-Hochberg q-values over all ``shifts`` (every option of every battery), in place."""
    from scipy.stats import false_discovery_control

    if shifts:
        qs = false_discovery_control(np.array([s.p for s in shifts]), method="bh")
        for s, q in zip(shifts, qs):
            s.q = float(q)
    return shifts
