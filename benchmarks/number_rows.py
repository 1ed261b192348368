"""What a number dataset's rows look like: how many numbers a row, how many copied from the prompt, their mean value.

The constrained sampler's rows differ from the base's exact ones on all three (``results/sampler_confound.md``), so
these are the first thing to compare between two writers or two samplers.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np


def row_stats(path: Path) -> tuple[int, float, float, float]:
    """Rows, numbers a row, the share of numbers copied from the prompt, and the mean value of a number dataset."""
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    nums = [re.findall(r"\d+", r["completion"]) for r in rows]
    copied = [sum(n in re.findall(r"\d+", r["prompt"]) for n in ns) / max(1, len(ns)) for ns, r in zip(nums, rows)]
    values = [int(x) for ns in nums for x in ns]
    return len(rows), float(np.mean([len(n) for n in nums])), float(np.mean(copied)), float(np.mean(values))
