"""``python -m auditor.precommit [scan options] FILE...``: the pre-commit hook. pre-commit passes every staged
dataset file at once; each is scanned in turn with the same options, and the hook exits with the worst code
(3 runtime failure > 2 bad input > 1 flagged > 0)."""

from __future__ import annotations

import sys
from pathlib import Path

#: Exit codes from least to most serious.
SEVERITY = (0, 1, 2, 3)
#: Staged files the hook scans.
DATA_SUFFIXES = (".jsonl", ".ndjson", ".csv", ".parquet")


def main(argv: list[str] | None = None) -> int:
    from .cli import app

    args = list(sys.argv[1:] if argv is None else argv)
    files = [a for a in args if Path(a).suffix.lower() in DATA_SUFFIXES and Path(a).is_file()]
    options = [a for a in args if a not in files]
    worst = 0
    for path in files:
        try:
            code = app(["scan", path, *options], prog_name="subaudit", standalone_mode=False) or 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 3
        except Exception:  # noqa: BLE001 - never let a crash pass as clean
            code = 3
        worst = max(worst, code, key=lambda c: SEVERITY.index(c) if c in SEVERITY else len(SEVERITY))
    return worst


if __name__ == "__main__":
    sys.exit(main())
