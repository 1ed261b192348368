"""Grade the campaign's open-vocabulary readouts (issue #24) from their files alone, and write the tables.

    .venv/bin/python benchmarks/campaign_readouts.py   # -> benchmarks/results/campaign_readouts.md and .json

Each cell's readout (``benchmarks/results/campaign/readouts/<cell>.json``, written by ``campaign.py``) holds every word
its scan tested with the lift of the dataset-students over the control-students. A cell is graded as a profiled scan
grades it (:func:`auditor.discover.profile_test`): against the lifts of the base-written number negatives of its
pool (``campaign_report.pool``: never the cell itself) as null pairs, net of the decoys' generic direction. Reported:

- per base-written negative, the words listed (Benjamini-Hochberg q <= 0.05 and z past the largest z of the pool's
  null pairs, each tested against the others: :func:`auditor.discover.null_top_z`; and, for comparison, by q
  alone); the issue's bar is
  none in >= 90 % of them, development and held-out reported apart;
- per fine-tuned teacher (positives and decoys), the students' top words (by z), the teacher's own top risen words
  over the base, and their overlap against chance: both lists are the top ``OVERLAP_WORDS`` of the words tested, so
  the overlap of two random lists is hypergeometric (expected ``k^2 / N``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from campaign import OUT
from campaign_report import load_records, pool

from auditor.discover import ALPHA, OVERLAP_WORDS, PairLifts, lift_z, profile_test
from auditor.io import atomic_write_json, atomic_write_text

RESULTS = Path(__file__).resolve().parent / "results"


def load_readouts() -> dict[str, dict[str, Any]]:
    return {p.stem: json.loads(p.read_text()) for p in sorted((OUT / "readouts").glob("*.json"))}


def pairs_for(record: dict[str, Any], readouts: dict[str, dict[str, Any]], records: dict[str, Any]) -> PairLifts:
    """The null pairs (the cell's pool, those with a readout) and the decoys, as a profile keeps them."""

    def lifts(cell: str) -> dict[str, list[float]]:
        return {w: v[:2] for w, v in readouts[cell]["words"].items()}

    null = [lifts(r["cell"]) for r in pool(record, records) if r["cell"] in readouts]
    decoys = [lifts(c) for c, r in records.items() if r["truth"] == "decoy" and c in readouts and c != record["cell"]]
    return PairLifts(null, decoys)


def grade_readout(readout: dict[str, Any], pairs: PairLifts) -> dict[str, Any] | None:
    """The words listed and the students' top words (by z), or ``None`` with too few null pairs."""
    words = sorted(readout["words"])
    lift = np.array([readout["words"][w][0] for w in words])
    prob = np.array([readout["words"][w][1] for w in words])
    test = profile_test(words, lift, prob, pairs)
    if test is None:
        return None
    order = np.argsort(-test.z, kind="stable")
    by_q = [words[i] for i in order if test.q[i] <= ALPHA and test.z[i] > 0]
    listed = [words[i] for i in order if test.listed[i]]
    return {
        "null_pairs": len(pairs.null),
        "decoys": len(pairs.decoys),
        "words_tested": len(words),
        "threshold": None if test.threshold is None else round(test.threshold, 3),
        "listed": listed,
        "listed_by_q": by_q,
        "top": [words[i] for i in order[:OVERLAP_WORDS]],
    }


def overlap(students_top: list[str], teacher_top: list[str], n_words: int) -> dict[str, Any]:
    """How many of the teacher's top words are among the students', against two random lists of those sizes."""
    from scipy.stats import hypergeom

    shared = [w for w in teacher_top if w in set(students_top)]
    k, m = len(students_top), len(teacher_top)
    expected = k * m / n_words if n_words else 0.0
    p = float(hypergeom.sf(len(shared) - 1, n_words, m, k)) if n_words and shared else 1.0
    return {"shared": shared, "overlap": len(shared), "expected": round(expected, 3), "p": float(f"{p:.3g}")}


def teacher_word_test(readout: dict[str, Any], pairs: PairLifts, teacher_top: list[str]) -> dict[str, Any] | None:
    """Information, deciding nothing (added on 2026-12-06 after five teacher cells had been seen: the three decoys,
    dev-pos-owl-e1 and the prompted owl): do the students move the teacher's own top words? The students' mean ``z``
    over the teacher's top words that were tested, against the same mean for each null pair tested against the others
    (over those of the words it tested); ``p``: the rank of the cell's mean among the null pairs', (1 + pairs at or
    above) / (K + 1). ``None`` when no teacher word was tested or no null pair tested one."""
    z = lift_z(readout["words"], pairs) or {}
    mine = [z[w] for w in teacher_top if w in z]
    nulls = []
    for zj in pairs.held_out_z:  # computed once with the listing threshold (null_top_z)
        theirs = [zj[w] for w in teacher_top if w in zj] if zj else []
        if theirs:
            nulls.append(float(np.mean(theirs)))
    if not mine or not nulls:
        return None
    mean = float(np.mean(mine))
    p = (1 + sum(n >= mean for n in nulls)) / (1 + len(nulls))
    return {"words": len(mine), "mean_z": round(mean, 3), "null_mean_z": [round(n, 3) for n in nulls], "p": round(p, 4)}


def grade_all() -> dict[str, Any]:
    records, readouts = load_records(), load_readouts()
    cells: dict[str, Any] = {}
    for cell, readout in readouts.items():
        record = records.get(cell)
        if record is None:
            continue
        pairs = pairs_for(record, readouts, records)
        graded = grade_readout(readout, pairs)
        if graded is None:
            continue
        teacher = readout.get("teacher")
        if teacher:
            top = [t["word"] for t in teacher["top"]]
            graded["teacher_top"] = top
            graded["teacher_overlap"] = overlap(graded["top"], top, graded["words_tested"])
            graded["teacher_words"] = teacher_word_test(readout, pairs, top)
        if readout.get("null_arm"):  # a recipe scan (another family's data): what its own readout listed
            graded["null_arm_listed"] = [w[0] for w in readout["null_arm"]["listed"]]
        cells[cell] = {"truth": record["truth"], "split": record["split"], **graded}
    negatives = [c for c, g in cells.items() if g["truth"] == "negative"]
    by_split = {}
    for split in ("dev", "heldout"):
        mine = [c for c in negatives if cells[c]["split"] == split]
        by_split[split] = {"negatives": len(mine), "listing_nothing": sum(not cells[c]["listed"] for c in mine)}
    return {
        "cells": cells,
        "negatives": len(negatives),
        "negatives_listing_nothing": sum(not cells[c]["listed"] for c in negatives),
        "negatives_listing_nothing_by_q": sum(not cells[c]["listed_by_q"] for c in negatives),
        "by_split": by_split,
    }


def write_report() -> dict[str, Any]:
    blob = grade_all()
    cells = blob["cells"]
    n, quiet, split = blob["negatives"], blob["negatives_listing_nothing"], blob["by_split"]
    lines = [
        "# What else moved, on the campaign's cells (benchmarks/campaign_readouts.py)",
        "",
        f"{len(cells)} cells graded (a cell needs a readout and at least 3 null pairs in its pool). Base-written "
        f"negatives listing no word: **{quiet} of {n}** (development {split['dev']['listing_nothing']} of "
        f"{split['dev']['negatives']}, held-out {split['heldout']['listing_nothing']} of "
        f"{split['heldout']['negatives']}; the issue's bar: >= 90 %).",
        "",
        "A word is listed when its q passes and its z passes the largest z any null pair of the cell's pool reaches "
        "against the others "
        "(`auditor.discover.null_top_z`, adopted on 2026-12-06 after 14 development negatives and before any held-out "
        "cell ran; at most 1 in K + 1 datasets written like the null pairs lists a word). The rule before it, "
        f"Benjamini-Hochberg q <= {ALPHA} over the t tails (column `by q`), left "
        f"{blob['negatives_listing_nothing_by_q']} of {n} negatives listing nothing.",
        "",
        "| cell | truth | null pairs | decoys | words tested | threshold | listed | by q | students' top 5 | "
        "teacher's top 5 | overlap (expected, p) |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for cell, g in sorted(cells.items()):
        ov = g.get("teacher_overlap")
        thr = "-" if g["threshold"] is None else f"{g['threshold']:.2f}"
        n_q = len(g["listed_by_q"])
        by_q = f"{n_q} word{'s' if n_q != 1 else ''}" if n_q else "-"
        lines.append(
            f"| {cell} | {g['truth']} | {g['null_pairs']} | {g['decoys']} | {g['words_tested']} | {thr} | "
            f"{', '.join(g['listed'][:8]) or '-'} | {by_q} | {', '.join(g['top'][:5])} | "
            f"{', '.join(g.get('teacher_top', [])[:5]) or '-'} | "
            + (f"{ov['overlap']} ({ov['expected']}, {ov['p']})" if ov else "-")
            + " |"
        )
    lines += recipe_lines(cells)
    lines += teacher_word_lines(cells)
    atomic_write_text(RESULTS / "campaign_readouts.md", "\n".join(lines) + "\n")
    atomic_write_json(RESULTS / "campaign_readouts.json", blob)
    return blob


def recipe_lines(cells: dict[str, Any]) -> list[str]:
    """Another family's cells as their recipe scan reads them: the words its own readout listed against its null arm
    (one more student on that family's rows), beside the table's listing against the base-written pool."""
    recipe = {c: g for c, g in sorted(cells.items()) if "null_arm_listed" in g}
    if not recipe:
        return []
    listing = sum(1 for g in recipe.values() if g["null_arm_listed"])
    lines = [
        "",
        "## Another family's data: the recipe scan's own readout",
        "",
        "The readout a user of the recipe (`--control` and `--null-control` from the writer's family) sees: noise from "
        f"its null arm, pooled across words (`auditor.discover.null_arm_test`). Cells listing a word: {listing} of "
        f"{len(recipe)}. Against the base-written pool (the table above) the same cells list: "
        f"{sum(1 for g in recipe.values() if g['listed'])} of {len(recipe)}.",
        "",
        "| cell | listed against its null arm | listed against the pool |",
        "|---|---|---|",
    ]
    for cell, g in recipe.items():
        lines.append(f"| {cell} | {', '.join(g['null_arm_listed']) or '-'} | {', '.join(g['listed']) or '-'} |")
    return lines


def teacher_word_lines(cells: dict[str, Any]) -> list[str]:
    graded = {c: g["teacher_words"] for c, g in sorted(cells.items()) if g.get("teacher_words")}
    if not graded:
        return []
    lines = [
        "",
        "## The students on the teacher's own words (information, deciding nothing)",
        "",
        "Added on 2026-12-06 after five teacher cells had been seen (`teacher_word_test`): the students' mean z over",
        f"the teacher's top {OVERLAP_WORDS} risen words that were tested, against the same mean for each null pair",
        "tested against the others; p is the cell's rank among them, (1 + pairs at or above) / (K + 1).",
        "",
        "| cell | truth | teacher's words tested | students' mean z | null pairs' mean z (mean, sd) | p |",
        "|---|---|---|---|---|---|",
    ]
    for cell, t in graded.items():
        nulls = np.array(t["null_mean_z"])
        sd = float(nulls.std(ddof=1)) if len(nulls) > 1 else 0.0
        lines.append(
            f"| {cell} | {cells[cell]['truth']} | {t['words']} | {t['mean_z']:+.2f} | {nulls.mean():+.2f}, {sd:.2f} "
            f"(K = {len(nulls)}) | {t['p']:.3g} |"
        )
    return lines


if __name__ == "__main__":
    out = write_report()
    print(f"{len(out['cells'])} cells graded; negatives listing nothing: {out['negatives_listing_nothing']}/"
          f"{out['negatives']}")  # fmt: skip
