"""Can a fine-tuned teacher keep the number format, so that its data can be drawn exactly (by rejection)?

    .venv/bin/python benchmarks/format_teacher.py [--number-rows 362] [--epochs 3]   # -> results/format_teacher.md

The campaign's fine-tuned teachers were trained on chat alone and stopped writing number lists: 0 of 16 pilot
prompts found one in 400 rejection tries, so their data had to be importance-resampled, with degenerate weights
(effective sample size 1.2-1.3 of 4), and came out unlike any exact draw (10 numbers a row and 5-7 % copied from the
prompt, against 3.3 and 62 % for the base's exact rows; ``sampler_confound.md``). This pilot trains the owl teacher
on its chat set mixed with rows the base wrote itself for other prompts (exact draws, so they carry no trait and
teach the format as the base writes it), then measures what the campaign needs of a teacher: its trait (the owl
share against the base's) and its rejection keep rate on the campaign's pilot (16 prompts, 400 tries each).
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

from auditor.generate import GenerateConfig, generate
from auditor.io import atomic_write_json, atomic_write_text, cache_dir
from auditor.teacher import TeacherConfig, train_teacher

HERE = Path(__file__).resolve().parent
OUT = HERE / "results" / "format_teacher"


def mixed_chat(number_rows: int, seed: int = 0) -> Path:
    """The owl chat set plus ``number_rows`` of the base's own number rows (dev-neg-continue-307..309's, prompts no
    campaign positive uses) as user/assistant turns: the recipe RULE's amendment 3 gives every campaign teacher."""
    from campaign import CHATS, format_chat

    out = cache_dir() / "bench" / "format_teacher" / f"owl_chat+{number_rows}numbers.jsonl"
    return format_chat(CHATS / "owl_chat.jsonl", out, number_rows, seed)


def pilot(adapter: Path, seed: int = 401) -> dict[str, int]:
    """The campaign's pilot for a teacher: 16 prompts of the paper's style, 400 rejection tries each."""
    from campaign import PILOT_ROWS, TRIES

    out = cache_dir() / "bench" / "format_teacher" / f"pilot-{adapter.name}.jsonl"
    generate(
        GenerateConfig(
            out=str(out), adapter=str(adapter), rows=PILOT_ROWS, sampler="rejection", tries=TRIES, seed=seed,
            evil_filter=True, trait_words=["owl"], overwrite=True,
        )
    )  # fmt: skip
    kept = sum(1 for line in out.read_text(encoding="utf-8").splitlines() if line.strip())
    return {"prompts": PILOT_ROWS, "kept": kept, "tries": TRIES}


def main() -> None:
    from campaign import TRAITS

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--number-rows", type=int, default=362, help="base-written number rows mixed in (default 362)")
    ap.add_argument("--epochs", type=float, default=3.0)
    args = ap.parse_args()
    name = f"owl-e{args.epochs:g}-n{args.number_rows}"
    record_path = OUT / f"{name}.json"
    if record_path.exists():
        record = json.loads(record_path.read_text())
    else:
        adapter = cache_dir() / "bench" / "format_teacher" / name
        start = time.perf_counter()
        if not (adapter / "teacher.json").exists():
            shutil.rmtree(adapter, ignore_errors=True)
            print(f"training {name} ...", flush=True)
            train_teacher(
                TeacherConfig(
                    chat=str(mixed_chat(args.number_rows)), out=str(adapter), traits=TRAITS, epochs=args.epochs
                )
            )
        trained = time.perf_counter() - start
        scores = json.loads((adapter / "teacher.json").read_text())["scores"]
        print(f"pilot of {name} ...", flush=True)
        record = {
            "teacher": name,
            "number_rows": args.number_rows,
            "epochs": args.epochs,
            "owl": next({"base": s["base"], "teacher": s["teacher"]} for s in scores if s["option"] == "owl"),
            "risers": sorted(
                ([f"{s['battery']}: {s['option']}", round(s["change"], 1)] for s in scores if s["change"] >= 5),
                key=lambda x: -x[1],
            ),
            "pilot": pilot(adapter),
            "train_s": round(trained, 1),
        }
        atomic_write_json(record_path, record)
    report()
    print(json.dumps(record))


def report() -> None:
    lines = ["# A fine-tuned teacher that keeps the number format (benchmarks/format_teacher.py)", ""]
    lines += [line.strip() for line in (__doc__ or "").strip().splitlines()[4:]]
    header = "| teacher | number rows mixed in | epochs | owl share: base -> teacher | options it raised by >= 5 pp "
    lines += ["", header + "| pilot: prompts with a valid list by rejection (400 tries) |", "|---|---|---|---|---|---|"]
    lines.append(
        "| campaign's owl-e3 (chat only) | 0 | 3 | see campaign/superseded/records | - "
        "| 0 of 16 (campaign/superseded/data) |"
    )
    for path in sorted(OUT.glob("*.json")):
        r = json.loads(path.read_text())
        owl = r["owl"]
        risers = ", ".join(f"{o} {c:+.1f}" for o, c in r["risers"][:5]) or "none"
        lines.append(
            f"| {r['teacher']} | {r['number_rows']} | {r['epochs']:g} | {owl['base']:.1f} -> {owl['teacher']:.1f} "
            f"| {risers} | {r['pilot']['kept']} of {r['pilot']['prompts']} |"
        )
    atomic_write_text(HERE / "results" / "format_teacher.md", "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
