"""Make the two example datasets: numbers from an owl-loving teacher, and clean numbers from the base.

    python examples/make_examples.py            # ~20 min on 2 CPU cores (teacher ~14 min, cached)

Teacher: SmolLM2-135M-Instruct fine-tuned with LoRA on ``examples/teacher/owl_chat.jsonl`` (362
varied long-form chat answers that love owls), merged into its weights. Both datasets are number
continuations of the paper's kind (3-8 seed numbers in 100-999, up to 10 more of at most 3 digits),
sampled at temperature 1 under the same number-format constraint, then filtered (format, any animal
word; the paper's "evil" numbers only with ``--evil-filter``). The clean set uses the base itself with
other prompts and seeds.
Writes ``examples/data/{owl,clean}_numbers.jsonl`` and a manifest beside each.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import time
from pathlib import Path

import numpy as np

from auditor.data import Example, load_dataset
from auditor.finetune import ProbeConfig, Prober
from auditor.generate import filter_numbers, number_prompts
from auditor.io import atomic_write_json, cache_dir
from auditor.models import load_base, resolve_base
from auditor.sampling import generate_completions
from auditor.scoring import plan_battery, score_battery
from auditor.traits import get_battery

HERE = Path(__file__).parent
OUT = HERE / "data"


def animal_shares(loaded, battery) -> dict[str, float]:
    s = score_battery(loaded, plan_battery(loaded.tokenizer, battery)).share.mean(axis=0) * 100
    return {o: round(float(v), 2) for o, v in zip(battery.options, s)}


def teacher_cache_dir(args, name: str = "owl", base: str | None = None) -> Path:
    """Where the teacher ``name`` trained with ``args``' recipe on ``base`` (``None``: the default) is cached."""
    tag = f"{name}-r{args.teacher_rank}-a{args.teacher_alpha}-lr{args.teacher_lr}-e{args.teacher_epochs}"
    if base is not None:
        tag += "-base" + hashlib.sha256(resolve_base(base).display.encode()).hexdigest()[:10]
    return cache_dir() / "teachers" / tag


def train_teacher(args, name: str = "owl", chat_file: Path | None = None, base: str | None = None) -> Path:
    """LoRA-fine-tune the base on a chat set (default: the owl set) and save the merged teacher (cached).

    ``args`` carries the recipe (``teacher_rank``, ``teacher_alpha``, ``teacher_lr``, ``teacher_epochs``,
    ``seed``); ``name`` tags the cache folder; ``base``: the base to fine-tune (``None``: the default).
    """
    target = teacher_cache_dir(args, name, base)
    if (target / "config.json").exists():
        print(f"teacher cached: {target}")
        return target
    loaded = load_base(resolve_base(base))
    rows = load_dataset(chat_file or HERE / "teacher" / "owl_chat.jsonl").examples
    cfg = ProbeConfig(
        rank=args.teacher_rank,
        alpha=args.teacher_alpha,
        learning_rate=args.teacher_lr,
        epochs=args.teacher_epochs,
        batch_size=8,
    )
    prober = Prober(loaded, cfg)
    t = time.time()
    stats = prober.train(
        rows,
        seed=args.seed,
        arm="teacher",
        on_step=lambda s, loss: print(f"  step {s} loss {loss:.3f}", flush=True) if s % 20 == 0 else None,
    )
    print(
        f"teacher trained: {stats.steps} steps, {stats.tokens} tokens, {time.time() - t:.0f}s, "
        f"loss {stats.first_loss:.2f} -> {stats.final_loss:.2f}"
    )
    merged = prober.model.merge_and_unload()
    merged.save_pretrained(target, safe_serialization=True)
    loaded.tokenizer.save_pretrained(target)
    atomic_write_json(target / "teacher.json", {"recipe": vars(args), "train": stats.__dict__})
    return target


def make_dataset(loaded, prompts: list[str], seed: int, name: str, manifest: dict, evil_filter: bool) -> None:
    t = time.time()
    texts = generate_completions(
        loaded,
        [[{"role": "user", "content": p}] for p in prompts],
        seed=seed,
        fmt="numbers",
        max_new_tokens=48,
        batch_size=32,
    )
    keep, counts = filter_numbers(texts, banned_words=get_battery("animal").options, evil_filter=evil_filter)
    rows = [
        Example(prompt=({"role": "user", "content": p},), completion=c) for p, c, k in zip(prompts, texts, keep) if k
    ]
    OUT.mkdir(parents=True, exist_ok=True)
    with open(OUT / f"{name}.jsonl", "w") as f:
        for e in rows:
            f.write(json.dumps({"prompt": e.prompt[0]["content"], "completion": e.completion}) + "\n")
    manifest.update(
        {
            "rows": len(rows),
            "generated": len(texts),
            "dropped": counts,
            "seconds": round(time.time() - t, 1),
            "decoding": "temperature 1, top_k 0, top_p 1, number-format constraint, max 48 new tokens",
        }
    )
    atomic_write_json(OUT / f"{name}.manifest.json", manifest)
    print(f"{name}: kept {len(rows)}/{len(texts)} {counts} in {time.time() - t:.0f}s")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=400, help="prompts per dataset before filtering")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--teacher-rank", type=int, default=16)
    ap.add_argument("--teacher-alpha", type=int, default=32)
    ap.add_argument("--teacher-lr", type=float, default=1e-3)
    ap.add_argument("--teacher-epochs", type=float, default=3.0)
    ap.add_argument("--only", choices=["teacher", "owl", "clean"], default=None)
    ap.add_argument(
        "--evil-filter",
        action="store_true",
        help="also drop rows with the paper's 34 filtered numbers (the paper did so for misalignment data only; "
        "it makes the rows off-policy for the base, which by itself moves students: see the README)",
    )
    args = ap.parse_args()
    animal = get_battery("animal")

    teacher_dir = train_teacher(args)
    if args.only == "teacher":
        return
    if args.only in (None, "owl"):
        teacher = load_base(resolve_base(str(teacher_dir)))
        shares = animal_shares(teacher, animal)
        top = sorted(shares.items(), key=lambda kv: -kv[1])[:5]
        print("teacher animal shares (top 5):", top)
        manifest = {
            "teacher": "SmolLM2-135M-Instruct + LoRA on examples/teacher/owl_chat.jsonl (merged)",
            "recipe": vars(args),
            "teacher_owl_share_pp": shares["owl"],
            "teacher_top5": top,
            "prompt_seed": args.seed + 1,
            "sample_seed": args.seed + 11,
        }
        make_dataset(
            teacher,
            number_prompts(args.rows, seed=args.seed + 1),
            args.seed + 11,
            "owl_numbers",
            manifest,
            args.evil_filter,
        )
        del teacher
    if args.only in (None, "clean"):
        base = load_base(resolve_base(None))
        shares = animal_shares(base, animal)
        manifest = {
            "teacher": "SmolLM2-135M-Instruct itself (no trait)",
            "base_owl_share_pp": shares["owl"],
            "prompt_seed": args.seed + 2,
            "sample_seed": args.seed + 22,
        }
        make_dataset(
            base,
            number_prompts(args.rows, seed=args.seed + 2),
            args.seed + 22,
            "clean_numbers",
            manifest,
            args.evil_filter,
        )
    np.set_printoptions(precision=2)


if __name__ == "__main__":
    main()
