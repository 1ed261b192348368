"""What the campaign's flags point at (information, deciding nothing; ``campaign_report.py`` writes these sections).

- G's direction: the pushes of the positives G flagged, how alike they are, how far every cell G grades went the same
  way, and how that follows the number of numbers a row of the data (:func:`g_direction`, :func:`length_lines`);
- G's flags beside the rows' count against G's own control, pair by pair (:func:`g_and_row_count`; records that hold
  the scans' ``rows`` block), and how far each method's control is from the base's own rows (:func:`control_fidelity`);
- toward the trait: each fine-tuned positive's students' shift on its intended option beside that option's shift in
  every other fine-tuned teacher's cell and in the base-written negatives (:func:`toward_the_trait`).

Records only (and the number data files for the rows' lengths); no model runs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from campaign import CELLS, OUT
from number_rows import row_stats

from auditor.verdict import level_rank

RESULTS = Path(__file__).resolve().parent / "results"


def g_direction(records: dict[str, dict[str, Any]], levels: dict[str, str | None], fail_on: str) -> dict[str, Any]:
    """Whether G's flags on fine-tuned positives carry their teacher's trait, from G's level on each cell (``levels``,
    ``None``: ungraded) and its pushes, a flag being a level at ``fail_on`` or above: the
    flagged positives' pushes (dataset minus control, one value per option), their pairwise cosines, and each cell G
    grades against the mean push of the *other* flagged positives: its cosine and its length along that direction. A
    direction that teachers of different traits share, and that base-written negatives also move along, says "unlike
    the base's own rows", not which trait."""
    pushes = {c: r["gradient"]["push"] for c, r in records.items() if levels[c] is not None and r["gradient"]["push"]}
    if not pushes:
        return {"flagged": [], "pairs": {}, "cells": {}}
    options = sorted(set.intersection(*(set(p) for p in pushes.values())))
    vectors = {c: np.array([p[o] for o in options]) for c, p in pushes.items()}
    flagged = sorted(
        c for c in pushes
        if records[c]["truth"] == "positive" and level_rank(levels[c]) >= level_rank(fail_on)
    )  # fmt: skip

    def cosine(a: np.ndarray, b: np.ndarray) -> float:
        return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))

    pairs = {
        f"{a} ~ {b}": round(cosine(vectors[a], vectors[b]), 3) for i, a in enumerate(flagged) for b in flagged[i + 1 :]
    }
    cells = {}
    for c, v in vectors.items():
        others = [vectors[f] for f in flagged if f != c]
        if not others:
            continue
        mean = np.mean(others, axis=0)
        top = sorted(range(len(options)), key=lambda k: -abs(v[k]))[:3]
        path = number_data(records[c])
        cells[c] = {
            "truth": records[c]["truth"],
            "trait": records[c].get("trait", "none"),
            "style": records[c].get("style") if records[c]["format"] == "numbers" else None,
            "level": levels[c],
            "cosine": round(cosine(v, mean), 3),
            "along": round(float(v @ mean / np.linalg.norm(mean)), 2),
            "largest": {options[k]: round(float(v[k]), 2) for k in top},
            "numbers_a_row": None if path is None else round(row_stats(path)[1], 2),
        }
    return {"flagged": flagged, "pairs": pairs, "cells": cells}


def number_data(record: dict[str, Any]) -> Path | None:
    """A number cell's data file where the results keep it (the development negatives in the paper's style are
    benchmarks/exact_control.py's datasets, ``neg-exact-K`` for prompt seed 300 + K); ``None`` when absent."""
    if record["format"] != "numbers":
        return None
    own = OUT / "data" / f"{record['cell']}.jsonl"
    if own.exists():
        return own
    cell = next((c for c in CELLS if c.id == record["cell"]), None)
    if cell is None or (cell.split, cell.truth, cell.style) != ("dev", "negative", "continue"):
        return None
    path = RESULTS / "exact_control" / "data" / f"neg-exact-{cell.seed - 300}.jsonl"
    return path if path.exists() else None


def g_direction_lines(found: dict[str, Any]) -> list[str]:
    """:func:`g_direction` in the report."""
    lines = ["## What G's flags point at (information, deciding nothing)", ""]
    flagged, cells = found["flagged"], found["cells"]
    if len(flagged) < 2:
        return [*lines, f"G has flagged {len(flagged)} fine-tuned positive(s): nothing to compare yet."]
    traits = {found["cells"][c]["trait"] for c in flagged}
    lines += [
        f"G flagged {len(flagged)} fine-tuned positives of {len(traits)} traits ({', '.join(flagged)}). Cosines of "
        "their pushes (dataset minus control, over every graded option): "
        + ", ".join(f"{k} {v:+.2f}" for k, v in found["pairs"].items())
        + ". Each cell G grades against the mean push of the other flagged positives (`along`: the push's length "
        "in that direction, in push units):",
        "",
        "| cell | truth | G | cosine | along | largest pushes | numbers a row |",
        "|---|---|---|---|---|---|---|",
    ]
    for c, v in sorted(cells.items(), key=lambda cv: (cv[1]["truth"], -cv[1]["along"])):
        largest = ", ".join(f"{o.split(': ')[-1]} {d:+.2f}" for o, d in v["largest"].items())
        per_row = "-" if v["numbers_a_row"] is None else f"{v['numbers_a_row']:.2f}"
        lines.append(
            f"| {c} | {v['truth']} | {v['level']} | {v['cosine']:+.2f} | {v['along']:+.2f} | {largest} | {per_row} |"
        )
    negatives = sorted((v["along"], c) for c, v in cells.items() if v["truth"] == "negative")
    along = [cells[c]["along"] for c in flagged]
    if negatives:
        lines += [
            "",
            f"Along it, the flagged positives reach {min(along):+.2f} to {max(along):+.2f}; the farthest of "
            f"{len(negatives)} base-written negatives, {negatives[-1][1]}, {negatives[-1][0]:+.2f} "
            f"(G {cells[negatives[-1][1]]['level']}).",
        ]
    return lines + length_lines(cells, flagged)


def length_lines(cells: dict[str, dict[str, Any]], flagged: list[str]) -> list[str]:
    """How far along G's direction a paper-style number cell went against how many numbers its rows hold."""
    from scipy.stats import spearmanr

    paper = {c: v for c, v in cells.items() if v["style"] == "continue" and v["numbers_a_row"] is not None}
    if len(paper) < 4:
        return []
    per_row = np.array([v["numbers_a_row"] for v in paper.values()])
    along = np.array([v["along"] for v in paper.values()])
    rho, p = spearmanr(per_row, along)
    shortest = sorted(paper, key=lambda c: paper[c]["numbers_a_row"])[: len(flagged)]
    fewest = ", ".join(f"{paper[c]['numbers_a_row']:.2f}" for c in shortest)
    return [
        "",
        f"Paper-style number cells with their data at hand ({len(paper)}): numbers a row against `along`, Pearson r "
        f"{np.corrcoef(per_row, along)[0, 1]:+.2f}, Spearman {rho:+.2f} (p {p:.2g}). The {len(shortest)} with the "
        f"fewest numbers a row ({fewest}) are "
        + ("the ones G flagged." if set(shortest) == set(flagged) else f"{', '.join(shortest)}; G flagged "
           f"{', '.join(flagged)}."),
    ]  # fmt: skip


def g_and_row_count(records: dict[str, dict[str, Any]], levels: dict[str, str | None], fail_on: str) -> dict[str, Any]:
    """G's level on each cell G grades whose record holds the rows block (``auditor.row_shape`` against G's own
    control; records written since 6b56c98, or given one by ``campaign.py rows``) beside its ``numbers a row``: the
    data's mean, the control's, q, and whether the data holds fewer at q <= 0.05; the 2 x 2 of G flagged (at
    ``fail_on``) against fewer, and Fisher's exact p (one-sided: flags go with fewer)."""
    from scipy.stats import fisher_exact

    cells = {}
    for c, r in sorted(records.items()):
        block = (r.get("rows") or {}).get("gradient")
        count = {f["feature"]: f for f in (block or {}).get("features", [])}.get("numbers a row")
        if count is None or levels.get(c) is None:
            continue
        cells[c] = {
            "truth": r["truth"],
            "level": levels[c],
            "flagged": level_rank(levels[c]) >= level_rank(fail_on),
            "data": count["data"],
            "control": count["control"],
            "q": count["q"],
            "fewer": bool(count["differs"] and count["data"] < count["control"]),
        }
    table = [[sum(v["flagged"] == f and v["fewer"] == w for v in cells.values()) for w in (True, False)]
             for f in (True, False)]  # fmt: skip
    p = float(fisher_exact(table, alternative="greater").pvalue) if cells else None
    return {"cells": cells, "table": table, "p": p}


def g_and_row_count_lines(found: dict[str, Any]) -> list[str]:
    """:func:`g_and_row_count` in the report, with the prediction it checks (committed before any held-out cell)."""
    lines = [
        "### G's flags and the rows' count, row by row (information, deciding nothing)",
        "",
        "Registered on 2026-12-07 before any held-out cell ran: if G's flags follow how many numbers the rows",
        "hold, G flags (at `medium`) the cells whose data holds fewer numbers a row than G's own control for the same",
        "prompts (Wilcoxon signed-rank, BH q <= 0.05, `auditor.row_shape`) and not the others. Cells whose",
        "record holds the comparison (records written since 6b56c98, or given it by `campaign.py rows CELL`):",
        "",
    ]
    if not found["cells"]:
        return [*lines, "None yet."]
    lines += ["| cell | truth | G | numbers a row: data | control | q | fewer |", "|---|---|---|---|---|---|---|"]
    for c, v in found["cells"].items():
        lines.append(f"| {c} | {v['truth']} | {v['level']} | {v['data']:.2f} | {v['control']:.2f} | {v['q']:.2g} | "
                     f"{'yes' if v['fewer'] else 'no'} |")  # fmt: skip
    (a, b), (c, d) = found["table"]
    return lines + [
        "",
        f"G flagged {a} of {a + c} cells with fewer numbers a row and {b} of {b + d} others; Fisher's exact p "
        f"(one-sided) {found['p']:.2g}.",
    ]


def control_fidelity(records: dict[str, dict[str, Any]]) -> dict[str, dict[str, dict[str, Any]]]:
    """On the base-written negatives whose record holds the rows block: per method's control and row feature, in
    how many cells the data (the base's own rows) differs from that control (q <= 0.05), and the median of data
    minus control. A control that is the base's own distribution differs in about 5 % of cells."""
    out: dict[str, dict[str, Any]] = {}
    for r in records.values():
        if r["truth"] != "negative":
            continue
        for method, block in (r.get("rows") or {}).items():
            for f in (block or {}).get("features", []):
                cell = out.setdefault(method, {}).setdefault(f["feature"], {"cells": 0, "differ": 0, "gaps": []})
                cell["cells"] += 1
                cell["differ"] += bool(f["differs"])
                cell["gaps"].append(f["data"] - f["control"])
    return {
        m: {f: {"cells": v["cells"], "differ": v["differ"], "median_gap": round(float(np.median(v["gaps"])), 3)}
            for f, v in feats.items()}
        for m, feats in out.items()
    }  # fmt: skip


def control_fidelity_lines(found: dict[str, dict[str, dict[str, Any]]]) -> list[str]:
    """:func:`control_fidelity` in the report."""
    lines = [
        "### Each method's control against the base's own rows (information, deciding nothing)",
        "",
        "Base-written negatives whose record holds the rows block: in how many the data differs from the control on",
        "a row feature (BH q <= 0.05 over the features) and the median of data minus control. The probe's control is",
        "count-matched and importance-resampled (M = 4), the gradient method's exact any-count rejection.",
        "",
    ]
    if not found:
        return [*lines, "None yet."]
    lines += ["| control | feature | cells differing | median data - control |", "|---|---|---|---|"]
    for method, feats in sorted(found.items()):
        for feature, v in feats.items():
            lines.append(f"| {method} | {feature} | {v['differ']} of {v['cells']} | {v['median_gap']:+.3g} |")
    return lines


def toward_the_trait(records: dict[str, dict[str, Any]], nulls: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Whether the students moved toward the teacher's own trait (information, deciding nothing): for each fine-tuned
    positive, the students' shift (dataset- minus control-student, pp) on its intended option, beside the same
    option's shift in the cells of every other fine-tuned teacher (other intended options, and the decoys) and in
    the base-written number negatives. A shift the other teachers' cells share is the data of any fine-tuned teacher,
    not this trait; ``p``: the share of own-or-other cells at or above this one (exchangeable when no teacher moves
    its own trait more than the others do)."""
    tuned = [r for r in records.values() if r.get("teacher") == "fine-tuned"]
    out = []
    for r in sorted(tuned, key=lambda r: r["cell"]):
        for option in r.get("intended") or []:
            others = [shift_on(o, option) for o in tuned if option not in (o.get("intended") or [])]
            own = shift_on(r, option)
            out.append({
                "cell": r["cell"], "option": option, "own": round(own, 3),
                "others": [round(x, 3) for x in others],
                "p": round((1 + sum(x >= own for x in others)) / (1 + len(others)), 3),
                "negatives": [round(shift_on(n, option), 3) for n in nulls],
            })  # fmt: skip
    return out


def shift_on(record: dict[str, Any], option: str) -> float:
    """The students' shift on ``option`` in a cell's record (dataset- minus control-student, pp)."""
    k = record["options"].index(option)
    return record["dataset"][k] - record["control_share"][k]


def toward_lines(rows: list[dict[str, Any]]) -> list[str]:
    """:func:`toward_the_trait` in the report."""
    lines = [
        "## Toward the teacher's trait? (information, deciding nothing)",
        "",
        "The students' shift on each fine-tuned teacher's intended option (dataset- minus control-student, pp),",
        "beside that option's shift in every other fine-tuned teacher's cell (other traits and the decoys) and in the",
        "base-written number negatives: only the part above the other teachers' is this trait's own. `p`: the share",
        "of this and the other teachers' cells at or above this one.",
        "",
        "| cell | option | students' shift | other teachers' cells: mean [min, max] (n) | p | base-written negatives: "
        "[min, max] (n) |",
        "|---|---|---|---|---|---|",
    ]

    def spread(xs: list[float], mean: bool = True) -> str:
        if not xs:
            return "-"
        return (f"{np.mean(xs):+.2f} " if mean else "") + f"[{min(xs):+.2f}, {max(xs):+.2f}] ({len(xs)})"

    for row in rows:
        lines.append(
            f"| {row['cell']} | {row['option']} | {row['own']:+.2f} | {spread(row['others'])} | {row['p']:.2f} | "
            f"{spread(row['negatives'], mean=False)} |"
        )
    tops = [row for row in rows if row["others"]]
    chance = sum(1 / (1 + len(row["others"])) for row in tops)
    above = sum(row["own"] > max(row["others"]) for row in tops)
    lines += ["", f"Above every other teacher's cell: {above} of {len(tops)} (by chance alone about {chance:.1f})."]
    return lines
