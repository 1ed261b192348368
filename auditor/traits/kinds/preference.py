"""``kind: preference``: questions plus one shared list of one-word options (``animal``, ``tree``).

Every option is a candidate trait (graded); its score is its share of probability over the option set, each option
summed over its case and leading-space variants (:func:`auditor.scoring.option_variants`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from ...battery_scores import BatteryScores
from ...chat import encode_text, prompt_text
from ...scoring import (
    continuation_logprobs,
    continuation_rows,
    logsumexp_by_option,
    option_variant_ids,
    prompt_tokens,
    question_messages,
    shared_prefix,
    tree_logprobs,
)
from .. import Battery
from ..fields import unique_strings
from . import refuse_foreign_fields
from .base import BatteryKind

if TYPE_CHECKING:
    from torch import Tensor
    from transformers import PreTrainedTokenizerBase as Tokenizer

    from ...models import LoadedModel


@dataclass
class ScoringPlan:
    """Token ids prepared once per battery and tokenizer."""

    battery: Battery
    prefixes: list[list[int]]  # one per question
    variant_ids: list[list[int]]  # flat list over (option, variant)
    variant_option: list[int]  # option index of each variant

    @property
    def forward_tokens(self) -> int:
        """Tokens run through the model to score the battery once."""
        per_question = sum(len(r) for r in continuation_rows(self.variant_ids))
        return prompt_tokens(self.prefixes) + len(self.prefixes) * per_question


def plan_preference(tokenizer: Tokenizer, battery: Battery, system: str | None = None) -> ScoringPlan:
    """Tokenise the questions and every option's variants (after the first question's prompt)."""
    texts = [prompt_text(tokenizer, question_messages(q, system)) for q in battery.questions]
    prefixes = [encode_text(tokenizer, t) for t in texts]
    variant_ids, variant_option = option_variant_ids(tokenizer, texts[0], prefixes[0], battery.options)
    return ScoringPlan(battery, prefixes, variant_ids, variant_option)


def score_preference_battery(
    loaded: LoadedModel, plan: ScoringPlan, on_question: Callable[[], None] | None = None
) -> BatteryScores:
    """Per question, each option's log-probability (log-sum-exp over its variants)."""
    n_opt = len(plan.battery.options)
    rows = []
    was_training = loaded.model.training
    loaded.model.eval()
    shared = shared_prefix(loaded, plan.prefixes)
    tokens = continuation_logprobs(loaded, plan.prefixes, [plan.variant_ids] * len(plan.prefixes), shared)
    for per_variant in tokens:
        v = np.array([t.sum() for t in per_variant])
        rows.append(logsumexp_by_option(v, plan.variant_option, n_opt))
        if on_question:
            on_question()
    if was_training:
        loaded.model.train()
    return BatteryScores(plan.battery.name, list(plan.battery.options), np.vstack(rows))


def preference_shares(loaded: LoadedModel, plan: ScoringPlan, questions: Sequence[int]) -> Tensor:
    """Differentiable option shares per question ``[questions, options]``, under the training precision."""
    import torch

    prefixes = [plan.prefixes[q] for q in questions]
    cast = loaded.train_autocast_dtype
    tokens = tree_logprobs(loaded, prefixes, [plan.variant_ids] * len(prefixes), autocast_dtype=cast)
    owners = torch.tensor(plan.variant_option)
    shares = []
    for per_variant in tokens:
        v = torch.stack([t.sum() for t in per_variant])
        lp = torch.stack([torch.logsumexp(v[owners == k], dim=0) for k in range(len(plan.battery.options))])
        shares.append(torch.softmax(lp, dim=0))
    return torch.stack(shares)


class PreferenceKind(BatteryKind):
    name = "preference"
    summary = "share of probability over one shared list of one-word options; every option graded"
    fields = ("questions", "options")
    required = ("questions", "options")
    sampled_max_new_tokens = 8
    fits_noise = True
    known: ClassVar[frozenset[str]] = frozenset({"name", "description", "kind", "questions", "options", "category"})

    def parse(self, data: dict[str, Any], source: str, name: str, description: str) -> Battery:
        refuse_foreign_fields(self, data, source)
        questions = unique_strings(data, "questions", 1, source)
        options = unique_strings(data, "options", 2, source)
        return Battery(
            name=name,
            description=description,
            kind=str(data.get("kind", self.name)),
            questions=questions,
            options=options,
            category=str(data.get("category", "")),
            source=source,
            extra={k: v for k, v in data.items() if k not in self.known},
        )

    def plan(self, tokenizer: Tokenizer, battery: Battery, system: str | None = None) -> ScoringPlan:
        return plan_preference(tokenizer, battery, system)

    def score(self, loaded: LoadedModel, plan: Any, on_question: Callable[[], None] | None = None) -> BatteryScores:
        return score_preference_battery(loaded, plan, on_question)

    def graded_shares(self, loaded: LoadedModel, plan: Any, questions: Sequence[int]) -> tuple[Tensor, list[str]]:
        return preference_shares(loaded, plan, questions).mean(dim=0) * 100, list(plan.battery.options)
