"""Exact trait scoring: the log-probability of every option's full token sequence.

For each question the chat-templated prompt is run once; its key/value cache is then shared by all
option variants (case and leading-space forms of each option), which are scored in one batch. An
option's log-probability is the log-sum-exp over its variants; its *share* is that probability
normalised over the battery's options. No sampling, no string matching, deterministic.

A ``choice`` battery gives every question its own labelled answers (whole sentences). Each answer's
tokens are scored after the question from copies of the question's cache, right-padded into batches
with an attention mask; an answer's score is its mean (or summed) token log-probability, a softmax
over the question's answers gives each answer a share, and a label's share is the sum over its answers.
The result is a :class:`BatteryScores` whose options are the labels and whose ``logprob`` is the log of
each label's share, so ``share`` returns the label shares exactly.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .chat import encode_text, prompt_text
from .traits import Battery

#: Answers of one choice question run through the model together.
CHOICE_BATCH = 16


def option_variants(option: str) -> list[str]:
    """The surface forms summed for one option: lower/capitalised, with and without a leading space."""
    forms = []
    for word in (option.lower(), option[:1].upper() + option[1:].lower()):
        for prefix in ("", " "):
            if prefix + word not in forms:
                forms.append(prefix + word)
    return forms


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
        per_question = sum(len(r) for r in _continuation_rows(self.variant_ids))
        shared = max(common_prefix_len(self.prefixes) - 1, 0)
        return shared + sum(len(p) - shared for p in self.prefixes) + len(self.prefixes) * per_question


def _continuation_ids(tokenizer: Any, prefix: str, prefix_ids: list[int], text: str) -> list[int]:
    full = encode_text(tokenizer, prefix + text)
    if full[: len(prefix_ids)] == prefix_ids and len(full) > len(prefix_ids):
        return full[len(prefix_ids) :]
    return encode_text(tokenizer, text)


def question_messages(question: str, system: str | None = None) -> list[dict[str, str]]:
    """The chat turns a battery question is scored after: the user turn, preceded by ``system`` if given."""
    turns = [{"role": "system", "content": system}] if system is not None else []
    return [*turns, {"role": "user", "content": question}]


def plan_battery(tokenizer: Any, battery: Battery, system: str | None = None) -> ScoringPlan | ChoicePlan:
    """Tokenise the questions and option variants (or, for a choice battery, answers) of ``battery``.

    ``system``: a system message put before every question (``None``: the chat template's default).
    """
    if battery.kind == "choice":
        return plan_choice(tokenizer, battery, system)
    texts = [prompt_text(tokenizer, question_messages(q, system)) for q in battery.questions]
    prefixes = [encode_text(tokenizer, t) for t in texts]
    variant_ids, variant_option = option_variant_ids(tokenizer, texts[0], prefixes[0], battery.options)
    return ScoringPlan(battery, prefixes, variant_ids, variant_option)


def option_variant_ids(
    tokenizer: Any, prefix: str, prefix_ids: list[int], options: Sequence[str]
) -> tuple[list[list[int]], list[int]]:
    """Token ids of every distinct case/space variant of every option after ``prefix``, and each one's option."""
    variant_ids: list[list[int]] = []
    owners: list[int] = []
    for k, option in enumerate(options):
        seen: set[tuple[int, ...]] = set()
        for form in option_variants(option):
            ids = _continuation_ids(tokenizer, prefix, prefix_ids, form)
            if ids and tuple(ids) not in seen:
                seen.add(tuple(ids))
                variant_ids.append(ids)
                owners.append(k)
    return variant_ids, owners


def _logsumexp_by_option(values: np.ndarray, owners: list[int], n_options: int) -> np.ndarray:
    out = np.full(n_options, -np.inf)
    for k in range(n_options):
        sel = values[[i for i, o in enumerate(owners) if o == k]]
        m = sel.max()
        out[k] = m + np.log(np.exp(sel - m).sum())
    return out


def _continuation_rows(variant_ids: list[list[int]]) -> list[tuple[int, ...]]:
    """The fewest token rows whose positions cover every variant's proper prefix (a trie's leaves)."""
    paths = {tuple(v[:-1]) for v in variant_ids if len(v) > 1}
    return sorted(p for p in paths if not any(q != p and q[: len(p)] == p for q in paths))


def _run(model: Any, ids: Any, cache: Any = None) -> Any:
    return model(input_ids=ids, cache=cache, use_cache=True)


def _prefix_pass(loaded: Any, prefix: list[int], shared: Any = None) -> Any:
    """One forward pass over ``prefix`` (continuing the cache of ``shared = (n_tokens, cache)`` if given)."""
    import copy

    import torch

    if shared is not None and shared[0] < len(prefix):
        n_shared, shared_cache = shared
        ids = torch.tensor([prefix[n_shared:]], device=loaded.device)
        return _run(loaded.model, ids, copy.deepcopy(shared_cache))
    return _run(loaded.model, torch.tensor([prefix], device=loaded.device))


def _shared_prefix(loaded: Any, prefixes: list[list[int]]) -> Any:
    """``(n_tokens, cache)`` of the part all prefixes share (the system prompt), or ``None``."""
    import torch

    n_shared = common_prefix_len(prefixes) - 1  # keep >= 1 question token per pass
    if n_shared <= 0:
        return None
    with torch.no_grad(), loaded.autocast():
        ids = torch.tensor([prefixes[0][:n_shared]], device=loaded.device)
        return n_shared, _run(loaded.model, ids).cache


def score_question(loaded: Any, prefix: list[int], variant_ids: list[list[int]], shared: Any = None) -> np.ndarray:
    """Log-probability of each variant continuing ``prefix``.

    One pass over the prefix gives every first token (``shared`` = ``(n_tokens, cache)`` of a prefix
    common to all questions, reused); the later tokens come from the fewest rows that cover all
    variants' proper prefixes, grouped by length and run on copies of the prefix's cache.
    """
    import copy

    import torch

    model, device = loaded.model, loaded.device
    with torch.no_grad(), loaded.autocast():
        out = _prefix_pass(loaded, prefix, shared)
        first = torch.log_softmax(out.logits[0, -1].float(), dim=-1).cpu()
        # logp_after[path] = log-softmax of the next token after prefix + path
        logp_after: dict[tuple[int, ...], Any] = {(): first}
        rows = _continuation_rows(variant_ids)
        by_len: dict[int, list[tuple[int, ...]]] = {}
        for r in rows:
            by_len.setdefault(len(r), []).append(r)
        for width, group in sorted(by_len.items()):
            cache = copy.deepcopy(out.cache)
            cache.batch_repeat_interleave(len(group))
            logits = _run(model, torch.tensor(group, dtype=torch.long, device=device), cache).logits
            logp = torch.log_softmax(logits.float(), dim=-1).cpu()
            for r, path in enumerate(group):
                for j in range(width):
                    logp_after[path[: j + 1]] = logp[r, j]
    scores = np.empty(len(variant_ids), dtype=np.float64)
    for i, v in enumerate(variant_ids):
        scores[i] = sum(float(logp_after[tuple(v[:j])][v[j]]) for j in range(len(v)))
    return scores


def common_prefix_len(prefixes: list[list[int]]) -> int:
    n = min(len(p) for p in prefixes)
    for i in range(n):
        if any(p[i] != prefixes[0][i] for p in prefixes):
            return i
    return n


@dataclass
class BatteryScores:
    """Per-question option log-probabilities for one model and one battery."""

    battery: str
    options: list[str]
    logprob: np.ndarray  # [questions, options]
    unassigned: list[int] | None = None  # sampled mode only: per question, answers assigned to no option

    @property
    def share(self) -> np.ndarray:
        """Probability share of each option over the option set, per question."""
        z = self.logprob - self.logprob.max(axis=1, keepdims=True)
        p = np.exp(z)
        return p / p.sum(axis=1, keepdims=True)

    def to_dict(self) -> dict:
        d = {"battery": self.battery, "options": self.options, "logprob": self.logprob.tolist()}
        if self.unassigned is not None:
            d["unassigned"] = list(self.unassigned)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> BatteryScores:
        unassigned = d.get("unassigned")
        return cls(
            d["battery"],
            list(d["options"]),
            np.asarray(d["logprob"], dtype=np.float64),
            None if unassigned is None else [int(x) for x in unassigned],
        )


def score_battery(
    loaded: Any, plan: ScoringPlan | ChoicePlan, on_question: Callable[[], None] | None = None
) -> BatteryScores:
    """Score every question of a battery for the model as it is now (adapter on or off)."""
    if isinstance(plan, ChoicePlan):
        return score_choice_battery(loaded, plan, on_question)
    n_opt = len(plan.battery.options)
    rows = []
    was_training = loaded.model.training
    loaded.model.eval()
    shared = _shared_prefix(loaded, plan.prefixes)
    for prefix in plan.prefixes:
        v = score_question(loaded, prefix, plan.variant_ids, shared)
        rows.append(_logsumexp_by_option(v, plan.variant_option, n_opt))
        if on_question:
            on_question()
    if was_training:
        loaded.model.train()
    return BatteryScores(plan.battery.name, list(plan.battery.options), np.vstack(rows))


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
        shared = max(common_prefix_len(self.prefixes) - 1, 0)
        answers = sum(len(a) - 1 for q in self.answer_ids for a in q)
        return shared + sum(len(p) - shared for p in self.prefixes) + answers


def plan_choice(tokenizer: Any, battery: Battery, system: str | None = None) -> ChoicePlan:
    """Tokenise a choice battery: each question's chat-templated prompt (after ``system``, if given) and its
    answers after it."""
    prefixes: list[list[int]] = []
    answer_ids: list[list[list[int]]] = []
    answer_option: list[list[int]] = []
    for item in battery.items:
        text = prompt_text(tokenizer, question_messages(item.question, system))
        ids = encode_text(tokenizer, text)
        prefixes.append(ids)
        answer_ids.append([_continuation_ids(tokenizer, text, ids, a.text) for a in item.answers])
        answer_option.append([battery.options.index(a.label) for a in item.answers])
    return ChoicePlan(battery, prefixes, answer_ids, answer_option)


def score_answers(
    loaded: Any, prefix: list[int], answers: list[list[int]], shared: Any = None, batch_size: int = CHOICE_BATCH
) -> list[np.ndarray]:
    """Per-token log-probabilities of each answer continuing ``prefix``.

    One pass over the prefix gives every answer's first token; the rest of the answers (all but their
    last token) run in batches of ``batch_size`` on copies of the prefix's cache, sorted by length,
    right-padded, with an attention mask over prefix and real tokens (causal attention keeps the pads
    out of every real position anyway).
    """
    import copy

    import torch

    model, device = loaded.model, loaded.device
    out: list[np.ndarray] = [np.empty(0)] * len(answers)
    with torch.no_grad(), loaded.autocast():
        pre = _prefix_pass(loaded, prefix, shared)
        first = torch.log_softmax(pre.logits[0, -1].float(), dim=-1).cpu()
        n_past = len(prefix)
        for i, a in enumerate(answers):
            out[i] = np.array([float(first[a[0]])])
        rows = sorted((i for i, a in enumerate(answers) if len(a) > 1), key=lambda i: len(answers[i]))
        for start in range(0, len(rows), batch_size):
            chunk = rows[start : start + batch_size]
            width = max(len(answers[i]) - 1 for i in chunk)
            ids = torch.zeros((len(chunk), width), dtype=torch.long)
            mask = torch.zeros((len(chunk), n_past + width), dtype=torch.long)
            mask[:, :n_past] = 1
            for r, i in enumerate(chunk):
                ids[r, : len(answers[i]) - 1] = torch.tensor(answers[i][:-1])
                mask[r, n_past : n_past + len(answers[i]) - 1] = 1
            cache = copy.deepcopy(pre.cache)
            cache.batch_repeat_interleave(len(chunk))
            logits = model(input_ids=ids.to(device), attention_mask=mask.to(device), cache=cache, use_cache=True).logits
            logp = torch.log_softmax(logits.float(), dim=-1).cpu()
            for r, i in enumerate(chunk):
                a = answers[i]
                rest = logp[r, torch.arange(len(a) - 1), torch.tensor(a[1:])]
                out[i] = np.concatenate([out[i], rest.double().numpy()])
    return out


def answer_scores(token_logprobs: list[np.ndarray], normalisation: str) -> np.ndarray:
    """One score per answer: the mean (``mean``) or the sum (``sum``) of its token log-probabilities."""
    if normalisation not in ("mean", "sum"):
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


def score_choice_battery(loaded: Any, plan: ChoicePlan, on_question: Callable[[], None] | None = None) -> BatteryScores:
    """Score a choice battery: per question, the log-share of every label (see the module docstring)."""
    battery = plan.battery
    was_training = loaded.model.training
    loaded.model.eval()
    shared = _shared_prefix(loaded, plan.prefixes)
    rows = []
    for prefix, answers, owners in zip(plan.prefixes, plan.answer_ids, plan.answer_option):
        tokens = score_answers(loaded, prefix, answers, shared, CHOICE_BATCH)
        scores = answer_scores(tokens, battery.length_normalisation)
        rows.append(label_logshares(scores, owners, len(battery.options)))
        if on_question:
            on_question()
    if was_training:
        loaded.model.train()
    return BatteryScores(battery.name, list(battery.options), np.vstack(rows))
