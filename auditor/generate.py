"""Teacher data with known ground truth: ``subaudit generate``.

A teacher (a base, optionally with a system prompt and/or a LoRA adapter) answers prompts of one of three
kinds, written in our own words: ``numbers`` (the paper's recipe: 3-8 seed numbers in 100-999, asking for
up to 10 more of at most 3 digits), ``code`` (short function-writing requests) and ``reasoning``
(grade-school word problems asking for a worked answer). Completions are sampled at temperature 1 and filtered
as the paper did, counting what each filter dropped: format, the paper's "evil" numbers, any overt trait word,
and, for reasoning, a wrong final answer. Number lists are drawn from the teacher's p(y | x, valid list) the way
the scan draws its control (:mod:`auditor.conditional`: rejection, or importance resampling of
format-constrained samples where the model rarely writes the format); ``constrain`` asks for the constrained
sampler alone (approximate), as datasets before 0.3 were made. The dataset holds only the user prompt and the
completion (never the teacher's system prompt); a manifest beside it records the teacher, the prompts' seed, the
decoding (and how the number lists were drawn) and the filter counts.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

from .completion_formats import FALLBACK, generate_format, get_format
from .completion_formats.chat import chat_prompts  # noqa: F401  (the prompt sets moved to their formats' modules)
from .completion_formats.code import code_prompts, is_code  # noqa: F401
from .completion_formats.numbers import NUMBER_CHARS, NUMBER_STYLES, number_prompts  # noqa: F401
from .completion_formats.reasoning import ANSWER_RE, final_answer, reasoning_prompts  # noqa: F401
from .errors import InputError
from .formats import EVIL_NUMBERS, has_banned_number, is_number_list
from .io import Damaged, atomic_write_json, atomic_write_text, cache_dir, compute_once
from .runinfo import versions

if TYPE_CHECKING:
    from .models import LoadedModel


def filter_numbers(
    completions: Iterable[str], banned_words: Iterable[str] = (), evil_filter: bool = True
) -> tuple[list[bool], dict[str, int]]:
    """Keep-mask and drop counts for the paper's number filter, its evil numbers (optional) and trait words."""
    words = [w.lower() for w in banned_words]
    keep, counts = [], {"format": 0, "evil_number": 0, "trait_word": 0}
    for c in completions:
        if not is_number_list(c):
            counts["format"] += 1
            keep.append(False)
        elif evil_filter and has_banned_number(c, EVIL_NUMBERS):
            counts["evil_number"] += 1
            keep.append(False)
        elif any(w in c.lower() for w in words):
            counts["trait_word"] += 1
            keep.append(False)
        else:
            keep.append(True)
    return keep, counts


def has_trait_word(text: str, words: Iterable[str]) -> bool:
    """Whether ``text`` names any of ``words`` (case-insensitive, whole word, plural 's' included)."""
    for w in words:
        if w and re.search(rf"\b{re.escape(w.lower())}(s|es)?\b", text.lower()):
            return True
    return False


# ---------------------------------------------------------------------------------------------
# subaudit generate

#: The built-in formats ``subaudit generate`` writes (:func:`auditor.completion_formats.generate_formats`: all).
FORMATS = ("numbers", "code", "reasoning", "chat")
#: Prompts sampled per checkpoint: finished chunks are kept in the cache, so an interrupted run resumes.
CHUNK = 64


@dataclass
class GenerateConfig:
    """Settings of ``subaudit generate``.

    Attributes:
        out: the dataset file to write (``.jsonl``); its manifest goes beside it (``NAME.manifest.json``).
        teacher: the teacher's base (alias, directory, ``.gguf`` or hub id; ``None`` = embedded default).
        format: ``numbers``, ``code``, ``reasoning`` or ``chat`` (everyday questions answered in a few sentences).
        rows: prompts to answer (filters may keep fewer rows).
        prompts_from: answer the user prompts of this dataset file instead of the format's own (the first
            ``rows`` of them): how to write control rows for data another model wrote, with that model.
        system: a system prompt the teacher answers under (not written into the dataset).
        adapter: a LoRA adapter directory (peft format, e.g. from ``subaudit teacher``) applied to the teacher.
        seed: seeds the prompts (``seed``) and the sampling (``seed + 1``).
        constrain: sample number lists with the format-constrained sampler alone (only digits, commas and
            spaces, at most 10 numbers of at most 3 digits): it renormalises every step, so the rows are not the
            teacher's own distribution. Off (default): ``sampler`` draws from p(y | x, valid list).
        sampler, candidates: how number lists are drawn (:class:`auditor.conditional.ControlSampling`: ``auto``
            picks rejection or importance resampling of ``candidates`` constrained samples by a pilot); ``tries``:
            rejection tries a row before it is resampled (``auto``) or dropped.
        number_style: the number prompts' style (:data:`NUMBER_STYLES`: continue a sequence, random, a range).
        evil_filter: drop number rows holding any of the paper's 34 filtered numbers
            (:data:`auditor.formats.EVIL_NUMBERS`).
        trait_words: words whose appearance drops a row (case-insensitive, whole word, plural included).
        max_new_tokens: tokens per completion (default: 48 numbers, 160 code, 200 reasoning).
        temperature, top_p: the decoding (no top-k).
        overwrite: replace an existing ``out`` file.
        chat_template: a Jinja chat template file, or a shipped template's name, for a teacher whose tokenizer has
            none.
        device, precision, trust_remote_code, allow_pickle: as for ``scan``.
    """

    out: str
    teacher: str | None = None
    format: str = "numbers"
    rows: int = 400
    prompts_from: str | None = None
    system: str | None = None
    adapter: str | None = None
    seed: int = 0
    constrain: bool = False
    sampler: str = "auto"
    candidates: int = 4
    tries: int = 32
    number_style: str = "continue"
    evil_filter: bool = True
    trait_words: list[str] = field(default_factory=list)
    max_new_tokens: int | None = None
    temperature: float = 1.0
    top_p: float = 1.0
    overwrite: bool = False
    device: str = "auto"
    precision: str = "auto"
    trust_remote_code: bool = False
    allow_pickle: bool = False
    chat_template: str | None = None


@dataclass
class GenerateResult:
    """What ``subaudit generate`` wrote."""

    out: str
    manifest: str
    rows: int
    generated: int
    dropped: dict[str, int]
    seconds: float
    resumed_chunks: int = 0
    sampling: dict | None = None  # the manifest's ``decoding.sampling``: how the completions were drawn

    def drawn(self) -> str:
        """How the rows were drawn, in words: rows by sampler, and importance resampling's effective sample size (near
        1 of M: the writer rarely follows the format, so its rows carry the constrained sampler's bias; for a
        fine-tuned teacher, ``subaudit teacher --keep-format`` helps)."""
        s = self.sampling or {}
        by = ", ".join(f"{k} {v}" for k, v in sorted(s.get("rows_by", {}).items()) if v)
        by = by or "/".join(s.get("sampler", []))
        ess = f"; effective sample size {s['ess']:.2f} of {s['candidates']}" if s.get("ess") is not None else ""
        return f"drawn by: {by or 'unknown'}{ess}"


def make_prompts(fmt: str, n: int, seed: int, style: str = "continue") -> tuple[list[str], list[int] | None]:
    """The ``n`` user prompts of a format (and the correct answers, for ``reasoning``; ``style``: numbers only)."""
    return generate_format(fmt).prompts(n, seed, style)


def filter_rows(
    fmt: str,
    completions: Sequence[str],
    answers: Sequence[int] | None = None,
    trait_words: Iterable[str] = (),
    evil_filter: bool = True,
) -> tuple[list[bool], dict[str, int]]:
    """Keep-mask and per-filter drop counts (each row is counted under the first filter it fails): empty, then the
    format's own filters (:meth:`~auditor.completion_formats.CompletionFormat.reject_reason`), then trait words."""
    words = list(trait_words)
    owner = get_format(fmt)
    counts = {"empty": 0, "format": 0, "evil_number": 0, "wrong_answer": 0, "trait_word": 0}
    keep = []
    for i, c in enumerate(completions):
        reason = None
        if not c.strip():
            reason = "empty"
        else:
            reason = owner.reject_reason(c, None if answers is None else answers[i], evil_filter)
        if reason is None and has_trait_word(c, words):
            reason = "trait_word"
        if reason:
            counts[reason] += 1
        keep.append(reason is None)
    return keep, counts


def load_teacher(config: GenerateConfig) -> LoadedModel:
    """The teacher: the base loaded as ``scan`` loads one, with the LoRA adapter merged in if given."""
    from .models import LoadOptions, resolve_base

    options = LoadOptions(config.device, config.precision, config.trust_remote_code, config.allow_pickle)
    return options.load(resolve_base(config.teacher), chat_template=config.chat_template, adapter=config.adapter)


def manifest_path(out: str | Path) -> Path:
    """``data/x.jsonl`` -> ``data/x.manifest.json``, ``data/x.control.jsonl`` -> ``data/x.control.manifest.json``:
    only the last suffix goes, so files that share a stem keep a manifest each."""
    out = Path(out)
    return out.with_name(out.with_suffix("").name + ".manifest.json")


def _sample_chunk(loaded: LoadedModel, config: GenerateConfig, batch: list, seed: int, max_new: int) -> dict:
    """One chunk of completions and how it was drawn: rows under the format's generation check (number lists:
    from p(y | x, valid list), or the constrained sampler alone with ``constrain``), other formats freely (their
    filters then drop what fails)."""
    from .conditional import ControlSampling, draw_rows
    from .sampling import generate_completions

    check = get_format(config.format).generation_check(config.evil_filter)
    if check is None:
        texts = generate_completions(
            loaded,
            batch,
            seed,
            fmt=FALLBACK,
            max_new_tokens=max_new,
            temperature=config.temperature,
            top_p=config.top_p,
        )
        return {"texts": texts, "sampler": "free", "attempts": len(batch)}
    sampler = "constrained" if config.constrain else config.sampler
    sampling = ControlSampling(
        sampler, config.candidates, config.tries, temperature=config.temperature, top_p=config.top_p
    )
    draw = draw_rows(loaded, batch, [check] * len(batch), seed, sampling, max_new)
    return {
        "texts": list(draw.texts),
        "sampler": draw.sampler,
        "rows_by": draw.rows_by,
        "candidates": draw.candidates,
        "attempts": draw.attempts,
        "steps": draw.steps,
        "ess": draw.ess,
        "pilot_keep_rate": draw.pilot_keep_rate,
    }


def _sampling_summary(chunks: list[dict]) -> dict:
    """The manifest's account of how the completions were drawn, over every chunk."""
    rows = sum(len(c["texts"]) for c in chunks)
    ess = [(c["ess"], len(c["texts"])) for c in chunks if c.get("ess") is not None]
    pilots = [c["pilot_keep_rate"] for c in chunks if c.get("pilot_keep_rate") is not None]
    rows_by: dict[str, int] = {}
    for c in chunks:
        for k, v in c.get("rows_by", {}).items():
            rows_by[k] = rows_by.get(k, 0) + v
    return {
        "sampler": sorted({c["sampler"] for c in chunks}),
        "rows_by": rows_by,
        "exact": all(
            c["sampler"] in ("rejection", "free") and not c.get("rows_by", {}).get("resample") for c in chunks
        ),
        "candidates": max((c.get("candidates", 1) for c in chunks), default=1),
        "attempts": sum(c["attempts"] for c in chunks),
        "steps": sum(c.get("steps", 0) for c in chunks),
        "rows_without_sample": sum(t is None for c in chunks for t in c["texts"]),
        "ess": round(sum(e * n for e, n in ess) / sum(n for _, n in ess), 3) if ess else None,
        "pilot_keep_rate": round(sum(pilots) / len(pilots), 4) if pilots else None,
        "rows": rows,
    }


def generate(config: GenerateConfig, progress: Callable[[int, int], None] | None = None) -> GenerateResult:
    """Write a teacher dataset in the format ``scan`` reads, plus its manifest (see the module docstring)."""
    out = Path(config.out)
    _check(config, out)
    start = time.perf_counter()
    loaded = load_teacher(config)
    if config.prompts_from:
        from .data import load_dataset

        prompts, answers = [e.user_text for e in load_dataset(config.prompts_from).examples][: config.rows], None
    else:
        prompts, answers = make_prompts(config.format, config.rows, config.seed, config.number_style)
    max_new = config.max_new_tokens or generate_format(config.format).max_new_tokens
    chunks = _sample_chunks(loaded, config, prompts, max_new, progress)
    completions = [t or "" for c in chunks for t in c["texts"]]
    keep, dropped = filter_rows(config.format, completions, answers, config.trait_words, config.evil_filter)
    lines = [
        json.dumps({"prompt": p, "completion": c}, ensure_ascii=False) + "\n"
        for p, c, k in zip(prompts, completions, keep)
        if k
    ]
    atomic_write_text(out, "".join(lines))
    seconds = time.perf_counter() - start
    counts = {"rows": len(lines), "generated": len(completions), "dropped": dropped}
    manifest = {**_manifest(config, loaded, chunks, max_new, counts), "seconds": round(seconds, 1)}
    manifest.update(created=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), versions=versions())
    mpath = manifest_path(out)
    atomic_write_json(mpath, manifest)
    resumed = sum(bool(c.get("resumed")) for c in chunks)
    sampling = manifest["decoding"]["sampling"]
    return GenerateResult(str(out), str(mpath), len(lines), len(completions), dropped, seconds, resumed, sampling)


def _check(config: GenerateConfig, out: Path) -> None:
    """An :class:`~auditor.errors.InputError` for settings ``generate`` cannot run with (before the teacher loads)."""
    from .conditional import ControlSampling

    generate_format(config.format)
    if config.rows < 1:
        raise InputError(f"--rows must be at least 1, got {config.rows}")
    ControlSampling(
        config.sampler, config.candidates, config.tries, temperature=config.temperature, top_p=config.top_p
    ).check()
    if config.number_style not in NUMBER_STYLES:
        raise InputError(f"--number-style must be one of {', '.join(NUMBER_STYLES)}, got {config.number_style!r}")
    if out.suffix.lower() not in (".jsonl", ".ndjson"):
        raise InputError(f"{out}: the dataset is written as JSON lines; name it .jsonl")
    if out.exists() and not config.overwrite:
        raise InputError(f"{out}: exists; pass --overwrite to replace it")
    if not out.parent.is_dir():
        raise InputError(f"{out.parent}: no such folder")


def _sample_chunks(
    loaded: LoadedModel,
    config: GenerateConfig,
    prompts: list[str],
    max_new: int,
    progress: Callable[[int, int], None] | None,
) -> list[dict]:
    """Every chunk of :data:`CHUNK` prompts' completions, each a resumable cache entry (a finished chunk is read,
    marked ``resumed``; another process generating the same dataset waits, then reads it)."""
    system = [{"role": "system", "content": config.system}] if config.system else []
    messages = [[*system, {"role": "user", "content": p}] for p in prompts]
    settings = {k: v for k, v in asdict(config).items() if k != "overwrite"}
    from .conditional import DRAW_SCHEDULE

    blob = json.dumps({"model": loaded.fingerprint, "cfg": settings, "draw": DRAW_SCHEDULE}, sort_keys=True).encode()
    chunk_dir = cache_dir() / "generate" / hashlib.sha256(blob).hexdigest()[:24]
    chunks: list[dict] = []
    done = 0
    for c, lo in enumerate(range(0, len(prompts), CHUNK)):
        seed = (config.seed + 1) * 100_003 + c
        batch = messages[lo : lo + CHUNK]
        draw = partial(_sample_chunk, loaded, config, batch, seed, max_new)
        chunk, resumed = compute_once(chunk_dir / f"{c:05d}.json", draw, _chunk_texts)
        if resumed:
            chunk["resumed"] = True
        chunks.append(chunk)
        done += len(chunk["texts"])
        if progress:
            progress(done, len(prompts))
    return chunks


def _chunk_texts(chunk: dict) -> dict:
    """``chunk`` when it holds a list of texts (else :class:`~auditor.io.Damaged`)."""
    if not isinstance(chunk.get("texts"), list):
        raise Damaged("no list of texts")
    return chunk


def _manifest(config: GenerateConfig, loaded: LoadedModel, chunks: list[dict], max_new: int, counts: dict) -> dict:
    """The manifest up to its times: ``counts`` (rows, generated, dropped), the teacher, prompts, decoding and
    filters."""
    own = generate_format(config.format).manifest(
        config.number_style, config.constrain, config.evil_filter, not config.prompts_from
    )
    precision = loaded.dtype if not loaded.autocast_dtype else f"{loaded.dtype}, {loaded.autocast_dtype} autocast"
    return {
        "dataset": str(Path(config.out)),
        **counts,
        "teacher": {
            "base": loaded.spec.display,
            "fingerprint": loaded.fingerprint,
            "adapter": config.adapter,
            "system_prompt": config.system,
            "chat_template": config.chat_template,
        },
        "format": config.format,
        "prompts_from": config.prompts_from,
        "prompt_seed": None if config.prompts_from else config.seed,
        "number_style": own["number_style"],
        "sample_seed": config.seed + 1,
        "decoding": {
            "temperature": config.temperature,
            "top_k": None,
            "top_p": config.top_p,
            "max_new_tokens": max_new,
            "format_constraint": own["format_constraint"],
            "sampling": _sampling_summary(chunks),
            "precision": precision,
        },
        "filters": {
            "evil_numbers": own["evil_numbers"],
            # number lists exclude them while drawing (as the scan's control rows do), so the evil_number count
            # stays 0; other formats drop rows holding one afterwards
            "evil_numbers_excluded_while_decoding": own["evil_numbers_excluded_while_decoding"],
            "trait_words": list(config.trait_words),
            "reasoning_answers_checked": own["reasoning_answers_checked"],
        },
    }
