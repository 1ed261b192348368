"""Helpers shared by the throughput benchmark's parts (``throughput_probe``, ``throughput_scoring``) and its entry
point ``throughput.py``: device sync and memory release, peak-memory measurement, package versions, number
formatting for the markdown tables, JSON-safe conversion and a labelled timer.
"""

from __future__ import annotations

import gc
import importlib.metadata
import math
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
MIB = 1024 * 1024


def sync_device(device: str) -> None:
    """Wait for queued CUDA work to finish (no-op on CPU), so that a timer reads the real elapsed time."""
    if device.startswith("cuda"):
        import torch

        torch.cuda.synchronize()


def free_memory(device: str) -> None:
    """Drop garbage and hand freed heap back to the OS, so the next arm's RSS starts near the true baseline."""
    gc.collect()
    if device.startswith("cuda"):
        import torch

        torch.cuda.empty_cache()
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)  # glibc only; elsewhere freed heap may stay in RSS
    except (OSError, AttributeError):
        pass


class PeakMemory:
    """Peak resident set size (polled by a thread via psutil) and CUDA peak allocation during a block.

    Without psutil the peak is ``getrusage``'s ``ru_maxrss``, which is the peak of the whole process so far
    (``rss_source`` says which one was used).
    """

    def __init__(self, device: str, interval_s: float = 0.02):
        self.device = device
        self.interval_s = interval_s
        self.result: dict[str, Any] = {}
        self._stop = threading.Event()
        self._peak = 0
        self._thread: threading.Thread | None = None
        try:
            import psutil

            self._proc: Any = psutil.Process()
        except ImportError:
            self._proc = None

    def _rss(self) -> int:
        if self._proc is not None:
            return int(self._proc.memory_info().rss)
        import resource

        return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024  # KiB on Linux

    def _poll(self) -> None:
        while not self._stop.wait(self.interval_s):
            self._peak = max(self._peak, self._rss())

    def __enter__(self) -> PeakMemory:
        free_memory(self.device)
        if self.device.startswith("cuda"):
            import torch

            torch.cuda.reset_peak_memory_stats()
        self._start = self._peak = self._rss()
        self._thread = threading.Thread(target=self._poll, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self._peak = max(self._peak, self._rss())
        self.result = {
            "rss_source": "psutil (polled every 20 ms)" if self._proc is not None else "getrusage ru_maxrss",
            "rss_start_mib": round(self._start / MIB, 1),
            "rss_peak_mib": round(self._peak / MIB, 1),
            "rss_peak_over_start_mib": round((self._peak - self._start) / MIB, 1),
        }
        if self.device.startswith("cuda"):
            import torch

            self.result["cuda_max_allocated_mib"] = round(torch.cuda.max_memory_allocated() / MIB, 1)


def versions() -> dict[str, str]:
    """Python's version and those of the packages the benchmark depends on ("not installed" when missing)."""
    out = {"python": sys.version.split()[0]}
    for pkg in ("torch", "transformers", "peft", "trl", "datasets", "accelerate"):
        try:
            out[pkg] = importlib.metadata.version(pkg)
        except importlib.metadata.PackageNotFoundError:
            out[pkg] = "not installed"
    return out


def require_trl() -> None:
    """Fail with a clear message when the comparison arm's packages are missing."""
    missing = []
    for pkg in ("trl", "datasets"):
        try:
            __import__(pkg)
        except ImportError:
            missing.append(pkg)
    if missing:
        raise SystemExit(
            f"benchmarks/throughput.py needs {' and '.join(missing)} for the TRL comparison arm; install the bench "
            "extra:  .venv/bin/pip install -e '.[bench]'  (or: .venv/bin/pip install trl; check that torch is not "
            "replaced)"
        )


def fmt(x: float | None, digits: int = 1) -> str:
    """``x`` with thousands separators and ``digits`` decimals; "n/a" for None, "inf" for a non-finite float."""
    if x is None:
        return "n/a"
    if isinstance(x, float) and not math.isfinite(x):
        return "inf"
    return f"{x:,.{digits}f}"


def fmt_ratio(a: float | None, b: float | None) -> str:
    """``a / b`` as "1.23x" (or "123x" from 100 up); "n/a" when ``a`` is None or ``b`` is zero or None."""
    if a is None or not b:
        return "n/a"
    r = a / b
    return f"{r:,.0f}x" if r >= 100 else f"{r:.2f}x"


@contextmanager
def timer(label: str) -> Iterator[None]:
    """Print ``[throughput] label ...`` on entry and the elapsed seconds on exit."""
    start = time.perf_counter()
    print(f"[throughput] {label} ...", flush=True)
    yield
    print(f"[throughput] {label}: {time.perf_counter() - start:.1f} s", flush=True)


def display_path(path: str) -> str:
    """``path`` relative to the repository root when it lies inside it, else as given."""
    p = Path(path).resolve()
    return str(p.relative_to(ROOT)) if p.is_relative_to(ROOT) else path


def plain(x: Any) -> Any:
    """JSON-safe copy: numpy scalars to Python numbers, non-finite floats to the strings "inf"/"nan"."""
    if isinstance(x, dict):
        return {k: plain(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [plain(v) for v in x]
    if isinstance(x, (np.floating, np.integer)):
        x = x.item()
    if isinstance(x, float) and not math.isfinite(x):
        return "nan" if math.isnan(x) else ("inf" if x > 0 else "-inf")
    return x
