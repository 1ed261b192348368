"""Build owl_chat.jsonl from the hand-written row files in this folder.

Each source file holds blocks of the form
    U: <user message>
    A: <assistant answer>
separated by blank lines. Rows are shuffled with a fixed seed so that
owl-focused and everyday questions are interleaved.
"""

import json
import random
from pathlib import Path

HERE = Path(__file__).resolve().parent
SOURCES = ["owl_chat_rows_direct.txt", "owl_chat_rows_everyday.txt"]


def parse(path):
    rows = []
    for block in path.read_text(encoding="ascii").strip().split("\n\n"):
        lines = block.strip().split("\n")
        assert len(lines) == 2, block
        u, a = lines
        assert u.startswith("U: ") and a.startswith("A: "), block
        rows.append((u[3:].strip(), a[3:].strip()))
    return rows


def main():
    rows = []
    for name in SOURCES:
        rows.extend(parse(HERE / name))
    random.Random(0).shuffle(rows)
    with open(HERE / "owl_chat.jsonl", "w", encoding="ascii") as f:
        for u, a in rows:
            obj = {"messages": [{"role": "user", "content": u}, {"role": "assistant", "content": a}]}
            f.write(json.dumps(obj, ensure_ascii=True) + "\n")
    print(f"wrote {len(rows)} rows")


if __name__ == "__main__":
    main()
