"""A calibration profile: how a base's students move when the data carries nothing, and when it was written by
a fine-tune of the base that has a trait no battery measures.

``draws``: K *null pairs*. Each is a dataset the base itself wrote for the format's prompts (``subaudit
generate``) and its control (the base's answers to the same prompts, drawn as a scan draws them); a student is
trained on each at the scan's budget and scored. ``dataset - control`` per option is exactly what a scan of
base-written data measures, so the K pairs are an empirical null distribution of a scan's shifts.

``decoys``: D pairs whose dataset was written by a *decoy teacher* (the base fine-tuned to speak like a pirate,
answer in one word, reply in French ...). What their students pick up is the generic effect of data written by a
fine-tune of the base, not any battery's trait: the *generic direction*.

The noise model (:meth:`NoiseProfile.noise`) pools the per-option variance of the null shifts across options on
the log-share scale, with a measured slope, and moderates each option's own variance towards that trend
(empirical Bayes, as limma does for genes): ``s2 = (d0 * trend + K * m) / (d0 + K)`` on ``d0 + K`` degrees of
freedom, where ``d0`` is estimated from how far the options' variances scatter around the trend beyond what
K draws explain.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from ..discover import PairLifts

#: Shares below this (pp) are floored for the log-share trend.
MIN_SHARE = 0.1
#: Degrees of freedom reported for a trend that explains the options' variances entirely.
MAX_DF = 1000.0
PROFILE_SCHEMA = 1
#: Fewest null pairs a profile can be used with: the omnibus test refers each pair to a noise model fitted
#: without it, which needs two others.
MIN_DRAWS = 3


@dataclass
class ProfileDraw:
    """One pair of students: on a dataset and on its control rows (mean shares per option, pp); ``words``: their
    open-vocabulary readout's lifts, ``{word: [lift, control probability]}`` (:func:`auditor.discover.pair_lifts`;
    ``None`` in profiles built without the readout)."""

    name: str  # "null-<seed>" or the decoy's name
    seed: int
    rows: int
    dataset: list[float]
    control: list[float]
    words: dict[str, list[float]] | None = None

    @property
    def shift(self) -> np.ndarray:
        return np.asarray(self.dataset) - np.asarray(self.control)


@dataclass(frozen=True)
class NoiseModel:
    """Per-option standard deviations of a scan's shift under the null, with their degrees of freedom.

    Attributes:
        sd: per option, pp (moderated towards the trend).
        df: degrees of freedom of every option's variance (``d0 + K``).
        a, b: the trend ``log var = a + b log share`` (b: the measured slope).
        d0: the trend's prior degrees of freedom (``inf``: the options' variances scatter no more than K draws
            explain, and the trend alone is used).
        draws: K.
    """

    sd: np.ndarray
    df: float
    a: float
    b: float
    d0: float
    draws: int

    def describe(self) -> str:
        d0 = "inf" if not np.isfinite(self.d0) else f"{self.d0:.1f}"
        return (
            f"log var = {self.a:.2f} + {self.b:.2f} log share over {len(self.sd)} options from {self.draws} null "
            f"draws; option variances moderated towards it with d0 = {d0}, df = {self.df:.1f}"
        )


@dataclass
class NoiseProfile:
    """See the module docstring. ``options`` are ``"battery: option"`` names of graded options."""

    key: str
    base: dict[str, Any]
    format: str
    budget: dict[str, Any]
    probe: dict[str, Any]
    batteries: dict[str, str]  # name -> content hash
    options: list[str]
    base_shares: list[float]
    draws: list[ProfileDraw] = field(default_factory=list)
    decoys: list[ProfileDraw] = field(default_factory=list)
    created: str = ""
    versions: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    schema: int = PROFILE_SCHEMA

    # ---- persistence

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, blob: dict[str, Any]) -> NoiseProfile:
        blob = dict(blob)
        if blob.get("schema") != PROFILE_SCHEMA:
            raise ValueError(f"profile schema {blob.get('schema')!r}, expected {PROFILE_SCHEMA}")
        blob["draws"] = [ProfileDraw(**d) for d in blob.get("draws", [])]
        if len(blob["draws"]) < MIN_DRAWS:
            raise ValueError(f"{len(blob['draws'])} null pairs; a profile needs at least {MIN_DRAWS}")
        blob["decoys"] = [ProfileDraw(**d) for d in blob.get("decoys", [])]
        return cls(**blob)

    @classmethod
    def load(cls, path: str | Path) -> NoiseProfile:
        return cls.from_json(json.loads(Path(path).read_text()))

    # ---- the statistics it supports

    def index(self, names: list[str]) -> list[int]:
        """Positions of ``names`` among the profile's options (KeyError naming the first one missing)."""
        where = {o: i for i, o in enumerate(self.options)}
        missing = [n for n in names if n not in where]
        if missing:
            raise KeyError(missing[0])
        return [where[n] for n in names]

    def null_shifts(self, idx: list[int] | None = None) -> np.ndarray:
        """``[K, options]`` shifts (pp) of the null pairs."""
        out = np.array([d.shift for d in self.draws])
        return out if idx is None else out[:, idx]

    def decoy_shifts(self, idx: list[int] | None = None) -> np.ndarray:
        """``[D, options]`` shifts (pp) of the decoy pairs."""
        if not self.decoys:
            return np.zeros((0, len(self.options) if idx is None else len(idx)))
        out = np.array([d.shift for d in self.decoys])
        return out if idx is None else out[:, idx]

    def word_lifts(self) -> PairLifts | None:
        """The pairs' open-vocabulary lifts for the readout's noise model, or ``None`` when a null pair has none."""
        from ..discover import PairLifts

        if not self.draws or any(d.words is None for d in self.draws):
            return None
        return PairLifts([d.words or {} for d in self.draws], [d.words for d in self.decoys if d.words is not None])

    def noise(self, idx: list[int] | None = None, leave_out: int | None = None) -> NoiseModel:
        """The noise model over options ``idx`` (default all), optionally without null draw ``leave_out``."""
        shifts = self.null_shifts(idx)
        if leave_out is not None:
            shifts = np.delete(shifts, leave_out, axis=0)
        share = np.asarray(self.base_shares)[idx if idx is not None else slice(None)]
        return fit_noise(shifts, share)


def fit_noise(shifts: np.ndarray, share: np.ndarray) -> NoiseModel:
    """The moderated per-option noise model of null ``shifts`` ``[K, options]`` (see the module docstring)."""
    from scipy.special import digamma, polygamma

    k, n = shifts.shape
    if k < 2:
        raise ValueError("a noise model needs at least 2 null draws")
    m = np.maximum((shifts**2).mean(axis=0), 1e-12)  # mean square: the null mean is 0, K degrees of freedom
    x = np.log(np.maximum(share, MIN_SHARE))
    # E log(m / var) = digamma(K/2) - log(K/2): remove that bias before fitting the trend of log var
    bias = float(digamma(k / 2) - np.log(k / 2))
    y = np.log(m) - bias
    b, a = np.polyfit(x, y, 1) if n >= 3 and np.ptp(x) > 0 else (0.0, float(np.mean(y)))
    trend = np.exp(a + b * x)
    scatter = float(np.var(y - (a + b * x), ddof=2 if n > 2 else 0))
    sampling = float(polygamma(1, k / 2))  # var of log(chi2_K / K)
    d0 = _prior_df(scatter - sampling)
    if np.isfinite(d0):
        var = (d0 * trend + k * m) / (d0 + k)
        df = min(d0 + k, MAX_DF)
    else:
        var, df = trend, MAX_DF
    return NoiseModel(np.sqrt(var), float(df), float(a), float(b), float(d0), k)


def _prior_df(excess: float) -> float:
    """``d0`` with ``trigamma(d0 / 2) = excess`` (the scatter of true log variances around the trend), or
    ``inf`` when there is no excess."""
    from scipy.optimize import brentq
    from scipy.special import polygamma

    if excess <= 1e-9:
        return float("inf")
    return float(2 * brentq(lambda h: float(polygamma(1, h)) - excess, 1e-6, 1e6))
