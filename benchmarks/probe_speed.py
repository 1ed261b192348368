"""Probe training tokens/s on the owl example's first 160 rows, measured as ``throughput.py``'s subaudit arm does,
for comparing two checkouts on one machine in one sitting (a regression check without the TRL arm):

    cd OLD && PYTHONPATH=$PWD:$PWD/benchmarks OMP_NUM_THREADS=2 python -P /path/to/benchmarks/probe_speed.py
    cd NEW && PYTHONPATH=$PWD:$PWD/benchmarks OMP_NUM_THREADS=2 python -P benchmarks/probe_speed.py

(``-P``, Python 3.11+: the script's own folder is not put first on the path, so ``throughput`` is the checkout's.)

Prints one JSON line. Works from checkouts before the method seam too (``throughput.py`` then held the arms and
``ProbeConfig`` lived in ``auditor.probe``).
"""

from __future__ import annotations

import json

import throughput  # the checkout's own (PYTHONPATH, see above)

try:
    from throughput_probe import run_subaudit, warm_up
except ImportError:  # a checkout before the split
    run_subaudit, warm_up = throughput.run_subaudit, throughput.warm_up

from auditor.data import load_dataset  # noqa: E402
from auditor.models import resolve_base  # noqa: E402

try:
    from auditor.finetune import ProbeConfig
except ImportError:  # a checkout before the method seam
    from auditor.probe import ProbeConfig  # type: ignore[no-redef]


def main() -> None:
    args = throughput.parse_args([])
    args.device = "cpu"
    spec = resolve_base(None)
    rows = load_dataset("examples/data/owl_numbers.jsonl").examples[:160]
    warm_up(spec, args, rows, ProbeConfig())
    res = run_subaudit(spec, args, rows, ProbeConfig())
    out = {"tokens_per_s": round(res.tokens_per_s, 1), "train_s": round(res.train_s, 1), "tokens": res.tokens}
    print(json.dumps(out))


if __name__ == "__main__":
    main()
