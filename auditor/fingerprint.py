"""Model fingerprints from content, so caches, run folders and calibration profiles recognise the same weights
wherever they are: not from file names, sizes or modification times.

* a ``.gguf`` file: the sha256 of its bytes (and a directory converted from one records it, see :data:`SOURCE`);
* a local model directory: the sha256 of its weight files, its tokenizer files and its config (without the
  ``transformers_version`` a save writes into it);
* a hub model: ``id@commit`` (the commit of the snapshot in the local cache, when there is one).

A file's hash is remembered under its path, size and modification time (``fingerprints.json`` in the cache), so
a large file is read once.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from .io import atomic_write_json, cache_dir, cache_lock

#: Written by :func:`auditor.models.convert_gguf` beside the converted weights: the GGUF file they came from.
SOURCE = "subaudit-source.json"
#: Files of a model directory that decide what it computes (weights first; hashed in this order).
WEIGHT_SUFFIXES = (".safetensors", ".bin")
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "chat_template.jinja")


def file_sha256(path: Path) -> str:
    """The sha256 of a file's bytes, remembered under its path, size and modification time."""
    st = path.stat()
    memo_key = f"{path.resolve()}|{st.st_size}|{st.st_mtime_ns}"
    memo_path = cache_dir() / "fingerprints.json"
    try:
        memo = json.loads(memo_path.read_text())
    except (OSError, ValueError):
        memo = {}
    if memo_key in memo:
        return memo[memo_key]
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 23), b""):
            h.update(chunk)
    digest = h.hexdigest()
    try:
        with cache_lock(memo_path):  # read again under the lock: another process may have added its files
            try:
                memo = json.loads(memo_path.read_text())
            except (OSError, ValueError):
                memo = {}
            atomic_write_json(memo_path, {**memo, memo_key: digest} if isinstance(memo, dict) else {memo_key: digest})
    except OSError:
        pass  # a read-only cache only costs reading the file again
    return digest


def gguf_fingerprint(gguf: Path) -> str:
    return "gguf-" + file_sha256(gguf)[:16]


def dir_fingerprint(path: Path) -> str:
    """The fingerprint of a local model directory (see the module docstring)."""
    source = path / SOURCE
    if source.exists():
        try:
            return "gguf-" + json.loads(source.read_text())["sha256"][:16]
        except (ValueError, KeyError):
            pass  # a damaged marker: fall back to the content
    h = hashlib.sha256()
    weights = sorted(f for f in path.iterdir() if f.is_file() and f.suffix in WEIGHT_SUFFIXES)
    for f in weights:
        h.update(f.name.encode() + b"\0" + file_sha256(f).encode())
    for name in TOKENIZER_FILES:
        if (path / name).is_file():
            h.update(name.encode() + b"\0" + (path / name).read_bytes())
    config = path / "config.json"
    if config.is_file():
        try:
            blob = json.loads(config.read_text())
            blob.pop("transformers_version", None)
            h.update(json.dumps(blob, sort_keys=True).encode())
        except ValueError:
            h.update(config.read_bytes())
    return "dir-" + h.hexdigest()[:16]


def hub_fingerprint(hub_id: str, revision: str | None) -> str:
    """``id@commit`` from the local hub cache, or ``id@revision`` when the snapshot is not cached yet."""
    try:
        from huggingface_hub import try_to_load_from_cache

        found = try_to_load_from_cache(hub_id, "config.json", revision=revision)
    except Exception:  # noqa: BLE001 - any cache trouble only means no commit is known
        found = None
    if isinstance(found, str) and "/snapshots/" in found:
        return f"{hub_id}@{found.split('/snapshots/')[1].split('/')[0]}"
    return f"{hub_id}@{revision or 'main'}"
