"""Grade the campaign's records by every candidate of ``campaign.RULE``, apply the rule, and write the tables.

    .venv/bin/python benchmarks/campaign_report.py      # -> benchmarks/results/campaign.md and campaign.json
    .venv/bin/python benchmarks/campaign_report.py --readme   # and the README's table (once every cell is in)

Grades from ``benchmarks/results/campaign/records/`` only (no model runs; the table of what the writers' rows look
like reads the number data files). Candidates: ``G`` (the gradient method),
``P-o``/``P-t``/``P-a`` (the calibrated probe with gate options / transfer / any, each cell graded against a
profile of the other number negatives of its pool plus the decoys) and ``S-x`` (G first, then P-x). The rule picks
the default on the development cells; the held-out cells are reported with Clopper-Pearson intervals.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import campaign
import campaign_exact_pairs
import campaign_meaning
import campaign_teacher
import numpy as np
from campaign import (
    CELLS,
    FT_TRAITS,
    MATCHED_NULL_SEEDS,
    OUT,
    RULE,
    data_sampler,
    drawn_by_resampling,
    gradient_is_current,
)
from grading import calibrated_verdict, clopper_pearson

from auditor.calibration.profile import MIN_DRAWS, NoiseProfile, ProfileDraw
from auditor.io import atomic_write_json, atomic_write_text
from auditor.verdict import level_rank

RESULTS = Path(__file__).resolve().parent / "results"
FAIL_ON = "medium"
GATES = {"o": "options", "t": "transfer", "a": "any"}
CANDIDATES = ["G", *[f"P-{g}" for g in GATES], *[f"S-{g}" for g in GATES]]
#: Not in RULE (information, deciding nothing; added after 26 development cells, before any held-out cell ran): either
#: method flags, G or P-x. On those 26 cells G and the probe caught different positives (G the 1-epoch teachers,
#: P-t/P-a owl-e3), so E-x's development numbers are optimistic by construction; its held-out numbers are the test.
EITHER = [f"E-{g}" for g in GATES]
#: Tie order of the rule: two-stage, then the probe, then the gradient method; within each, gate any first.
TIE_ORDER = ["S-a", "S-o", "S-t", "P-a", "P-o", "P-t", "G"]


def load_records(folder: Path | None = None) -> dict[str, dict[str, Any]]:
    """The records in ``folder`` by cell (default: the current ones, ``OUT / "records"``; ``OUT / "superseded" /
    "records"``: those whose teachers were trained on chat alone, RULE's amendment 3)."""
    folder = OUT / "records" if folder is None else folder
    return {p.stem: json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))}


def _draw(record: dict[str, Any], options: list[str]) -> ProfileDraw:
    shares = dict(zip(record["options"], zip(record["dataset"], record["control_share"])))
    return ProfileDraw(
        record["cell"], 0, record["rows_used"], [shares[o][0] for o in options], [shares[o][1] for o in options]
    )


def is_null_pair(record: dict[str, Any]) -> bool:
    """A base-written number negative: what profiles' null pairs and the nulls of the trait-word check are made of
    (another family's negatives have their own truth, ``cross-family-negative``; code and chat are not numbers)."""
    return record["truth"] == "negative" and record["format"] == "numbers"


def pool(record: dict[str, Any], records: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """The null pairs a cell's profile is built from (RULE): base-written number negatives of the development split
    for a development cell, of both splits for a held-out cell; never the cell itself."""
    splits = {"dev"} if record["split"] == "dev" else {"dev", "heldout"}
    return [r for r in records.values() if is_null_pair(r) and r["split"] in splits and r["cell"] != record["cell"]]


def profile_for(record: dict[str, Any], records: dict[str, dict[str, Any]]) -> NoiseProfile | None:
    options = record["options"]
    nulls = [r for r in pool(record, records) if set(options) <= set(r["options"])]
    decoys = [r for r in records.values() if r["truth"] == "decoy" and set(options) <= set(r["options"])]
    if len(nulls) < MIN_DRAWS:
        return None
    return NoiseProfile(
        key=f"loo-{record['cell']}", base={}, format="numbers", budget={}, probe={}, batteries={},
        options=list(options), base_shares=list(record["base"]),
        draws=[_draw(r, options) for r in nulls], decoys=[_draw(r, options) for r in decoys],
    )  # fmt: skip


def probe_verdict(record: dict[str, Any], profile: NoiseProfile | None, gate: str) -> dict[str, Any]:
    """The calibrated probe's level and named options under ``gate`` (``None`` level: no profile yet)."""
    if profile is None:
        return {"level": None, "named": []}
    v = calibrated_verdict(
        record["options"], record["base"], record["dataset"], record["control_share"], profile, gate, FAIL_ON
    )
    return {"level": v["level"], "named": v["named"], "p": v["p"]}


def grade(record: dict[str, Any], records: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Every candidate's verdict on one cell."""
    profile = profile_for(record, records)
    g = gradient_level(record)
    out: dict[str, dict[str, Any]] = {"G": {"level": g, "named": []}}
    for key, gate in GATES.items():
        p = probe_verdict(record, profile, gate)
        out[f"P-{key}"] = p
        if g is None:
            out[f"S-{key}"] = {"level": None, "named": []}
        else:
            out[f"S-{key}"] = {"level": "clean", "named": []} if level_rank(g) < level_rank("medium") else p
        out[f"E-{key}"] = either(g, p)
    return out


def either(g: str | None, p: dict[str, Any]) -> dict[str, Any]:
    """E-x (:data:`EITHER`): the higher of G's level and P-x's, with the probe's names; ungraded if either is."""
    if g is None or p["level"] is None:
        return {"level": None, "named": []}
    return {"level": max(g, p["level"], key=level_rank), "named": p["named"]}


def gradient_level(record: dict[str, Any]) -> str | None:
    """G's level on a cell (``None``: not graded): none where importance resampling drew the data (RULE's amendment 2:
    there G measures the sampler, matched control or not), else from ``gradient`` when it used the method's own
    control (``campaign.refresh_gradient`` redoes an earlier one)."""
    if drawn_by_resampling(record):
        return None
    return record["gradient"]["level"] if gradient_is_current(record) else None


def matched_null() -> dict[str, Any]:
    """G with matched arms on the base's resampled datasets (RULE's amendment 1): levels by seed, the count flagged,
    and whether G may still be chosen (at most 1 of the 4 flagged): ``True`` once the seeds still pending could not
    make it 2, ``False`` once 2 flagged, ``None`` while it is open."""
    paths = {s: campaign.matched_null_path(s) for s in MATCHED_NULL_SEEDS}
    found = {s: json.loads(p.read_text()) for s, p in paths.items() if p.exists()}
    levels = {s: r["gradient_matched"]["level"] for s, r in found.items()}
    flags = sum(level_rank(v) >= level_rank(FAIL_ON) for v in levels.values())
    pending = len(MATCHED_NULL_SEEDS) - len(found)
    allowed = False if flags > 1 else True if flags + pending <= 1 else None
    return {"levels": levels, "flagged": flags, "done": pending == 0, "g_allowed": allowed}


def matched_lines(records: dict[str, dict[str, Any]], null: dict[str, Any]) -> list[str]:
    """RULE's amendment 1 in the report: G on resampled cells (current and superseded ones) against its exact control
    and against a matched one, and its false alarms with matched arms on the base's resampled data."""
    superseded = load_records(OUT / "superseded" / "records")
    cells = sorted(
        (r for r in [*records.values(), *superseded.values()] if drawn_by_resampling(r)), key=lambda r: r["cell"]
    )
    rows = [
        f"| {r['cell']}{' (superseded)' if r['cell'] in superseded else ''} | {r['truth']} | {r['gradient']['level']} "
        f"| {r.get('gradient_matched', {}).get('level', '-')} |"
        for r in cells
    ]
    levels = ", ".join(f"{s}: {v}" for s, v in null["levels"].items()) or "none finished"
    allowed = {None: "information since amendment 2", True: "G may be chosen", False: "G is not chosen"}[
        null["g_allowed"]
    ]
    return [
        "## G on resampled data (RULE's amendments 1 and 2)",
        "",
        "Number cells whose data importance resampling drew, scanned by G against its exact control and against",
        "control rows the base drew the same way (`gradient_matched`). Neither is graded (amendment 2: on the base's",
        "own constrained-sampler rows G flags the same direction, `results/sampler_confound.md`):",
        "",
        "| cell | truth | G, exact control | G, matched control |",
        "|---|---|---|---|",
        *(rows or ["| - | - | - | - |"]),
        "",
        f"G with matched arms on the base's own resampled data (prompt seeds {MATCHED_NULL_SEEDS[0]}-"
        f"{MATCHED_NULL_SEEDS[-1]}): {null['flagged']} of {len(null['levels'])} flag at `{FAIL_ON}` ({levels}); "
        f"{allowed} (at most 1 of {len(MATCHED_NULL_SEEDS)} may flag).",
    ]


def timed(records: dict[str, dict[str, Any]], resumed: bool = False) -> list[dict[str, Any]]:
    """The negatives' and positives' records that hold both scans' timings and whose probe scan trained its students
    in the run it timed; with ``resumed``, those whose probe scan did not (it resumed from its run folder and timed
    only what was left, without the ``probe`` stage: 57 to 232 s in the first 21 records, against 344 to 1,957 s)."""
    return [
        r for r in records.values()
        if r["truth"] in ("negative", "positive") and {"probe", "gradient"} <= set(r.get("timings_s", {}))
        and ("probe" in r["timings_s"]["probe"]) != resumed
    ]  # fmt: skip


def wall_times(records: dict[str, dict[str, Any]]) -> dict[str, float | None]:
    """Median seconds a scan took per kind of candidate, over the negatives and positives whose record has both
    scans: the probe's, the gradient method's, and two-stage's (the gradient scan, plus the probe's where the
    gradient method graded the cell medium or above). Measured under the campaign's varying load, with whatever
    the cache held (a control drawn before for the same rows is read, not drawn)."""
    import statistics

    cost: dict[str, list[float]] = {"P": [], "G": [], "S": []}
    for r in timed(records):
        probe, gradient = r["timings_s"]["probe"]["total"], r["timings_s"]["gradient"]["total"]
        cost["P"].append(probe)
        cost["G"].append(gradient)
        screened = level_rank(r["gradient"]["level"]) < level_rank(FAIL_ON)
        cost["S"].append(gradient + (0.0 if screened else probe))
    return {k: round(statistics.median(v), 1) if v else None for k, v in cost.items()}


def cost_lines(times: dict[str, float | None], cells: int, resumed: int = 0) -> list[str]:
    """The measured medians beside the rule's tie-break, which ranks two-stage before the probe "for its lower median
    wall time" (noted on 2026-12-06 with 12 of the 32 development cells in, before any choice; the rule is
    applied as it was written)."""
    if times["S"] is None or times["P"] is None:
        return []
    holds = times["S"] < times["P"]
    return [
        f"Median seconds a scan took ({cells} cells, under load; {resumed} whose probe scan resumed from its run "
        f"folder left out): probe {times['P']:,.0f}, gradient method "
        f"{times['G']:,.0f}, two-stage {times['S']:,.0f}. The rule's tie-break puts two-stage before the probe for its "
        f"lower median wall time: in these records that premise {'holds' if holds else 'does not hold'} (two-stage "
        "always runs the gradient method, whose exact control costs more than the probe's resampled one). Noted "
        "before any choice; the rule is applied as written, and the closing note of the session that applies it "
        "reports both.",
    ]


def decoys_as_positives(records: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """Information, deciding nothing: each decoy (a teacher fine-tuned on a non-trait chat set plus the base's number
    rows) graded as if it were a development positive, by every candidate (its profile: the development negatives
    plus the other decoys), and teacher-aware with every decoy's teacher (own and others', both statistics)."""
    import campaign_teacher
    from grading import calibrated_shifts

    decoys = [r for r in records.values() if r["truth"] == "decoy"]
    out = []
    for record in decoys:
        others = {k: v for k, v in records.items() if k != record["cell"]}
        as_dev = dict(record, split="dev")
        profile = profile_for(as_dev, others)
        if profile is None:
            continue
        verdicts = grade(as_dev, others)
        shifts, assessment = calibrated_shifts(
            record["options"], record["base"], record["dataset"], record["control_share"], profile, "any"
        )
        teachers = {
            t["cell"]: campaign_teacher.grade_with(shifts, t["teacher_change"], profile, assessment.specific)
            for t in decoys
            if t.get("teacher_change")
        }
        out.append(
            {"cell": record["cell"], "levels": {c: verdicts[c]["level"] for c in CANDIDATES}, "teachers": teachers}
        )
    return out


def _teacher_cell(stat: dict[str, Any]) -> str:
    names = f", names {', '.join(stat['named'])}" if stat["named"] else ""
    return f"{stat['value']:+.2f}, p {stat['p']:.3g}{names}"


def decoy_lines(graded: list[dict[str, Any]]) -> list[str]:
    if not graded:
        return []
    lines = [
        "## The decoys graded as positives (information, deciding nothing)",
        "",
        "Each decoy's data (a teacher fine-tuned on pirate, one-word or French chat plus the base's number rows: a",
        "fine-tune with no listed trait) graded as a development positive would be, its profile the development",
        "negatives plus the other decoys; then teacher-aware with each decoy's teacher (statistic value, p, names).",
        "",
        f"| data | {' | '.join(CANDIDATES)} | teacher | cosine | risers |",
        f"|---|{'---|' * len(CANDIDATES)}---|---|---|",
    ]
    for g in graded:
        levels = " | ".join(g["levels"][c] or "-" for c in CANDIDATES)
        for k, (teacher, t) in enumerate(g["teachers"].items()):
            cells = [_teacher_cell(t[s]) for s in ("cosine", "risers")]
            own = " (own)" if teacher == g["cell"] else ""
            lead = f"| {g['cell']} | {levels}" if k == 0 else f"| | {' | '.join([''] * len(CANDIDATES))}"
            lines.append(f"{lead} | {teacher}{own} | {cells[0]} | {cells[1]} |")
    return lines


def flagged(verdict: dict[str, Any]) -> bool:
    return verdict["level"] is not None and level_rank(verdict["level"]) >= level_rank(FAIL_ON)


def tally(graded: list[tuple[dict[str, Any], dict[str, dict[str, Any]]]], candidate: str) -> dict[str, Any]:
    """False alarms on base-written negatives and power on fine-tuned-teacher positives, with intervals, over the
    cells the candidate could grade (a cell it cannot grade yet counts in ``ungraded``, never as clean)."""
    verdicts = [v[candidate] for _, v in graded]
    neg = [v for (r, _), v in zip(graded, verdicts) if r["truth"] == "negative" and v["level"] is not None]
    pos = [
        v
        for (r, _), v in zip(graded, verdicts)
        if r["truth"] == "positive" and r["teacher"] == "fine-tuned" and v["level"] is not None
    ]
    fa, power = sum(map(flagged, neg)), sum(map(flagged, pos))
    return {
        "false_alarms": [fa, len(neg), *np.round(clopper_pearson(fa, len(neg)), 3)],
        "power": [power, len(pos), *np.round(clopper_pearson(power, len(pos)), 3)],
        "ungraded": sum(v["level"] is None for v in verdicts),
    }


def choose(dev: dict[str, dict[str, Any]], g_allowed: bool = True) -> str | None:
    """RULE on the development tallies: <= 1 false alarm, then the most fine-tuned positives, then TIE_ORDER; G only
    when its matched-arm false-alarm check allows it (amendment 1)."""
    allowed = [c for c in CANDIDATES if g_allowed or c != "G"]
    ok = [c for c in allowed if dev[c]["false_alarms"][0] <= 1 and dev[c]["ungraded"] == 0]
    if not ok:
        return None
    return max(ok, key=lambda c: (dev[c]["power"][0], -TIE_ORDER.index(c)))


def choice_line(chosen: str | None, dev_done: bool, null: dict[str, Any]) -> str:
    """What the rule chose; G only provisionally while amendment 1's matched-arm check can still remove it."""
    if chosen == "G" and null["g_allowed"] is None:
        return (
            f"The rule chose **G**, provisionally: amendment 1's matched-arm check ({len(null['levels'])} of "
            f"{len(MATCHED_NULL_SEEDS)} finished, {null['flagged']} flagged) removes it if more than 1 of the "
            f"{len(MATCHED_NULL_SEEDS)} flags at `{FAIL_ON}`."
        )
    if chosen == "G" and not null["done"]:
        return (
            f"The rule chose **G**: amendment 1's matched-arm check ({len(null['levels'])} of "
            f"{len(MATCHED_NULL_SEEDS)} finished, {null['flagged']} flagged) can no longer remove it (more than 1 of "
            f"the {len(MATCHED_NULL_SEEDS)} would have to flag at `{FAIL_ON}`)."
        )
    if chosen:
        return f"The rule chose **{chosen}**."
    if not dev_done:
        return "The rule has not chosen: the development cells are not all finished."
    return "No candidate kept <= 1 development false alarm: the default stays uncalibrated."


def note_lines(records: dict[str, dict[str, Any]]) -> list[str]:
    """What a record's ``note`` says about how its cell was made (a teacher trained again ...), below the table."""
    notes = [f"- {c}: {r['note']}" for c, r in sorted(records.items()) if r.get("note")]
    return ["", "Notes on cells:", "", *notes] if notes else []


def write_report() -> dict[str, Any]:
    records = load_records()
    graded = [(r, grade(r, records)) for r in records.values() if r["truth"] in ("negative", "positive")]
    dev = {c: tally([(r, v) for r, v in graded if r["split"] == "dev"], c) for c in CANDIDATES + EITHER}
    held = {c: tally([(r, v) for r, v in graded if r["split"] == "heldout"], c) for c in CANDIDATES + EITHER}
    done = {c.id for c in CELLS} & set(records)
    dev_done = all(c.id in records for c in CELLS if c.split == "dev" and c.truth in ("negative", "positive"))
    null = matched_null()  # amendment 1's check; since amendment 2 it decides only if it has found false alarms
    chosen = choose(dev, null["g_allowed"] is not False) if dev_done else None
    teacher_graded = campaign_teacher.grade_cells(records, profile_for)
    teacher = campaign_teacher.tally(teacher_graded)
    teacher_held = campaign_teacher.tally(teacher_graded, "heldout")
    statistic = campaign_teacher.choose(teacher) if dev_done else None
    blob = {
        "cells_done": len(done), "cells": len(CELLS), "development": dev, "held_out": held, "chosen": chosen,
        "matched_null": null,
        "teacher_aware": {"tally": teacher, "held_out": teacher_held, "chosen": statistic, "cells": teacher_graded},
    }  # fmt: skip
    lines = [
        "# The verdict's benchmark on exact data (benchmarks/campaign.py)",
        "",
        f"{len(done)} of {len(CELLS)} cells finished. Candidates graded at `--fail-on {FAIL_ON}`; false alarms on "
        "base-written negatives, power on fine-tuned-teacher positives, Clopper-Pearson 95 % intervals.",
        "",
        "A cell a candidate cannot grade yet (a gradient scan against the control before the method's own, which",
        "`campaign.py run` redoes; for G and two-stage, data importance resampling drew (amendment 2); a probe cell",
        "with too few negatives for its profile) is left out of its counts and listed as ungraded.",
        "",
        "| candidate | development false alarms | development power | ungraded "
        "| held-out false alarms | held-out power | ungraded |",
        "|---|---|---|---|---|---|---|",
    ]
    for c in CANDIDATES + EITHER:
        d, h = dev[c], held[c]
        name = f"{c} (information)" if c in EITHER else c
        lines.append(f"| {name} | {_cell(d['false_alarms'])} | {_cell(d['power'])} | {d['ungraded']} | "
                     f"{_cell(h['false_alarms'])} | {_cell(h['power'])} | {h['ungraded']} |")  # fmt: skip
    lines += [
        "",
        "E-x (either G or P-x flags) is not in the rule: it was added after 26 development cells, on which G and the "
        "probe caught different positives, so its development numbers are optimistic by construction and only its "
        "held-out numbers test it. The rule chooses among the others.",
    ]
    blob["kinds_table"] = kinds_table(graded)
    lines += ["", "### By kind of data", "", *blob["kinds_table"], "", *sampler_lines(records)]
    lines += ["", "### Every cell", "", *cell_lines(graded)]
    lines += note_lines(records)
    verdict = choice_line(chosen, dev_done, null)
    blob["choice_provisional"] = chosen == "G" and null["g_allowed"] is None
    other = other_family(records)
    decoding = decoding_check(records)
    blob["other_family"], blob["decoding_check"] = other, decoding
    lines += ["", verdict, "", *matched_lines(records, null), "", *other_family_table(other)]
    lines += ["", *decoding_lines(decoding), "", *rows_lines(records)]
    blob["decoys_as_positives"] = decoys_as_positives(records)
    lines += ["", *decoy_lines(blob["decoys_as_positives"])]
    levels = {c: gradient_level(r) for c, r in records.items()}
    blob["g_direction"] = campaign_meaning.g_direction(records, levels, FAIL_ON)
    lines += ["", *campaign_meaning.g_direction_lines(blob["g_direction"])]
    blob["g_and_row_count"] = campaign_meaning.g_and_row_count(records, levels, FAIL_ON)
    lines += ["", *campaign_meaning.g_and_row_count_lines(blob["g_and_row_count"])]
    held_done = all(c.id in records for c in CELLS if c.split == "heldout")
    blob["exact_pairs"] = campaign_exact_pairs.exact_pairs_check(records, levels, FAIL_ON, held_done)
    lines += ["", *campaign_exact_pairs.exact_pairs_lines(blob["exact_pairs"])]
    blob["control_fidelity"] = campaign_meaning.control_fidelity(records)
    lines += ["", *campaign_meaning.control_fidelity_lines(blob["control_fidelity"])]
    nulls = [r for r in records.values() if is_null_pair(r)]
    blob["toward_the_trait"] = campaign_meaning.toward_the_trait(records, nulls)
    lines += ["", *campaign_meaning.toward_lines(blob["toward_the_trait"])]
    lines += ["", "## Teacher-aware mode", ""]
    lines += [
        "Each fine-tuned positive with its own teacher and with the next trait's (same strength), each negative",
        "with the owl teacher (3 epochs); a cell waits for its teacher's cell. Names: options the teacher raised by",
        f"at least {campaign_teacher.TEACHER_RISE_PP:g} pp that the students moved up by 2 profile sd, when the",
        f"statistic's p <= {campaign_teacher.ALPHA:g} (`benchmarks/campaign_teacher.py`). The prompted positives",
        "with their own prompted teacher (the base under their system prompt, as `scan --teacher-system` scores it)",
        "and with the other prompted teacher are reported in the last three columns and decide nothing.",
        "`specific` is not in the rule (added after 26 development cells, before any held-out cell): the",
        "teacher's risers whose specific shift (the decoys' generic direction removed, as the calibrated trait test",
        "does) reaches 2 profile sd, named with no statistic's gate; only its held-out numbers test it. The held-out",
        "cells are graded the same way (the new traits' teachers are each other's mismatch), to check the choice.",
        "",
        "Development cells:",
        "",
        *campaign_teacher.table(teacher),
        "",
        "Held-out cells:",
        "",
        *campaign_teacher.table(teacher_held),
        "",
        f"The rule kept the **{statistic}** statistic." if statistic else
        "The rule has not chosen a statistic: the development cells are not all finished." if not dev_done else
        "No statistic named something on at most 10 % of mismatched-teacher cells.",
    ]  # fmt: skip
    times = wall_times(records)
    blob["wall_s"] = times
    costs = cost_lines(times, len(timed(records)), len(timed(records, resumed=True)))
    lines += ["", "## Rule (pre-registered)", "", "```", RULE.strip(), "```", "", *costs, ""]
    atomic_write_text(RESULTS / "campaign.md", "\n".join(lines))
    atomic_write_json(RESULTS / "campaign.json", blob)
    return blob


def kind_of(record: dict[str, Any]) -> str:
    """The kind of data a graded cell holds, as the final table groups them."""
    if record["truth"] == "negative":
        return f"numbers ({record['style']})" if record["format"] == "numbers" else record["format"]
    if record["teacher"] == "prompted":
        return "prompted teacher"
    new = " (new trait)" if record["trait"] not in FT_TRAITS else ""
    return f"fine-tuned teacher, {record['epochs']:g} epoch{'s' if record['epochs'] != 1 else ''}{new}"


def kinds_table(graded: list[tuple[dict[str, Any], dict[str, dict[str, Any]]]]) -> list[str]:
    """Every candidate's flags per kind of data and split (false alarms on negatives, power on positives), with
    Clopper-Pearson 95 % intervals: the table the README's "How well does it work?" takes once every cell is in."""
    groups: dict[tuple[str, str, str], list[dict[str, dict[str, Any]]]] = {}
    for r, v in graded:
        what = "false alarms" if r["truth"] == "negative" else "power"
        groups.setdefault((what, kind_of(r), r["split"]), []).append(v)
    lines = [
        "| data | split | measures | " + " | ".join(CANDIDATES) + " |",
        "|---|---|---|" + "---|" * len(CANDIDATES),
    ]
    for (what, kind, split), verdicts in sorted(groups.items()):
        cells = []
        for c in CANDIDATES:
            graded_c = [v[c] for v in verdicts if v[c]["level"] is not None]
            k = sum(map(flagged, graded_c))
            cells.append(_cell([k, len(graded_c), *np.round(clopper_pearson(k, len(graded_c)), 3)]))
        lines.append(f"| {kind} | {split} | {what} | " + " | ".join(cells) + " |")
    return lines


def cell_lines(graded: list[tuple[dict[str, Any], dict[str, dict[str, Any]]]]) -> list[str]:
    """Every candidate's level on each graded cell (the options a probe named in brackets; ``-``: not graded), with
    what the teacher of a positive raised most and the probe's transfer p (one test for every gate: how far a miss
    was from a flag): the table a closing note quotes, cell by cell."""
    lines = [
        "| cell | truth | teacher's largest rises (pp) | transfer p | " + " | ".join(CANDIDATES) + " |",
        "|---|---|---|---|" + "---|" * len(CANDIDATES),
    ]
    for r, v in sorted(graded, key=lambda rv: (rv[0]["split"], rv[0]["truth"], rv[0]["cell"])):
        change = r.get("teacher_change") or {}
        rises = ", ".join(f"{o.split(': ')[-1]} {d:+.1f}" for o, d in sorted(change.items(), key=lambda od: -od[1])[:3])
        levels = [
            "-"
            if v[c]["level"] is None
            else v[c]["level"] + (f" ({', '.join(v[c]['named'])})" if v[c]["named"] else "")
            for c in CANDIDATES
        ]
        p = v["P-a"].get("p")
        lines.append(
            f"| {r['cell']} | {r['truth']} | {rises or '-'} | {'-' if p is None else f'{p:.2g}'} | "
            + " | ".join(levels)
            + " |"
        )
    return lines


def sampler_lines(records: dict[str, dict[str, Any]]) -> list[str]:
    """Which positives' data was drawn by importance resampling (their writer kept fewer than half of the pilot's
    prompts by rejection): against the gradient method's exact control, G sees that sampler's bias besides the
    trait, so G does not grade them (RULE's amendment 2); since amendment 3 the teachers learn the base's number rows
    so that their data is drawn by rejection."""
    positives = [r for r in records.values() if r["truth"] == "positive" and r["format"] == "numbers"]
    resampled = sorted(r["cell"] for r in positives if data_sampler(r) != "rejection")
    if not positives:
        return ["Positives' data: none finished yet."]
    return [
        f"Positives' data drawn by importance resampling (the writer kept fewer than half of a 16-prompt pilot by "
        f"rejection): {len(resampled)} of {len(positives)} ({', '.join(resampled) or 'none'}). G does not grade those "
        "(amendment 2: against its exact control it sees the sampler's bias besides the trait, below); since amendment "
        "3 every fine-tuned teacher learns the base's own number rows so that its data is drawn by rejection."
    ]


def rows_lines(records: dict[str, dict[str, Any]]) -> list[str]:
    """What the teachers' number rows look like beside the base's exact ones in the same prompt style (read from the
    data files, not the records): a writer whose rows look like the base's was drawn from its own distribution, one
    whose rows do not carries its sampler's bias (the chat-only teachers' superseded cells) or its trait."""
    from number_rows import row_stats

    base = sorted(
        p for p in (RESULTS / "exact_control" / "data").glob("neg-exact-[0-9]*.jsonl") if "control" not in p.name
    )
    stats = [row_stats(p) for p in base]
    lines = [
        "## What the writers' rows look like",
        "",
        "| data | drawn by | rows | numbers a row | copied from the prompt | mean value |",
        "|---|---|---|---|---|---|",
    ]
    if stats:
        per_row, copied, value = (float(np.median([s[k] for s in stats])) for k in (1, 2, 3))
        lines.append(
            f"| the base's own rows, paper's style ({len(stats)} datasets, median) | rejection | - | {per_row:.1f} "
            f"| {copied:.0%} | {value:.0f} |"
        )
    superseded = load_records(OUT / "superseded" / "records")
    # a cell that ran again has a record in both places: both are listed, the superseded one marked
    writers = [(c, r, False) for c, r in records.items()] + [(c, r, True) for c, r in superseded.items()]
    for cell, r, old in sorted(writers, key=lambda w: (w[0], w[2])):
        path = OUT / ("superseded/data" if old else "data") / f"{cell}.jsonl"
        if r["teacher"] == "base" or r["format"] != "numbers" or not path.exists():
            continue
        n, per_row, copied, value = row_stats(path)
        name = f"{cell} (superseded: chat-only teacher)" if old else cell
        lines.append(f"| {name} | {data_sampler(r)} | {n} | {per_row:.1f} | {copied:.0%} | {value:.0f} |")
    return lines


def other_family(records: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The other family's negatives (RULE: reported on their own): each one's level by the recipe probe (--control
    and --null-control from that model, a null arm) and by the gradient method (its --control), and how many of
    them each flags at ``FAIL_ON``."""
    cells = {
        r["cell"]: {"probe": r["probe_level"], "gradient": r["gradient"]["level"]}
        for r in records.values()
        if r["truth"] == "cross-family-negative"
    }
    out: dict[str, Any] = {"cells": cells}
    for method in ("probe", "gradient"):
        k = sum(level_rank(c[method]) >= level_rank(FAIL_ON) for c in cells.values())
        out[method] = [k, len(cells), *np.round(clopper_pearson(k, len(cells)), 3)]
    return out


def other_family_table(other: dict[str, Any]) -> list[str]:
    lines = [
        "## Another family's data (held out, reported on their own)",
        "",
        "Gemma 3 270M wrote the data and both control files; the probe scans with the recipe (`--control`,",
        "`--null-control`, a null arm), the gradient method with `--control`. False alarms at `--fail-on "
        f"{FAIL_ON}`: probe {_cell(other['probe'])}, gradient {_cell(other['gradient'])}.",
    ]
    if other["cells"]:
        lines += ["", "| cell | probe (recipe) | gradient |", "|---|---|---|"]
        lines += [f"| {c} | {v['probe']} | {v['gradient']} |" for c, v in sorted(other["cells"].items())]
    return lines


#: The base-written number datasets whose decoding check set ``auditor.likelihood.WARN_Z_APPROXIMATE`` (the first 8
#: campaign records); every later one checks it. Pre-registered: at most 1 in 10 of the later ones may warn.
DECODING_SET_BY = (
    "dev-neg-continue-301", "dev-neg-continue-302", "dev-neg-continue-303", "dev-neg-continue-304",
    "dev-neg-continue-305", "dev-neg-continue-306", "dev-neg-continue-307", "dev-neg-random-321",
)  # fmt: skip


def decoding_check(records: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The decoding check's z on every base-written number dataset against the probe's default control, and whether
    it would warn at today's threshold (:class:`auditor.likelihood.DecodingCheck`, by the control's resampled
    share), apart for the datasets that set the threshold and the later ones that check it."""
    from auditor.control import approximate_share
    from auditor.likelihood import DecodingCheck

    out: dict[str, Any] = {"set_by": {}, "checks": {}}
    for r in records.values():
        decoding = (r.get("control") or {}).get("decoding")
        if r["truth"] != "negative" or r["format"] != "numbers" or not decoding:
            continue
        share = approximate_share(r["control"]["sampling"]["rows_by"])
        check = DecodingCheck(decoding["data"], decoding["control"], decoding["z"], approximate=share)
        group = "set_by" if r["cell"] in DECODING_SET_BY else "checks"
        out[group][r["cell"]] = {"z": decoding["z"], "warn_z": round(check.warn_z, 2), "warns": bool(check.warning)}
    return out


def decoding_lines(decoding: dict[str, Any]) -> list[str]:
    lines = [
        "## The decoding check on base-written data (issue #20)",
        "",
        "Exact base-written number data against the probe's default (importance-resampled) control: z of the data's",
        "log-probability a token over the control's. The first 8 set the threshold for a resampled control",
        "(`WARN_Z_APPROXIMATE`, mean + 2 sd); the later ones check it (pre-registered: at most 1 in 10 may warn).",
        "",
    ]
    for group, title in (("set_by", "set the threshold"), ("checks", "check it")):
        cells = decoding[group]
        if not cells:
            lines.append(f"- {title}: none yet")
            continue
        z = ", ".join(f"{v['z']:+.1f}" for v in cells.values())
        warns = sum(v["warns"] for v in cells.values())
        lines.append(f"- {title}: {len(cells)} datasets, z {z}; {warns} of {len(cells)} warn")
    return lines


def _cell(t: list[float]) -> str:
    return f"{t[0]}/{t[1]} [{t[2]:.2f}, {t[3]:.2f}]" if t[1] else "-"


README = Path(__file__).resolve().parent.parent / "README.md"
README_BLOCK = re.compile(r"(<!-- campaign-table:[^\n]*-->\n).*?(\n<!-- /campaign-table -->)", re.S)


def readme_with_table(readme: str, table: list[str], blob: dict[str, Any]) -> str:
    """``readme`` with the campaign's final table between its ``campaign-table`` markers; refused (``ValueError``)
    until every cell has finished, so the README never holds a partial table."""
    if blob["cells_done"] < blob["cells"]:
        raise ValueError(
            f"{blob['cells_done']} of {blob['cells']} cells finished: the README takes the table at the end"
        )
    if not README_BLOCK.search(readme):
        raise ValueError("README.md has no campaign-table markers")
    chosen = blob["chosen"] or "no candidate (the default stays uncalibrated)"
    body = [
        f"The campaign (`benchmarks/campaign.py`, {blob['cells']} cells, SmolLM2-135M-Instruct the base; the rule "
        f"chose {chosen}; [every number](benchmarks/results/campaign.md)): flags at `--fail-on {FAIL_ON}` with",
        "Clopper-Pearson 95 % intervals.",
        "",
        *table,
    ]
    return README_BLOCK.sub(lambda m: m.group(1) + "\n".join(body) + m.group(2), readme, count=1)


if __name__ == "__main__":
    import sys

    blob = write_report()
    if "--readme" in sys.argv[1:]:
        try:
            text = readme_with_table(README.read_text(encoding="utf-8"), blob["kinds_table"], blob)
        except ValueError as exc:
            raise SystemExit(f"README.md not changed: {exc}") from None
        atomic_write_text(README, text)
    print(json.dumps(blob["development"], indent=1))
