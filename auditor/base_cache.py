"""What a base gives the same in every scan of it, kept in the cache across scans: its exact battery scores, its
open-vocabulary readout and the gradient method's trait gradients.

A team that scans every new dataset against one base pays for the base's side once. Entries live in
``cache/base/`` keyed by the base's fingerprint (weights, and a merged ``--adapter``), its precision and device, and
everything that shapes the value (the batteries' content; the readout's prompt version and settings; the trait
gradients' questions, adapter and seed). Sampled scoring depends on the seed and the judge and is not cached. The
readout is stored as its run folder keeps it (float16 log-probabilities), and a scan uses the stored copy even when it
computed it, so a first scan and a repeat give the same numbers; trait gradients are stored exactly (float32).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .io import Damaged, atomic_write_bytes, cache_dir, compute_once

if TYPE_CHECKING:
    from torch import Tensor

    from .models import LoadedModel
    from .readout import Readout
    from .scoring import BatteryScores
    from .traits import Battery


def entry(loaded: LoadedModel, kind: str, *parts: Any) -> Path:
    """The cache file of ``kind`` (``scores``, ``readout``) for this base and ``parts``."""
    text = json.dumps(
        [loaded.fingerprint, loaded.dtype, loaded.autocast_dtype, str(loaded.device).split(":")[0], kind, parts],
        default=str,
    )
    return cache_dir() / "base" / f"{kind}-{hashlib.sha256(text.encode('utf-8')).hexdigest()[:24]}"


def base_scores(
    loaded: LoadedModel, batteries: list[Battery], score: Callable[[], dict[str, BatteryScores]]
) -> dict[str, BatteryScores]:
    """The base's exact scores on ``batteries``: from the cache, or ``score()`` stored there."""
    from .scoring import BatteryScores

    path = entry(loaded, "scores", [b.content_key() for b in batteries]).with_suffix(".json")

    def parse(blob: dict[str, Any]) -> dict[str, BatteryScores]:
        scores = {name: BatteryScores.from_dict(d) for name, d in blob["scores"].items()}
        if sorted(scores) != sorted(b.name for b in batteries):
            raise ValueError(f"scores for {sorted(scores)}, not for the scan's batteries")
        return scores

    found, _ = compute_once(path, lambda: {"scores": {k: v.to_dict() for k, v in score().items()}}, parse)
    return found


def base_readout(loaded: LoadedModel, read: Callable[[], Readout]) -> Readout:
    """The base's open-vocabulary readout: from the cache, or ``read()`` stored there (returned as stored)."""
    from . import readout as r
    from .rundir import READOUT_ERRORS, sealed_readout, unseal_readout

    settings = [
        r.OPEN_PROMPTS_VERSION, r.COMPLETE_TOP, r.COMPLETE_MIN, r.COMPLETE_PATHS, r.MAX_PIECES, r.BRANCH, r.FLOOR,
        r.KEEP, r.STORE_WORDS,
    ]  # fmt: skip
    path = entry(loaded, "readout", settings).with_suffix(".npz")
    readout, _ = compute_once(
        path,
        lambda: sealed_readout(read()),
        unseal_readout,
        read=lambda p: p.read_bytes() if p.exists() else None,
        write=atomic_write_bytes,
        errors=READOUT_ERRORS,
    )
    return readout


#: Trait gradients per option: the options (battery, option) in order, and per ``lora_B`` module ``[options, out, r]``.
TraitGradients = tuple[list[tuple[str, str]], dict[str, "Tensor"]]


def trait_gradients(loaded: LoadedModel, parts: Any, compute: Callable[[], TraitGradients]) -> TraitGradients:
    """The gradient method's trait gradients at the adapter's initialisation (``parts``: everything else that shapes
    them): from the cache, or ``compute()`` stored there. Stored as safetensors with the options and a checksum."""
    from safetensors import SafetensorError

    path = entry(loaded, "gradients", parts).with_suffix(".safetensors")
    found, _ = compute_once(
        path,
        lambda: sealed_gradients(*compute()),
        unseal_gradients,
        read=lambda p: p.read_bytes() if p.exists() else None,
        write=atomic_write_bytes,
        errors=(SafetensorError,),
    )
    return found


def _digest(tensors: dict[str, Tensor]) -> str:
    h = hashlib.sha256()
    for name in sorted(tensors):
        h.update(name.encode("utf-8"))
        h.update(tensors[name].contiguous().numpy().tobytes())
    return h.hexdigest()


def sealed_gradients(options: list[tuple[str, str]], grads: dict[str, Tensor]) -> bytes:
    """``grads`` (on the CPU, float32) as safetensors bytes; the options and a checksum in its metadata."""
    from safetensors.torch import save

    tensors = {name: g.detach().float().cpu().contiguous() for name, g in grads.items()}
    meta = {"options": json.dumps([list(o) for o in options]), "sha256": _digest(tensors)}
    return save(tensors, metadata=meta)


def unseal_gradients(blob: bytes) -> TraitGradients:
    """The trait gradients in ``blob``, their checksum checked (:class:`auditor.io.Damaged` when it does not match)."""
    from safetensors.torch import load

    tensors = load(blob)
    size = int.from_bytes(blob[:8], "little")  # safetensors: an 8-byte header length, then the JSON header
    meta = json.loads(blob[8 : 8 + size])["__metadata__"]
    if meta["sha256"] != _digest(tensors):
        raise Damaged("its checksum does not match its content")
    return [(b, o) for b, o in json.loads(meta["options"])], tensors
