"""``kind: choice``: items, each a question with its *own* labelled candidate answers.

The battery names one ``trait_label``; an answer's score is its mean (or summed) token log-probability after the
question, a softmax over the question's answers gives each answer a share, and a label's share is the sum over its
answers. Scored as a :class:`~auditor.battery_scores.BatteryScores` whose options are the labels, trait label first,
and whose ``logprob`` is the log of each label's share; only the trait label is graded (its complement's shift is
the same number with the sign flipped), so each choice battery is one hypothesis.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from ...battery_scores import BatteryScores
from ...chat import encode_text, prompt_text
from ...markdown import md_code
from ...scoring import (
    continuation_ids,
    continuation_logprobs,
    prompt_tokens,
    question_messages,
    shared_prefix,
    tree_logprobs,
)
from .. import Answer, Battery, ChoiceItem
from ..fields import fail, keyed_mapping, label_field, text_field
from . import refuse_foreign_fields
from .base import BatteryKind

if TYPE_CHECKING:
    from torch import Tensor
    from transformers import PreTrainedTokenizerBase as Tokenizer

    from ...models import LoadedModel

NORMALISATIONS = ("mean", "sum")


@dataclass
class ChoicePlan:
    """Token ids of a choice battery: every question with its own answers."""

    battery: Battery
    prefixes: list[list[int]]  # one per question
    answer_ids: list[list[list[int]]]  # [question][answer] continuation token ids
    answer_option: list[list[int]]  # [question][answer] index of the answer's label in battery.options

    @property
    def forward_tokens(self) -> int:
        """Tokens run through the model to score the battery once (padding not counted)."""
        answers = sum(len(a) - 1 for q in self.answer_ids for a in q)
        return prompt_tokens(self.prefixes) + answers


def plan_choice(tokenizer: Tokenizer, battery: Battery, system: str | None = None) -> ChoicePlan:
    """Tokenise a choice battery: each question's chat-templated prompt (after ``system``, if given) and its
    answers after it."""
    prefixes: list[list[int]] = []
    answer_ids: list[list[list[int]]] = []
    answer_option: list[list[int]] = []
    for item in battery.items:
        text = prompt_text(tokenizer, question_messages(item.question, system))
        ids = encode_text(tokenizer, text)
        prefixes.append(ids)
        answer_ids.append([continuation_ids(tokenizer, text, ids, a.text) for a in item.answers])
        answer_option.append([battery.options.index(a.label) for a in item.answers])
    return ChoicePlan(battery, prefixes, answer_ids, answer_option)


def answer_scores(token_logprobs: list[np.ndarray], normalisation: str) -> np.ndarray:
    """One score per answer: the mean (``mean``) or the sum (``sum``) of its token log-probabilities."""
    if normalisation not in NORMALISATIONS:
        raise ValueError(f"unknown length normalisation {normalisation!r}")
    return np.array([t.mean() if normalisation == "mean" else t.sum() for t in token_logprobs])


def label_logshares(scores: np.ndarray, owners: list[int], n_labels: int) -> np.ndarray:
    """Log of each label's share: softmax over the answers' scores, summed over the label's answers.

    A label with no answer in this question gets ``-inf`` (share 0).
    """
    log_share = scores - np.logaddexp.reduce(scores)
    out = np.full(n_labels, -np.inf)
    for k in range(n_labels):
        sel = log_share[[i for i, o in enumerate(owners) if o == k]]
        if sel.size:
            out[k] = np.logaddexp.reduce(sel)
    return out


def score_choice_battery(
    loaded: LoadedModel, plan: ChoicePlan, on_question: Callable[[], None] | None = None
) -> BatteryScores:
    """Score a choice battery: per question, the log-share of every label (see the module docstring)."""
    battery = plan.battery
    was_training = loaded.model.training
    loaded.model.eval()
    shared = shared_prefix(loaded, plan.prefixes)
    per_question = continuation_logprobs(loaded, plan.prefixes, plan.answer_ids, shared)
    rows = []
    for tokens, owners in zip(per_question, plan.answer_option):
        scores = answer_scores(tokens, battery.length_normalisation)
        rows.append(label_logshares(scores, owners, len(battery.options)))
        if on_question:
            on_question()
    if was_training:
        loaded.model.train()
    return BatteryScores(battery.name, list(battery.options), np.vstack(rows))


def choice_shares(loaded: LoadedModel, plan: ChoicePlan, questions: Sequence[int]) -> Tensor:
    """Differentiable label shares per question ``[questions, labels]``, under the training precision."""
    import torch

    battery = plan.battery
    prefixes = [plan.prefixes[q] for q in questions]
    conts = [plan.answer_ids[q] for q in questions]
    tokens = tree_logprobs(loaded, prefixes, conts, autocast_dtype=loaded.train_autocast_dtype)
    shares = []
    for q, per_answer in zip(questions, tokens):
        agg = [t.mean() if battery.length_normalisation == "mean" else t.sum() for t in per_answer]
        log_share = torch.log_softmax(torch.stack(agg), dim=0)
        owners = torch.tensor(plan.answer_option[q])
        shares.append(torch.stack([log_share[owners == k].exp().sum() for k in range(len(battery.options))]))
    return torch.stack(shares)


def _parse_answer(source: str, at: str, raw: object, earlier: list[Answer]) -> Answer:
    raw = keyed_mapping(source, at, raw, ("text", "label"))
    text = text_field(source, f"{at}.text", raw["text"])
    if any(" ".join(text.lower().split()) == " ".join(b.text.lower().split()) for b in earlier):
        raise fail(source, f"field '{at}.text' repeats an earlier answer of this item")
    return Answer(text, label_field(source, f"{at}.label", raw["label"]))


def _parse_item(source: str, at: str, item: object, trait_label: str, seen: set[str]) -> ChoiceItem:
    item = keyed_mapping(source, at, item, ("question", "answers"))
    question = text_field(source, f"{at}.question", item["question"])
    if question.lower() in seen:
        raise fail(source, f"field '{at}.question' repeats an earlier question")
    seen.add(question.lower())
    answers_raw = item["answers"]
    if not isinstance(answers_raw, list) or len(answers_raw) < 2:
        raise fail(source, f"field '{at}.answers' must be a list of at least 2 answers")
    answers: list[Answer] = []
    for j, a in enumerate(answers_raw):
        answers.append(_parse_answer(source, f"{at}.answers[{j}]", a, answers))
    n_trait = sum(a.label == trait_label for a in answers)
    if n_trait == 0 or n_trait == len(answers):
        raise fail(
            source,
            f"field '{at}.answers' needs at least one answer labelled {trait_label!r} (the trait_label) "
            "and at least one with another label",
        )
    return ChoiceItem(question, tuple(answers))


def parse_items(data: dict, source: str, trait_label: str) -> tuple[ChoiceItem, ...]:
    """Field ``items``: questions, each with at least two labelled answers, some of them ``trait_label``."""
    raw = data["items"]
    if not isinstance(raw, list) or not raw:
        raise fail(source, "field 'items' must be a list of at least 1 item")
    seen: set[str] = set()
    return tuple(_parse_item(source, f"items[{i}]", item, trait_label, seen) for i, item in enumerate(raw))


class ChoiceKind(BatteryKind):
    name = "choice"
    summary = "share of the trait-labelled answers among each question's own answers; the trait label graded"
    fields = ("items", "trait_label", "length_normalisation")
    required = ("trait_label", "items")
    misspellings: ClassVar[dict[str, str]] = {"length_normalization": "length_normalisation"}
    sampled_max_new_tokens = 64
    needs_judge = True
    known: ClassVar[frozenset[str]] = frozenset(
        {"name", "description", "kind", "category", "trait_label", "items", "length_normalisation"}
    )

    def parse(self, data: dict[str, Any], source: str, name: str, description: str) -> Battery:
        for key in ("questions", "options"):
            if key in data:
                raise fail(
                    source, f"field '{key}' is not used by 'kind: choice'; put each question and its answers in 'items'"
                )
        refuse_foreign_fields(self, data, source)
        trait_label = label_field(source, "trait_label", data["trait_label"])
        norm = data.get("length_normalisation", "mean")
        if norm not in NORMALISATIONS:
            raise fail(source, f"field 'length_normalisation' is {norm!r}; supported: {', '.join(NORMALISATIONS)}")
        items = parse_items(data, source, trait_label)
        labels = list(dict.fromkeys([trait_label, *(a.label for it in items for a in it.answers)]))
        return Battery(
            name=name,
            description=description,
            kind=self.name,
            questions=tuple(it.question for it in items),
            options=tuple(labels),
            category=str(data.get("category", "")),
            source=source,
            extra={k: v for k, v in data.items() if k not in self.known},
            items=items,
            trait_label=trait_label,
            length_normalisation=norm,
        )

    def graded_options(self, battery: Battery) -> tuple[str, ...]:
        return (battery.trait_label,)

    def n_answers(self, battery: Battery) -> int:
        return sum(len(it.answers) for it in battery.items)

    def content_key(self, battery: Battery) -> list[Any]:
        answers = [[[a.text, a.label] for a in it.answers] for it in battery.items]
        return [battery.trait_label, battery.length_normalisation, answers]

    def summary_fields(self, battery: Battery) -> dict[str, Any]:
        return {
            "graded": list(battery.graded_options),
            "trait_label": battery.trait_label,
            "answers": battery.n_answers,
            "length_normalisation": battery.length_normalisation,
        }

    def plan(self, tokenizer: Tokenizer, battery: Battery, system: str | None = None) -> ChoicePlan:
        return plan_choice(tokenizer, battery, system)

    def score(self, loaded: LoadedModel, plan: Any, on_question: Callable[[], None] | None = None) -> BatteryScores:
        return score_choice_battery(loaded, plan, on_question)

    def graded_shares(self, loaded: LoadedModel, plan: Any, questions: Sequence[int]) -> tuple[Tensor, list[str]]:
        mean = choice_shares(loaded, plan, questions).mean(dim=0) * 100
        graded = plan.battery.options.index(plan.battery.trait_label)
        return mean[[graded]], [plan.battery.trait_label]

    def describe_scoring(self, battery: Battery, scoring: dict[str, Any], top_n: int) -> str:
        label = md_code(battery.trait_label, 60)
        if scoring.get("mode") == "sampled":
            how = (
                f"{len(battery.questions)} questions, {scoring['samples']} answers sampled per question and "
                f"classified by the judge; the trait score is the share of the answers labelled {label} among each "
                "question's assigned answers."
            )
        else:
            per_token = "mean per-token" if battery.length_normalisation == "mean" else "summed"
            how = (
                f"{len(battery.questions)} questions, each with its own candidate answers ({battery.n_answers} in "
                f"all), scored by their {per_token} log-probability after the question; the trait score is the share "
                f"of the answers labelled {label} (softmax over each question's answers)."
            )
        return how + " Only that label is graded: one hypothesis. Shares in % (mean over questions and seeds)."

    def answers_cell(self, battery: Battery) -> str:
        sizes = [len(it.answers) for it in battery.items]
        per = str(sizes[0]) if min(sizes) == max(sizes) else f"{min(sizes)}-{max(sizes)}"
        return f"{battery.n_answers} ({per} per question)"

    def graded_cell(self, battery: Battery) -> str:
        return f"label '{battery.trait_label}'"

    def validated(self, battery: Battery) -> str:
        return f"{battery.n_answers} answers, trait label '{battery.trait_label}', labels {', '.join(battery.options)}"

    def show_lines(self, battery: Battery) -> list[str]:
        lines = [
            f"trait label: {battery.trait_label} (graded); labels: {', '.join(battery.options)}; "
            f"length normalisation: {battery.length_normalisation}; {len(battery.items)} questions, "
            f"{battery.n_answers} answers"
        ]
        for i, item in enumerate(battery.items):
            lines.append(f"\n[{i}] {item.question}")
            for a in item.answers:
                mark = "*" if a.label == battery.trait_label else " "
                lines.append(f"  {mark} {a.label:<14} {a.text}")
        return lines
