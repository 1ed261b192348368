"""benchmarks/gpu_check.py, the prepared device check, runs end to end on a tiny shape on the CPU (its smoke run)."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_gpu_check_smoke_run_on_cpu(tmp_path: Path) -> None:
    spec = importlib.util.spec_from_file_location("gpu_check", ROOT / "benchmarks" / "gpu_check.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["gpu_check"] = module
    try:
        spec.loader.exec_module(module)
        out = tmp_path / "gpu_check.json"
        module.main(["--shapes", "tiny", "--device", "cpu", "--rows", "12", "--out", str(out)])
    finally:
        sys.modules.pop("gpu_check", None)
    report = json.loads(out.read_text())
    assert report["device"] == "cpu" and report["measured_matmul_bf16_tflops"] is None
    (shape,) = report["shapes"]
    assert shape["shape"] == "tiny" and shape["rows"] == 12 and shape["parameters"] > 0
    assert shape["probe"]["tokens"] > 0 and shape["probe"]["tokens_per_s"] > 0 and shape["probe"]["steps"] == 2
    assert shape["control_sampling"]["non_empty"] > 0 and shape["scoring"]["questions"] == 44
    assert shape["gradient"] == {**shape["gradient"], "options": 21, "rows": 12}
    assert shape["determinism"]["default_kernels_bit_identical"] is True  # the CPU is deterministic
    assert shape["projected_scan_s"]["total"] > 0 and "projection" in shape["projected_scan_s"]["note"]
