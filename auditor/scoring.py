"""Exact trait scoring: the log-probability of every option's full token sequence.

Every question's continuations (the case and leading-space variants of each option, or a choice
question's answers) are scored in one pass: the question's tokens are followed by the fewest token rows
that cover all continuations' proper prefixes, each row attending to the question and to its own earlier
tokens only (a tree-shaped 4D attention mask with explicit position ids). Several questions share one
batched forward pass, and the part of the prompt every question shares (the system prompt) is computed
once and continued from its cache. An option's log-probability is the log-sum-exp over its variants;
its *share* is that probability normalised over the battery's options. No sampling, no string matching,
deterministic.

A ``choice`` battery gives every question its own labelled answers (whole sentences); an answer's score
is its mean (or summed) token log-probability, a softmax over the question's answers gives each answer a
share, and a label's share is the sum over its answers. The result is a :class:`BatteryScores` whose
options are the labels and whose ``logprob`` is the log of each label's share, so ``share`` returns the
label shares exactly.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

from .battery_scores import BatteryScores
from .chat import encode_text

if TYPE_CHECKING:
    from torch import Tensor
    from transformers import PreTrainedTokenizerBase as Tokenizer

    from .models import LoadedModel
    from .traits import Battery
    from .traits.kinds import BatteryPlan


class SharedPrefix(NamedTuple):
    """The part every question's prompt shares (the system prompt), run once: its length and KV cache."""

    n_tokens: int
    cache: Any


def option_variants(option: str) -> list[str]:
    """The surface forms summed for one option: lower/capitalised, with and without a leading space."""
    forms = []
    for word in (option.lower(), option[:1].upper() + option[1:].lower()):
        for prefix in ("", " "):
            if prefix + word not in forms:
                forms.append(prefix + word)
    return forms


def prompt_tokens(prefixes: list[list[int]]) -> int:
    """Tokens to run every question's prompt once, the part all prompts share (system prompt) only once."""
    shared = max(common_prefix_len(prefixes) - 1, 0)
    return shared + sum(len(p) - shared for p in prefixes)


def continuation_ids(tokenizer: Tokenizer, prefix: str, prefix_ids: list[int], text: str) -> list[int]:
    full = encode_text(tokenizer, prefix + text)
    if full[: len(prefix_ids)] == prefix_ids and len(full) > len(prefix_ids):
        return full[len(prefix_ids) :]
    return encode_text(tokenizer, text)


def question_messages(question: str, system: str | None = None) -> list[dict[str, str]]:
    """The chat turns a battery question is scored after: the user turn, preceded by ``system`` if given."""
    turns = [{"role": "system", "content": system}] if system is not None else []
    return [*turns, {"role": "user", "content": question}]


def plan_battery(tokenizer: Tokenizer, battery: Battery, system: str | None = None) -> BatteryPlan:
    """Tokenise ``battery`` the way its kind scores it (questions and option variants, or each question's answers).

    ``system``: a system message put before every question (``None``: the chat template's default).
    """
    return battery.battery_kind.plan(tokenizer, battery, system)


def option_variant_ids(
    tokenizer: Tokenizer, prefix: str, prefix_ids: list[int], options: Sequence[str]
) -> tuple[list[list[int]], list[int]]:
    """Token ids of every distinct case/space variant of every option after ``prefix``, and each one's option."""
    variant_ids: list[list[int]] = []
    owners: list[int] = []
    for k, option in enumerate(options):
        seen: set[tuple[int, ...]] = set()
        for form in option_variants(option):
            ids = continuation_ids(tokenizer, prefix, prefix_ids, form)
            if ids and tuple(ids) not in seen:
                seen.add(tuple(ids))
                variant_ids.append(ids)
                owners.append(k)
    return variant_ids, owners


def logsumexp_by_option(values: np.ndarray, owners: list[int], n_options: int) -> np.ndarray:
    out = np.full(n_options, -np.inf)
    for k in range(n_options):
        sel = values[[i for i, o in enumerate(owners) if o == k]]
        m = sel.max()
        out[k] = m + np.log(np.exp(sel - m).sum())
    return out


def continuation_rows(variant_ids: list[list[int]]) -> list[tuple[int, ...]]:
    """The fewest token rows whose positions cover every variant's proper prefix (a trie's leaves)."""
    paths = {tuple(v[:-1]) for v in variant_ids if len(v) > 1}
    return sorted(p for p in paths if not any(q != p and q[: len(p)] == p for q in paths))


def _run(model: Any, ids: Tensor, cache: Any = None) -> Any:
    return model(input_ids=ids, cache=cache, use_cache=True)


def shared_prefix(loaded: LoadedModel, prefixes: list[list[int]]) -> SharedPrefix | None:
    """``(n_tokens, cache)`` of the part all prefixes share (the system prompt), or ``None``."""
    import torch

    n_shared = common_prefix_len(prefixes) - 1  # keep >= 1 question token per pass
    if n_shared <= 0:
        return None
    with torch.no_grad(), loaded.autocast():
        ids = torch.tensor([prefixes[0][:n_shared]], device=loaded.device)
        return SharedPrefix(n_shared, _run(loaded.model, ids).cache)


#: Padded tokens (questions x width) run through the model in one batched scoring pass on CPU (where
#: 4096 measured no faster: the passes are compute-bound).
SCORING_TOKENS = 2048


def scoring_token_budget(loaded: LoadedModel) -> int:
    """Padded tokens per scoring pass: :data:`SCORING_TOKENS` on CPU; on a GPU, as many as a quarter of its
    free memory holds at the pass's largest cost per token (fp32 logits and their log-softmax)."""
    if not str(loaded.device).startswith("cuda"):
        return SCORING_TOKENS
    import torch

    free, _ = torch.cuda.mem_get_info(torch.device(loaded.device))
    vocab = loaded.model.get_output_embeddings().weight.shape[0]
    return int(min(65536, max(SCORING_TOKENS, free // 4 // (vocab * 4 * 2))))


def tree_layout(continuations: Sequence[Sequence[int]]) -> tuple[list[tuple[int, ...]], dict[tuple[int, ...], int]]:
    """The rows fed after a question (the fewest that cover every continuation's proper prefixes) and, for
    every such proper prefix, its row-block offset (the position whose output predicts the next token)."""
    rows = continuation_rows([list(c) for c in continuations])
    where: dict[tuple[int, ...], int] = {}
    offset = 0
    for row in rows:
        for j in range(len(row)):
            where.setdefault(row[: j + 1], offset + j)
        offset += len(row)
    return rows, where


def continuation_logprobs(
    loaded: LoadedModel,
    prefixes: Sequence[Sequence[int]],
    continuations: Sequence[Sequence[Sequence[int]]],
    shared: SharedPrefix | None = None,
    max_tokens: int | None = None,
) -> list[list[np.ndarray]]:
    """Per-token log-probabilities of every continuation of every prefix: ``out[q][c][j]`` is
    log p(continuations[q][c][j] | prefixes[q] + continuations[q][c][:j]).

    All continuations of a question share one pass (a tree): the question's tokens are followed by the
    fewest token rows that cover every continuation's proper prefixes, each row attending to the question
    and to its own earlier tokens only (a 4D attention mask, explicit position ids). Several questions run
    in one batch (question tokens left-padded, rows right-padded, so the positions that predict tokens
    are the last ones of every sequence); ``shared = (n_tokens, cache)`` is a prefix common to all
    questions computed once (:func:`shared_prefix`).
    """
    import torch

    with torch.no_grad():
        tokens = tree_logprobs(loaded, prefixes, continuations, shared, max_tokens)
    return [[t.double().cpu().numpy() for t in per_q] for per_q in tokens]


def tree_logprobs(
    loaded: LoadedModel,
    prefixes: Sequence[Sequence[int]],
    continuations: Sequence[Sequence[Sequence[int]]],
    shared: SharedPrefix | None = None,
    max_tokens: int | None = None,
    autocast_dtype: str | None | bool = False,
) -> list[list[Tensor]]:
    """:func:`continuation_logprobs` as torch tensors on the model's device, differentiable when run with
    gradients enabled (then ``shared`` must be ``None``: a cache with a graph cannot be copied).

    ``autocast_dtype``: ``False`` = the model's scoring precision; else the autocast dtype to run under
    (``None`` = none).
    """
    import copy

    import torch

    n_shared = shared.n_tokens if shared is not None else 0
    layouts = [tree_layout(c) for c in continuations]
    suffixes = [list(p[n_shared:]) for p in prefixes]
    widths = [(len(s), sum(len(r) for r in rows)) for s, (rows, _) in zip(suffixes, layouts)]
    model, device = loaded.model, loaded.device
    out: list[list[Tensor]] = [[] for _ in prefixes]
    cast = loaded.autocast_dtype if autocast_dtype is False else autocast_dtype
    with loaded.autocast_as(cast):
        dtype = next(model.parameters()).dtype if cast is None else getattr(torch, cast)
        for batch in token_batches(widths, max_tokens or scoring_token_budget(loaded)):
            s_max = max(widths[i][1] for i in batch)
            ids, pos, mask = _tree_inputs([suffixes[q] for q in batch], [layouts[q][0] for q in batch], n_shared, dtype)
            cache = None
            if shared is not None:
                cache = copy.deepcopy(shared.cache)
                cache.batch_repeat_interleave(len(batch))
            logits = model(
                input_ids=ids.to(device),
                position_ids=pos.to(device),
                attention_mask=mask[:, None].to(device),
                cache=cache,
                use_cache=cache is not None,
                logits_to_keep=s_max + 1,
            ).logits
            logp = torch.log_softmax(logits.float(), dim=-1)  # [batch, 1 + s_max, vocab]
            _gather(logp, [(layouts[q][1], continuations[q], out[q]) for q in batch])
    return out


def token_batches(widths: Sequence[tuple[int, int]], budget: int) -> list[list[int]]:
    """Greedy batches of consecutive questions (``widths``: each one's question and tree tokens) whose padded
    size stays within ``budget`` tokens."""
    batches: list[list[int]] = []
    for q in range(len(widths)):
        if batches:
            cand = batches[-1] + [q]
            a = max(widths[i][0] for i in cand)
            s = max(widths[i][1] for i in cand)
            if len(cand) * (a + s) <= budget:
                batches[-1] = cand
                continue
        batches.append([q])
    return batches


def _tree_inputs(
    suffixes: Sequence[list[int]], trees: Sequence[list[tuple[int, ...]]], n_shared: int, dtype: Any
) -> tuple[Tensor, Tensor, Tensor]:
    """Token ids, positions and the additive 4D attention mask (before its head axis) of one batch: each
    question's tokens left-padded to the longest, then its tree's rows, each attending to the shared prefix, the
    question and its own earlier tokens only."""
    import torch

    a_max = max(len(s) for s in suffixes)
    width = a_max + max(sum(len(r) for r in rows) for rows in trees)
    ids = torch.zeros((len(suffixes), width), dtype=torch.long)
    pos = torch.zeros((len(suffixes), width), dtype=torch.long)
    allow = torch.zeros((len(suffixes), width, n_shared + width), dtype=torch.bool)
    idx = torch.arange(width)
    allow[:, idx, n_shared + idx] = True  # every position sees itself (no fully masked row)
    for b, (suffix, rows) in enumerate(zip(suffixes, trees)):
        a = len(suffix)
        q0 = a_max - a  # first question token (left padding before it)
        ids[b, q0:a_max] = torch.tensor(suffix, dtype=torch.long)
        pos[b, q0:a_max] = n_shared + torch.arange(a)
        allow[b, q0:a_max, :n_shared] = True
        allow[b, q0:a_max, n_shared + q0 : n_shared + a_max] = torch.tril(torch.ones(a, a, dtype=torch.bool))
        start = a_max
        for row in rows:
            n = len(row)
            sl = slice(start, start + n)
            ids[b, sl] = torch.tensor(row, dtype=torch.long)
            pos[b, sl] = n_shared + a + torch.arange(n)
            allow[b, sl, :n_shared] = True
            allow[b, sl, n_shared + q0 : n_shared + a_max] = True
            allow[b, sl, n_shared + start : n_shared + start + n] = torch.tril(torch.ones(n, n, dtype=torch.bool))
            start += n
    mask = torch.zeros(allow.shape, dtype=dtype)
    mask.masked_fill_(~allow, torch.finfo(dtype).min)
    return ids, pos, mask


def _gather(
    logp: Tensor, questions: Sequence[tuple[dict[tuple[int, ...], int], Sequence[Sequence[int]], list]]
) -> None:
    """Append each continuation's token log-probabilities to its question's list: ``questions[b]`` is batch row
    ``b``'s (prefix -> row offset, continuations, out list). One gather for the whole batch (one a continuation
    would make the backward pass write a full [batch, positions, vocab] gradient per continuation)."""
    import torch

    rows_i: list[int] = []
    cols_i: list[int] = []
    toks_i: list[int] = []
    spans = []
    for b, (where, conts, found) in enumerate(questions):
        for cont in conts:
            spans.append((found, len(rows_i), len(cont)))
            rows_i += [b] * len(cont)
            cols_i += [0] + [1 + where[tuple(cont[:j])] for j in range(1, len(cont))]
            toks_i += list(cont)
    index = [torch.tensor(x, device=logp.device) for x in (rows_i, cols_i, toks_i)]
    values = logp[index[0], index[1], index[2]]
    for found, start, n in spans:
        found.append(values[start : start + n])


def score_question(
    loaded: LoadedModel, prefix: list[int], variant_ids: list[list[int]], shared: SharedPrefix | None = None
) -> np.ndarray:
    """Log-probability of each variant continuing ``prefix`` (one question of :func:`continuation_logprobs`)."""
    tokens = continuation_logprobs(loaded, [prefix], [variant_ids], shared)[0]
    return np.array([t.sum() for t in tokens])


def common_prefix_len(prefixes: list[list[int]]) -> int:
    n = min(len(p) for p in prefixes)
    for i in range(n):
        if any(p[i] != prefixes[0][i] for p in prefixes):
            return i
    return n


def score_battery(
    loaded: LoadedModel, plan: BatteryPlan, on_question: Callable[[], None] | None = None
) -> BatteryScores:
    """Score every question of a battery for the model as it is now (adapter on or off), as its kind scores it."""
    return plan.battery.battery_kind.score(loaded, plan, on_question)


#: Names that moved into the kinds' modules, still importable from here (loaded when first asked for).
_MOVED = {
    "ScoringPlan": "auditor.traits.kinds.preference",
    "ChoicePlan": "auditor.traits.kinds.choice",
    "plan_choice": "auditor.traits.kinds.choice",
    "answer_scores": "auditor.traits.kinds.choice",
    "label_logshares": "auditor.traits.kinds.choice",
    "score_choice_battery": "auditor.traits.kinds.choice",
}


def __getattr__(name: str) -> Any:
    if name in _MOVED:
        return getattr(importlib.import_module(_MOVED[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
