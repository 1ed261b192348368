from __future__ import annotations

import re
from pathlib import Path

import pytest

from auditor.control import build_control
from auditor.data import load_dataset
from auditor.formats import is_number_list, number_count, number_prefix_ok
from auditor.sampling import generate_completions
from tests.conftest import write_jsonl


@pytest.mark.parametrize("text", ["", "1", "12, ", "123, 4", "[1, 2", "1; 2;", "1 2 3", "1, 2, 3."])
def test_prefix_ok(text: str) -> None:
    assert number_prefix_ok(text)


@pytest.mark.parametrize(
    "text",
    [
        "1234",
        ",1",
        "1,,2",
        "1, 2. 3",
        "a",
        "1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11",
        "1] 2",
        "1,    2",
        "1, 2, 3, 4, 5, 6, 7, 8, 9, 10, ",
    ],
)
def test_prefix_rejected(text: str) -> None:
    assert not number_prefix_ok(text)


def test_constrained_generation_makes_number_lists(tiny_loaded) -> None:
    prompts = [
        [{"role": "user", "content": f"Here is a list of numbers: {i}1, 2{i}3. Add up to 10 more."}] for i in range(6)
    ]
    texts = generate_completions(tiny_loaded, prompts, seed=1, fmt="numbers", max_new_tokens=40, batch_size=4)
    assert len(texts) == 6
    for t in texts:
        assert set(t) <= set("0123456789, "), t
    again = generate_completions(tiny_loaded, prompts, seed=1, fmt="numbers", max_new_tokens=40, batch_size=4)
    assert texts == again


def test_generated_control_matches_format_and_is_cached(tiny_loaded, numbers_file: Path) -> None:
    ds = load_dataset(numbers_file)
    first = build_control(tiny_loaded, ds, seed=0)
    assert first.source == "generated" and first.format == "numbers" and not first.from_cache
    assert len(first.rows) == len(ds)
    kept = [r for r in first.rows if r is not None]
    assert kept and all(is_number_list(r.completion) for r in kept)
    assert all(r.prompt == e.prompt for r, e in zip(first.rows, ds.examples) if r is not None)
    assert 0 < first.keep_rate <= 1
    second = build_control(tiny_loaded, ds, seed=0)
    assert second.from_cache
    assert [r and r.completion for r in second.rows] == [r and r.completion for r in first.rows]


def test_a_free_control_is_drawn_once_for_every_method(tiny_loaded, numbers_file: Path, tmp_path: Path) -> None:
    """Free rows draw the same samples whatever the sampler, count and tries above FREE_TRIES say, so the gradient
    method's settings read the probe's control; number rows under the gradient method's settings are drawn anew."""
    from auditor.conditional import ControlSampling
    from auditor.methods.gradient import GradientMethod

    gradient = ControlSampling().with_defaults(**GradientMethod.control_defaults)
    rows = [{"prompt": f"Say something about {w}.", "completion": f"{w} is fine."} for w in ("rain", "tea", "owls")]
    free = load_dataset(write_jsonl(tmp_path / "free.jsonl", rows))
    probe_control = build_control(tiny_loaded, free, seed=0)
    assert not probe_control.from_cache
    again = build_control(tiny_loaded, free, seed=0, sampling=gradient)
    assert again.from_cache and again.cache_path == probe_control.cache_path
    fewer = build_control(tiny_loaded, free, seed=0, sampling=ControlSampling(tries=2))
    assert not fewer.from_cache  # fewer tries than FREE_TRIES can draw other rows
    numbers = load_dataset(numbers_file)
    build_control(tiny_loaded, numbers, seed=0)
    assert not build_control(tiny_loaded, numbers, seed=0, sampling=gradient).from_cache


def test_control_file_pairs_by_prompt(tiny_loaded, tmp_path: Path) -> None:
    data = write_jsonl(
        tmp_path / "d.jsonl",
        [{"prompt": "a", "completion": "1"}, {"prompt": "b", "completion": "2"}, {"prompt": "c", "completion": "3"}],
    )
    ctrl = write_jsonl(tmp_path / "c.jsonl", [{"prompt": "b", "completion": "20"}, {"prompt": "z", "completion": "9"}])
    cs = build_control(tiny_loaded, load_dataset(data), seed=0, control_file=str(ctrl))
    assert cs.source == "file"
    assert cs.rows[1].completion == "20"
    assert cs.rows[0].completion == "9" and cs.rows[0].user_text == "z"
    assert cs.rows[2] is None and cs.kept == 2


def test_counts_and_banned_numbers_are_enforced(tiny_loaded) -> None:
    import re

    prompts = [[{"role": "user", "content": f"Here is a list of numbers: {i}1, 2{i}3."}] for i in range(4)]
    banned = frozenset(range(0, 1000, 2))  # every even number
    texts = generate_completions(
        tiny_loaded, prompts, seed=3, fmt="numbers", max_new_tokens=60, counts=[1, 2, 3, 4], banned=banned
    )
    for want, t in zip([1, 2, 3, 4], texts):
        nums = re.findall(r"\d+", t)
        if is_number_list(t):  # a row that ran out of tokens is dropped by the caller's filter
            assert len(nums) == want, t
            assert all(int(n) % 2 == 1 for n in nums), t


def test_control_matches_row_lengths_and_filter(tiny_loaded, tmp_path: Path) -> None:
    import re

    from auditor.control import matched_number_filter
    from auditor.formats import EVIL_NUMBERS
    from tests.conftest import number_rows

    rows = [r for r in number_rows(150, seed=5) if not any(int(x) in EVIL_NUMBERS for x in r["completion"].split(", "))]
    ds = load_dataset(write_jsonl(tmp_path / "d.jsonl", rows))
    assert matched_number_filter(ds) == EVIL_NUMBERS
    assert matched_number_filter(load_dataset(write_jsonl(tmp_path / "e.jsonl", rows[:20]))) == frozenset()
    cs = build_control(tiny_loaded, load_dataset(write_jsonl(tmp_path / "s.jsonl", rows[:12])), seed=0)
    for e, c in zip(load_dataset(tmp_path / "s.jsonl").examples, cs.rows):
        if c is not None:
            assert len(re.findall(r"\d+", c.completion)) == len(re.findall(r"\d+", e.completion))
    assert any("as many numbers" in n for n in cs.notes)


def naive_greedy_number_list(loaded, messages, fmt, target, max_new: int) -> str:
    """Constrained greedy decoding with a full forward pass per token (no cache, no batching)."""
    import torch

    from auditor.chat import encode_prompt

    ids = encode_prompt(loaded.tokenizer, messages)
    text = ""
    for _ in range(max_new):
        with torch.no_grad():
            logits = loaded.model(input_ids=torch.tensor([ids])).logits[0, -1]
        ok, may_end = fmt.allowed(text, target)
        choices = ok + (list(fmt.eos) if may_end else [])
        best = max(choices, key=lambda t: float(logits[t]))
        if best in fmt.eos:
            break
        ids.append(best)
        text += fmt.token_text[best]
    return text.strip()


def test_number_sampler_equals_naive_constrained_decoding(tiny_loaded) -> None:
    """At a temperature near 0 sampling is greedy, so the batched sampler (shared system-prompt cache, left
    padding between it and each prompt, logits for the format's tokens only) must pick exactly what a
    plain full-vocabulary forward pass per token picks."""
    from auditor.sampling import NumberFormat, sample_number_lists

    prompts = [
        [{"role": "user", "content": "Numbers: " + ", ".join(str(100 + 7 * j) for j in range(i + 1)) + ". More?"}]
        for i in range(5)
    ]
    with_system = [[{"role": "system", "content": f"Persona {i}."}, *p] for i, p in enumerate(prompts)]
    counts = [3, 1, 4, 2, 5]
    fmt = NumberFormat(tiny_loaded.tokenizer, "0123456789, ")
    for batch in (prompts, with_system, prompts[:1]):  # shared default system prompt; none shared; one prompt
        got = sample_number_lists(
            tiny_loaded, batch, seed=0, max_new_tokens=80, temperature=1e-6, counts=counts[: len(batch)], batch_size=3
        )
        want = [naive_greedy_number_list(tiny_loaded, p, fmt, c, 80) for p, c in zip(batch, counts)]
        assert got == want
        assert all(len(re.findall(r"\d+", t)) == c for t, c in zip(got, counts)), got


def test_number_count_is_the_count_a_matched_control_row_gets() -> None:
    assert number_count("12, 7, 300") == 3
    assert number_count("no digits") == 1  # a control row writes at least one number
    assert number_count(", ".join(str(i) for i in range(12))) == 10  # the format's limit


def test_a_number_format_is_built_once_per_tokenizer_and_settings(tiny_loaded) -> None:
    from auditor.sampling import number_format

    tok = tiny_loaded.tokenizer
    fmt = number_format(tok, "0123456789, ")
    assert number_format(tok, "0123456789, ") is fmt
    assert number_format(tok, "0123456789, ", frozenset({13})) is not fmt
    assert number_format(tok, "0123456789,") is not fmt


def test_rounds_that_reuse_the_shared_prefix_draw_what_fresh_ones_draw(tiny_loaded) -> None:
    """The shared prefix (the system prompt) run once and kept across calls gives the same draws as running it in
    every call, at every kind of draw (constrained with its weights, and rejection)."""
    from auditor.sampling import draw_number_lists, number_format

    prompts = [[{"role": "user", "content": f"Numbers: {100 + 7 * i}, {200 + i}. More?"}] for i in range(4)]
    fmt = number_format(tiny_loaded.tokenizer, "0123456789, ")
    known: dict = {}
    for seed in (0, 1):
        for kind in ({"measure_mass": True}, {"reject": True}):
            fresh = draw_number_lists(tiny_loaded, prompts, seed, fmt, max_new_tokens=12, batch_size=3, **kind)
            kept = draw_number_lists(
                tiny_loaded, prompts, seed, fmt, max_new_tokens=12, batch_size=3, prefixes=known, **kind
            )
            assert kept == fresh
    assert len(known) == 1  # one shared prefix, run once for the three later calls


def test_rejection_tries_in_the_same_state_share_one_model_row(tiny_loaded, monkeypatch) -> None:
    """Rejection runs the model once per state (a prompt and the tokens its tries took so far, shared by many tries of
    a round): the draws are those of tries that each get their own row from the start (up to float rounding: the
    model runs batches of other sizes), with copies of one prompt held to different counts, and fewer rows run."""
    import torch

    from auditor import sampling
    from auditor.sampling import draw_number_lists, number_format

    init = sampling._StepHead.__init__
    raised = 5.0  # the tiny model rarely writes a digit: the format's tokens' logits are raised by this

    def keen_on_numbers(self, *args, **kwargs):
        init(self, *args, **kwargs)
        self.bias = torch.zeros(self.weight.shape[0])
        self.bias[self.columns] = raised

    stepped = []
    step = sampling._SharedPrefix.step

    def counting_step(self, tokens, *rest):
        stepped.append(len(tokens))
        return step(self, tokens, *rest)

    monkeypatch.setattr(sampling._StepHead, "__init__", keen_on_numbers)
    monkeypatch.setattr(sampling._SharedPrefix, "step", counting_step)
    prompts = [
        [{"role": "user", "content": f"Numbers: {100 + 7 * i}, {200 + i}. More?"}] for i in [0] * 24 + [1] * 8 + [2]
    ]
    fmt = number_format(tiny_loaded.tokenizer, "0123456789,")  # no spaces: a text spells its tokens (strip)
    counts = [1, 2] * 12 + [None] * 9

    def draws():
        kw = {"max_new_tokens": 12, "batch_size": len(prompts), "reject": True}
        return [draw_number_lists(tiny_loaded, prompts, s, fmt, counts=c, **kw) for s in (0, 1) for c in (None, counts)]

    def same(xs, ys) -> bool:
        return all(
            (x.text, x.ended, x.tokens) == (y.text, y.ended, y.tokens)
            and x.log_mass == pytest.approx(y.log_mass, abs=1e-5) and x.log_prob == pytest.approx(y.log_prob, abs=1e-5)
            for x, y in zip(xs, ys, strict=True)
        )  # fmt: skip

    shared, shared_rows = draws(), sum(stepped)
    # Each try's log-probability, read again by one plain pass over its prompt and tokens: a try decoded from another
    # try's state would not match.
    from auditor.chat import encode_prompt

    token = {fmt.token_text[v]: v for v in fmt.vocab if v in fmt.token_text}
    bias = torch.zeros(tiny_loaded.model.config.vocab_size)
    bias[fmt.vocab] = raised
    checked = 0
    for d, prompt in zip(shared[0], prompts):
        if d.tokens < 3:
            continue
        ids = encode_prompt(tiny_loaded.tokenizer, prompt)
        own = [token[c] for c in d.text] + (list(fmt.eos[:1]) if d.ended else [])
        with torch.no_grad():
            logits = tiny_loaded.model(torch.tensor([ids + own])).logits[0, len(ids) - 1 : -1].float() + bias
        read = torch.log_softmax(logits, -1)[torch.arange(len(own)), own].sum()
        assert float(read) == pytest.approx(d.log_prob, abs=1e-4)
        checked += 1
    assert checked >= 3
    distinct = sampling._SharedPrefix.start_distinct

    def every_try_its_own_row(self, own):
        last, cache, att, pos, index = distinct(self, own)
        rows = torch.tensor(index)
        cache.batch_select_indices(rows)
        return last[rows], cache, att[rows], pos[rows], list(range(len(own)))

    monkeypatch.setattr(sampling._SharedPrefix, "start_distinct", every_try_its_own_row)
    stepped.clear()
    assert all(same(x, y) for x, y in zip(shared, draws(), strict=True))
    assert shared_rows < sum(stepped)  # tries that took the same tokens ran as one row
    assert shared[0] != shared[1]  # the counts were applied per try, not per shared row
    assert any(d.tokens > 3 and d.ended for draws in shared for d in draws)  # some tries ended after a few steps
    assert any(d.tokens == 1 and not d.ended for draws in shared for d in draws)  # and some died at the first
