"""Build the hand-written chat sets in this folder from their row files.

Each row file holds blocks of the form
    U: <user message>
    A: <assistant answer>
separated by blank lines; lines starting with "#" are comments. The rows of a
set are shuffled with a fixed seed (0) so that direct and everyday questions
are interleaved, and written as one JSON chat object per line.

    python examples/teacher/build_chat_sets.py              # every set, here
    python examples/teacher/build_chat_sets.py --out DIR dolphin_chat.jsonl
"""

import argparse
import json
import random
from pathlib import Path

HERE = Path(__file__).resolve().parent
#: output file -> its row files (the other sets of this folder have no row files)
SETS = {
    "owl_chat.jsonl": ["owl_chat_rows_direct.txt", "owl_chat_rows_everyday.txt"],
    "dolphin_chat.jsonl": ["dolphin_chat_rows.txt"],
    "maple_chat.jsonl": ["maple_chat_rows.txt"],
}


def parse(path):
    rows = []
    text = "\n".join(line for line in path.read_text(encoding="ascii").split("\n") if not line.startswith("#"))
    for block in text.strip().split("\n\n"):
        lines = block.strip().split("\n")
        assert len(lines) == 2, block
        u, a = lines
        assert u.startswith("U: ") and a.startswith("A: "), block
        rows.append((u[3:].strip(), a[3:].strip()))
    return rows


def build(name, out_dir=HERE):
    rows = []
    for source in SETS[name]:
        rows.extend(parse(HERE / source))
    assert len({u for u, _ in rows}) == len(rows), f"{name}: duplicate user message"
    random.Random(0).shuffle(rows)
    with open(Path(out_dir) / name, "w", encoding="ascii") as f:
        for u, a in rows:
            obj = {"messages": [{"role": "user", "content": u}, {"role": "assistant", "content": a}]}
            f.write(json.dumps(obj, ensure_ascii=True) + "\n")
    return len(rows)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sets", nargs="*", help=f"sets to build (default: all of {', '.join(SETS)})")
    parser.add_argument("--out", type=Path, default=HERE, help="output folder (default: this folder)")
    args = parser.parse_args(argv)
    if unknown := sorted(set(args.sets) - set(SETS)):
        parser.error(f"no row files for {', '.join(unknown)}")
    for name in args.sets or SETS:
        print(f"{name}: wrote {build(name, args.out)} rows")


if __name__ == "__main__":
    main()
