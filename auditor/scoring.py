"""Exact trait scoring: the log-probability of every option's full token sequence.

For each question the chat-templated prompt is run once; its key/value cache is then shared by all
option variants (case and leading-space forms of each option), which are scored in one batch. An
option's log-probability is the log-sum-exp over its variants; its *share* is that probability
normalised over the battery's options. No sampling, no string matching, deterministic.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from .chat import encode_text, prompt_text
from .traits import Battery


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


def plan_battery(tokenizer: Any, battery: Battery) -> ScoringPlan:
    """Tokenise the questions and option variants of ``battery``."""
    texts = [prompt_text(tokenizer, [{"role": "user", "content": q}]) for q in battery.questions]
    prefixes = [encode_text(tokenizer, t) for t in texts]
    variant_ids: list[list[int]] = []
    variant_option: list[int] = []
    for k, option in enumerate(battery.options):
        seen: set[tuple[int, ...]] = set()
        for form in option_variants(option):
            ids = _continuation_ids(tokenizer, texts[0], prefixes[0], form)
            if ids and tuple(ids) not in seen:
                seen.add(tuple(ids))
                variant_ids.append(ids)
                variant_option.append(k)
    return ScoringPlan(battery, prefixes, variant_ids, variant_option)


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
        if shared is not None and shared[0] < len(prefix):
            n_shared, shared_cache = shared
            out = _run(model, torch.tensor([prefix[n_shared:]], device=device), copy.deepcopy(shared_cache))
        else:
            out = _run(model, torch.tensor([prefix], device=device))
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

    @property
    def share(self) -> np.ndarray:
        """Probability share of each option over the option set, per question."""
        z = self.logprob - self.logprob.max(axis=1, keepdims=True)
        p = np.exp(z)
        return p / p.sum(axis=1, keepdims=True)

    def to_dict(self) -> dict:
        return {"battery": self.battery, "options": self.options, "logprob": self.logprob.tolist()}

    @classmethod
    def from_dict(cls, d: dict) -> BatteryScores:
        return cls(d["battery"], list(d["options"]), np.asarray(d["logprob"], dtype=np.float64))


def score_battery(loaded: Any, plan: ScoringPlan, on_question: Callable[[], None] | None = None) -> BatteryScores:
    """Score every question of a battery for the model as it is now (adapter on or off)."""
    n_opt = len(plan.battery.options)
    rows = []
    was_training = loaded.model.training
    loaded.model.eval()
    import torch

    n_shared = common_prefix_len(plan.prefixes) - 1  # keep >= 1 question token per pass
    shared = None
    if n_shared > 0:
        with torch.no_grad(), loaded.autocast():
            ids = torch.tensor([plan.prefixes[0][:n_shared]], device=loaded.device)
            shared = (n_shared, _run(loaded.model, ids).cache)
    for prefix in plan.prefixes:
        v = score_question(loaded, prefix, plan.variant_ids, shared)
        rows.append(_logsumexp_by_option(v, plan.variant_option, n_opt))
        if on_question:
            on_question()
    if was_training:
        loaded.model.train()
    return BatteryScores(plan.battery.name, list(plan.battery.options), np.vstack(rows))
