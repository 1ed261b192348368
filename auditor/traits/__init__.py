"""Trait batteries: YAML data files plus a small registry.

Two kinds of battery (the YAML schema of both is in ``docs/traits.md``):

* ``preference``: questions plus one shared list of one-word options (``animal``, ``tree``). Every option
  is a candidate trait; its score is its share of probability over the option set.
* ``choice``: items, each a question with its *own* candidate answers, every answer labelled
  (``aligned`` / ``misaligned``). The battery names one ``trait_label``; the trait score of a question is
  the summed share of its answers with that label (softmax over length-normalised answer log-probs).
  Scored as a :class:`~auditor.scoring.BatteryScores` whose options are the labels, trait label first;
  only the trait label is graded (:attr:`Battery.graded_options`), so each choice battery is one hypothesis.

Scoring is exact in both cases (see :mod:`auditor.scoring`). Built-in batteries live in ``builtin/``; a user
passes a path to their own YAML file anywhere a battery name is accepted.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import InputError

BUILTIN_DIR = Path(__file__).parent / "builtin"
KINDS = ("preference", "choice")
DEFAULT_BATTERIES = ("animal", "tree")
NORMALISATIONS = ("mean", "sum")
REQUIRED_PREFERENCE = ("name", "description", "questions", "options")
_ID = re.compile(r"[a-z0-9][a-z0-9_\-]*")


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
    def graded_options(self) -> tuple[str, ...]:
        """The options that are hypotheses (graded, counted in the BH correction): the trait label of a
        choice battery (its complement's shift is the same number with the sign flipped), every option of
        a preference battery."""
        return (self.trait_label,) if self.kind == "choice" else self.options

    @property
    def n_answers(self) -> int:
        """Candidate answers scored per pass over the battery."""
        if self.kind == "choice":
            return sum(len(it.answers) for it in self.items)
        return len(self.questions) * len(self.options)

    def content_key(self) -> list[Any]:
        """Everything that changes the scores (for run-folder keys)."""
        key: list[Any] = [self.name, list(self.questions), list(self.options)]
        if self.kind == "choice":
            key += [
                self.trait_label,
                self.length_normalisation,
                [[[a.text, a.label] for a in it.answers] for it in self.items],
            ]
        return key

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
        if self.kind == "choice":
            out.update(
                graded=list(self.graded_options),
                trait_label=self.trait_label,
                answers=self.n_answers,
                length_normalisation=self.length_normalisation,
            )
        return out


def _fail(source: str, msg: str) -> InputError:
    return InputError(f"{source}: {msg}")


def _text(source: str, where: str, value: object) -> str:
    if not isinstance(value, str) or not value.strip():
        raise _fail(source, f"field '{where}' must be a non-empty string")
    return value.strip()


def _label(source: str, where: str, value: object) -> str:
    if not isinstance(value, str) or not _ID.fullmatch(value):
        raise _fail(source, f"field '{where}' must be a lowercase label (letters, digits, '-', '_'), got {value!r}")
    return value


def _no_extra_keys(source: str, where: str, d: dict, allowed: tuple[str, ...]) -> None:
    extra = [k for k in d if k not in allowed]
    if extra:
        raise _fail(source, f"field '{where}{extra[0]}' is not allowed here; expected: {', '.join(allowed)}")


def _parse_items(data: dict, source: str, trait_label: str) -> tuple[ChoiceItem, ...]:
    raw = data["items"]
    if not isinstance(raw, list) or not raw:
        raise _fail(source, "field 'items' must be a list of at least 1 item")
    items: list[ChoiceItem] = []
    seen_q: set[str] = set()
    for i, item in enumerate(raw):
        at = f"items[{i}]"
        if not isinstance(item, dict):
            raise _fail(source, f"field '{at}' must be a mapping with 'question' and 'answers'")
        _no_extra_keys(source, f"{at}.", item, ("question", "answers"))
        for key in ("question", "answers"):
            if key not in item:
                raise _fail(source, f"field '{at}.{key}' is missing")
        question = _text(source, f"{at}.question", item["question"])
        if question.lower() in seen_q:
            raise _fail(source, f"field '{at}.question' repeats an earlier question")
        seen_q.add(question.lower())
        answers_raw = item["answers"]
        if not isinstance(answers_raw, list) or len(answers_raw) < 2:
            raise _fail(source, f"field '{at}.answers' must be a list of at least 2 answers")
        answers: list[Answer] = []
        for j, a in enumerate(answers_raw):
            aat = f"{at}.answers[{j}]"
            if not isinstance(a, dict):
                raise _fail(source, f"field '{aat}' must be a mapping with 'text' and 'label'")
            _no_extra_keys(source, f"{aat}.", a, ("text", "label"))
            for key in ("text", "label"):
                if key not in a:
                    raise _fail(source, f"field '{aat}.{key}' is missing")
            text = _text(source, f"{aat}.text", a["text"])
            if any(" ".join(text.lower().split()) == " ".join(b.text.lower().split()) for b in answers):
                raise _fail(source, f"field '{aat}.text' repeats an earlier answer of this item")
            answers.append(Answer(text, _label(source, f"{aat}.label", a["label"])))
        n_trait = sum(a.label == trait_label for a in answers)
        if n_trait == 0 or n_trait == len(answers):
            raise _fail(
                source,
                f"field '{at}.answers' needs at least one answer labelled {trait_label!r} (the trait_label) "
                "and at least one with another label",
            )
        items.append(ChoiceItem(question, tuple(answers)))
    return tuple(items)


def parse_battery(data: object, source: str) -> Battery:
    """Validate a decoded YAML document and build a :class:`Battery`."""
    if not isinstance(data, dict):
        raise _fail(source, "a battery file must be a YAML mapping")
    kind = data.get("kind", "preference")
    if kind not in KINDS:
        raise _fail(source, f"field 'kind' is {kind!r}; supported: {', '.join(KINDS)}")
    required = ("name", "description", "trait_label", "items") if kind == "choice" else REQUIRED_PREFERENCE
    for key in required:
        if key not in data:
            raise _fail(source, f"field '{key}' is missing")
    name = data["name"]
    if not isinstance(name, str) or not _ID.fullmatch(name):
        raise _fail(source, f"field 'name' must be a lowercase id, got {name!r}")
    desc = data["description"]
    if not isinstance(desc, str) or not desc.strip():
        raise _fail(source, "field 'description' must be a non-empty string")
    if "length_normalization" in data:
        raise _fail(source, "field 'length_normalization' is spelt 'length_normalisation'")
    if kind == "choice":
        return _parse_choice(data, source, name, " ".join(desc.split()))
    for key in ("items", "trait_label", "length_normalisation"):
        if key in data:
            raise _fail(source, f"field '{key}' belongs to 'kind: choice' batteries")
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


def _parse_choice(data: dict, source: str, name: str, description: str) -> Battery:
    for key in ("questions", "options"):
        if key in data:
            raise _fail(
                source, f"field '{key}' is not used by 'kind: choice'; put each question and its answers in 'items'"
            )
    trait_label = _label(source, "trait_label", data["trait_label"])
    norm = data.get("length_normalisation", "mean")
    if norm not in NORMALISATIONS:
        raise _fail(source, f"field 'length_normalisation' is {norm!r}; supported: {', '.join(NORMALISATIONS)}")
    items = _parse_items(data, source, trait_label)
    labels = [trait_label]
    for label in (a.label for it in items for a in it.answers):
        if label not in labels:
            labels.append(label)
    known = {"name", "description", "kind", "category", "trait_label", "items", "length_normalisation"}
    return Battery(
        name=name,
        description=description,
        kind="choice",
        questions=tuple(it.question for it in items),
        options=tuple(labels),
        category=str(data.get("category", "")),
        source=source,
        extra={k: v for k, v in data.items() if k not in known},
        items=items,
        trait_label=trait_label,
        length_normalisation=norm,
    )


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
