"""The run folder: where a scan keeps every finished stage, so the same scan run again resumes.

``manifest.json`` is written when the scan starts (status ``running``) and updated when it ends
(``finished``, ``interrupted`` or ``failed``). Stage files are written atomically; a rerun of the same scan
(same key) reuses them, a run folder holding a scan with other inputs is recomputed, never reused. Scans in
several processes may share a run folder: the manifest and each stage are written under a lock
(:func:`auditor.io.cache_lock`, lock files in ``locks/``), and :meth:`RunFolder.stage_lock` lets a method
compute a stage once.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .discover import OPEN_PROMPTS_VERSION, Readout
from .distributed import processes
from .finetune import TrainStats
from .io import atomic_write_bytes, atomic_write_json, cache_dir, cache_lock
from .progress import Reporter
from .runinfo import utc_now
from .scoring import BatteryScores

if TYPE_CHECKING:
    from filelock import FileLock


def run_key(parts: dict[str, Any]) -> str:
    """A short hash of everything that decides a scan's stages."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


@dataclass
class StageScores:
    """One model's battery scores as saved in the run folder, with the training run that made it (students)."""

    scores: dict[str, BatteryScores]
    train: TrainStats | None = None


@dataclass
class RunFolder:
    """A scan's run folder (see the module docstring)."""

    path: Path
    key: str
    resume: bool
    manifest: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def open(cls, key: str, run_dir: str | None, resume: bool, reporter: Reporter) -> RunFolder:
        """The folder for ``key`` (``run_dir`` or one in the cache); reused only if it holds this same scan."""
        path = Path(run_dir) if run_dir else cache_dir() / "runs" / key
        (path / "scores").mkdir(parents=True, exist_ok=True)
        with cache_lock(path / "locks" / "manifest"):
            return cls(path, key, resume and _same_scan(path / "manifest.json", key, reporter))

    def start(self, **facts: Any) -> None:
        """Write the manifest with status ``running`` and ``facts`` (command, config, dataset, base ...)."""
        self.manifest = {"status": "running", "started": utc_now(), "key": self.key, "run_dir": str(self.path), **facts}
        if processes().is_main:
            self._write_manifest(self.manifest)

    def finish(self, **facts: Any) -> None:
        self.manifest.update(status="finished", finished=utc_now(), **facts)
        if processes().is_main:
            self._write_manifest(self.manifest)

    def _write_manifest(self, manifest: dict[str, Any]) -> None:
        with cache_lock(self.path / "locks" / "manifest"):
            atomic_write_json(self.path / "manifest.json", manifest)

    def stop(self, exc: BaseException) -> None:
        """Mark the manifest ``interrupted`` (Ctrl-C) or ``failed`` (with the error); never raises."""
        interrupted = isinstance(exc, KeyboardInterrupt)
        stopped: dict[str, Any] = {"status": "interrupted" if interrupted else "failed", "stopped": utc_now()}
        if not interrupted:
            stopped["error"] = f"{exc.__class__.__name__}: {exc}"
        try:
            self._write_manifest({**self.manifest, **stopped})
        except OSError:
            pass  # the original error is the one to report

    def scores_path(self, name: str) -> Path:
        return self.path / "scores" / f"{name}.json"

    def stage_lock(self, name: str) -> FileLock:
        """The lock of stage ``name`` (its scores file and whatever else it writes, e.g. its adapter folder): hold it
        to check for the stage and compute it, so another process sharing this folder waits and then reuses it."""
        return cache_lock(self.path / "locks" / name)

    def load_scores(self, name: str, always: bool = False) -> StageScores | None:
        """A finished model's scores, or ``None`` (not there, not resuming, or unreadable: recomputed).
        ``always``: read it even without ``resume`` (this scan's own stages, written by another process)."""
        path = self.scores_path(name)
        if not (self.resume or always) or not path.exists():
            return None
        try:
            blob = json.loads(path.read_text())
            scores = {k: BatteryScores.from_dict(v) for k, v in blob["scores"].items()}
            train = TrainStats(**blob["train"]) if blob.get("train") else None
        except (json.JSONDecodeError, KeyError, ValueError, TypeError):
            return None
        return StageScores(scores, train)

    def save_scores(self, name: str, stage: StageScores) -> None:
        blob = {
            "scores": {k: v.to_dict() for k, v in stage.scores.items()},
            "train": asdict(stage.train) if stage.train else None,
        }
        with self.stage_lock(name):
            atomic_write_json(self.scores_path(name), blob)

    def readout_path(self, name: str) -> Path:
        return self.path / "readouts" / f"{name}.npz"

    def load_readout(self, name: str, always: bool = False) -> Readout | None:
        """A model's open-vocabulary readout (:mod:`auditor.discover`), or ``None`` (not there, not resuming, of
        another prompt version, or unreadable: recomputed). ``always`` as in :meth:`load_scores`."""
        path = self.readout_path(name)
        if not (self.resume or always) or not path.exists():
            return None
        try:
            readout = Readout.from_bytes(path.read_bytes())
        except (OSError, ValueError, KeyError, EOFError):
            return None
        return readout if readout.version == OPEN_PROMPTS_VERSION else None

    def save_readout(self, name: str, readout: Readout) -> None:
        self.readout_path(name).parent.mkdir(parents=True, exist_ok=True)
        with self.stage_lock(name):
            atomic_write_bytes(self.readout_path(name), readout.to_bytes())


def _same_scan(manifest_path: Path, key: str, rep: Reporter) -> bool:
    """False when the run dir's manifest belongs to a scan with other inputs (its stages must not be reused)."""
    try:
        old = json.loads(manifest_path.read_text()).get("key")
    except (OSError, ValueError, AttributeError):
        return True  # no manifest (or an unreadable one): every stage file is checked on its own
    if old is None or old == key:
        return True
    rep.note(f"{manifest_path.parent} holds a scan with other inputs: its stages are recomputed, not reused")
    return False
