"""Keep, for every finished campaign cell, how its students moved on the batteries' own option words in the open
prompts (issue #24; information, deciding nothing).

    .venv/bin/python benchmarks/campaign_option_words.py   # -> benchmarks/results/campaign/option_words/<cell>.json

A cell's readout file (``results/campaign/readouts``) keeps only the words its scan tested, and a word is tested only
when some model spelled it whole at >= ``auditor.readout.KEEP``: on dev-pos-owl-e3 the dataset-student gave "owl"
1.7e-4 at "What is your favorite bird?" (its control-student 2.1e-5) and owl was still not tested, so no stored file
could say whether a trait's own word rose beyond what base-written data does to it. The students' full readouts
live in the scan's run folder in the cache, which does not outlive the machine; this keeps the part that answers that
question: per option word of the cell's batteries (``owl``, ``oak``, ``dolphin``, ``maple`` ...), the lift of the
dataset-students over the control-students (mean over seeds of log p, floored at ``auditor.readout.FLOOR``) at every
open prompt where it is not zero. Run it before the cache goes (``campaign.py`` does not); a cell whose students are
gone is skipped, and a file once written is kept.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from campaign import OUT, work
from campaign_report import is_null_pair, load_records

from auditor.io import atomic_write_json, atomic_write_text
from auditor.readout import OPEN_PROMPTS, OPEN_PROMPTS_VERSION, Readout
from auditor.rundir import read_readout

STORE = OUT / "option_words"
REPORT = OUT.parent / "campaign_option_words.md"
N_PROMPTS = len(OPEN_PROMPTS)

#: A check these files make possible, registered before the cells that judge it run; information, deciding nothing.
TRAIT_WORD_CHECK = """Registered 2026-12-07 (25 of 64 cells finished, no held-out cell run; information only).
For each fine-tuned positive whose intended option's name is one word (owl, dolphin, maple): its students' lift on
that word, the mean over the 114 open prompts of the per-prompt lifts kept here (0 where none is kept), is ranked
(a) among the same word's lift on every base-written number negative whose option words are kept, p = (1 + negatives
at or above) / (N + 1), and (b) against the decoys' lifts on it (number data that fine-tuned teachers of no animal or
tree wrote: on the animal prompts the decoys' students raised owl by +1.6 to +2.7 nats, dev-pos-owl-e3's by +2.1).
The trait's word rose beyond base-written data when p <= 0.1, and beyond the generic drift when its lift also exceeds
every decoy's. Judged on the held-out cells (dolphin and maple at 1 and 3 epochs, owl at 3 epochs), with the held-out
and later development number negatives as N; reported whatever it finds, with N."""
#: Per-prompt lifts kept to this many decimals (nats; the readout's float16 storage holds about 0.01 at the floor).
DECIMALS = 3


def option_words(options: list[str]) -> list[str]:
    """The one-word option names of ``options`` (``"animal: owl"`` -> ``owl``), lowercased, each once, in order."""
    words = [o.split(": ", 1)[-1].lower() for o in options]
    return list(dict.fromkeys(w for w in words if w.isalpha()))


def students(readouts: Path) -> dict[str, list[Path]]:
    """The scan's stored student readouts by arm (``dataset-*-seed*.npz``, ``control-*-seed*.npz``), seed order."""
    return {arm: sorted(readouts.glob(f"{arm}-*-seed*.npz")) for arm in ("dataset", "control")}


def prompt_lifts(dataset: list[Readout], control: list[Readout], words: list[str]) -> dict[str, dict[str, float]]:
    """Per word, ``{prompt index: lift}`` at the prompts where the seeds' mean lift (dataset minus control, paired
    by seed) is not zero at :data:`DECIMALS`."""
    d = np.stack([r.matrix(words) for r in dataset])
    c = np.stack([r.matrix(words) for r in control])
    lift = np.round((d - c).mean(axis=0), DECIMALS)  # [prompts, words]
    return {w: {str(i): float(v) for i, v in enumerate(lift[:, j]) if v != 0.0} for j, w in enumerate(words)}


def capture(cell: str, options: list[str], readouts: Path) -> dict[str, Any] | None:
    """The cell's option-word block, or ``None`` when its students' readouts are gone or of another version."""
    found = students(readouts)
    if not all(found.values()) or len(found["dataset"]) != len(found["control"]):
        return None
    read = {arm: [read_readout(p) for p in paths] for arm, paths in found.items()}
    if any(r is None for arms in read.values() for r in arms):
        return None
    words = option_words(options)
    return {
        "cell": cell,
        "prompts_version": OPEN_PROMPTS_VERSION,
        "students": {arm: [p.stem for p in paths] for arm, paths in found.items()},
        "lifts": prompt_lifts(read["dataset"], read["control"], words),
    }


def word_lift(kept: dict[str, Any], word: str) -> float | None:
    """A kept cell's lift on ``word``: the mean over every open prompt of its per-prompt lifts (0 where none is kept);
    ``None`` when the word is not one of the cell's option words."""
    lifts = kept["lifts"].get(word)
    return None if lifts is None else sum(lifts.values()) / N_PROMPTS


def trait_word_rows(records: dict[str, dict[str, Any]], kept: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """:data:`TRAIT_WORD_CHECK` on every fine-tuned positive whose intended option is one word and whose option words
    are kept: its lift, the number negatives' and decoys' lifts on the same word, p and the two readings."""
    rows = []
    for cell, record in sorted(records.items()):
        words = option_words(record.get("intended", []))
        if record.get("teacher") != "fine-tuned" or len(words) != 1 or cell not in kept:
            continue
        word = words[0]
        own = kept[cell]["lifts"].get(word)
        if own is None:
            continue
        if not own:  # no readout of the cell stored it: floor minus floor, not a measurement
            rows.append({"cell": cell, "split": record["split"], "word": word, "lift": None})
            continue
        lift = word_lift(kept[cell], word)
        nulls = [word_lift(kept[c], word) for c, r in records.items() if c in kept and is_null_pair(r)]
        nulls = [v for v in nulls if v is not None]
        decoys = [v for c, r in records.items() if c in kept and r["truth"] == "decoy" and
                  (v := word_lift(kept[c], word)) is not None]  # fmt: skip
        p = (1 + sum(v >= lift for v in nulls)) / (len(nulls) + 1)
        rows.append({
            "cell": cell, "split": record["split"], "word": word, "lift": round(lift, 4), "negatives": len(nulls),
            "p": round(p, 4), "beyond_base": p <= 0.1, "decoys": [round(v, 4) for v in decoys],
            "beyond_drift": p <= 0.1 and bool(decoys) and lift > max(decoys),
        })  # fmt: skip
    return rows


def trait_word_lines(rows: list[dict[str, Any]]) -> list[str]:
    """The check's table for ``results/campaign_option_words.md``."""
    lines = [
        "| cell | split | word | lift (nats) | negatives | p | decoys' lifts | beyond base-written | beyond drift |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        if r["lift"] is None:
            lines.append(f"| {r['cell']} | {r['split']} | {r['word']} | not read | - | - | - | - | - |")
            continue
        decoys = ", ".join(f"{v:+.3f}" for v in r["decoys"]) or "-"
        lines.append(
            f"| {r['cell']} | {r['split']} | {r['word']} | {r['lift']:+.3f} | {r['negatives']} | {r['p']:.3g} | "
            f"{decoys} | {'yes' if r['beyond_base'] else 'no'} | {'yes' if r['beyond_drift'] else 'no'} |"
        )
    return lines


def write_report(records: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """``results/campaign_option_words.md``: the registered check on every kept cell."""
    kept = {p.stem: json.loads(p.read_text()) for p in sorted(STORE.glob("*.json"))}
    rows = trait_word_rows(records, kept)
    text = ["# A trait's own word in its students (benchmarks/campaign_option_words.py)", "",
            f"Option words kept for {len(kept)} cells.", "", "```", TRAIT_WORD_CHECK, "```", "",
            *trait_word_lines(rows), "",
            "*not read*: no scan model's readout of the cell stored the word (a word is stored where some model "
            "spelled it whole from one of its 16 likeliest starts; see docs), so its lift is the floor's against the "
            "floor, not a measurement.", ""]  # fmt: skip
    atomic_write_text(REPORT, "\n".join(text))
    return rows


def main() -> None:
    STORE.mkdir(parents=True, exist_ok=True)
    kept = skipped = 0
    records = load_records()
    for cell, record in sorted(records.items()):
        path = STORE / f"{cell}.json"
        if path.exists():
            kept += 1
            continue
        block = capture(cell, record["options"], work() / "runs" / f"{cell}-probe" / "readouts")
        if block is None:
            skipped += 1
            continue
        atomic_write_json(path, block)
        kept += 1
        print(f"  {cell}: {len(block['lifts'])} option words", flush=True)
    print(f"option words kept for {kept} cells; {skipped} cells' students are gone from the cache")
    write_report(records)


if __name__ == "__main__":
    main()
