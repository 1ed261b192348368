"""The run folder: where a scan keeps every finished stage, so the same scan run again resumes.

``manifest.json`` is written when the scan starts (status ``running``) and updated when it ends
(``finished``, ``interrupted`` or ``failed``). Stage files are written atomically; a rerun of the same scan
(same key) reuses them, a run folder holding a scan with other inputs is recomputed, never reused. Every file
carries a checksum (JSON files a seal, :func:`auditor.io.seal`; a readout a ``subaudit-sha256`` member; a student's
scores the sha256 of each file of its adapter folder, written before them), so a truncated or garbled file is
reported in one line and recomputed, never read as valid. Scans in
several processes may share a run folder: the manifest and each stage are written under a lock
(:func:`auditor.io.cache_lock`, lock files in ``locks/``), and :meth:`RunFolder.stage_lock` lets a method
compute a stage once.
"""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
import zlib
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .distributed import processes
from .finetune import TrainStats
from .io import (
    Damaged,
    as_storage_error,
    atomic_write_bytes,
    atomic_write_sealed_json,
    cache_dir,
    cache_lock,
    read_entry,
    sha256_of_file,
)
from .progress import Reporter
from .readout import OPEN_PROMPTS_VERSION, Readout
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
        try:
            (path / "scores").mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise as_storage_error(exc, path / "scores") from None
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
            atomic_write_sealed_json(self.path / "manifest.json", manifest)

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
        return read_entry(path, self._stage_scores)

    def _stage_scores(self, blob: dict[str, Any]) -> StageScores:
        """A scores file's content, its adapter's files checked (:class:`~auditor.io.Damaged` when one changed)."""
        scores = {k: BatteryScores.from_dict(v) for k, v in blob["scores"].items()}
        train = TrainStats(**blob["train"]) if blob.get("train") else None
        self._check_files(blob.get("files") or {})
        return StageScores(scores, train)

    def save_scores(self, name: str, stage: StageScores) -> None:
        """Write a model's scores (last of its stage: they mark it finished), with the checksums of its adapter's
        files (written before them)."""
        with self.stage_lock(name):
            blob = {
                "scores": {k: v.to_dict() for k, v in stage.scores.items()},
                "train": asdict(stage.train) if stage.train else None,
                "files": self._adapter_sums(name),
            }
            atomic_write_sealed_json(self.scores_path(name), blob)

    def _adapter_sums(self, name: str) -> dict[str, str]:
        """The sha256 of every file of stage ``name``'s adapter folder, by path in the run folder (none: ``{}``)."""
        folder = self.path / "adapters" / name
        files = sorted(f for f in folder.iterdir() if f.is_file()) if folder.is_dir() else []
        return {f.relative_to(self.path).as_posix(): sha256_of_file(f) for f in files}

    def _check_files(self, sums: dict[str, str]) -> None:
        """Raise :class:`Damaged` when a file a stage recorded is there with other bytes (a missing one is not
        damage: an adapter folder is only read to recompute a readout, and its loader says when it is gone)."""
        for rel, digest in sums.items():
            file = self.path / rel
            if file.is_file() and sha256_of_file(file) != digest:
                raise Damaged(f"{file} does not match the checksum its scores recorded")

    def readout_path(self, name: str) -> Path:
        return self.path / "readouts" / f"{name}.npz"

    def load_readout(self, name: str, always: bool = False) -> Readout | None:
        """A model's open-vocabulary readout (:mod:`auditor.readout`), or ``None`` (not there, not resuming, of
        another prompt version, or unreadable: recomputed). ``always`` as in :meth:`load_scores`."""
        path = self.readout_path(name)
        if not (self.resume or always) or not path.exists():
            return None
        return read_readout(path)

    def save_readout(self, name: str, readout: Readout) -> None:
        with self.stage_lock(name):
            atomic_write_bytes(self.readout_path(name), sealed_readout(readout))


#: The member of a readout's ``.npz`` that holds the sha256 of its content (:func:`readout_digest`).
READOUT_SEAL = "subaudit-sha256"


def readout_digest(readout: Readout) -> str:
    """sha256 of a readout's version, words, whole-word flags and log-probabilities (as read back from its file)."""
    import numpy as np

    whole = None if readout.whole is None else [bool(x) for x in readout.whole]
    h = hashlib.sha256(json.dumps([readout.version, readout.words, whole]).encode("utf-8"))
    h.update(np.ascontiguousarray(readout.logp, dtype=np.float64).tobytes())
    return h.hexdigest()


def sealed_readout(readout: Readout) -> bytes:
    """``readout`` as its ``.npz`` bytes plus a :data:`READOUT_SEAL` member (``Readout.from_bytes`` ignores it)."""
    blob = readout.to_bytes()
    digest = readout_digest(Readout.from_bytes(blob))  # of the stored (float16) values, as a reader sees them
    buf = io.BytesIO(blob)
    with zipfile.ZipFile(buf, "a") as z:
        z.writestr(READOUT_SEAL, digest)
    return buf.getvalue()


#: What reading a damaged readout file can raise besides :data:`auditor.io.DAMAGE_ERRORS`.
READOUT_ERRORS = (EOFError, zipfile.BadZipFile, zlib.error)


def read_readout(path: Path) -> Readout | None:
    """The readout stored at ``path``, or ``None`` when it is unreadable, damaged or of another prompt version."""
    readout = read_entry(path, read=_read_readout, errors=READOUT_ERRORS)
    return readout if readout is not None and readout.version == OPEN_PROMPTS_VERSION else None


def _read_readout(path: Path) -> Readout:
    return unseal_readout(path.read_bytes())


def unseal_readout(blob: bytes) -> Readout:
    """The readout in ``blob``, its seal checked (:class:`Damaged` when it does not match; none: not checked)."""
    readout = Readout.from_bytes(blob)
    with zipfile.ZipFile(io.BytesIO(blob)) as z:
        if READOUT_SEAL in z.namelist() and z.read(READOUT_SEAL).decode("ascii") != readout_digest(readout):
            raise Damaged("its checksum does not match its content")
    return readout


def _same_scan(manifest_path: Path, key: str, rep: Reporter) -> bool:
    """False when the run dir's manifest belongs to a scan with other inputs (its stages must not be reused)."""
    blob = read_entry(manifest_path)  # damaged: every stage file is checked on its own; the manifest is written again
    old = blob.get("key") if blob else None
    if old is None or old == key:
        return True
    rep.note(f"{manifest_path.parent} holds a scan with other inputs: its stages are recomputed, not reused")
    return False
