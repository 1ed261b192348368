"""Small filesystem helpers: atomic writes, sealed (checksummed) JSON, the cache directory, and locks for writes
several processes share.

A write the disk refuses (permission, read-only file system, full disk) raises :class:`StorageError`: an
``OSError`` (callers that catch ``OSError`` keep working) and a :class:`~auditor.errors.RuntimeFailure` whose
message names the path and what to do, so the CLI prints one line and exits 3.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import sys
import tempfile
import threading
import weakref
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from .errors import RuntimeFailure

if TYPE_CHECKING:
    from filelock import FileLock

#: errno values that mean "this disk will not take the write": permission, read-only file system, full disk, quota.
STORAGE_ERRNOS = frozenset({errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOSPC, errno.EDQUOT})


class StorageError(RuntimeFailure, OSError):
    """A write the disk refused; ``str()`` is one line naming the path and what to do (exit code 3)."""

    def __str__(self) -> str:
        return storage_advice(self.errno, self.filename, self.strerror)


def storage_advice(code: int | None, path: Any, reason: str | None) -> str:
    """One line: which path could not be written, why, and what to do about it."""
    where = str(path) if path else "a file"
    if code in (errno.ENOSPC, errno.EDQUOT):
        todo = "free some space there, or set SUBAUDIT_CACHE (and --run-dir) to a disk with room"
    elif code == errno.EROFS:
        todo = "set SUBAUDIT_CACHE (and --run-dir) to a folder on a writable file system"
    else:
        todo = _owner_hint(path) + "make it writable for this user, or set SUBAUDIT_CACHE (and --run-dir) to a folder "
        todo += "you own"
    return f"cannot write {where} ({reason or os.strerror(code or 0)}): {todo}; then run the same command again"


def _owner_hint(path: Any) -> str:
    """``"it belongs to user 0: "`` when the nearest existing folder of ``path`` belongs to another user."""
    if not path or not hasattr(os, "geteuid"):
        return ""
    folder = Path(path)
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    try:
        owner = folder.stat().st_uid
    except OSError:
        return ""
    return f"{folder} belongs to user {owner}, not to you (user {os.geteuid()}): " if owner != os.geteuid() else ""


def as_storage_error(exc: OSError, path: Any = None) -> OSError:
    """``exc`` as a :class:`StorageError` naming ``path`` (or the path ``exc`` names) when the disk refused a write;
    any other ``OSError`` unchanged."""
    if isinstance(exc, StorageError) or exc.errno not in STORAGE_ERRNOS:
        return exc
    return StorageError(exc.errno, exc.strerror, exc.filename or (os.fspath(path) if path else None))


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
    lock_path = os.path.abspath(os.fspath(path)) + ".lock"
    with _LOCKS_GUARD:
        lock = _LOCKS.get(lock_path)
        if lock is None:
            try:
                os.makedirs(os.path.dirname(lock_path), exist_ok=True)
            except OSError as exc:
                raise as_storage_error(exc, os.path.dirname(lock_path)) from None
            lock = _lock_class()(lock_path)
            _LOCKS[lock_path] = lock
    return lock


def _lock_class() -> type[FileLock]:
    """filelock's ``FileLock`` whose ``acquire`` turns a refused lock file into a :class:`StorageError`."""
    global _CACHE_LOCK
    if _CACHE_LOCK is None:
        from filelock import FileLock

        class CacheLock(FileLock):
            def acquire(self, *args: Any, **kwargs: Any) -> Any:
                try:
                    return super().acquire(*args, **kwargs)
                except OSError as exc:
                    raise as_storage_error(exc, self.lock_file) from None

        _CACHE_LOCK = CacheLock
    return _CACHE_LOCK


_CACHE_LOCK: type[FileLock] | None = None


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temp file and a rename, so readers never see half a file.

    On any failure (a full disk, a failed rename, Ctrl-C) the temp file is removed and ``path`` keeps
    what it held before (or stays absent).
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        raise as_storage_error(exc, path) from None
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        if os.path.exists(tmp):
            os.unlink(tmp)
        if isinstance(exc, OSError):
            raise as_storage_error(exc, path) from None
        raise


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically, see :func:`atomic_write_bytes`."""
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | Path, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, ensure_ascii=False, sort_keys=False) + "\n")


#: The key under which a sealed JSON object keeps the sha256 of the rest of it.
SEAL = "sha256"


def seal(obj: dict[str, Any]) -> dict[str, Any]:
    """``obj`` with its checksum under :data:`SEAL`, so a reader can tell a damaged file from a good one."""
    return {**obj, SEAL: _json_digest(obj)}


def _json_digest(obj: Any) -> str:
    """sha256 of ``obj`` as JSON with sorted keys (after a JSON round trip, so the writer and the reader agree)."""
    canonical = json.dumps(json.loads(json.dumps(obj)), sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def atomic_write_sealed_json(path: str | Path, obj: dict[str, Any]) -> None:
    """Write ``obj`` atomically with its checksum (:func:`seal`); :func:`read_sealed_json` checks it."""
    atomic_write_json(path, seal(obj))


class Damaged(ValueError):
    """A cache or run-folder file that is truncated, garbled or not what its checksum says."""


def read_sealed_json(path: str | Path) -> dict[str, Any] | None:
    """The object in ``path`` without its seal, or ``None`` when there is no file. Raises :class:`Damaged` when it
    is not a JSON object or its checksum does not match; a file without a seal (written before seals) is read as
    it is, and its reader's own checks decide."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except UnicodeDecodeError as exc:
        raise Damaged(f"not UTF-8 text ({exc.reason})") from None
    try:
        obj = json.loads(text)
    except ValueError as exc:
        raise Damaged(f"not valid JSON ({exc})") from None
    if not isinstance(obj, dict):
        raise Damaged("not a JSON object")
    if SEAL in obj:
        expected = obj.pop(SEAL)
        if expected != _json_digest(obj):
            raise Damaged("its checksum does not match its content")
    return obj


def report_damaged(path: str | Path, problem: object) -> None:
    """Say in one line (on stderr, also in quiet mode) that ``path`` is damaged and will be recomputed."""
    print(f"subaudit: damaged file {path} ({problem}); ignoring it and recomputing", file=sys.stderr, flush=True)


T = TypeVar("T")

#: What reading a damaged entry raises: a wrong checksum, an unreadable file, or its parser's own checks failing.
DAMAGE_ERRORS: tuple[type[Exception], ...] = (Damaged, OSError, KeyError, TypeError, ValueError, AttributeError)


def _as_is(blob: dict[str, Any]) -> Any:
    return blob


def read_entry(
    path: str | Path,
    parse: Callable[[Any], T] = _as_is,
    read: Callable[[Path], Any] = read_sealed_json,
    errors: tuple[type[Exception], ...] = (),
) -> T | None:
    """``parse`` of what ``read`` finds in ``path`` (a sealed JSON object by default), or ``None`` when there is
    nothing there or it is damaged (a :data:`DAMAGE_ERRORS` or ``errors`` exception): then said in one line
    (:func:`report_damaged`), so the caller recomputes it."""
    try:
        found = read(Path(path))
        return None if found is None else parse(found)
    except (*DAMAGE_ERRORS, *errors) as exc:
        problem = exc if isinstance(exc, (Damaged, OSError)) else f"unreadable: {exc.__class__.__name__}"
        report_damaged(path, problem)
        return None


def compute_once(
    path: str | Path,
    compute: Callable[[], Any],
    parse: Callable[[Any], T] = _as_is,
    use_cache: bool = True,
    read: Callable[[Path], Any] = read_sealed_json,
    write: Callable[[Path, Any], None] = atomic_write_sealed_json,
    errors: tuple[type[Exception], ...] = (),
) -> tuple[T, bool]:
    """A resumable cache entry: ``parse`` of the sealed JSON object in ``path``, or of ``compute()`` written there
    sealed when it is missing or damaged (:func:`read_entry`), and whether it came from the file. Checked and
    computed under :func:`cache_lock`, so of several processes asking for it one computes and the others read it.
    ``use_cache=False``: computed, neither read nor written. ``read``, ``write`` and ``errors``: for an entry that is
    not a sealed JSON object (``read`` gives ``None`` when there is no file; ``errors``: what else means damaged)."""
    if not use_cache:
        return parse(compute()), False
    with cache_lock(path):
        found = read_entry(path, parse, read, errors)
        if found is not None:
            return found, True
        blob = compute()
        write(Path(path), blob)
    return parse(blob), False


def sha256_of_file(path: str | Path) -> str:
    """The sha256 of a file's bytes (not remembered: see :func:`auditor.fingerprint.file_sha256` for that)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
