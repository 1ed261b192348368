"""The battery-kind seam: everything that differs between kinds of battery, on one object.

A :class:`BatteryKind` reads its own YAML fields into a :class:`~auditor.traits.Battery`, plans and scores the
battery exactly (into :class:`~auditor.battery_scores.BatteryScores`), says which options are graded, and writes
the kind's lines for reports and the ``traits`` commands. The rest of subaudit reaches a kind only through
``battery.battery_kind`` (registry: :mod:`auditor.traits.kinds`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

if TYPE_CHECKING:
    from torch import Tensor
    from transformers import PreTrainedTokenizerBase as Tokenizer

    from ...battery_scores import BatteryScores
    from ...models import LoadedModel
    from .. import Battery


class BatteryPlan(Protocol):
    """Token ids of a battery, prepared once per tokenizer (what :meth:`BatteryKind.plan` returns)."""

    battery: Battery
    prefixes: list[list[int]]  # one chat-templated prompt per question

    @property
    def forward_tokens(self) -> int:
        """Tokens run through the model to score the battery once."""
        ...


class BatteryKind:
    """One kind of trait battery (``kind:`` in its YAML file).

    Class attributes:
        name: the ``kind:`` value.
        summary: one line for listings.
        fields: the YAML fields only this kind uses (refused in a battery of another kind).
        required: the fields it needs besides ``name`` and ``description``.
        misspellings: field name -> its spelling here (refused with a hint, whatever the kind).
        sampled_max_new_tokens: new tokens per answer under ``--scoring sampled``.
        needs_judge: ``--scoring sampled`` classifies its answers with a judge model (no string match).
        fits_noise: its graded shifts feed the null arm's noise fit (when three or more have a share to fit).
    """

    name: ClassVar[str] = ""
    summary: ClassVar[str] = ""
    fields: ClassVar[tuple[str, ...]] = ()
    required: ClassVar[tuple[str, ...]] = ()
    misspellings: ClassVar[dict[str, str]] = {}
    sampled_max_new_tokens: ClassVar[int] = 64
    needs_judge: ClassVar[bool] = False
    fits_noise: ClassVar[bool] = False

    def parse(self, data: dict[str, Any], source: str, name: str, description: str) -> Battery:
        """A battery of this kind from a decoded YAML mapping whose ``name`` and ``description`` are checked."""
        raise NotImplementedError

    def graded_options(self, battery: Battery) -> tuple[str, ...]:
        """The options that are hypotheses (graded, counted in the BH correction): all of them by default."""
        return battery.options

    def n_answers(self, battery: Battery) -> int:
        """Candidate answers scored per pass over the battery."""
        return len(battery.questions) * len(battery.options)

    def content_key(self, battery: Battery) -> list[Any]:
        """What changes the scores besides the name, questions and options (for run-folder keys)."""
        return []

    def summary_fields(self, battery: Battery) -> dict[str, Any]:
        """The kind's own members of the battery's block in a result."""
        return {}

    def plan(self, tokenizer: Tokenizer, battery: Battery, system: str | None = None) -> BatteryPlan:
        """Tokenise the battery (``system``: a system message before every question; ``None``: the template's)."""
        raise NotImplementedError

    def score(
        self, loaded: LoadedModel, plan: BatteryPlan, on_question: Callable[[], None] | None = None
    ) -> BatteryScores:
        """Exact scores of every question for the model as it is now (adapter on or off)."""
        raise NotImplementedError

    def graded_shares(
        self, loaded: LoadedModel, plan: BatteryPlan, questions: Sequence[int]
    ) -> tuple[Tensor, list[str]]:
        """Differentiable shares (pp, mean over ``questions``) of the graded options, and their names."""
        raise NotImplementedError

    def describe_scoring(self, battery: Battery, scoring: dict[str, Any], top_n: int) -> str:
        """How the report's battery section was scored (``scoring``: the probe's scoring block; ``top_n``: the
        options the section lists)."""
        return (
            f"{len(battery.questions)} questions, {len(battery.options)} options. Shares in % (mean over questions "
            f"and seeds); the {top_n} options that rose most, then the one that fell most."
        )

    def answers_cell(self, battery: Battery) -> str:
        """The ``traits list`` answers column."""
        return f"{len(battery.options)} options"

    def graded_cell(self, battery: Battery) -> str:
        """The ``traits list`` graded column."""
        return f"{len(battery.graded_options)} options"

    def validated(self, battery: Battery) -> str:
        """What ``traits validate`` says after the question count."""
        return f"{len(battery.options)} options"

    def show_lines(self, battery: Battery) -> list[str]:
        """What ``traits show`` prints after the description."""
        return ["options: " + ", ".join(battery.options), "questions:", *(f"  - {q}" for q in battery.questions)]
