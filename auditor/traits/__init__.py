"""Trait batteries: YAML data files plus a small registry.

A battery's ``kind`` (the YAML schema of each is in ``docs/traits.md``) is an object in the registry
:mod:`auditor.traits.kinds` that owns everything kind-specific: its YAML fields, how it is planned and scored, which
options are graded, its report and listing text. Built in: ``preference`` (questions plus one shared list of
one-word options, every option graded) and ``choice`` (questions with their own labelled answers, the trait label
graded). Built-in batteries live in ``builtin/``; a user passes a path to their own YAML file anywhere a battery
name is accepted.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import InputError
from .fields import ID, fail
from .kinds import BUILTIN as _BUILTIN_KINDS
from .kinds import DEFAULT_KIND, check_spellings, find_kind, get_kind

if TYPE_CHECKING:
    from .kinds import BatteryKind

BUILTIN_DIR = Path(__file__).parent / "builtin"
#: The built-in kinds (the registry :mod:`auditor.traits.kinds` may hold more).
KINDS = tuple(_BUILTIN_KINDS)
DEFAULT_BATTERIES = ("animal", "tree")
NORMALISATIONS = ("mean", "sum")
REQUIRED_PREFERENCE = ("name", "description", "questions", "options")


@dataclass(frozen=True)
class Answer:
    """One candidate answer of a choice item."""

    text: str
    label: str


@dataclass(frozen=True)
class ChoiceItem:
    """A question of a choice battery with its own labelled candidate answers."""

    question: str
    answers: tuple[Answer, ...]


@dataclass(frozen=True)
class Battery:
    """A set of questions and answer options that measure one trait family.

    Attributes:
        name: short id used in reports (``animal``).
        description: what the battery measures and how.
        kind: scoring mode; ``preference`` = share of probability over the shared options, ``choice`` =
            share of the trait-labelled answers among each question's own answers.
        questions: the user messages asked (each scored separately; for ``choice`` the items' questions).
        options: ``preference``: answer options, each scored over its case and leading-space variants;
            ``choice``: the answer labels, trait label first (the columns of its ``BatteryScores``).
        category: noun for the option family (``animal``), used by teacher prompts.
        source: file the battery was read from.
        items: ``choice`` only: the questions with their labelled answers.
        trait_label: ``choice`` only: the label whose share is the trait.
        length_normalisation: ``choice`` only: ``mean`` (per-token mean log-prob) or ``sum``.
    """

    name: str
    description: str
    kind: str
    questions: tuple[str, ...]
    options: tuple[str, ...]
    category: str = ""
    source: str = ""
    extra: dict = field(default_factory=dict, compare=False, hash=False)
    items: tuple[ChoiceItem, ...] = ()
    trait_label: str = ""
    length_normalisation: str = "mean"

    @property
    def battery_kind(self) -> BatteryKind:
        """The object that owns this battery's kind (:mod:`auditor.traits.kinds`)."""
        return get_kind(self.kind)

    @property
    def graded_options(self) -> tuple[str, ...]:
        """The options that are hypotheses (graded, counted in the BH correction): every option of a preference
        battery, the trait label of a choice battery (its complement's shift is the same number, sign flipped)."""
        return self.battery_kind.graded_options(self)

    @property
    def n_answers(self) -> int:
        """Candidate answers scored per pass over the battery."""
        return self.battery_kind.n_answers(self)

    def content_key(self) -> list[Any]:
        """Everything that changes the scores (for run-folder keys)."""
        return [self.name, list(self.questions), list(self.options), *self.battery_kind.content_key(self)]

    def summary(self) -> dict[str, Any]:
        """The battery as reports list it."""
        out: dict[str, Any] = {
            "name": self.name,
            "description": self.description,
            "kind": self.kind,
            "questions": len(self.questions),
            "options": list(self.options),
            "source": self.source,
        }
        return {**out, **self.battery_kind.summary_fields(self)}


def parse_battery(data: object, source: str) -> Battery:
    """Validate a decoded YAML document and build a :class:`Battery` (the kind parses its own fields)."""
    if not isinstance(data, dict):
        raise fail(source, "a battery file must be a YAML mapping")
    kind = find_kind(data.get("kind", DEFAULT_KIND), source)
    for key in ("name", "description", *kind.required):
        if key not in data:
            raise fail(source, f"field '{key}' is missing")
    name = data["name"]
    if not isinstance(name, str) or not ID.fullmatch(name):
        raise fail(source, f"field 'name' must be a lowercase id, got {name!r}")
    desc = data["description"]
    if not isinstance(desc, str) or not desc.strip():
        raise fail(source, "field 'description' must be a non-empty string")
    check_spellings(data, source)
    return kind.parse(data, source, name, " ".join(desc.split()))


def load_battery_file(path: str | Path) -> Battery:
    """Read and validate one battery YAML file."""
    import yaml

    p = Path(path)
    if not p.is_file():
        raise InputError(f"{p}: no such battery file")
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{p}: cannot read ({exc})") from None
    try:  # safe_load: plain data only, no tag constructs an object
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise InputError(f"{p}: not valid YAML ({exc})") from None
    except (ValueError, TypeError, KeyError, AttributeError, OverflowError, RecursionError) as exc:
        # PyYAML's scalar constructors fail this way on a bad value (`2020-02-30`, `!!int abc`, `!!bool maybe`),
        # its composer on nesting deeper than the interpreter's stack
        raise InputError(f"{p}: not valid YAML ({exc.__class__.__name__}: {exc})") from None
    _check_plain_tree(data, p)
    return parse_battery(data, str(p))


MAX_EXPANDED_NODES = 100_000


def _check_plain_tree(data: object, path: Path) -> None:
    """Refuse what YAML aliases can build but a battery must never hold: a node that contains itself
    (``&a [*a]``, which makes every later walk and the JSON report recurse without end), and shared nodes
    that expand past ``MAX_EXPANDED_NODES`` once written out (the "billion laughs" document)."""
    sizes: dict[int, int] = {}  # expanded size of each finished container, so shared nodes cost one visit
    open_ids: set[int] = set()

    def size(node: object) -> int:
        if not isinstance(node, (dict, list)):
            return 1
        key = id(node)
        if key in sizes:
            return sizes[key]
        if key in open_ids:
            raise InputError(f"{path}: a YAML alias refers to a node that contains it; a battery must be a plain tree")
        open_ids.add(key)
        children = [*node.keys(), *node.values()] if isinstance(node, dict) else node
        total = 1 + sum(size(child) for child in children)
        open_ids.discard(key)
        if total > MAX_EXPANDED_NODES:
            raise InputError(f"{path}: YAML aliases expand to more than {MAX_EXPANDED_NODES:,} nodes")
        sizes[key] = total
        return total

    try:
        size(data)
    except RecursionError:
        raise InputError(f"{path}: not valid YAML (nested deeper than this interpreter's stack)") from None


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


__all__ = [
    "Answer",
    "Battery",
    "ChoiceItem",
    "builtin_names",
    "get_battery",
    "load_battery_file",
    "parse_battery",
    "resolve_batteries",
]
