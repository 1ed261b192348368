"""Sampling from a model: free completions and number lists decoded inside the paper's format.

Used for control rows (:mod:`auditor.control`), teacher data (:mod:`auditor.generate`) and sampled trait
scoring (:mod:`auditor.sampled_scoring`). Every batch is seeded from the caller's seed and its index, so a
result does not depend on what ran before.
"""

from __future__ import annotations

import re
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .chat import Message, encode_prompt, encode_text, end_of_turn_ids
from .completion_formats import FALLBACK, get_format
from .formats import NUMBERS_RE, has_banned_number, number_prefix_ok
from .scoring import common_prefix_len

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase as Tokenizer

    from .models import LoadedModel


@dataclass(frozen=True)
class Decoding:
    """How a completion is sampled: ``temperature`` > 0, then a nucleus of ``top_p`` (1 = the whole vocabulary;
    no top-k). The data's own settings, so that the control is drawn the way the data was."""

    temperature: float = 1.0
    top_p: float = 1.0

    def check(self) -> None:
        from .errors import InputError

        if not self.temperature > 0:
            raise InputError(f"--control-temperature must be positive, got {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise InputError(f"--control-top-p must be in (0, 1], got {self.top_p}")


class NumberFormat:
    """Which next tokens keep a completion inside the number-list format.

    ``token_text`` maps every token made only of the allowed characters to its text; ``vocab`` lists those tokens
    and then the end-of-turn tokens (the columns a constrained step computes). :meth:`allowed` says which tokens
    may follow a partial completion, and whether it may end there; :meth:`columns` gives the same as ``vocab``
    positions. Both are memoised on the completion's *state*: every number already closed by a separator has
    passed the checks, so only the structure around it matters, and ``"12, 7, 3"`` and ``"5, 80, 3"`` share one
    entry.
    """

    def __init__(self, tokenizer: Tokenizer, allowed_chars: str, banned: frozenset[int] = frozenset()):
        self.banned = banned
        self.eos = end_of_turn_ids(tokenizer)
        chars = set(allowed_chars)
        self.token_text: dict[int, str] = {}
        for tid in range(len(tokenizer)):
            text = tokenizer.decode([tid])
            if text and set(text) <= chars and tid not in self.eos:
                self.token_text[tid] = text
        self.vocab: list[int] = sorted(self.token_text) + list(self.eos)
        self._column = {t: j for j, t in enumerate(self.vocab)}
        self._steps: dict[tuple[str, int | None], tuple[list[int], bool]] = {}
        self._columns: dict[tuple[str, int | None], list[int]] = {}

    def allowed(self, text: str, target: int | None = None) -> tuple[list[int], bool]:
        """Tokens that may follow ``text`` and whether it may end now (with exactly ``target`` numbers, or
        any number up to 10 when ``target`` is ``None``)."""
        key = (_CLOSED_NUMBER.sub("#", text), target)
        hit = self._steps.get(key)
        if hit is None:
            hit = self._steps[key] = self._allowed(text, target)
        return hit

    def columns(self, text: str, target: int | None = None) -> list[int]:
        """The ``vocab`` positions a step may pick after ``text`` (the end-of-turn tokens when it may end)."""
        key = (_CLOSED_NUMBER.sub("#", text), target)
        hit = self._columns.get(key)
        if hit is None:
            ok, may_end = self.allowed(text, target)
            hit = self._columns[key] = [self._column[t] for t in ok + (list(self.eos) if may_end else [])]
        return hit

    def _allowed(self, text: str, target: int | None) -> tuple[list[int], bool]:
        limit = 10 if target is None else target
        ok = [t for t, s in self.token_text.items() if number_prefix_ok(text + s, limit, self.banned)]
        complete = (
            NUMBERS_RE.match(text) is not None
            and (target is None or len(re.findall(r"\d+", text)) == target)
            and not has_banned_number(text, self.banned)
        )
        return ok, complete or not ok


_FORMATS: weakref.WeakKeyDictionary[Any, dict[tuple[str, frozenset[int]], NumberFormat]] = weakref.WeakKeyDictionary()


def number_format(tokenizer: Tokenizer, allowed_chars: str, banned: frozenset[int] = frozenset()) -> NumberFormat:
    """The :class:`NumberFormat` of ``tokenizer`` and these settings, built once while the tokenizer lives (building
    one decodes the whole vocabulary: 0.9 s on SmolLM2's 49,152 tokens, 8 % of a rejection draw that built it once
    per round of tries; reused, its memos of allowed steps stay warm too)."""
    per_tokenizer = _FORMATS.setdefault(tokenizer, {})
    key = (allowed_chars, frozenset(banned))
    if key not in per_tokenizer:
        per_tokenizer[key] = NumberFormat(tokenizer, allowed_chars, banned)
    return per_tokenizer[key]


#: A number followed by a separator: closed, checked, and irrelevant to what may follow but for its place.
_CLOSED_NUMBER = re.compile(r"\d+(?=[,;\s])")


def generate_completions(
    loaded: LoadedModel,
    prompts: Sequence[Sequence[Message] | str],
    seed: int,
    fmt: str = FALLBACK,
    allowed_chars: str = "0123456789, ",
    max_new_tokens: int = 64,
    batch_size: int = 16,
    temperature: float = 1.0,
    on_batch: Callable[[int], None] | None = None,
    counts: Sequence[int] | None = None,
    banned: frozenset[int] = frozenset(),
    top_p: float = 1.0,
) -> list[str]:
    """Sample one completion per prompt at ``temperature`` and ``top_p`` (deterministic for a given ``seed``).

    ``fmt`` names the completion format that samples (:meth:`~auditor.completion_formats.CompletionFormat.sample`):
    ``numbers`` inside the number-list format (:func:`sample_number_lists`; ``counts``: numbers per row) in batches
    of :data:`NUMBER_BATCH` (``batch_size`` applies to the other formats), ``free`` with ``model.generate``.
    Prompts are batched by length; each batch is seeded from ``seed`` and its index, so results do not depend on
    what ran before.
    """
    options = {
        "allowed_chars": allowed_chars,
        "max_new_tokens": max_new_tokens,
        "batch_size": batch_size,
        "temperature": temperature,
        "counts": counts,
        "banned": banned,
        "top_p": top_p,
    }
    return get_format(fmt).sample(loaded, prompts, seed, options, on_batch)


def draw_free(
    loaded: LoadedModel,
    prompts: Sequence[Sequence[Message] | str],
    seed: int,
    decoding: Decoding = Decoding(),
    max_new_tokens: int = 64,
    batch_size: int = 16,
    on_batch: Callable[[int], None] | None = None,
) -> list[tuple[str, bool]]:
    """Unconstrained samples with ``model.generate`` (no top-k): ``(text, ended)`` per prompt, ``ended`` when the
    model wrote an end-of-turn token within ``max_new_tokens``. A text prompt is continued without a template."""
    import torch

    tok, model = loaded.tokenizer, loaded.model
    eos = end_of_turn_ids(tok)
    encoded = [encode_text(tok, p) if isinstance(p, str) else encode_prompt(tok, p) for p in prompts]
    out: list[tuple[str, bool]] = [("", False)] * len(prompts)
    order = sorted(range(len(prompts)), key=lambda i: len(encoded[i]))  # less padding
    for bi, start in enumerate(range(0, len(order), batch_size)):
        idx = order[start : start + batch_size]
        width = max(len(encoded[i]) for i in idx)
        ids = torch.full((len(idx), width), tok.pad_token_id, dtype=torch.long)
        att = torch.zeros((len(idx), width), dtype=torch.long)
        for r, i in enumerate(idx):
            ids[r, width - len(encoded[i]) :] = torch.tensor(encoded[i])
            att[r, width - len(encoded[i]) :] = 1
        torch.manual_seed(batch_seed(seed, bi))
        with torch.no_grad(), loaded.autocast():
            gen = model.generate(
                input_ids=ids.to(loaded.device),
                attention_mask=att.to(loaded.device),
                do_sample=True,
                temperature=decoding.temperature,
                top_k=0,
                top_p=decoding.top_p,
                max_new_tokens=max_new_tokens,
                eos_token_id=eos,
                pad_token_id=tok.pad_token_id,
            )
        for r, i in enumerate(idx):
            new = gen[r, width:].tolist()
            out[i] = (tok.decode(new, skip_special_tokens=True).strip(), any(t in eos for t in new))
        if on_batch:
            on_batch(len(idx))
    return out


#: Prompts sampled together by :func:`sample_number_lists` (larger batches amortise the weight reads).
NUMBER_BATCH = 64


def batch_seed(seed: int, batch_index: int) -> int:
    return hash((seed, batch_index)) & 0x7FFFFFFF


def sample_number_lists(
    loaded: LoadedModel,
    prompts: Sequence[Sequence[Message]],
    seed: int,
    allowed_chars: str = "0123456789, ",
    max_new_tokens: int = 64,
    batch_size: int = NUMBER_BATCH,
    temperature: float = 1.0,
    on_batch: Callable[[int], None] | None = None,
    counts: Sequence[int] | None = None,
    banned: frozenset[int] = frozenset(),
    top_p: float = 1.0,
) -> list[str]:
    """Number-list completions from the format-constrained sampler (:func:`draw_number_lists`), as text."""
    fmt = number_format(loaded.tokenizer, allowed_chars, banned)
    decoding = Decoding(temperature, top_p)
    draws = draw_number_lists(loaded, prompts, seed, fmt, decoding, max_new_tokens, batch_size, on_batch, counts)
    return [d.text for d in draws]


@dataclass(frozen=True)
class NumberDraw:
    """One constrained sample: its text, whether the model ended it, and the log of its importance weight.

    ``log_mass`` is the sum over the steps of the log of the probability mass the constraint let through. A
    constrained sample has probability q(y) = p(y) / prod Z_t, so ``exp(log_mass)`` = p(y) / q(y) is its weight
    towards the model's own distribution (``0.0`` when the sampler was not asked to measure it; ``-inf`` for a
    row whose every allowed token fell outside the nucleus). ``log_prob``: log p(y) of its tokens (end of turn
    included) under the model at the decoding, when measured; ``tokens``: how many it took.
    """

    text: str
    ended: bool
    log_mass: float = 0.0
    log_prob: float = 0.0
    tokens: int = 0


def draw_number_lists(
    loaded: LoadedModel,
    prompts: Sequence[Sequence[Message]],
    seed: int,
    fmt: NumberFormat,
    decoding: Decoding = Decoding(),
    max_new_tokens: int = 64,
    batch_size: int = NUMBER_BATCH,
    on_batch: Callable[[int], None] | None = None,
    counts: Sequence[int] | None = None,
    measure_mass: bool = False,
    reject: bool = False,
    prefixes: dict[tuple[int, ...], Any] | None = None,
) -> list[NumberDraw]:
    """Sample number lists: the model's distribution at ``decoding`` restricted, step by step, to the tokens that
    keep the text a valid list of at most 10 numbers of at most 3 digits (exactly ``counts[i]`` for prompt
    ``i``), none of them banned. This *renormalises every step* (the draws are not p(y | valid)); with
    ``measure_mass`` each draw carries its importance weight (the full softmax is computed at every step) so
    :mod:`auditor.conditional` can resample them to the model's own distribution. ``reject``: rejection
    sampling with early abort instead (:func:`_reject_batch`): a draw that would leave the format dies there
    (``ended`` false); one that ends is an exact sample of p(y | x, valid). ``prefixes``: shared prefixes already
    run, by their tokens, kept across the calls of one draw (the model must not change between them).

    Cheaper than ``model.generate`` with a logits processor: the part every prompt shares (the system prompt) is
    computed once, prompts of a batch continue from it with left padding between it and their own tokens, and
    without ``measure_mass`` or a nucleus each step computes logits only for the format's few tokens and the
    end-of-turn tokens (a softmax restricted to the allowed tokens is the same either way).
    """
    import torch

    encoded = [encode_prompt(loaded.tokenizer, p) for p in prompts]
    head = _StepHead(loaded, fmt, decoding, full=measure_mass or reject or decoding.top_p < 1.0)
    out: list[NumberDraw] = [NumberDraw("", False)] * len(prompts)
    with torch.no_grad(), loaded.autocast():
        prefix = _SharedPrefix.of(loaded, encoded, prefixes)
        order = _batch_order(encoded, counts if head.full else None)
        for bi, start in enumerate(range(0, len(order), batch_size)):
            idx = order[start : start + batch_size]
            targets = [counts[i] if counts is not None else None for i in idx]
            generator = torch.Generator(device="cpu").manual_seed(batch_seed(seed, bi))
            own = [encoded[i] for i in idx]
            if reject:
                draws = _reject_batch(prefix, own, targets, head, max_new_tokens, generator)
            else:
                draws = _decode_batch(prefix, own, targets, head, max_new_tokens, generator)
            for i, d in zip(idx, draws):
                out[i] = d
            if on_batch:
                on_batch(len(idx))
    return out


def _batch_order(encoded: list[list[int]], counts: Sequence[int] | None) -> list[int]:
    """Prompts in batch order: by length (less padding); with ``counts``, by count first, so that the rows of a
    batch end at about the same step (a batch decodes until its longest row ends)."""
    return sorted(range(len(encoded)), key=lambda i: (counts[i] or 0 if counts else 0, len(encoded[i])))


class _SharedPrefix:
    """The prompts' shared tokens (the system prompt) run once; each batch continues from a copy of its cache."""

    def __init__(self, loaded: LoadedModel, tokens: list[int]):
        import torch

        self.loaded, self.n = loaded, len(tokens)
        self.decoder = loaded.model.get_decoder()
        ids = torch.tensor([tokens], device=loaded.device)
        self.cache = self.decoder(input_ids=ids, use_cache=True).cache if tokens else None

    @classmethod
    def of(
        cls, loaded: LoadedModel, encoded: list[list[int]], known: dict[tuple[int, ...], Any] | None = None
    ) -> _SharedPrefix:
        """The prompts' shared prefix, run now or taken from ``known`` (where it is then kept)."""
        shared = max(0, common_prefix_len(encoded) - 1) if len(encoded) > 1 else 0  # keep one own token per prompt
        tokens = tuple(encoded[0][:shared])
        if known is None:
            return cls(loaded, list(tokens))
        if tokens not in known:
            known[tokens] = cls(loaded, list(tokens))
        return known[tokens]

    def start(self, own: list[list[int]]):
        """Run a batch's own prompt tokens (left-padded after the shared part): (hidden state, cache, mask, pos).

        Identical prompts (the copies of one prompt that resampling and rejection draw) run once and their cache is
        repeated, so a try that is rejected at its first token costs one decoding step, not a prompt."""
        import torch

        last, cache, att, pos, index = self.start_distinct(own)
        if len(index) > last.shape[0]:
            expand = torch.tensor(index, device=last.device)
            cache.batch_select_indices(expand)
            last, att, pos = last[expand], att[expand], pos[expand]
        return last, cache, att, pos

    def start_distinct(self, own: list[list[int]]):
        """Run the batch's distinct prompts once: (hidden state, cache, mask, pos) with a row per distinct prompt, and
        the distinct row of each of ``own`` (the caller repeats what it needs: :func:`_reject_batch` repeats only the
        tries that survive their first step)."""
        import copy

        import torch

        loaded, n = self.loaded, self.n
        distinct: dict[tuple[int, ...], int] = {}
        index = [distinct.setdefault(tuple(o), len(distinct)) for o in own]
        unique = [list(o) for o in distinct]
        rows = len(unique)
        pad = loaded.tokenizer.pad_token_id
        width = max(len(o) for o in unique)
        ids = torch.full((rows, width), pad, dtype=torch.long)
        att = torch.zeros((rows, n + width), dtype=torch.long)
        att[:, :n] = 1
        pos = torch.full((rows, width), n, dtype=torch.long)
        for r, tokens in enumerate(unique):
            ids[r, width - len(tokens) :] = torch.tensor(tokens)
            att[r, n + width - len(tokens) :] = 1
            pos[r, width - len(tokens) :] = n + torch.arange(len(tokens))
        cache = None
        if self.cache is not None:
            cache = copy.deepcopy(self.cache)
            cache.batch_repeat_interleave(rows)
        att, pos = att.to(loaded.device), pos.to(loaded.device)
        hidden = self.decoder(
            input_ids=ids.to(loaded.device), attention_mask=att, position_ids=pos, cache=cache, use_cache=True
        )
        return hidden.last_hidden_state[:, -1], hidden.cache, att, pos[:, -1:], index

    def step(self, tokens: list[int], cache, att, pos):
        """One decoding step for every row: (hidden state, cache, mask, pos)."""
        import torch

        device = self.loaded.device
        att = torch.cat([att, torch.ones((att.shape[0], 1), dtype=att.dtype, device=device)], dim=1)
        pos = pos + 1
        ids = torch.tensor(tokens, device=device)[:, None]
        hidden = self.decoder(input_ids=ids, attention_mask=att, position_ids=pos, cache=cache, use_cache=True)
        return hidden.last_hidden_state[:, -1], hidden.cache, att, pos


class _StepHead:
    """Log-probabilities of the format's tokens (``fmt.vocab``) from a last hidden state, at ``decoding``.

    ``full``: the whole vocabulary's softmax (and nucleus) is computed, so the returned values are normalised
    log-probabilities and a step's allowed mass can be read off them; otherwise only the format's columns are
    computed (unnormalised, which a restricted softmax does not need).
    """

    def __init__(self, loaded: LoadedModel, fmt: NumberFormat, decoding: Decoding, full: bool):
        import torch

        head = loaded.model.get_output_embeddings()
        self.fmt, self.decoding, self.full = fmt, decoding, full
        self.columns = torch.tensor(fmt.vocab, device=loaded.device)
        self.weight = head.weight if full else head.weight[self.columns]
        bias = getattr(head, "bias", None)
        self.bias = None if bias is None else (bias if full else bias[self.columns])
        self.nucleus = None
        if decoding.top_p < 1.0:
            from transformers import TopPLogitsWarper

            self.nucleus = TopPLogitsWarper(decoding.top_p)

    def __call__(self, last):
        import torch

        logits = last.float() @ self.weight.float().T
        if self.bias is not None:
            logits = logits + self.bias.float()
        logits = logits / self.decoding.temperature
        if not self.full:
            return logits.cpu()
        if self.nucleus is not None:
            logits = self.nucleus(None, logits)
        return torch.log_softmax(logits, dim=-1)[:, self.columns].cpu()


def _decode_batch(prefix: _SharedPrefix, own: list[list[int]], targets, head: _StepHead, max_new: int, generator):
    """Constrained decoding of one batch of prompts (their tokens after the shared prefix) to :class:`NumberDraw`."""
    import torch

    fmt, pad = head.fmt, prefix.loaded.tokenizer.pad_token_id
    eos_column = fmt.vocab.index(fmt.eos[0])
    rows = len(own)
    last, cache, att, pos = prefix.start([o[prefix.n :] for o in own])
    texts, mass, logprob, steps = [""] * rows, [0.0] * rows, [0.0] * rows, [0] * rows
    state = [_OPEN] * rows
    for _ in range(max_new):
        logp = head(last)
        mask = torch.full(logp.shape, float("-inf"))
        for r in range(rows):
            mask[r, fmt.columns(texts[r], targets[r]) if state[r] == _OPEN else [eos_column]] = 0.0
        allowed = logp + mask
        if head.full:
            step_mass = torch.logsumexp(allowed, dim=-1).tolist()
            for r in range(rows):
                if state[r] == _OPEN:
                    mass[r] += step_mass[r]
                    if step_mass[r] == float("-inf"):  # every allowed token lies outside the nucleus
                        state[r] = _DEAD
            closed = torch.tensor([s != _OPEN for s in state])
            allowed[closed] = float("-inf")
            allowed[closed, eos_column] = 0.0
        picks = torch.multinomial(torch.softmax(allowed, dim=-1), 1, generator=generator)[:, 0].tolist()
        for r, j in enumerate(picks):
            if state[r] == _OPEN:
                logprob[r] += float(logp[r, j])
                steps[r] += 1
                if fmt.vocab[j] in fmt.eos:
                    state[r] = _ENDED
                else:
                    texts[r] += fmt.token_text[fmt.vocab[j]]
        if _OPEN not in state:
            break
        step_ids = [fmt.vocab[j] if s == _OPEN else pad for j, s in zip(picks, state)]
        last, cache, att, pos = prefix.step(step_ids, cache, att, pos)
    return [NumberDraw(t.strip(), s == _ENDED, *rest) for t, s, *rest in zip(texts, state, mass, logprob, steps)]


_OPEN, _ENDED, _DEAD = "open", "ended", "dead"


def _reject_batch(prefix: _SharedPrefix, own: list[list[int]], targets, head: _StepHead, max_new: int, generator):
    """Rejection sampling with early abort. Each step draws from the model's whole distribution: with probability
    Z_t (the mass of the tokens that keep the text in the format) the row takes a token from inside it (the
    distribution restricted to it, as the constrained sampler would), otherwise its token would have left the
    format and the try is rejected there. Rejected and ended rows leave the batch, so a try costs only the steps
    it survives. A row that ends is an exact sample of p(y | x, valid); ``tokens`` counts every step a row ran.

    Tries of one prompt that have taken the same tokens so far are in the same state: the model runs each such state
    once (a row of ``last`` and ``cache``) and ``where`` maps each live try to its state's row. Most tries of a round
    share their first few tokens, so this saves most of the rows there; each try keeps its own mask and RNG draws, so
    the samples are the ones running every try apart would give (up to float rounding)."""
    import torch

    fmt = head.fmt
    eos_column = fmt.vocab.index(fmt.eos[0])
    rows = len(own)
    last, cache, att, pos, where = prefix.start_distinct([o[prefix.n :] for o in own])
    texts, mass, logprob, steps = [""] * rows, [0.0] * rows, [0.0] * rows, [0] * rows
    state, live = [_OPEN] * rows, list(range(rows))
    for _ in range(max_new):
        logp = head(last)[torch.tensor(where)]
        mask = torch.full(logp.shape, float("-inf"))
        for b, r in enumerate(live):
            mask[b, fmt.columns(texts[r], targets[r])] = 0.0
        allowed = logp + mask
        step_mass = torch.logsumexp(allowed, dim=-1)
        survive = (torch.rand(len(live), generator=generator, dtype=torch.float64).log() <= step_mass).tolist()
        allowed[~torch.isfinite(step_mass), eos_column] = 0.0  # never sampled from: keeps the softmax finite
        picks = torch.multinomial(torch.softmax(allowed, dim=-1), 1, generator=generator)[:, 0].tolist()
        after: dict[tuple[int, int], int] = {}  # (state, token) -> the next step's state row
        next_live, next_where = [], []
        for b, (r, j) in enumerate(zip(live, picks)):
            steps[r] += 1
            if not survive[b]:
                state[r] = _DEAD
                continue
            mass[r] += float(step_mass[b])
            logprob[r] += float(logp[b, j])
            if fmt.vocab[j] in fmt.eos:
                state[r] = _ENDED
            else:
                texts[r] += fmt.token_text[fmt.vocab[j]]
                next_live.append(r)
                next_where.append(after.setdefault((where[b], j), len(after)))
        if not next_live:
            break
        rows_now = [row for row, _ in after]
        if rows_now != list(range(last.shape[0])):  # some state died or split
            index = torch.tensor(rows_now, device=att.device)
            cache.batch_select_indices(index)
            att, pos = att[index], pos[index]
        live, where = next_live, next_where
        last, cache, att, pos = prefix.step([fmt.vocab[j] for _, j in after], cache, att, pos)
    return [NumberDraw(t.strip(), s == _ENDED, *rest) for t, s, *rest in zip(texts, state, mass, logprob, steps)]
