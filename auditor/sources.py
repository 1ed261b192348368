"""DATA where it lives: a file, a folder of shards, a ``datasets`` ``save_to_disk`` folder, or a Hub dataset id.

* a file (``.jsonl``, ``.csv``, ``.parquet``): :func:`auditor.data.load_dataset`;
* a folder of shards (``*.jsonl``/``*.json``/``*.ndjson``/``*.csv``/``*.parquet``, read in name order) — each shard with
  the same readers, so a bad row is named ``shard:line`` (``datasets``' own JSON loader reports a malformed line as a
  ``DatasetGenerationError`` without its line; measured with datasets 5.2);
* a ``save_to_disk`` folder and a Hub dataset id (``org/name``, with ``split``, ``subset`` and ``revision``) — through
  the ``datasets`` library (``pip install 'subliminal-audit[hf]'``); rows are named ``source[split]:row``. A Hub id is
  fetched only when it is not a local path; ``HF_HUB_OFFLINE=1`` / ``HF_DATASETS_OFFLINE=1`` read the local cache
  only.

Every row is validated by :func:`auditor.data.parse_row` (TRL's formats: prompt-completion and conversational, and
``text`` for language modelling). The dataset's hash covers its content (each shard's bytes, or the ``datasets``
fingerprint with the id and revision).
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Any

from .data import READERS, Dataset, Example, load_dataset, parse_row, subsample
from .errors import InputError
from .fingerprint import file_sha256

_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.\-]*/[\w.\-]+$")
#: Files that mark a ``save_to_disk`` folder (a Dataset, or a DatasetDict of splits).
DISK_MARKERS = ("state.json", "dataset_info.json", "dataset_dict.json")


def load_data(
    source: str,
    max_rows: int | None = None,
    seed: int = 0,
    split: str | None = None,
    subset: str | None = None,
    revision: str | None = None,
) -> Dataset:
    """Read, validate and subsample DATA from wherever it lives (see the module docstring)."""
    p = Path(source)
    if p.is_file() or (not p.exists() and not _HUB_ID.match(source)):
        return load_dataset(p, max_rows=max_rows, seed=seed)
    if p.is_dir():
        if any((p / m).exists() for m in DISK_MARKERS):
            return _from_disk(p, split, max_rows, seed)
        return _from_shards(p, max_rows, seed)
    return _from_hub(source, split, subset, revision, max_rows, seed)


def _from_shards(folder: Path, max_rows: int | None, seed: int) -> Dataset:
    shards = sorted(f for f in folder.iterdir() if f.is_file() and f.suffix.lower() in READERS)
    if not shards:
        kinds = ", ".join(sorted(READERS))
        raise InputError(
            f"{folder}: is a directory without data shards ({kinds} files) and not a datasets save_to_disk folder"
        )
    examples: list[Example] = []
    h = hashlib.sha256()
    for shard in shards:
        examples += load_dataset(shard).examples
        h.update(shard.name.encode() + b"\0" + file_sha256(shard).encode())
    return Dataset(str(folder), subsample(examples, max_rows, seed), h.hexdigest(), len(examples))


def _datasets() -> Any:
    try:
        import datasets
    except ImportError:
        raise InputError(
            "reading a Hub dataset or a save_to_disk folder needs the datasets library: "
            "pip install 'subliminal-audit[hf]'"
        ) from None
    datasets.disable_progress_bars()
    return datasets


def _from_disk(folder: Path, split: str | None, max_rows: int | None, seed: int) -> Dataset:
    datasets = _datasets()
    try:
        loaded = datasets.load_from_disk(str(folder))
    except (OSError, ValueError, FileNotFoundError) as exc:
        raise InputError(f"{folder}: cannot read as a datasets folder ({exc})") from None
    table, chosen = _pick_split(loaded, split, str(folder))
    label = f"{folder}[{chosen}]" if chosen else str(folder)
    return _from_table(table, label, f"disk:{table._fingerprint}", max_rows, seed)


def _from_hub(
    hub_id: str, split: str | None, subset: str | None, revision: str | None, max_rows: int | None, seed: int
) -> Dataset:
    datasets = _datasets()
    try:
        loaded = datasets.load_dataset(hub_id, subset, revision=revision)
    except Exception as exc:  # noqa: BLE001 - the hub client raises many types; each becomes one clear line
        first = str(exc).splitlines()[0] if str(exc) else exc.__class__.__name__
        raise InputError(
            f"{hub_id}: not a local file or folder, and the Hub dataset could not be loaded ({first}); offline "
            "(HF_HUB_OFFLINE=1) only datasets already in the local cache can be read"
        ) from None
    table, chosen = _pick_split(loaded, split, hub_id)
    label = f"{hub_id}[{chosen}]" if chosen else hub_id
    key = f"hub:{hub_id}@{revision or 'main'}:{subset}:{chosen}:{table._fingerprint}"
    return _from_table(table, label, key, max_rows, seed)


def _pick_split(loaded: Any, split: str | None, name: str) -> tuple[Any, str | None]:
    """The split asked for (``train`` by default when there are several)."""
    if not hasattr(loaded, "keys"):  # a single Dataset
        if split is not None:
            raise InputError(f"{name}: has no splits, but --split {split} was given")
        return loaded, None
    splits = list(loaded.keys())
    chosen = split or ("train" if "train" in splits else (splits[0] if len(splits) == 1 else None))
    if chosen not in splits:
        raise InputError(f"{name}: choose a split with --split ({', '.join(splits)})")
    return loaded[chosen], chosen


def _from_table(table: Any, label: str, key: str, max_rows: int | None, seed: int) -> Dataset:
    if len(table) == 0:
        raise InputError(f"{label}: no rows")
    examples = [parse_row(dict(record), label, i + 1) for i, record in enumerate(table)]
    digest = hashlib.sha256(key.encode()).hexdigest()
    return Dataset(label, subsample(examples, max_rows, seed), digest, len(examples))
