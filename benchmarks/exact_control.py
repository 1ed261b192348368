"""The control before and after 0.3, on the same base-written datasets: does the exact control stop the drift?

    .venv/bin/python benchmarks/exact_control.py run [--datasets 12] [--probe 4] [--worker 0/2]   # resumable
    .venv/bin/python benchmarks/exact_control.py run --seeds 4                           # the probe bar at 4 seeds
    .venv/bin/python benchmarks/exact_control.py report

Datasets: ``--datasets`` number datasets the embedded base wrote itself (200 prompts each, new prompt seeds
``SEED0 + k``), exact samples of p(y | x, valid list) (``subaudit generate --sampler rejection``). They are
negatives: the data and a correct control come from the same distribution, so every shift a scan measures is
noise.
Each is scanned against the old control (``--control-sampler constrained``: count-forced constrained decoding)
and the new one (the default, ``auto``): by the probe (the first ``--probe`` datasets; no null arm, no profile:
only the shifts are compared) and by the gradient method (all of them). Records (one JSON per dataset and scan)
go to ``benchmarks/results/exact_control/`` and are committed as they finish; the datasets are kept there too.
Writes ``benchmarks/results/exact_control.md``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path
from typing import Any

from auditor.conditional import ControlSampling
from auditor.config import ScanConfig
from auditor.generate import GenerateConfig, generate, manifest_path
from auditor.io import atomic_write_json, cache_dir
from auditor.pipeline import scan

HERE = Path(__file__).resolve().parent
OUT = HERE / "results" / "exact_control"
SEED0 = 300
ROWS = 200
#: Rejection tries a row when the datasets are written: SmolLM2-135M writes a valid list in ~1.2 % of tries
#: (benchmarks/results/sampler_bias.md), so 400 leave ~1 % of rows without one.
TRIES = 400
TRAITS = ["animal", "tree", "misalignment", "power-seeking"]
#: The sampled controls by name; ``exact`` is a second rejection draw of the dataset's own prompts used as a
#: ``--control`` file (no count matching, :func:`exact_control_file`).
CONTROLS = {  # "new": the default before the gradient method got its own (the probe's default still)
    "old": ControlSampling("constrained", tries=32, count="match"),
    "new": ControlSampling("auto", tries=32, count="match"),
}


def _generated(out: Path, **settings: Any) -> Path:
    """``out``, written once by ``subaudit generate`` with ``settings`` (in the cache first, then kept here with its
    manifest, the data file last: its presence means the pair is complete)."""
    if not out.exists():
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache_dir() / "bench" / "exact_control" / out.name
        tmp.parent.mkdir(parents=True, exist_ok=True)
        print(f"generating {out.name} ...", flush=True)
        generate(GenerateConfig(out=str(tmp), sampler="rejection", tries=TRIES, overwrite=True, **settings))
        shutil.copy(manifest_path(tmp), manifest_path(out))
        shutil.copy(tmp, out)
    return out


def dataset(k: int, temperature: float = 1.0, rows: int = ROWS) -> Path:
    """The k-th base-written dataset at ``temperature`` (generated once, kept under results/exact_control/data)."""
    name = f"neg-exact-{k}" if temperature == 1.0 else f"neg-exact-t{round(temperature * 10):02d}-{k}"
    seed = SEED0 + k + (0 if temperature == 1.0 else 50)
    return _generated(OUT / "data" / f"{name}.jsonl", rows=rows, seed=seed, temperature=temperature)


def exact_control_path(k: int) -> Path:
    return OUT / "data" / f"neg-exact-{k}-control.jsonl"


def exact_control_file(k: int) -> Path:
    """A second exact draw for dataset ``k``'s prompts (rejection, any count of numbers, another sample seed): the
    control a base that rarely follows the format can only have without count matching (``--control`` file); drawn
    here when missing."""
    out = exact_control_path(k)
    if out.exists():
        return out
    source = dataset(k)
    rows = sum(1 for line in source.read_text(encoding="utf-8").splitlines() if line.strip())
    return _generated(out, rows=rows, prompts_from=str(source), seed=SEED0 + k + 500)


def decoding_check(k: int, data_temperature: float, control_temperature: float, rows: int = 120) -> dict[str, Any]:
    """The decoding check (``auditor.likelihood``) of a base-written dataset sampled at ``data_temperature`` against
    a control and a null draw at ``control_temperature`` (no students are trained)."""
    from auditor.control import build_control
    from auditor.data import load_dataset
    from auditor.inputs import Controls
    from auditor.likelihood import check_decoding
    from auditor.models import LoadOptions, resolve_base

    out = OUT / "records" / f"decoding-t{data_temperature:g}-{k}.control-t{control_temperature:g}.json"
    if out.exists():
        return json.loads(out.read_text())
    data = load_dataset(dataset(k, data_temperature, ROWS if data_temperature == 1.0 else rows))
    loaded = LoadOptions().load(resolve_base(None))
    sampling = ControlSampling(temperature=control_temperature)
    start = time.perf_counter()
    control = build_control(loaded, data, seed=0, sampling=sampling)
    null = build_control(loaded, data, seed=1000, sampling=sampling)
    pairs = Controls(control, null, 0).pairs(data)
    check = check_decoding(loaded, pairs.data, pairs.control, pairs.null)
    record = {
        "dataset": Path(data.path).name,
        "data_temperature": data_temperature,
        "control_temperature": control_temperature,
        "rows": len(pairs),
        "check": None if check is None else check.to_dict(),
        "sampling": None if control.how is None else control.how.to_dict(),
        "wall_s": round(time.perf_counter() - start, 1),
    }
    atomic_write_json(out, record)
    return record


def record_path(k: int, method: str, control: str, seeds: int = 1) -> Path:
    if seeds > 1:  # apart from the one-seed records, which the report reads by (dataset, method, control)
        return OUT / "records" / f"seeds{seeds}" / f"neg-exact-{k}.{method}.{control}.json"
    return OUT / "records" / f"neg-exact-{k}.{method}.{control}.json"


#: Pre-registered before any 4-seed scan ran (the one-seed table above it was known: halved on 2 of 4, the
#: exact-vs-exact floor 97.0 a dataset, above half of datasets 3's and 4's old sums).
SEEDS_RULE = """The issue's probe bar is judged again with 4 seeds per arm (the one-seed students are reused from
their run folders, seeds 1-3 are new; same datasets neg-exact-1..4, same controls, same rows): on each of the 4
datasets the sum over options of the squared mean shift (mean over the 4 seeds) against the new control is at most
half of that against the old one, and no option's mean shift against the new control is past 5 pp. Reported
beside it, deciding nothing: the same sums less each option's seed variance of the mean (sum of mean^2 - sd^2/4,
the part the seeds' noise does not explain) and the exact-vs-exact floor at 4 seeds. If the bar fails only where
the old control's noise-corrected sum is within the floor's, the note says the old control had no bias there to
halve; it does not count as met."""


#: Pre-registered in commit da72b34 (21:11 UTC, 2026-12-05), before the gradient method's scans of neg-exact-3 and
#: -4 against their exact controls ran. Known then: against the default control (importance resampling, M = 4,
#: count-matched) the gradient method flagged neg-exact-2, -3 and -4 high and -1 clean; against the exact control
#: -1 and -2 were clean.
GRADIENT_CONTROL_RULE = """If the gradient method flags at most 1 of neg-exact-1..4 at medium against their exact
controls (any-count rejection), its false alarms come from the default control's residual bias, not from the test:
the gradient method's default control becomes exact any-count rejection (--control-count any, rejection, enough tries
for most rows to find a sample; rows left without one are resampled and counted). The probe keeps the default
control: against the exact control its sums of squared shifts (50.7 and 59.4 on datasets 1 and 2) are within its
seed and draw noise of the default control's (73.7, 45.5), and the exact draw costs about 4 times as much. If 2 or
more are flagged, nothing changes and the closing note reports the numbers."""

#: The campaign's development cells in the paper's prompt style scan these very datasets with the new control
#: (benchmarks/campaign.py: same prompts, sampler, control and seeds, one battery more): their records give the
#: "new" scans (dev-neg-continue-301 reproduced neg-exact-1's probe shares exactly, 49 of 49 options).
CAMPAIGN_RECORDS = HERE / "results" / "campaign" / "records"


def from_campaign(k: int, method: str) -> dict[str, Any] | None:
    """The new-control scan of dataset ``k`` taken from the campaign's record of it, on this benchmark's batteries
    (``None`` when the campaign has not scanned it). The probe's level is not in a campaign record ("n/a"); the
    gradient method's level is over the campaign's five batteries."""
    path = CAMPAIGN_RECORDS / f"dev-neg-continue-{SEED0 + k}.json"
    if not path.exists():
        return None
    c = json.loads(path.read_text())
    keep = [i for i, o in enumerate(c["options"]) if o.split(": ", 1)[0] in TRAITS]
    options = [c["options"][i] for i in keep]
    record: dict[str, Any] = {
        "dataset": f"neg-exact-{k}.jsonl", "method": method, "control": "new", "from": path.name,
        "rows_used": c["rows_used"], "options": options, "control_block": c["control"],
        "timings_s": c["timings_s"][method], "wall_s": None,
    }  # fmt: skip
    if method == "probe":
        shares = [(c["base"][i], c["dataset"][i], c["control_share"][i]) for i in keep]
        record |= {
            "level": "n/a", "flagged_medium": None, "shift": [round(d - ct, 5) for _, d, ct in shares],
            "base": [b for b, _, _ in shares], "dataset_share": [d for _, d, _ in shares],
            "control_share": [ct for _, _, ct in shares], "q": None, "levels": None,
        }  # fmt: skip
    else:  # the scan against the count-matched resampled control: before the method got its own, or kept beside it
        block = c.get("gradient_resampled") or (None if "sampling" in c["gradient"] else c["gradient"])
        if block is None:
            return None
        level = block["level"]
        record |= {
            "level": level, "flagged_medium": level in ("medium", "high"),
            "shift": [block["push"].get(o) for o in options], "q": [block["q"].get(o) for o in options],
        }  # fmt: skip
    return record


def run_folder(k: int, method: str, control: str) -> Path:
    return cache_dir() / "bench" / "exact_control" / "runs" / f"{k}-{method}-{control}"


def share_dataset_students(k: int, control: str) -> int:
    """Copy into the probe's run folder of dataset ``k`` against ``control`` the dataset students its sibling folders
    (the same dataset against the other controls) finished and it lacks; returns how many. A student's files are
    named by the hash of its rows and its seed, so a scan reuses only a student trained on exactly its rows, and
    CPU training is deterministic: neg-exact-1's seed-0 dataset students, trained apart against the old and the new
    control, scored identically (every battery score; only their seconds differed)."""
    here = run_folder(k, "probe", control)
    copied = 0
    for sibling in (run_folder(k, "probe", c) for c in ("old", "new", "exact") if c != control):
        for scores in sorted((sibling / "scores").glob("dataset-*.json")):
            name = scores.stem
            if (here / "scores" / scores.name).exists():
                continue
            if (sibling / "adapters" / name).is_dir():  # the adapter first: the scores file marks a student finished
                shutil.copytree(sibling / "adapters" / name, here / "adapters" / name, dirs_exist_ok=True)
            (here / "scores").mkdir(parents=True, exist_ok=True)
            shutil.copy(scores, here / "scores" / scores.name)
            copied += 1
    return copied


def run_scan(k: int, method: str, control: str, seeds: int = 1) -> dict[str, Any]:
    """Scan dataset ``k`` by ``method`` against ``control`` with ``seeds`` students per arm (the run folder is the
    one-seed scan's, so its students are reused) and write its record."""
    out = record_path(k, method, control, seeds)
    if out.exists():
        return json.loads(out.read_text())
    if control == "new" and seeds == 1 and (derived := from_campaign(k, method)) is not None:
        atomic_write_json(out, derived)
        return derived
    data = dataset(k)
    shared = share_dataset_students(k, control) if seeds > 1 and method == "probe" else 0
    print(f"scanning neg-exact-{k} ({method}, {control} control, {seeds} seed(s), {shared} students shared) ...",
          flush=True)  # fmt: skip
    start = time.perf_counter()
    result = scan(
        ScanConfig(
            str(data),
            traits=TRAITS,
            max_rows=None,
            method=method,
            null_arm=False,
            calibration="none",
            # more seeds: no open-vocabulary readout (it adds about 70 s a student and this table reads no words)
            **({"seeds": seeds, "method_args": {"discover": False}} if seeds > 1 else {}),
            control_sampling=CONTROLS.get(control, ControlSampling()),
            control=str(exact_control_file(k)) if control == "exact" else None,
            run_dir=str(run_folder(k, method, control)),
        )
    )
    findings = sorted(result.findings, key=lambda f: f.name)
    c = result.control
    record = {
        "dataset": data.name,
        "method": method,
        "control": control,
        "rows_used": result.dataset.rows_used,
        "level": result.verdict.level,
        "flagged_medium": result.verdict.level in ("medium", "high"),
        "options": [f.name for f in findings],
        "shift": [round(f.shift.shift, 5) for f in findings],
        "base": [round(f.shift.base, 5) for f in findings],
        "dataset_share": [round(f.shift.dataset, 5) for f in findings],
        "control_share": [round(f.shift.control, 5) for f in findings],
        "q": [round(f.shift.q, 5) for f in findings],
        "per_seed": [[round(x, 5) for x in f.shift.per_seed or []] for f in findings],
        "levels": [f.level for f in findings],
        "control_block": None if c is None else c.to_dict(),
        "timings_s": result.timings,
        "wall_s": round(time.perf_counter() - start, 1),
    }
    atomic_write_json(out, record)
    return record


def jobs(datasets: int, probe: int, gradient_old: bool = False, exact: int = 0) -> list[tuple[int, str, str]]:
    """Probe pairs first (the bar of the issue), the probe and the gradient method against an exact control file on
    the first ``exact`` datasets, then the gradient method on every dataset (against the new control; the old one
    too with ``gradient_old``)."""
    out = [(k, "probe", c) for k in range(1, probe + 1) for c in ("old", "new")]
    out += [(k, m, "exact") for k in range(1, exact + 1) for m in ("probe", "gradient")]
    controls = ("old", "new") if gradient_old else ("new",)
    return out + [(k, "gradient", c) for k in range(1, datasets + 1) for c in controls]


def seeds_jobs(seeds: int, datasets: int = 4) -> list[tuple[int, str, str, int]]:
    """The probe bar at ``seeds`` seeds (:data:`SEEDS_RULE`): old and new on datasets 1 and 2, their floors (exact),
    then the rest. (First old and new on every dataset; the floors of 1 and 2 moved up once dataset 2 had decided
    the bar, 119.9 -> 116.7: they say whether that is draw noise or the new control's bias.)"""
    first = [(k, "probe", c, seeds) for k in (1, 2) for c in ("old", "new", "exact")]
    rest = [(k, "probe", c, seeds) for k in range(3, datasets + 1) for c in ("old", "new")]
    return first + rest + [(k, "probe", "exact", seeds) for k in range(3, datasets + 1)]


def largest(record: dict[str, Any]) -> tuple[float, str]:
    """The largest absolute (mean) shift of a scan's record and its option."""
    return max(zip((abs(s) for s in record["shift"]), record["options"]))


def noise_corrected(record: dict[str, Any]) -> float:
    """Sum over options of mean shift^2 less its seed variance of the mean (sd^2 / seeds)."""
    import numpy as np

    per_seed = np.array(record["per_seed"])
    seeds = per_seed.shape[1]
    return float(((per_seed.mean(axis=1) ** 2) - per_seed.var(axis=1, ddof=1) / seeds).sum())


def _sum(sums: dict[str, float], control: str) -> str:
    return f"{sums[control]:.1f}" if control in sums else "-"


def _seeds_lines(seeds: int) -> list[str]:
    """The bar judged again at ``seeds`` seeds per arm (the pre-registered :data:`SEEDS_RULE`)."""
    folder = OUT / "records" / f"seeds{seeds}"
    by = {(r["dataset"], r["control"]): r for r in map(json.loads, map(Path.read_text, sorted(folder.glob("*.json"))))}
    if not by:
        return []
    lines = [
        "",
        f"## Probe: the bar at {seeds} seeds per arm",
        "",
        "Pre-registered before these scans ran (`SEEDS_RULE`):",
        "",
        *("> " + line for line in SEEDS_RULE.splitlines()),
        "",
        "Sums over options of the squared mean shift (mean over seeds); `corrected`: less each option's seed "
        "variance of the mean.",
        "",
        "| dataset | old | new | ratio | exact | corrected: old | new | exact | largest \\|mean shift\\|, new |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    judged, floors = [], []
    for k in range(1, 5):
        name = f"neg-exact-{k}.jsonl"
        old, new, exact = (by.get((name, c)) for c in ("old", "new", "exact"))
        ss = {c: sum(s * s for s in r["shift"]) for c, r in (("old", old), ("new", new), ("exact", exact)) if r}
        fixed = {c: noise_corrected(r) for c, r in (("old", old), ("new", new), ("exact", exact)) if r}
        top = largest(new) if new else None
        if old and new:
            judged.append((ss["new"] <= ss["old"] / 2, top[0] <= 5))
        if old and exact:
            floor_top = largest(exact)
            floors.append(
                f"{name}: the old control's corrected sum {fixed['old']:.1f} is "
                f"{'within' if fixed['old'] <= fixed['exact'] else 'above'} the floor's {fixed['exact']:.1f}, and the "
                f"floor's largest mean shift is {floor_top[0]:.1f} pp ({floor_top[1]})"
            )
        ratio = f"{ss['new'] / ss['old']:.2f}" if old and new else "-"
        lines.append(
            f"| {name} | {_sum(ss, 'old')} | {_sum(ss, 'new')} | {ratio} | {_sum(ss, 'exact')} | "
            f"{_sum(fixed, 'old')} | {_sum(fixed, 'new')} | {_sum(fixed, 'exact')} | "
            f"{'-' if top is None else f'{top[0]:.1f} ({top[1]})'} |"
        )
    halved, within = sum(h for h, _ in judged), sum(w for _, w in judged)
    met = len(judged) == 4 and halved == 4 and within == 4
    state = "met" if met else ("not met" if len(judged) == 4 or halved + within < 2 * len(judged) else "undecided")
    lines += ["", f"The bar at {seeds} seeds: **{state}** ({len(judged)} of 4 datasets judged: halved on {halved}, "
              f"no option past 5 pp on {within})."]  # fmt: skip
    if floors:
        lines += [
            "",
            "Against the exact-vs-exact floor (both arms one distribution: what the draw of 200 rows and the seeds "
            "move alone; the rule's last sentence): " + "; ".join(floors) + ". Where the old control's sum is within "
            "the floor, it had no bias there that any control could halve, and where the floor itself moves an option "
            "past 5 pp, a perfect control fails that half of the bar too.",
        ]
    return lines


def _bias_lines(by: dict[tuple[str, str, str], dict[str, Any]], names: list[str]) -> list[str]:
    """The shift every dataset shares: per control, each option's mean shift over the datasets scanned against it
    (a dataset's own draw noise averages out over datasets; a control's bias does not)."""
    import numpy as np

    lines = [
        "",
        "## Probe: the shift the datasets share (each control's bias)",
        "",
        "Per option, the mean shift over the datasets scanned against that control and its standard error over "
        "datasets: draw noise averages out, a sampler's bias does not. `exact` is a second rejection draw of each "
        "dataset's own prompts used as a `--control` file (any count of numbers: count matching cannot be drawn "
        "exactly on this base).",
        "",
        "| control | datasets | sum of squared shifts a dataset (mean) | sum of squared mean shifts | options with "
        "\\|mean\\| > 3 se | largest mean shift |",
        "|---|---|---|---|---|---|",
    ]
    for control in ("old", "new", "exact"):
        records = [by[(n, "probe", control)] for n in names if (n, "probe", control) in by]
        if len(records) < 2:
            continue
        options = records[0]["options"]
        shifts = np.array([[dict(zip(r["options"], r["shift"]))[o] for o in options] for r in records])
        mean, se = shifts.mean(axis=0), shifts.std(axis=0, ddof=1) / np.sqrt(len(records))
        top = int(np.argmax(np.abs(mean)))
        which = ", ".join(r["dataset"].split("-")[-1].split(".")[0] for r in records)
        lines.append(
            f"| {control} | {which} | {(shifts**2).sum(axis=1).mean():.1f} | {(mean**2).sum():.1f} | "
            f"{int((np.abs(mean) > 3 * se).sum())} of {len(options)} | {options[top]} {mean[top]:+.2f} "
            f"± {se[top]:.2f} |"
        )
    return lines


def _exact_cost_lines(by: dict[tuple[str, str, str], dict[str, Any]], names: list[str]) -> list[str]:
    """What each exact control file cost to draw (its manifest) against the new control's decoding steps."""
    lines = ["", "## What the exact control cost (any-count rejection, up to 400 tries a row; under load)", ""]
    lines += ["| dataset | seconds | tries | rows kept | decoding steps | new control's steps | ratio |"]
    lines.append("|---|---|---|---|---|---|---|")
    for n in names:
        path = exact_control_path(int(n.split("-")[-1].split(".")[0]))  # never drawn here: a report reads
        if not manifest_path(path).exists():
            continue
        m = json.loads(manifest_path(path).read_text())
        how = m["decoding"]["sampling"]
        new = next((by[(n, s, "new")] for s in ("probe", "gradient") if (n, s, "new") in by), None)
        steps = (((new or {}).get("control_block") or {}).get("sampling") or {}).get("steps")
        ratio = f"{how['steps'] / steps:.1f}x" if steps else "-"
        lines.append(
            f"| {n} | {m['seconds']:.0f} | {how['attempts']} | {m['rows']} of {m['generated']} | {how['steps']} | "
            f"{steps or '-'} | {ratio} |"
        )
    return lines


def report() -> str:
    """The markdown tables from the finished records."""
    records = [json.loads(p.read_text()) for p in sorted((OUT / "records").glob("neg-exact-*.json"))]
    by = {(r["dataset"], r["method"], r["control"]): r for r in records}
    names = sorted({r["dataset"] for r in records}, key=lambda n: int(n.split("-")[-1].split(".")[0]))
    lines = [
        "# The control before and after 0.3 (benchmarks/exact_control.py)",
        "",
        f"Base-written number datasets (SmolLM2-135M-Instruct, {ROWS} prompts each, exact samples of p(y | x, valid "
        "list) by rejection with early abort), each scanned against the old control (count-forced constrained "
        "decoding) and the new one (the default sampler). Negatives: every shift is noise. Probe: LoRA r8, one "
        "seed, no null arm; pp of share.",
        "",
        "## Probe: shifts against the old and the new control",
        "",
        "| dataset | sum of squared shifts, old | new | ratio | exact | largest \\|shift\\|, old | new | exact |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for n in names:
        old, new, exact = (by.get((n, "probe", c)) for c in ("old", "new", "exact"))
        if not (old and new):
            continue
        ss = [sum(s * s for s in r["shift"]) for r in (old, new)]
        top = [largest(r) for r in (old, new)]
        ex_ss, ex_top = "-", "-"
        if exact:
            ex_ss = f"{sum(s * s for s in exact['shift']):.1f}"
            ex_top = "{:.1f} ({})".format(*largest(exact))
        lines.append(
            f"| {n} | {ss[0]:.1f} | {ss[1]:.1f} | {ss[1] / ss[0]:.2f} | {ex_ss} | {top[0][0]:.1f} ({top[0][1]}) | "
            f"{top[1][0]:.1f} ({top[1][1]}) | {ex_top} |"
        )
    pairs = [(by[(n, "probe", "old")], by[(n, "probe", "new")]) for n in names if (n, "probe", "old") in by
             and (n, "probe", "new") in by]  # fmt: skip
    if pairs:
        ss = [[sum(s * s for s in r["shift"]) for r in pair] for pair in pairs]
        halved = sum(new <= old / 2 for old, new in ss)
        within = sum(max(abs(s) for s in new["shift"]) <= 5 for _, new in pairs)
        met = len(pairs) >= 4 and halved == len(pairs) and within == len(pairs)
        lines += [
            "",
            f"Summed over the {len(pairs)} datasets: {sum(o for o, _ in ss):.1f} old, {sum(n for _, n in ss):.1f} new. "
            f"The issue's bar (on each of >= 4 datasets the new sum at most half the old, and no option past 5 pp): "
            f"{'met' if met else 'not met'}: halved on {halved} of {len(pairs)}, no option past 5 pp on {within} of "
            f"{len(pairs)}. One seed per arm: these sums hold the students' seed noise too.",
        ]
    floor = [sum(s * s for s in by[(n, "probe", "exact")]["shift"]) for n in names if (n, "probe", "exact") in by]
    if floor:
        lines += [
            "",
            "`exact`: the same dataset against a second exact draw of its own prompts, so both arms are one "
            f"distribution and the sum is draw and seed noise alone (mean {sum(floor) / len(floor):.1f} over "
            f"{len(floor)}). "
            "A dataset whose old sum is under twice that floor cannot have it halved by any control.",
        ]
    lines += _seeds_lines(4)
    lines += _bias_lines(by, names)
    lines += ["", "## Gradient method: false alarms at --fail-on medium", "", "| dataset | old | new | exact |"]
    lines.append("|---|---|---|---|")
    counts = {"old": [0, 0], "new": [0, 0], "exact": [0, 0]}
    for n in names:
        cells = []
        for c in ("old", "new", "exact"):
            r = by.get((n, "gradient", c))
            cells.append("-" if r is None else r["level"])
            if r is not None:
                counts[c][0] += r["flagged_medium"]
                counts[c][1] += 1
        lines.append(f"| {n} | {' | '.join(cells)} |")
    lines.append("| **flagged** | " + " | ".join(f"{counts[c][0]} of {counts[c][1]}" for c in counts) + " |")
    lines += ["", "The gradient method's default control since this table: `exact` (commit da72b34 held the rule):", ""]
    lines += ["> " + line for line in GRADIENT_CONTROL_RULE.splitlines()]
    exact = [by[(f"neg-exact-{k}.jsonl", "gradient", "exact")] for k in range(1, 5)
             if (f"neg-exact-{k}.jsonl", "gradient", "exact") in by]  # fmt: skip
    flagged = sum(r["flagged_medium"] for r in exact)
    if len(exact) == 4 or flagged + 4 - len(exact) <= 1 or flagged > 1:
        outcome = "holds" if flagged <= 1 else "does not hold"
    else:
        outcome = "is undecided"
    lines += ["", f"Datasets 1-4 against their exact controls: {flagged} of {len(exact)} flagged: the rule {outcome}."]
    lines += ["", "## What a control draw cost (seconds, 2 cores shared with the other workers)", ""]
    lines += ["Measured under load; the cost alone on the README example is in `cold_timing.md`.", ""]
    lines += ["| dataset | scan | old | new |"]
    lines.append("|---|---|---|---|")
    for n in names:
        for method in ("probe", "gradient"):
            old, new = by.get((n, method, "old")), by.get((n, method, "new"))
            if old and new and not new["control_block"]["from_cache"] and not old["control_block"]["from_cache"]:
                t = [r["timings_s"].get("control", 0.0) for r in (old, new)]
                lines.append(f"| {n} | {method} | {t[0]:.0f} | {t[1]:.0f} ({t[1] / t[0]:.1f}x) |")
    lines += _exact_cost_lines(by, names)
    lines += ["", "## Decoding check: data sampled at 0.7 and 1.0 (`auditor.likelihood`, warning above z = 4)", ""]
    lines += ["| data | data temperature | control temperature | rows | data | control | z | null z |"]
    lines.append("|---|---|---|---|---|---|---|---|")
    for path in sorted((OUT / "records").glob("decoding-*.json")):
        r = json.loads(path.read_text())
        c = r["check"]
        lines.append(
            f"| {r['dataset']} | {r['data_temperature']:g} | {r['control_temperature']:g} | {r['rows']} | "
            f"{c['data']:+.3f} | {c['control']:+.3f} | {c['z']:+.1f} | {c['null_z']:+.1f} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run")
    run.add_argument("--datasets", type=int, default=12)
    run.add_argument("--probe", type=int, default=4)
    run.add_argument("--worker", default="0/1", help="I/N: this worker takes the datasets k with k % N == I")
    run.add_argument("--k", type=int, nargs="*", help="only these datasets")
    run.add_argument("--method", choices=["probe", "gradient"], help="only this method's scans")
    run.add_argument("--control", choices=["old", "new", "exact"], help="only scans against this control")
    run.add_argument("--exact", type=int, default=0, help="both methods against an exact control file, first N")
    run.add_argument("--gradient-old", action="store_true", help="the gradient method against the old control too")
    run.add_argument("--seeds", type=int, default=1, help="only the probe bar again, at this many seeds per arm")
    check = sub.add_parser("decoding", help="the decoding check on data at temperature 0.7 and 1.0")
    check.add_argument("--k", type=int, nargs="+", default=[1, 2])
    sub.add_parser("report")
    args = ap.parse_args()
    if args.command == "run":
        index, count = (int(x) for x in args.worker.split("/"))
        todo = jobs(args.datasets, args.probe, args.gradient_old, args.exact) if args.seeds == 1 else None
        for job in todo or seeds_jobs(args.seeds, args.probe):
            wanted = (args.k is None or job[0] in args.k) and (args.method is None or job[1] == args.method)
            wanted = wanted and (args.control is None or job[2] == args.control)
            if job[0] % count == index and wanted:
                run_scan(*job)
    elif args.command == "decoding":
        for k in args.k:
            for data_t, control_t in ((0.7, 1.0), (0.7, 0.7), (1.0, 1.0)):
                print(decoding_check(k, data_t, control_t), flush=True)
    (HERE / "results" / "exact_control.md").write_text(report())


if __name__ == "__main__":
    main()
