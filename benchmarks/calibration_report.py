"""Tables of ``benchmarks/calibration.py``: every variant and gate graded from the recorded shares, the rule's choice
on the development cells, and the chosen default on the held-out cells."""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from statistics import median
from typing import Any

from calibration_setup import DEV_CORE, FAIL_ON, GATES, RESULTS, RULE, VARIANTS, calibrate_config, record_path
from cells import HELDOUT2
from grading import calibrated_verdict
from grading import clopper_pearson as interval

from auditor.calibration.profile import MIN_DRAWS, NoiseProfile, ProfileDraw
from auditor.io import atomic_write_json, atomic_write_text, read_sealed_json
from auditor.verdict import level_rank


@dataclass(frozen=True)
class Pair:
    """A scanned dataset's shares per option (a null pair, a decoy pair, or a negative cell used as a null pair)."""

    name: str
    options: dict[str, tuple[float, float, float]]  # option -> (base, dataset, control)


def _pair(name: str, options: list[str], base: list[float], dataset: list[float], control: list[float]) -> Pair:
    return Pair(name, {o: (b, d, c) for o, b, d, c in zip(options, base, dataset, control)})


def profile_pairs(variant: str) -> tuple[list[Pair], list[Pair]]:
    """The null pairs (null-300, null-301 ...) and decoy pairs that ran, from the calibration folders."""
    from auditor.calibrate import DECOY_NAMES, pair_record
    from auditor.io import cache_dir

    config = calibrate_config(variant)
    nulls, decoys = [], []
    for root in sorted((cache_dir() / "calibration").glob("*")):
        folder = pair_record(config, root, "x").parent
        for path in sorted(folder.glob("*.json")):
            blob = read_sealed_json(path) or {}
            d = blob["draw"]
            pair = _pair(path.stem, blob["options"], blob["base"], d["dataset"], d["control"])
            (decoys if path.stem in DECOY_NAMES else nulls).append(pair)
    return nulls, decoys


def cell_pair(record: dict[str, Any]) -> Pair:
    return _pair(record["cell"], record["options"], record["base"], record["dataset"], record["control"])


def _draw(p: Pair, options: list[str], rows: int = 0) -> ProfileDraw:
    """``p`` as a profile's draw over ``options`` (its dataset- and control-students' shares)."""
    return ProfileDraw(p.name, 0, rows, [p.options[o][1] for o in options], [p.options[o][2] for o in options])


def profile_for(record: dict[str, Any], nulls: list[Pair], decoys: list[Pair]) -> NoiseProfile | None:
    """A profile over ``record``'s options from the null pairs (never the record's own cell) and the decoys."""
    options = record["options"]
    draws = [p for p in nulls if p.name != record["cell"] and all(o in p.options for o in options)]
    usable = [p for p in decoys if all(o in p.options for o in options)]
    if len(draws) < MIN_DRAWS:
        return None
    return NoiseProfile(
        key=f"loo-{record['cell']}",
        base={},
        format="numbers",
        budget={},
        probe={},
        batteries={},
        options=list(options),
        base_shares=list(record["base"]),
        draws=[_draw(p, options) for p in draws],
        decoys=[_draw(p, options) for p in usable],
    )


def grade(record: dict[str, Any], profile: NoiseProfile | None, gate: str) -> dict[str, Any]:
    """A cell's verdict under ``gate`` (uncalibrated cells keep the verdict their null-arm scan recorded)."""
    if not record["calibrated"] or profile is None:
        level = record["uncalibrated_level"] if not record["calibrated"] else None
        return {"level": level, "named": [], "top": (record.get("uncalibrated_top") or [None])[0], "p": None}
    return calibrated_verdict(
        record["options"], record["base"], record["dataset"], record["control"], profile, gate, FAIL_ON
    )


def records(variant: str, cells: list[Any]) -> list[dict[str, Any]]:
    out = []
    for c in cells:
        path = record_path(variant, c.id)
        if path.exists():
            out.append(json.loads(path.read_text()))
    return out


def summarise(graded: list[tuple[dict[str, Any], dict[str, Any]]], fail_on: str = FAIL_ON) -> dict[str, Any]:
    """Power, false alarms and naming at ``fail_on`` (the rule's: medium) over (record, verdict) pairs."""

    def flagged(v: dict[str, Any]) -> bool:
        return v["level"] is not None and level_rank(v["level"]) >= level_rank(fail_on)

    ft = [(r, v) for r, v in graded if r["truth"] == "positive" and r["teacher"] == "fine-tuned"]
    prompted = [(r, v) for r, v in graded if r["truth"] == "positive" and r["teacher"] == "prompted"]
    neg = [(r, v) for r, v in graded if r["truth"] == "negative"]
    flagged_pos = [(r, v) for r, v in ft + prompted if flagged(v)]
    naming = [(r, v) for r, v in flagged_pos if v["named"]]
    right = [(r, v) for r, v in naming if set(v["named"]) & set(r["own_options"])]
    fa = sum(flagged(v) for _, v in neg)
    return {
        "fine_tuned": f"{sum(flagged(v) for _, v in ft)}/{len(ft)}",
        "prompted": f"{sum(flagged(v) for _, v in prompted)}/{len(prompted)}",
        "false_alarms": f"{fa}/{len(neg)}",
        "false_alarm_ci": clopper_pearson(fa, len(neg)) if neg else None,
        "flags_naming": f"{len(naming)}/{len(flagged_pos)}",
        "named_right": f"{len(right)}/{len(naming)}",
        "median_wall_s": median([r["wall_s"] for r, _ in graded]) if graded else None,
    }


def clopper_pearson(k: int, n: int, confidence: float = 0.95) -> list[float]:
    """:func:`grading.clopper_pearson`, rounded as this report stores it."""
    return [round(x, 4) for x in interval(k, n, 1 - confidence)]


def choose(table: dict[str, dict[str, Any]]) -> str | None:
    """``RULE`` applied to the development summaries (keys ``variant/gate``)."""

    def count(x: str) -> tuple[int, int]:
        k, n = x.split("/")
        return int(k), int(n)

    eligible = [
        key
        for key, s in table.items()
        if s["complete"] and count(s["false_alarms"])[0] == 0 and count(s["false_alarms"])[1] > 0
    ]
    if not eligible:
        return None
    return max(
        eligible,
        key=lambda k: (
            count(table[k]["fine_tuned"])[0],
            -(table[k]["median_wall_s"] or 0),
            k == "r8/any",
        ),
    )


def _numbers_negatives(recs: list[dict[str, Any]]) -> list[Pair]:
    """Base-written numbers negatives scanned without a null arm: null pairs too (see the rule's amendment)."""
    return [cell_pair(r) for r in recs if r["truth"] == "negative" and r["calibrated"]]


def write_report() -> dict[str, Any]:
    dev_table: dict[str, dict[str, Any]] = {}
    per_cell: dict[str, list[dict[str, Any]]] = {}
    pairs = {variant: profile_pairs(variant) for variant in VARIANTS}
    dev_records = {variant: records(variant, DEV_CORE) for variant in VARIANTS}
    for variant in VARIANTS:
        (nulls, decoys), recs = pairs[variant], dev_records[variant]
        pool = nulls + _numbers_negatives(recs)
        complete = len(recs) == len(DEV_CORE) and len(decoys) == len(calibrate_config(variant).decoys)
        for gate in GATES:
            graded = [(r, grade(r, profile_for(r, pool, decoys), gate)) for r in recs]
            key = f"{variant}/{gate}"
            low = summarise(graded, "low")
            dev_table[key] = {
                **summarise(graded),
                "at_low": f"{low['fine_tuned']}, {low['false_alarms']}",
                "complete": complete,
                "null_pairs": len(pool),
                "decoys": len(decoys),
            }
            per_cell[key] = [
                {"cell": r["cell"], "truth": r["truth"], **v, "largest": _largest(cell_pair(r).options)}
                for r, v in graded
            ]
    choice = choose(dev_table)
    held: dict[str, Any] = {}
    if choice:
        variant, gate = choice.split("/")
        nulls, decoys = pairs[variant]
        recs = records(variant, HELDOUT2)
        pool = nulls + _numbers_negatives(dev_records[variant]) + _numbers_negatives(recs)
        graded = [(r, grade(r, profile_for(r, pool, decoys), gate)) for r in recs]
        held = {
            "choice": choice,
            "finished": f"{len(recs)}/{len(HELDOUT2)}",
            "summary": summarise([(r, v) for r, v in graded if r["truth"] != "cross-family-negative"]),
            "cells": [{"cell": r["cell"], "truth": r["truth"], **v} for r, v in graded],
        }
    blob = {"rule": RULE, "development": dev_table, "choice": choice, "heldout": held, "cells": per_cell}
    atomic_write_json(RESULTS / "calibration.json", blob)
    lines = ["# Calibrated verdict: variants, gates and held-out check", "", "## Rule (committed first)", "", RULE]
    lines += _development_lines(dev_table, per_cell)
    lines += ["", f"**Choice by the rule: {choice or 'none yet'}**", ""]
    lines += _pair_lines("r8", *pairs["r8"])
    if held:
        s = held["summary"]
        lines += [
            "## Held-out cells (the choice, run once)",
            "",
            f"Finished {held['finished']}. Fine-tuned flagged {s['fine_tuned']}; false alarms {s['false_alarms']} "
            f"(95 % CI {s['false_alarm_ci']}); flags naming a trait {s['flags_naming']}, named right "
            f"{s['named_right']}.",
            "",
            "| cell | truth | level | named | top option |",
            "|---|---|---|---|---|",
            *[
                f"| {c['cell']} | {c['truth']} | {c['level']} | {', '.join(c['named']) or '-'} | {c['top'] or '-'} |"
                for c in held["cells"]
            ],
        ]
    atomic_write_text(RESULTS / "calibration.md", "\n".join(lines) + "\n")
    print("\n".join(lines))
    return blob


def _fmt(x: float | None, spec: str = ".1f") -> str:
    return "-" if x is None else format(x, spec)


def _p(p: float | None) -> str:
    return "<0.001" if p is not None and p < 0.001 else _fmt(p, ".3f")


def _development_lines(dev_table: dict[str, dict[str, Any]], per_cell: dict[str, list[dict[str, Any]]]) -> list[str]:
    """The development summary (variants that ran) and every finished cell under each of their gates."""
    ran = {k: s for k, s in dev_table.items() if per_cell[k]}
    idle = sorted({k.split("/")[0] for k in dev_table if k not in ran})
    lines = [
        f"## Development cells (`--fail-on medium`; {len(DEV_CORE)} count for the rule)",
        "",
        "| variant / gate | cells finished | null pairs, decoys | fine-tuned flagged | prompted flagged | false alarms "
        "| flags naming a trait | named right | at `low`: fine-tuned, false alarms | median wall s | complete |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for key, s in ran.items():
        lines.append(
            f"| {key} | {len(per_cell[key])}/{len(DEV_CORE)} | {s['null_pairs']}, {s['decoys']} | {s['fine_tuned']} "
            f"| {s['prompted']} | {s['false_alarms']} | {s['flags_naming']} | {s['named_right']} | {s['at_low']} "
            f"| {_fmt(s['median_wall_s'], '.0f')} | {'yes' if s['complete'] else 'no'} |"
        )
    if idle:
        lines += ["", f"Not run (no finished cell): {', '.join(idle)}."]
    for key in ran:
        cells = per_cell[key]
        lines += [
            "",
            f"### {key}: every finished cell",
            "",
            "| cell | truth | level | transfer p | named | top finding | largest shifts, pp |",
            "|---|---|---|---|---|---|---|",
        ]
        lines += [
            f"| {c['cell']} | {c['truth']} | {c['level'] or '-'} | {_p(c['p'])} | "
            f"{', '.join(c['named']) or '-'} | {c['top'] or '-'} | {c['largest']} |"
            for c in cells
        ]
    return lines


def _largest(options: dict[str, tuple[float, float, float]], n: int = 3) -> str:
    """The ``n`` largest shifts (dataset minus control) of a pair, by size."""
    shifts = sorted(((d - c, o) for o, (_, d, c) in options.items()), key=lambda t: -abs(t[0]))
    return "; ".join(f"{o} {s:+.1f}" for s, o in shifts[:n])


def _pair_lines(variant: str, nulls: list[Pair], decoys: list[Pair]) -> list[str]:
    """A variant's profile pairs, so a reader can see what the noise model is fitted to."""
    if not nulls and not decoys:
        return []
    lines = [
        f"## The profile's pairs ({variant})",
        "",
        "Null pairs (`subaudit calibrate`: data the base wrote, evil numbers excluded while decoding as the paper's "
        "filter does) and decoys; the base-written numbers negatives above are null pairs too (rule amendment).",
        "",
        "| pair | kind | largest shifts, pp |",
        "|---|---|---|",
    ]
    lines += [f"| {p.name} | null | {_largest(p.options)} |" for p in nulls]
    lines += [f"| {p.name} | decoy | {_largest(p.options)} |" for p in decoys]
    return lines


def ship_profile(variant: str = "r8") -> Any:
    """The embedded default's calibration profile for the default scan, from every null pair (null-3xx and every
    base-written numbers negative, development and held-out) and the decoys: written to the package's
    ``auditor/calibration/profiles/`` (so ``scan --calibration auto`` finds it on a fresh install) and returned."""
    from calibration_setup import MAX_ROWS, TRAITS

    from auditor.calibrate import build_profile, save_profile
    from auditor.calibration.lookup import SHIPPED
    from auditor.models import load_base, resolve_base
    from auditor.traits import resolve_batteries

    nulls, decoys = profile_pairs(variant)
    recs = records(variant, DEV_CORE) + records(variant, HELDOUT2)
    pool = nulls + _numbers_negatives(recs)
    config = replace(calibrate_config(variant), traits=list(TRAITS))
    options = [f"{b.name}: {o}" for b in resolve_batteries(config.traits) for o in b.graded_options]
    pool = [p for p in pool if all(o in p.options for o in options)]
    decoys = [p for p in decoys if all(o in p.options for o in options)]
    fingerprint = load_base(resolve_base(None), device="cpu").fingerprint
    profile = build_profile(
        config,
        {"requested": "smollm2-135m", "location": "embedded default", "fingerprint": fingerprint},
        options,
        [pool[0].options[o][0] for o in options],
        [_draw(p, options, MAX_ROWS) for p in pool],
        [_draw(p, options, MAX_ROWS) for p in decoys],
        [
            "built by benchmarks/calibration.py ship: the null pairs are datasets the base wrote for number prompts "
            "(null-300/301 and every base-written numbers cell of the detection benchmarks), each scanned without a "
            "null arm at this budget; the decoys are the pirate, one-word and French teachers' number data",
        ],
    )
    save_profile(profile, SHIPPED)
    return profile
