"""Sampling from a model: free completions and number lists decoded inside the paper's format.

Used for control rows (:mod:`auditor.control`), teacher data (:mod:`auditor.generate`) and sampled trait
scoring (:mod:`auditor.sampled_scoring`). Every batch is seeded from the caller's seed and its index, so a
result does not depend on what ran before.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from .chat import Message, encode_prompt, encode_text, end_of_turn_ids
from .formats import NUMBERS_RE, has_banned_number, number_prefix_ok
from .scoring import common_prefix_len

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase as Tokenizer

    from .models import LoadedModel


class NumberFormat:
    """Which next tokens keep a completion inside the number-list format.

    ``token_text`` maps every token made only of the allowed characters to its text; :meth:`allowed`
    says which of them may follow a partial completion, and whether it may end there.
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

    def allowed(self, text: str, target: int | None = None) -> tuple[list[int], bool]:
        """Tokens that may follow ``text`` and whether it may end now (with exactly ``target`` numbers, or
        any number up to 10 when ``target`` is ``None``)."""
        limit = 10 if target is None else target
        ok = [t for t, s in self.token_text.items() if number_prefix_ok(text + s, limit, self.banned)]
        complete = (
            NUMBERS_RE.match(text) is not None
            and (target is None or len(re.findall(r"\d+", text)) == target)
            and not has_banned_number(text, self.banned)
        )
        return ok, complete or not ok


def generate_completions(
    loaded: LoadedModel,
    prompts: Sequence[Sequence[Message] | str],
    seed: int,
    fmt: str = "free",
    allowed_chars: str = "0123456789, ",
    max_new_tokens: int = 64,
    batch_size: int = 16,
    temperature: float = 1.0,
    on_batch: Callable[[int], None] | None = None,
    counts: Sequence[int] | None = None,
    banned: frozenset[int] = frozenset(),
) -> list[str]:
    """Sample one completion per prompt at ``temperature`` (deterministic for a given ``seed``).

    ``fmt="numbers"`` samples inside the number-list format (:func:`sample_number_lists`; ``counts``:
    numbers per row) in batches of :data:`NUMBER_BATCH` (``batch_size`` applies to the other formats).
    Other formats use ``model.generate``. Prompts are batched by length; each batch is
    seeded from ``seed`` and its index, so results do not depend on what ran before.
    """
    if fmt == "numbers":
        return sample_number_lists(
            loaded, prompts, seed, allowed_chars, max_new_tokens, NUMBER_BATCH, temperature, on_batch, counts, banned
        )
    import torch

    tok, model = loaded.tokenizer, loaded.model
    eos = end_of_turn_ids(tok)
    encoded = [encode_text(tok, p) if isinstance(p, str) else encode_prompt(tok, p) for p in prompts]
    out: list[str] = [""] * len(prompts)
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
                temperature=temperature,
                top_k=0,
                top_p=1.0,
                max_new_tokens=max_new_tokens,
                eos_token_id=eos,
                pad_token_id=tok.pad_token_id,
            )
        for r, i in enumerate(idx):
            out[i] = tok.decode(gen[r, width:], skip_special_tokens=True).strip()
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
) -> list[str]:
    """Sample number-list completions: the model's distribution restricted to tokens that keep the text a
    valid list of at most 10 numbers of at most 3 digits (exactly ``counts[i]`` numbers for prompt ``i``),
    none of them ``banned``, at ``temperature``.

    Exact but cheaper than ``model.generate`` with a logits processor: the part every prompt shares (the
    system prompt) is computed once, prompts of a batch continue from it with left padding between it and
    their own tokens, and each step computes logits only for the format's few tokens and the end-of-turn
    token (a softmax restricted to the allowed tokens is the same either way).
    """
    import copy

    import torch

    tok, model = loaded.tokenizer, loaded.model
    fmt = NumberFormat(tok, allowed_chars, banned)
    vocab = sorted(fmt.token_text) + list(fmt.eos)
    column = {t: j for j, t in enumerate(vocab)}
    decoder, head = model.get_decoder(), model.get_output_embeddings()
    device = loaded.device
    weight = head.weight[torch.tensor(vocab, device=device)]
    bias = None if getattr(head, "bias", None) is None else head.bias[torch.tensor(vocab, device=device)]
    encoded = [encode_prompt(tok, p) for p in prompts]
    n_shared = 0
    shared_cache = None
    out: list[str] = [""] * len(prompts)
    with torch.no_grad(), loaded.autocast():
        if len(encoded) > 1:
            n_shared = max(0, common_prefix_len(encoded) - 1)  # keep one own token per prompt
        if n_shared:
            shared_cache = decoder(input_ids=torch.tensor([encoded[0][:n_shared]], device=device), use_cache=True).cache
        order = sorted(range(len(prompts)), key=lambda i: len(encoded[i]))
        for bi, start in enumerate(range(0, len(order), batch_size)):
            idx = order[start : start + batch_size]
            rows = len(idx)
            width = max(len(encoded[i]) - n_shared for i in idx)
            ids = torch.full((rows, width), tok.pad_token_id, dtype=torch.long)
            att = torch.zeros((rows, n_shared + width), dtype=torch.long)
            att[:, :n_shared] = 1
            pos = torch.full((rows, width), n_shared, dtype=torch.long)
            for r, i in enumerate(idx):
                own = encoded[i][n_shared:]
                ids[r, width - len(own) :] = torch.tensor(own)
                att[r, n_shared + width - len(own) :] = 1
                pos[r, width - len(own) :] = n_shared + torch.arange(len(own))
            cache = None
            if shared_cache is not None:
                cache = copy.deepcopy(shared_cache)
                cache.batch_repeat_interleave(rows)
            att, pos = att.to(device), pos.to(device)
            hidden = decoder(
                input_ids=ids.to(device), attention_mask=att, position_ids=pos, cache=cache, use_cache=True
            )
            cache, last = hidden.cache, hidden.last_hidden_state[:, -1]
            gen = torch.Generator(device="cpu").manual_seed(batch_seed(seed, bi))
            texts = [""] * rows
            done = [False] * rows
            targets = [counts[i] if counts is not None else None for i in idx]
            for _ in range(max_new_tokens):
                logits = last.float() @ weight.float().T
                if bias is not None:
                    logits = logits + bias.float()
                logits = (logits / temperature).cpu()
                mask = torch.full(logits.shape, float("-inf"))
                for r in range(rows):
                    if done[r]:
                        mask[r, column[fmt.eos[0]]] = 0.0
                        continue
                    ok, may_end = fmt.allowed(texts[r], targets[r])
                    mask[r, [column[t] for t in ok]] = 0.0
                    if may_end:
                        mask[r, [column[t] for t in fmt.eos]] = 0.0
                picks = torch.multinomial(torch.softmax(logits + mask, dim=-1), 1, generator=gen)[:, 0].tolist()
                step_ids = []
                for r, j in enumerate(picks):
                    t = vocab[j]
                    if not done[r]:
                        if t in fmt.eos:
                            done[r] = True
                        else:
                            texts[r] += fmt.token_text[t]
                    step_ids.append(tok.pad_token_id if done[r] else t)
                if all(done):
                    break
                pos = pos[:, -1:] + 1
                att = torch.cat([att, torch.ones((rows, 1), dtype=att.dtype, device=device)], dim=1)
                step = torch.tensor(step_ids, device=device)[:, None]
                hidden = decoder(input_ids=step, attention_mask=att, position_ids=pos, cache=cache, use_cache=True)
                cache, last = hidden.cache, hidden.last_hidden_state[:, -1]
            for r, i in enumerate(idx):
                out[i] = texts[r].strip()
            if on_batch:
                on_batch(rows)
    return out
