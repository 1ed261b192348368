"""Broken environments (#23): a read-only cache, a read-only file system, a full disk, a cache folder that belongs to
someone else, a model file removed while the scan runs, an unreadable dataset. Each ends in one line naming the path
and what to do, exit code 3 (2 for the user's own input), never a traceback, never 0 or 1 (which are verdicts).

The tests may run as root, where a read-only folder (chmod) does not stop writes; so the refusals are injected at the
write layer instead: ``os.open`` (files and lock files), ``os.mkdir`` and ``open`` for writing raise the
``PermissionError`` / ``OSError`` the kernel would, with the same errno, for every path under the folder (and
``os.fsync`` raises ``ENOSPC`` for a full disk). Ownership is real where the tests can make it real: as root the
cache is handed to another user.
"""

from __future__ import annotations

import builtins
import errno
import io
import os
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from auditor.cli import app
from tests.conftest import tiny_scan_args

runner = CliRunner()

#: ``os.open`` flags that write.
WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC


def refuse_writes(monkeypatch: pytest.MonkeyPatch, root: Path, code: int) -> None:
    """Every write under ``root`` fails with ``code`` (as a read-only or foreign folder, or a full disk, would)."""
    top = os.path.abspath(root)

    def under(path: Any) -> bool:
        return not isinstance(path, int) and os.path.abspath(os.fspath(path)).startswith(top)

    def refuse(path: Any) -> None:
        raise OSError(code, os.strerror(code), os.fspath(path))

    real_open, real_mkdir, real_io_open = os.open, os.mkdir, io.open

    def os_open(path: Any, flags: int, mode: int = 0o777, *, dir_fd: int | None = None) -> int:
        if flags & WRITE_FLAGS and under(path):
            refuse(path)
        return real_open(path, flags, mode, dir_fd=dir_fd)

    def mkdir(path: Any, mode: int = 0o777, *, dir_fd: int | None = None) -> None:
        if under(path):
            if os.path.exists(path):
                raise FileExistsError(errno.EEXIST, os.strerror(errno.EEXIST), os.fspath(path))
            refuse(path)
        real_mkdir(path, mode, dir_fd=dir_fd)

    def io_open(file: Any, mode: str = "r", *args: Any, **kwargs: Any) -> Any:
        if any(c in mode for c in "wax+") and under(file):
            refuse(file)
        return real_io_open(file, mode, *args, **kwargs)

    monkeypatch.setattr(os, "open", os_open)
    monkeypatch.setattr(os, "mkdir", mkdir)
    monkeypatch.setattr(builtins, "open", io_open)
    monkeypatch.setattr(io, "open", io_open)


def full_disk(monkeypatch: pytest.MonkeyPatch, root: Path) -> None:
    """A full disk under ``root``: folders and empty files (lock files) can still be made, but a file's data fails
    when it is flushed to disk (``fsync``: ENOSPC, as atomic writes do) or, for ``open`` in a write mode, at once."""
    top = os.path.abspath(root)
    real_fsync, real_io_open = os.fsync, io.open

    def fsync(fd: int) -> None:
        if os.readlink(f"/proc/self/fd/{fd}").startswith(top):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real_fsync(fd)

    def io_open(file: Any, mode: str = "r", *args: Any, **kwargs: Any) -> Any:
        if any(c in mode for c in "wax+") and not isinstance(file, int) and os.path.abspath(file).startswith(top):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), os.fspath(file))
        return real_io_open(file, mode, *args, **kwargs)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(builtins, "open", io_open)
    monkeypatch.setattr(io, "open", io_open)


def one_line(output: str) -> str:
    lines = [line for line in output.splitlines() if line.strip()]
    assert len(lines) == 1, output
    assert "Traceback" not in output and "unexpected" not in output, output
    return lines[0]


@pytest.fixture
def scan_args(tiny_model_dir: Path, numbers_file: Path, battery: Path) -> list[str]:
    return ["scan", str(numbers_file), "--base", str(tiny_model_dir), "--traits", str(battery), *tiny_scan_args()]


@pytest.mark.parametrize(
    "code, reason, advice",
    [
        (errno.EACCES, "Permission denied", "make it writable for this user, or set SUBAUDIT_CACHE"),
        (errno.EROFS, "Read-only file system", "set SUBAUDIT_CACHE (and --run-dir) to a folder on a writable"),
    ],
)
def test_read_only_cache_is_one_line_and_exit_3(
    scan_args: list[str], isolated_cache: Path, monkeypatch: pytest.MonkeyPatch, code: int, reason: str, advice: str
) -> None:
    isolated_cache.mkdir()
    refuse_writes(monkeypatch, isolated_cache, code)
    res = runner.invoke(app, scan_args)
    assert res.exit_code == 3, res.output
    line = one_line(res.output)
    assert line.startswith(f"failed: cannot write {isolated_cache}/") and f"({reason})" in line
    assert advice in line and "then run the same command again" in line
    assert list(isolated_cache.iterdir()) == []  # nothing was written there


def test_full_disk_is_one_line_and_exit_3(
    scan_args: list[str], isolated_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    full_disk(monkeypatch, isolated_cache)
    res = runner.invoke(app, scan_args)
    assert res.exit_code == 3, res.output
    line = one_line(res.output)
    assert line.startswith(f"failed: cannot write {isolated_cache}/runs/") and "(No space left on device)" in line
    assert "manifest.json" in line  # the first file the scan writes whole (the fingerprint memo is optional)
    assert "free some space there, or set SUBAUDIT_CACHE (and --run-dir) to a disk with room" in line
    assert not [p for p in isolated_cache.rglob("*") if p.name.endswith(".tmp")]  # no half-written file left


def test_cache_owned_by_someone_else_names_the_owner(
    scan_args: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if os.geteuid() == 0:  # root: hand the cache to another user for real (root itself could still write there)
        cache, owner = tmp_path / "foreign-cache", 4242
        cache.mkdir()
        os.chown(cache, owner, owner)
    else:  # any other user: a cache folder to be made under /, which belongs to root
        cache, owner = Path("/subaudit-test-not-yours"), 0
    monkeypatch.setenv("SUBAUDIT_CACHE", str(cache))
    refuse_writes(monkeypatch, cache, errno.EACCES)
    res = runner.invoke(app, scan_args)
    assert res.exit_code == 3, res.output
    line = one_line(res.output)
    assert f"cannot write {cache}" in line and "(Permission denied)" in line
    nearest = cache if cache.exists() else cache.parent
    assert f"{nearest} belongs to user {owner}, not to you (user {os.geteuid()})" in line
    assert "set SUBAUDIT_CACHE (and --run-dir) to a folder you own" in line


def test_read_only_run_dir_is_one_line_and_exit_3(
    scan_args: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_dir = tmp_path / "runs-here"
    refuse_writes(monkeypatch, run_dir, errno.EACCES)
    res = runner.invoke(app, [*scan_args, "--run-dir", str(run_dir)])
    assert res.exit_code == 3, res.output
    line = one_line(res.output)
    assert f"cannot write {run_dir}" in line and "--run-dir" in line


def test_model_file_removed_mid_run_is_one_line_and_exit_3(
    scan_args: list[str], tiny_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import shutil

    import transformers

    model = Path(shutil.copytree(tiny_model_dir, tmp_path / "model"))
    weights = model / "model.safetensors"
    real = transformers.AutoModelForCausalLM.from_pretrained.__func__

    def removed_first(cls: Any, *args: Any, **kwargs: Any) -> Any:
        weights.unlink()  # removed after the scan found the model, before its weights are read
        return real(cls, *args, **kwargs)

    monkeypatch.setattr(transformers.AutoModelForCausalLM, "from_pretrained", classmethod(removed_first))
    args = [str(model) if a == str(tiny_model_dir) else a for a in scan_args]
    res = runner.invoke(app, args)
    assert res.exit_code == 3, res.output
    line = one_line(res.output)
    assert str(weights) in line and "removed while the scan was reading it" in line
    assert "restore the model folder" in line and "run the same command again" in line


def test_unreadable_dataset_is_the_users_input_exit_2(
    scan_args: list[str], numbers_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_io_open = io.open

    def io_open(file: Any, mode: str = "r", *args: Any, **kwargs: Any) -> Any:
        if not isinstance(file, int) and os.fspath(file) == str(numbers_file):
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), os.fspath(file))
        return real_io_open(file, mode, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", io_open)
    monkeypatch.setattr(io, "open", io_open)
    res = runner.invoke(app, scan_args)
    assert res.exit_code == 2, res.output
    line = one_line(res.output)
    assert line == f"error: {numbers_file}: cannot read (Permission denied)"
