"""Several processes, one scan: ``accelerate launch --multi_gpu --num_processes N -m auditor scan ...``.

The students of a scan (arm x seed) are independent, so each process trains every N-th of them (one process per
GPU, or per machine with accelerate's multi-node launch) and writes it to the shared run folder; after a barrier
every process reads them all back and grades the same result. The main process draws the control rows and scores
the base first (the others then read them from the control cache and the run folder), writes the manifest, and is
the only one that writes outputs. Without ``accelerate launch`` (``WORLD_SIZE`` unset) this is one process and
every call is a no-op.

The launcher (torchrun underneath, which ``--multi_gpu`` selects; on a machine without CUDA it starts CPU processes
all the same) sets ``WORLD_SIZE``, ``RANK`` and ``LOCAL_RANK``; the barrier is a gloo process group of our own when
nothing else has set one up (accelerate sets none up without CUDA), so it works on CPUs and GPUs alike.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from typing import Any


class Processes:
    """This process's place among the processes ``accelerate launch`` started."""

    def __init__(self) -> None:
        self.count = int(os.environ.get("WORLD_SIZE", "1"))
        self.index = int(os.environ.get("RANK", "0")) if self.count > 1 else 0
        self.local_index = int(os.environ.get("LOCAL_RANK", "0")) if self.count > 1 else 0
        self._group: Any = None

    @property
    def is_main(self) -> bool:
        return self.index == 0

    def mine(self, jobs: list[Any]) -> list[Any]:
        """The jobs this process runs: every ``count``-th, starting at its index."""
        return jobs[self.index :: self.count]

    def wait(self) -> None:
        """A barrier: every process reaches this point before any goes on."""
        if self.count == 1:
            return
        import torch.distributed as dist

        if not dist.is_initialized():
            dist.init_process_group("gloo", rank=self.index, world_size=self.count)
        if self._group is None:
            self._group = dist.new_group(backend="gloo")
        dist.barrier(group=self._group)

    @contextmanager
    def main_first(self) -> Iterator[None]:
        """The main process runs the block first (filling caches); the others run it after."""
        if self.count == 1:
            yield
            return
        if not self.is_main:
            self.wait()
        yield
        if self.is_main:
            self.wait()

    def device(self, device: str) -> str:
        """``cuda`` means this process's own GPU when several processes share a machine."""
        if self.count > 1 and device in ("auto", "cuda"):
            import torch

            if torch.cuda.is_available():
                return f"cuda:{self.local_index}"
        return device


@lru_cache(maxsize=1)
def processes() -> Processes:
    """The processes of this run (created once)."""
    return Processes()
