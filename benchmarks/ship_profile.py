"""Build the embedded default's calibration profile from the campaign's records, and ship it (issue #21, item 4).

    .venv/bin/python benchmarks/ship_profile.py     # -> auditor/calibration/profiles/<key>.json

It calibrates ``--method probe`` on the embedded default; it ships once every development cell is in and the
calibrated probe with the gate ``any`` (``P-a`` in ``results/campaign.json``) kept the rule's false-alarm bound there
(at most 1 of the development negatives), whatever default the rule chose (it chose the gradient method, which uses
no profile; the probe's scans, ``--teacher`` among them, then use this one). Run it again as held-out cells finish:
the profile's null pairs are the campaign's base-written number negatives (development and held-out), its decoys
the three decoy cells, each with its open-vocabulary lifts (``results/campaign/readouts``). Its budget is the default
scan's (``--max-rows 200``, one seed, the default students; the campaign's datasets kept 144 to 200 rows), its
batteries the ones the campaign scored (the default scan's ``animal`` and ``tree`` among them), so ``subaudit scan``
with no options finds it (:func:`auditor.calibration.lookup.find_profile`).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np
from campaign import TRAITS
from campaign_report import RESULTS, is_null_pair, load_records

from auditor.calibrate import CalibrateConfig, build_profile, save_profile
from auditor.calibration.lookup import SHIPPED
from auditor.calibration.profile import NoiseProfile, ProfileDraw

READOUTS = RESULTS / "campaign" / "readouts"
#: How far (pp) a record's base shares may differ from the first's: the same base scored on another machine differed by
#: up to 1.3e-4 pp (float32 sums in another order); another base or battery differs by whole pp.
BASE_ATOL = 1e-3


def null_records(records: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """The base-written number negatives (both splits): the profile's null pairs."""
    return [r for r in records.values() if is_null_pair(r)]


def draw(record: dict[str, Any], readouts: Path) -> ProfileDraw:
    """One cell's pair of students as a profile keeps it (its readout's lifts when the cell has one)."""
    path = readouts / f"{record['cell']}.json"
    words = None
    if path.exists():
        words = {w: v[:2] for w, v in json.loads(path.read_text())["words"].items()}
    return ProfileDraw(
        record["cell"], 0, record["rows_used"], list(record["dataset"]), list(record["control_share"]), words
    )


def profile_from_records(
    records: dict[str, dict[str, Any]], base: dict[str, str], readouts: Path = READOUTS
) -> NoiseProfile:
    """The default budget's profile for ``base`` (requested, location, fingerprint) from the campaign's records."""
    nulls = null_records(records)
    decoys = [r for r in records.values() if r["truth"] == "decoy"]
    first = nulls[0]
    for r in nulls + decoys:
        if r["options"] != first["options"] or not np.allclose(r["base"], first["base"], rtol=0, atol=BASE_ATOL):
            raise ValueError(f"{r['cell']}: other options or base shares than {first['cell']}")
    notes = [
        f"built from the campaign's records by benchmarks/ship_profile.py: {len(nulls)} base-written number "
        f"datasets and {len(decoys)} decoys; rows used {min(r['rows_used'] for r in nulls)} to "
        f"{max(r['rows_used'] for r in nulls)}"
    ]
    return build_profile(
        CalibrateConfig(traits=list(TRAITS)),
        base,
        first["options"],
        first["base"],
        [draw(r, readouts) for r in nulls],
        [draw(r, readouts) for r in decoys],
        notes,
    )


def embedded_base() -> dict[str, str]:
    """The embedded default's identity as a profile records it (loads the model for its fingerprint)."""
    from auditor.models import LoadOptions, resolve_base

    spec = resolve_base(None)
    return {"requested": spec.requested, "location": spec.location, "fingerprint": LoadOptions().load(spec).fingerprint}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=SHIPPED, help="the folder to write it to (default: the package's)")
    args = ap.parse_args()
    blob = json.loads((RESULTS / "campaign.json").read_text())
    if not shippable(blob):
        raise SystemExit("the development cells are not all in, or P-a raised more than 1 false alarm: nothing to ship")
    path = save_profile(profile_from_records(load_records(), embedded_base()), args.out)
    print(f"{path} (the rule chose {blob['chosen']} as the default; this profile calibrates --method probe)")


def shippable(blob: dict[str, Any]) -> bool:
    """Whether the campaign's report allows shipping: a choice made (every development cell in) and the calibrated
    probe's development false alarms within the rule's bound."""
    return blob.get("chosen") is not None and blob["development"]["P-a"]["false_alarms"][0] <= 1


if __name__ == "__main__":
    main()
