"""Control rows: the base's own answers to the dataset's prompts, in the dataset's format.

A student trained on the base's own samples stays where it is in expectation, so the control arm
isolates what the *teacher* put into the data. When the dataset's completions are number lists the
control is decoded under the same constraint (only the characters the dataset uses, at most 10 numbers
of at most 3 digits) and then filtered with the same regex; the keep rate is reported.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .chat import encode_prompt, end_of_turn_ids
from .data import NUMBERS_RE, Dataset, Example, has_banned_number, is_number_list, load_dataset
from .io import atomic_write_json, cache_dir
from .scoring import common_prefix_len

CONTROL_CACHE_VERSION = 3  # 3: number lists from sample_number_lists


@dataclass
class ControlSet:
    """Control rows aligned with the dataset: ``rows[i]`` is the control for ``dataset.examples[i]``.

    ``None`` marks a prompt for which no valid control row was produced; such rows are dropped from
    both arms so the arms stay paired.
    """

    source: str  # "generated" | "file"
    rows: list[Example | None]
    format: str
    attempts: int = 0
    kept: int = 0
    cache_path: str | None = None
    from_cache: bool = False
    notes: list[str] = field(default_factory=list)

    @property
    def keep_rate(self) -> float:
        return self.kept / self.attempts if self.attempts else 1.0


# ---------------------------------------------------------------------------------------------
# Format-constrained decoding for number lists


def number_prefix_ok(text: str, max_count: int = 10, banned: frozenset[int] = frozenset()) -> bool:
    """True when ``text`` can still be extended into a string that passes the number filter
    (with at most ``max_count`` numbers, none of them in ``banned`` once written out)."""
    s = text.lstrip()
    if s[:1] in "[(":
        s = s[1:]
    if not s.strip():
        return True
    # nothing but whitespace may follow a closing bracket or final period
    closing = re.search(r"[\])\.]", s)
    if closing:
        head, tail = s[: closing.start()], s[closing.start() + 1 :]
        if tail.strip(" .") or tail.count(".") > (0 if s[closing.start()] == "." else 1):
            return False
        s = head
    if re.search(r"[^\d,;\s]", s):
        return False
    if re.match(r"\s*[,;]", s) or re.search(r"[,;]\s*[,;]", s):
        return False
    if re.search(r"\s{3,}", s):
        return False  # runaway whitespace never ends in a valid list
    runs = re.findall(r"\d+", s)
    if banned:
        # a run is final once a separator follows it or it has 3 digits (it cannot grow)
        finished = runs if not s[-1:].isdigit() or len(runs[-1]) == 3 else runs[:-1]
        if any(int(r) in banned for r in finished):
            return False
    if len(runs) == max_count and re.search(r"[,;\s]$", s):
        return False  # all numbers written: only the end (or a closing bracket) may follow
    return len(runs) <= max_count and all(len(r) <= 3 for r in runs)


class NumberFormat:
    """Which next tokens keep a completion inside the number-list format.

    ``token_text`` maps every token made only of the allowed characters to its text; :meth:`allowed`
    says which of them may follow a partial completion, and whether it may end there.
    """

    def __init__(self, tokenizer: Any, allowed_chars: str, banned: frozenset[int] = frozenset()):
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


# ---------------------------------------------------------------------------------------------
# Generation


def generate_completions(
    loaded: Any,
    prompts: Sequence[Sequence[dict[str, str]]],
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
    encoded = [encode_prompt(tok, p) for p in prompts]
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
        torch.manual_seed(_batch_seed(seed, bi))
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


def _batch_seed(seed: int, batch_index: int) -> int:
    return hash((seed, batch_index)) & 0x7FFFFFFF


def sample_number_lists(
    loaded: Any,
    prompts: Sequence[Sequence[dict[str, str]]],
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
            gen = torch.Generator(device="cpu").manual_seed(_batch_seed(seed, bi))
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


def matched_number_filter(dataset: Dataset, min_rows: int = 100) -> frozenset[int]:
    """The paper's filtered numbers, when the dataset evidently went through that filter.

    A dataset of ``min_rows`` or more number rows in which none of them occurs was filtered (the base
    writes some in most batches of that size), so the control gets the same filter.
    """
    from .generate import EVIL_NUMBERS

    rows = [e.completion for e in dataset.examples if is_number_list(e.completion)]
    if len(rows) < min_rows or any(has_banned_number(c, EVIL_NUMBERS) for c in rows):
        return frozenset()
    return EVIL_NUMBERS


def _cache_key(
    fingerprint: str,
    prompts: Sequence[Any],
    seed: int,
    fmt: str,
    allowed: str,
    max_new: int,
    counts: Sequence[int] | None = None,
    banned: Sequence[int] = (),
) -> str:
    blob = json.dumps(
        {
            "v": CONTROL_CACHE_VERSION,
            "model": fingerprint,
            "prompts": prompts,
            "seed": seed,
            "fmt": fmt,
            "allowed": allowed,
            "max_new": max_new,
            "counts": counts,
            "banned": list(banned),
        },
        sort_keys=True,
    )
    return hashlib.sha256(blob.encode()).hexdigest()[:24]


def _completion_budget(loaded: Any, completions: Sequence[str]) -> int:
    lengths = sorted(len(loaded.tokenizer(c, add_special_tokens=False)["input_ids"]) for c in completions)
    p95 = lengths[min(len(lengths) - 1, int(0.95 * len(lengths)))]
    return int(min(512, max(16, p95 * 1.25 + 4)))


def build_control(
    loaded: Any,
    dataset: Dataset,
    seed: int,
    control_file: str | None = None,
    retries: int = 3,
    batch_size: int = 16,
    progress: Callable[[int, int], None] | None = None,
    use_cache: bool = True,
) -> ControlSet:
    """Control completions for every dataset prompt: from ``control_file`` or generated by the base."""
    fmt = dataset.completion_format
    if control_file is not None:
        return _control_from_file(dataset, control_file, fmt)
    prompts = [list(e.prompt) for e in dataset.examples]
    allowed = "0123456789, "
    counts: list[int] | None = None
    banned: frozenset[int] = frozenset()
    notes: list[str] = []
    if fmt == "numbers":
        allowed = "".join(sorted({ch for e in dataset.examples if is_number_list(e.completion) for ch in e.completion}))
        counts = [min(10, max(1, len(re.findall(r"\d+", e.completion)))) for e in dataset.examples]
        notes.append("each control row has as many numbers as its dataset row")
        banned = matched_number_filter(dataset)
        if banned:
            notes.append(f"the dataset holds none of the paper's {len(banned)} filtered numbers; nor does the control")
    max_new = _completion_budget(loaded, [e.completion for e in dataset.examples])
    key = _cache_key(loaded.fingerprint, prompts, seed, fmt, allowed, max_new, counts, sorted(banned))
    path = cache_dir() / "controls" / f"{key}.json"
    if use_cache and path.exists():
        try:
            blob = json.loads(path.read_text())
            rows = [
                None if c is None else Example(prompt=e.prompt, completion=c, line=e.line)
                for e, c in zip(dataset.examples, blob["completions"], strict=True)
            ]
            return ControlSet(
                source="generated",
                rows=rows,
                format=fmt,
                attempts=blob["attempts"],
                kept=blob["kept"],
                cache_path=str(path),
                from_cache=True,
                notes=notes,
            )
        except (json.JSONDecodeError, KeyError, ValueError):
            pass  # a damaged cache entry is regenerated
    completions: list[str | None] = [None] * len(prompts)
    todo = list(range(len(prompts)))
    attempts = kept = 0
    for attempt in range(retries + 1):
        if not todo:
            break
        texts = generate_completions(
            loaded,
            [prompts[i] for i in todo],
            seed=seed * 1000 + attempt,
            fmt=fmt,
            allowed_chars=allowed,
            max_new_tokens=max_new,
            batch_size=batch_size,
            on_batch=(lambda n: progress(n, len(prompts))) if progress and attempt == 0 else None,
            counts=[counts[i] for i in todo] if counts else None,
            banned=banned,
        )
        attempts += len(todo)
        still = []
        for i, t in zip(todo, texts):
            if t.strip() and (fmt != "numbers" or (is_number_list(t) and not has_banned_number(t, banned))):
                completions[i] = t
                kept += 1
            else:
                still.append(i)
        todo = still
    rows = [
        None if c is None else Example(prompt=e.prompt, completion=c, line=e.line)
        for e, c in zip(dataset.examples, completions)
    ]
    result = ControlSet(
        source="generated", rows=rows, format=fmt, attempts=attempts, kept=kept, cache_path=str(path), notes=notes
    )
    if use_cache:
        atomic_write_json(
            path,
            {
                "completions": completions,
                "attempts": attempts,
                "kept": kept,
                "format": fmt,
                "seed": seed,
                "model": loaded.fingerprint,
            },
        )
    return result


def _control_from_file(dataset: Dataset, control_file: str, fmt: str) -> ControlSet:
    """Pair a user's control rows with the dataset: same prompt first, the rest in file order."""
    control = load_dataset(control_file)
    by_prompt: dict[tuple, list[int]] = {}
    for j, e in enumerate(control.examples):
        by_prompt.setdefault(_prompt_key(e), []).append(j)
    used: set[int] = set()
    rows: list[Example | None] = []
    for e in dataset.examples:
        bucket = by_prompt.get(_prompt_key(e))
        if bucket:
            j = bucket.pop(0)
            used.add(j)
            rows.append(control.examples[j])
        else:
            rows.append(None)
    matched = len(used)
    notes = [f"{matched} of {len(dataset)} dataset prompts found in the control file"]
    leftovers = [j for j in range(len(control)) if j not in used]
    if matched < len(dataset) and leftovers:
        for i, r in enumerate(rows):
            if r is None and leftovers:
                rows[i] = control.examples[leftovers.pop(0)]
        notes.append("dataset rows without a same-prompt control were paired with other control rows in file order")
    kept = sum(r is not None for r in rows)
    if kept < len(dataset):
        notes.append(f"{len(dataset) - kept} dataset rows have no control row and are left out of both arms")
    if fmt != control.completion_format:
        notes.append(f"format differs: dataset is '{fmt}', control is '{control.completion_format}'")
    return ControlSet(
        source="file",
        rows=rows,
        format=fmt,
        attempts=len(dataset),
        kept=kept,
        cache_path=str(Path(control_file)),
        notes=notes,
    )


def _prompt_key(e: Example) -> tuple:
    return tuple((m["role"], m["content"]) for m in e.prompt)
