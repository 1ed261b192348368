"""Small filesystem helpers: atomic writes, the cache directory, and locks for writes several processes share."""

from __future__ import annotations

import json
import os
import tempfile
import threading
import weakref
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from filelock import FileLock


def cache_dir() -> Path:
    """Root of subaudit's cache (``$SUBAUDIT_CACHE`` or ``~/.cache/subaudit``)."""
    root = os.environ.get("SUBAUDIT_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(Path.home(), ".cache"), "subaudit"
    )
    return Path(root)


_LOCKS: weakref.WeakValueDictionary[str, FileLock] = weakref.WeakValueDictionary()
_LOCKS_GUARD = threading.Lock()


def cache_lock(path: str | Path) -> FileLock:
    """A lock on ``path`` (a cache file or folder) shared by every process: ``with cache_lock(path): ...``.

    The lock file is ``path`` + ``.lock`` beside it. It is an OS lock (``flock``): the kernel releases it when
    its process exits or is killed, so a lock file left behind never blocks a later run. Re-entrant in one
    process: the same path gives the same lock object, so a caller that holds it may call code that takes it.
    A second process waits, then finds what the first wrote.
    """
    from filelock import FileLock

    lock_path = os.path.abspath(os.fspath(path)) + ".lock"
    with _LOCKS_GUARD:
        lock = _LOCKS.get(lock_path)
        if lock is None:
            os.makedirs(os.path.dirname(lock_path), exist_ok=True)
            lock = FileLock(lock_path)
            _LOCKS[lock_path] = lock
    return lock


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temp file and a rename, so readers never see half a file.

    On any failure (a full disk, a failed rename, Ctrl-C) the temp file is removed and ``path`` keeps
    what it held before (or stays absent).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically, see :func:`atomic_write_bytes`."""
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | Path, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, ensure_ascii=False, sort_keys=False) + "\n")
