"""Which calibration profile a scan uses: profile keys, the cache and the shipped profiles, battery matching."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import TYPE_CHECKING

from ..completion_formats import get_format
from ..config import ScanConfig
from ..data import Dataset
from ..errors import InputError
from ..finetune import ProbeConfig
from ..io import cache_dir
from ..models import LoadedModel
from ..traits import Battery
from .profile import NoiseProfile

if TYPE_CHECKING:
    from ..inputs import ScanInputs

#: Profiles shipped with subaudit (the embedded default base's).
SHIPPED = Path(__file__).resolve().parent / "profiles"


def profile_key(fingerprint: str, fmt: str, probe: ProbeConfig, max_rows: int | None, seeds: int) -> str:
    """What a profile must share with a scan to calibrate it (batteries are matched separately, by content)."""
    from ..finetune import PROBE_VERSION

    blob = {
        "model": fingerprint,
        "format": fmt,
        "probe": probe.to_dict(),
        "probe_version": PROBE_VERSION,
        "max_rows": max_rows,
        "seeds": seeds,
        "scoring": "exact",
    }
    return hashlib.sha256(json.dumps(blob, sort_keys=True).encode()).hexdigest()[:16]


def battery_hash(battery: Battery) -> str:
    return hashlib.sha256(json.dumps(battery.content_key(), sort_keys=True).encode()).hexdigest()[:16]


def find_profile(config: ScanConfig, loaded: LoadedModel, dataset: Dataset) -> NoiseProfile | None:
    """The profile a scan uses: ``--calibration none`` none; a file: that one (refused when it calibrates another
    base or budget); ``auto``: the cached or shipped profile for this base, format, students and budget, or
    ``None`` when there is none (the scan then measures draw noise with its null arm)."""
    if config.calibration == "none":
        return None
    fmt = dataset.completion_format if get_format(dataset.completion_format).profiled else None
    if config.calibration != "auto":
        return _check_file(Path(config.calibration), config, loaded)
    if fmt is None:
        return None
    key = profile_key(loaded.fingerprint, fmt, config.probe, config.max_rows, config.seeds)
    for folder in (cache_dir() / "profiles", SHIPPED):
        path = folder / f"{key}.json"
        if path.exists():
            return NoiseProfile.load(path)
    return None


def _check_file(path: Path, config: ScanConfig, loaded: LoadedModel) -> NoiseProfile:
    if not path.is_file():
        raise InputError(f"--calibration {path}: no such file (or use auto or none)")
    try:
        profile = NoiseProfile.load(path)
    except (ValueError, KeyError, TypeError) as exc:
        raise InputError(f"--calibration {path}: not a subaudit calibration profile ({exc})") from None
    want = {
        "base fingerprint": (profile.base.get("fingerprint"), loaded.fingerprint),
        "probe settings": (profile.probe, config.probe.to_dict()),
        "--max-rows": (profile.budget.get("max_rows"), config.max_rows),
        "--seeds": (profile.budget.get("seeds"), config.seeds),
    }
    wrong = [f"{k} {a!r} (the scan's: {b!r})" for k, (a, b) in want.items() if a != b]
    if wrong:
        raise InputError(f"--calibration {path}: calibrates another scan: " + "; ".join(wrong))
    return profile


def matching_options(profile: NoiseProfile, batteries: list[Battery]) -> list[str] | None:
    """The profile's option names for ``batteries``, or ``None`` when one is not in the profile (by content)."""
    names: list[str] = []
    for b in batteries:
        if profile.batteries.get(b.name) != battery_hash(b):
            return None
        names += [f"{b.name}: {o}" for o in b.graded_options]
    return names


def budgets_with_profiles(inputs: ScanInputs) -> list[tuple[int, int]]:
    """The (rows, seeds) budgets that a cached or shipped profile calibrates for this scan's base, format, students
    and batteries (what ``--budget`` may choose from)."""
    config, loaded = inputs.config, inputs.loaded
    fmt = inputs.dataset.completion_format
    if config.calibration == "none" or config.control is not None or not get_format(fmt).profiled:
        return []
    out = set()
    for folder in (cache_dir() / "profiles", SHIPPED):
        for path in folder.glob("*.json"):
            try:
                profile = NoiseProfile.load(path)
            except (OSError, ValueError, KeyError, TypeError):
                continue
            same = (
                profile.base.get("fingerprint") == loaded.fingerprint
                and profile.format == fmt
                and profile.probe == config.probe.to_dict()
                and matching_options(profile, inputs.batteries) is not None
            )
            if same and profile.budget.get("max_rows"):
                out.add((int(profile.budget["max_rows"]), int(profile.budget.get("seeds", 1))))
    return sorted(out)
