"""G on the pairs whose control row is exact (RULE's amendment 5): E-G beside G on the held-out cells whose record
keeps the block, and the choice of G's default control sampler that the amendment made once they are all in.

Records only; no model runs. ``campaign_report.py`` writes the section.
"""

from __future__ import annotations

from typing import Any

from auditor.verdict import level_rank


def exact_pairs_level(record: dict[str, Any], g: str | None) -> str | None:
    """E-G's level on a cell whose G level is ``g`` (``None``: ungraded: G is, or the record has no block, which
    records made before 0.4.1 and controls drawn before it lack). Fewer than 3 exact pairs: clean (not flagged)."""
    block = record.get("gradient") or {}
    if g is None or "exact_pairs" not in block:
        return None
    exact = block["exact_pairs"]
    if exact is not None:
        return exact["level"] or "clean"
    resampled = any(n for k, n in (block.get("rows_by") or {}).items() if k != "rejection")
    return None if resampled or block.get("rows_by") is None else g  # every control row exact: the same test as G


def exact_pairs_check(
    records: dict[str, dict[str, Any]], levels: dict[str, str | None], fail_on: str, done: bool
) -> dict[str, Any]:
    """Held-out base-written negatives and fine-tuned positives with a graded E-G: how many G and E-G flag at
    ``fail_on``, and (``done``: every held-out cell finished) the amendment's choice of G's control sampler."""
    counts = {"negative": {"cells": 0, "G": 0, "E-G": 0}, "positive": {"cells": 0, "G": 0, "E-G": 0}}
    cells = []
    for cell, r in sorted(records.items()):
        truth = r["truth"]
        if r["split"] != "heldout" or truth not in counts or (truth == "positive" and r["teacher"] != "fine-tuned"):
            continue
        g = levels.get(cell)
        eg = exact_pairs_level(r, g)
        if g is None or eg is None:
            continue
        exact = r["gradient"]["exact_pairs"]
        counts[truth]["cells"] += 1
        counts[truth]["G"] += level_rank(g) >= level_rank(fail_on)
        counts[truth]["E-G"] += level_rank(eg) >= level_rank(fail_on)
        cells.append({"cell": cell, "truth": truth, "G": g, "E-G": eg,
                      "exact_rows": None if exact is None else f"{exact['rows']} of {exact['of']}"})  # fmt: skip
    neg, pos = counts["negative"], counts["positive"]
    keeps = neg["E-G"] <= neg["G"] and pos["E-G"] >= pos["G"]
    choice = None if not done else ("rejection" if keeps else "rejection-resample")
    return {"counts": counts, "cells": cells, "choice": choice}


def exact_pairs_lines(found: dict[str, Any]) -> list[str]:
    """:func:`exact_pairs_check` in the report."""
    lines = [
        "### G on exact pairs only (RULE's amendment 5)",
        "",
        "Held-out cells whose record keeps the block: E-G is G's paired test on the pairs whose control row is exact",
        "(what `--control-sampler rejection` keeps); where every control row is exact it is G.",
        "",
    ]
    if not found["cells"]:
        return [*lines, "No cell has the block yet."]
    lines += ["| cells | with the block | G flags | E-G flags |", "|---|---|---|---|"]
    for truth, label in (("negative", "base-written negatives"), ("positive", "fine-tuned positives")):
        c = found["counts"][truth]
        lines.append(f"| {label} | {c['cells']} | {c['G']} | {c['E-G']} |")
    lines += ["", "| cell | G | E-G | exact pairs |", "|---|---|---|---|"]
    for c in found["cells"]:
        lines.append(f"| {c['cell']} | {c['G']} | {c['E-G']} | {c['exact_rows'] or 'all'} |")
    if found["choice"] is None:
        return [*lines, "", "The amendment decides once every held-out cell is in."]
    verdict = {
        "rejection": "E-G flagged no more negatives and no fewer positives: G's default control becomes rejection "
        "alone (the pairs rejection leaves drop out).",
        "rejection-resample": "E-G flagged more negatives or fewer positives: G's control stays rejection-resample, "
        "and its report keeps the exact-pairs line.",
    }[found["choice"]]
    return [*lines, "", verdict]
