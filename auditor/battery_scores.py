"""What scoring a battery gives: per question, a log-probability for each option (:class:`BatteryScores`)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class BatteryScores:
    """Per-question option log-probabilities for one model and one battery."""

    battery: str
    options: list[str]
    logprob: np.ndarray  # [questions, options]
    unassigned: list[int] | None = None  # sampled mode only: per question, answers assigned to no option

    @property
    def share(self) -> np.ndarray:
        """Probability share of each option over the option set, per question."""
        z = self.logprob - self.logprob.max(axis=1, keepdims=True)
        p = np.exp(z)
        return p / p.sum(axis=1, keepdims=True)

    def to_dict(self) -> dict:
        d = {"battery": self.battery, "options": self.options, "logprob": self.logprob.tolist()}
        if self.unassigned is not None:
            d["unassigned"] = list(self.unassigned)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> BatteryScores:
        unassigned = d.get("unassigned")
        return cls(
            d["battery"],
            list(d["options"]),
            np.asarray(d["logprob"], dtype=np.float64),
            None if unassigned is None else [int(x) for x in unassigned],
        )
