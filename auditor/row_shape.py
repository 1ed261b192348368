"""How the data's rows differ from their control rows: the completion format's row features, prompt by prompt.

A generated control row answers the same prompt as its data row, so each feature (a number list's count, the share
of its numbers the prompt shows, its mean value; a completion's words and lines:
:meth:`CompletionFormat.row_features`) is compared on the pairs' differences: Wilcoxon signed-rank (Pratt's
treatment of zero differences), two-sided, and Benjamini-Hochberg over the format's features. Text rows (language
modelling) are left out: their control is the row's first words continued and cut at a budget. A flag
says *that* training on the rows changes the model; this says *how* the rows are unlike the control's (on the
campaign's data, how far the gradient method's push went followed how few numbers the rows held:
``benchmarks/results/campaign.md``). A count-matched control holds each row's own count by construction, so there
that feature differs by nothing.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .completion_formats import get_format
from .data import Example
from .stats import bh_q

#: A feature differs when its Benjamini-Hochberg q is at most this.
DIFFERS_Q = 0.05


@dataclass(frozen=True)
class FeatureDifference:
    """One row feature, data against control.

    Attributes:
        feature: its name (``numbers a row``).
        data, control: its mean over the pairs where both rows have it.
        pairs: how many pairs have it.
        p: Wilcoxon signed-rank, two-sided, over the pairs' differences (1 when no pair differs).
        q: Benjamini-Hochberg over the format's features.
    """

    feature: str
    data: float
    control: float
    pairs: int
    p: float
    q: float

    @property
    def differs(self) -> bool:
        return self.q <= DIFFERS_Q

    def line(self) -> str:
        """``numbers a row 2.53 against 3.01 (q 0.0012)``."""
        return f"{self.feature} {self.data:.3g} against {self.control:.3g} (q {self.q:.2g})"

    def to_dict(self) -> dict[str, Any]:
        return {
            "feature": self.feature,
            "data": round(self.data, 4),
            "control": round(self.control, 4),
            "pairs": self.pairs,
            "p": float(f"{self.p:.4g}"),
            "q": float(f"{self.q:.4g}"),
            "differs": self.differs,
        }


@dataclass(frozen=True)
class RowShape:
    """Every row feature of the dataset's format, data against control (:func:`compare_rows`)."""

    format: str
    features: tuple[FeatureDifference, ...]

    def differing(self) -> list[FeatureDifference]:
        """The features that differ (q <= :data:`DIFFERS_Q`), smallest q first."""
        return sorted((f for f in self.features if f.differs), key=lambda f: (f.q, f.feature))

    def summary(self) -> str | None:
        """``Rows unlike the control's: numbers a row 2.53 against 3.01 (q 0.0012); ...`` (``None``: none
        differs)."""
        differing = self.differing()
        return "Rows unlike the control's: " + "; ".join(f.line() for f in differing) if differing else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": self.format,
            "test": "Wilcoxon signed-rank over the pairs, Benjamini-Hochberg over the features",
            "differs_at_q": DIFFERS_Q,
            "features": [f.to_dict() for f in self.features],
        }


def signed_rank_p(differences: np.ndarray) -> float:
    """Two-sided Wilcoxon signed-rank p of paired ``differences`` (1 when none differs from zero)."""
    from scipy.stats import wilcoxon

    if not np.any(differences != 0):
        return 1.0
    # Pratt's treatment of zeros (ranked, then dropped): the usual choice for integer features with many ties
    return float(wilcoxon(differences, zero_method="pratt").pvalue)


def compare_rows(format_name: str, data: Sequence[Example], control: Sequence[Example]) -> RowShape:
    """Each feature of ``format_name``'s rows, ``data[i]`` against ``control[i]`` (the control row drawn for, or
    paired with, the same row); text rows (language modelling) are left out."""
    fmt = get_format(format_name)
    pairs = [
        (fmt.row_features(d.user_text, d.completion), fmt.row_features(c.user_text, c.completion))
        for d, c in zip(data, control, strict=True)
        if not d.is_text  # a text row's control is its first words continued and cut at a budget: not comparable
    ]
    names = list(dict.fromkeys(name for a, b in pairs for name in (*a, *b)))
    found: list[tuple[str, np.ndarray, np.ndarray]] = []
    for name in names:
        both = [(a[name], b[name]) for a, b in pairs if not _missing(a.get(name)) and not _missing(b.get(name))]
        if both:
            values = np.array(both, dtype=float)
            found.append((name, values[:, 0], values[:, 1]))
    ps = [signed_rank_p(x - y) for _, x, y in found]
    return RowShape(
        format=format_name,
        features=tuple(
            FeatureDifference(name, float(x.mean()), float(y.mean()), len(x), p, q)
            for (name, x, y), p, q in zip(found, ps, bh_q(ps), strict=True)
        ),
    )


def _missing(value: float | None) -> bool:
    return value is None or math.isnan(value)
