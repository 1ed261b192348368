"""Trait batteries: YAML data files plus a small registry.

A battery is a list of questions and a list of answer options. For a ``preference`` battery every
option is a candidate trait and its score is the option's share of probability over the option set
(exact log-probabilities, see :mod:`auditor.scoring`). Built-in batteries live in ``builtin/``; a user
passes a path to their own YAML file anywhere a battery name is accepted.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import InputError

BUILTIN_DIR = Path(__file__).parent / "builtin"
KINDS = ("preference",)
DEFAULT_BATTERIES = ("animal", "tree")


@dataclass(frozen=True)
class Battery:
    """A set of questions and answer options that measure one trait family.

    Attributes:
        name: short id used in reports (``animal``).
        description: what the battery measures and how.
        kind: scoring mode; ``preference`` = share of probability over the options.
        questions: the user messages asked (each scored separately).
        options: answer options; each is scored over its case and leading-space variants.
        category: noun for the option family (``animal``), used by teacher prompts.
        source: file the battery was read from.
    """

    name: str
    description: str
    kind: str
    questions: tuple[str, ...]
    options: tuple[str, ...]
    category: str = ""
    source: str = ""
    extra: dict = field(default_factory=dict, compare=False, hash=False)


def _fail(source: str, msg: str) -> InputError:
    return InputError(f"{source}: {msg}")


def parse_battery(data: object, source: str) -> Battery:
    """Validate a decoded YAML document and build a :class:`Battery`."""
    if not isinstance(data, dict):
        raise _fail(source, "a battery file must be a YAML mapping")
    for key in ("name", "description", "questions", "options"):
        if key not in data:
            raise _fail(source, f"field '{key}' is missing")
    name = data["name"]
    if not isinstance(name, str) or not re.fullmatch(r"[a-z0-9][a-z0-9_\-]*", name):
        raise _fail(source, f"field 'name' must be a lowercase id, got {name!r}")
    kind = data.get("kind", "preference")
    if kind not in KINDS:
        raise _fail(source, f"field 'kind' is {kind!r}; supported: {', '.join(KINDS)}")
    desc = data["description"]
    if not isinstance(desc, str) or not desc.strip():
        raise _fail(source, "field 'description' must be a non-empty string")
    out: dict[str, tuple[str, ...]] = {}
    for key, minimum in (("questions", 1), ("options", 2)):
        items = data[key]
        if not isinstance(items, list) or len(items) < minimum:
            raise _fail(source, f"field '{key}' must be a list of at least {minimum} strings")
        for i, item in enumerate(items):
            if not isinstance(item, str) or not item.strip():
                raise _fail(source, f"field '{key}[{i}]' must be a non-empty string")
        lowered = [s.strip().lower() for s in items]
        dup = next((s for s in lowered if lowered.count(s) > 1), None)
        if dup is not None:
            raise _fail(source, f"field '{key}' lists {dup!r} more than once")
        out[key] = tuple(s.strip() for s in items)
    known = {"name", "description", "kind", "questions", "options", "category"}
    return Battery(
        name=name,
        description=" ".join(desc.split()),
        kind=kind,
        questions=out["questions"],
        options=out["options"],
        category=str(data.get("category", "")),
        source=source,
        extra={k: v for k, v in data.items() if k not in known},
    )


def load_battery_file(path: str | Path) -> Battery:
    """Read and validate one battery YAML file."""
    import yaml

    p = Path(path)
    if not p.is_file():
        raise InputError(f"{p}: no such battery file")
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise InputError(f"{p}: not valid YAML ({exc})") from None
    return parse_battery(data, str(p))


def builtin_names() -> list[str]:
    """Names of the built-in batteries."""
    return sorted(p.stem for p in BUILTIN_DIR.glob("*.yaml"))


def get_battery(name_or_path: str) -> Battery:
    """A built-in battery by name, or a user's battery by file path."""
    candidate = BUILTIN_DIR / f"{name_or_path}.yaml"
    if candidate.is_file():
        return load_battery_file(candidate)
    if name_or_path.endswith((".yaml", ".yml")) or "/" in name_or_path:
        return load_battery_file(name_or_path)
    raise InputError(f"unknown trait battery {name_or_path!r}; built-in: {', '.join(builtin_names())}")


def resolve_batteries(spec: str | list[str] | None) -> list[Battery]:
    """Parse ``--traits animal,tree,./mine.yaml`` (``None`` = the defaults)."""
    if spec is None:
        names = list(DEFAULT_BATTERIES)
    elif isinstance(spec, str):
        names = [s.strip() for s in spec.split(",") if s.strip()]
    else:
        names = list(spec)
    if not names:
        raise InputError("--traits: no battery named")
    batteries = [get_battery(n) for n in names]
    seen = [b.name for b in batteries]
    dup = next((n for n in seen if seen.count(n) > 1), None)
    if dup:
        raise InputError(f"--traits: battery {dup!r} given twice")
    return batteries


__all__ = ["Battery", "builtin_names", "get_battery", "load_battery_file", "parse_battery", "resolve_batteries"]
