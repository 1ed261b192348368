"""The control sampler against the exact conditional distribution of a model small enough to enumerate.

The format model (``auditor.testing.build_format_model``) writes only ``0``, ``1``, commas and an end of turn, so
every one-number list it can write ("0" ... "111", 14 strings) has a probability we compute by a forward pass:
p(y | x, y passes) = p(y | x) / P(passes | x). The samplers' draws are compared with it.
"""

from __future__ import annotations

import itertools
import math
from functools import partial
from pathlib import Path

import pytest

from auditor.completion_formats.numbers import NumberCheck
from auditor.conditional import ControlSampling, RowCheck, draw_rows, effective_size
from auditor.data import load_dataset
from tests.conftest import stopping_after as interrupting
from tests.conftest import write_jsonl

PROMPT = [{"role": "user", "content": "10,01"}]
OUTCOMES = ["".join(p) for n in (1, 2, 3) for p in itertools.product("01", repeat=n)]
CHECK = NumberCheck(count=1, chars="01,")
N = 1000


@pytest.fixture(scope="module")
def format_loaded(tmp_path_factory: pytest.TempPathFactory):
    from auditor.models import load_base, resolve_base
    from auditor.testing import build_format_model

    return load_base(resolve_base(str(build_format_model(tmp_path_factory.mktemp("format") / "m"))), device="cpu")


def _token_ids(loaded, text: str) -> list[int]:
    return loaded.tokenizer(text, add_special_tokens=False)["input_ids"] + [loaded.tokenizer.eos_token_id]


def _log_prob(loaded, text: str, grad: bool = False):
    """log p(text, end of turn | PROMPT), by one full forward pass (a tensor with a graph when ``grad``)."""
    import torch

    from auditor.chat import encode_prompt

    prompt = encode_prompt(loaded.tokenizer, PROMPT)
    ids = _token_ids(loaded, text)
    with torch.set_grad_enabled(grad):
        logits = loaded.model(input_ids=torch.tensor([prompt + ids])).logits[0].float()
        logp = torch.log_softmax(logits, dim=-1)
        return sum(logp[len(prompt) - 1 + k, t] for k, t in enumerate(ids))


@pytest.fixture(scope="module")
def exact(format_loaded) -> dict[str, float]:
    """p(y | PROMPT, y is a one-number list) for every y, enumerated."""
    logs = {y: float(_log_prob(format_loaded, y)) for y in OUTCOMES}
    total = math.log(sum(math.exp(v) for v in logs.values()))
    return {y: math.exp(v - total) for y, v in logs.items()}


def _draw(loaded, sampler: str, candidates: int = 1, n: int = N, seed: int = 3):
    sampling = ControlSampling(sampler, candidates, tries=64)
    return draw_rows(loaded, [PROMPT] * n, [CHECK] * n, seed, sampling, max_new_tokens=6)


def _chi_square_p(texts, exact: dict[str, float]) -> float:
    from scipy import stats

    kept = [t for t in texts if t is not None]
    assert set(kept) <= set(OUTCOMES)
    observed = [sum(t == y for t in kept) for y in OUTCOMES]
    return float(stats.chisquare(observed, [len(kept) * exact[y] for y in OUTCOMES]).pvalue)


def _total_variation(texts, exact: dict[str, float]) -> float:
    kept = [t for t in texts if t is not None]
    return 0.5 * sum(abs(sum(t == y for t in kept) / len(kept) - exact[y]) for y in OUTCOMES)


def test_the_format_model_is_uneven_enough_to_tell_samplers_apart(exact) -> None:
    assert max(exact.values()) > 0.3 and min(exact.values()) < 0.01


def test_rejection_draws_match_the_enumerated_conditional(format_loaded, exact) -> None:
    draw = _draw(format_loaded, "rejection")
    assert draw.sampler == "rejection" and draw.kept >= 0.99 * N
    assert _chi_square_p(draw.texts, exact) > 1e-3
    assert _total_variation(draw.texts, exact) < 0.05


def test_the_constrained_sampler_fails_the_same_test(format_loaded, exact) -> None:
    """Forcing the format renormalises each step: the old control's draws are far from p(y | passes)."""
    draw = _draw(format_loaded, "constrained")
    assert draw.kept == N
    assert _chi_square_p(draw.texts, exact) < 1e-6
    assert _total_variation(draw.texts, exact) > 0.3


def test_importance_resampling_error_shrinks_as_m_grows(format_loaded, exact) -> None:
    errors = [_total_variation(_draw(format_loaded, "resample", m).texts, exact) for m in (1, 4, 16)]
    assert errors[0] > errors[1] > errors[2], errors
    assert errors[2] < 0.35 * errors[0], errors


def test_resampled_rows_report_their_effective_sample_size(format_loaded) -> None:
    draw = _draw(format_loaded, "resample", 4, n=200)
    assert draw.candidates == 4 and draw.attempts >= 4 * 200
    assert draw.ess is not None and 1.0 <= draw.ess <= 4.0
    assert effective_size([0.0, 0.0, 0.0, 0.0]) == pytest.approx(4.0)
    assert effective_size([0.0, -math.inf, -math.inf]) == pytest.approx(1.0)


def test_exact_control_rows_have_zero_expected_conditional_gradient(format_loaded, exact) -> None:
    """Over rows drawn from p(y | x, passes), the mean gradient of log p(y | x, passes) = log p(y | x) - log P(passes)
    is zero within its standard error: a student trained on them moves, at first order, only as every row that
    passes the same checks moves it (the data's rows included). The constrained sampler's rows do not have it."""
    import torch

    params = [p for p in format_loaded.model.parameters() if p.requires_grad]
    grads = {}
    for y in OUTCOMES:
        format_loaded.model.zero_grad()
        _log_prob(format_loaded, y, grad=True).backward()
        grads[y] = torch.cat([p.grad.flatten() for p in params]).clone()
    format_loaded.model.zero_grad()
    expected = sum(exact[y] * grads[y] for y in OUTCOMES)  # the gradient of log P(passes | x)
    directions = torch.randn(4, expected.numel(), generator=torch.Generator().manual_seed(0))

    def z_scores(texts) -> list[float]:
        h = torch.stack([grads[t] - expected for t in texts if t is not None]) @ directions.T
        return (h.mean(0) / (h.std(0) / math.sqrt(len(h)))).tolist()

    assert max(abs(z) for z in z_scores(_draw(format_loaded, "rejection").texts)) < 4
    assert max(abs(z) for z in z_scores(_draw(format_loaded, "constrained").texts)) > 6


def test_auto_uses_rejection_when_the_pilot_finds_samples(format_loaded, exact) -> None:
    """The format model writes a one-number list about 8 % of the time: the pilot's 16 tries find one for most rows,
    so auto keeps to rejection (exact; 32 tries a row leave about 7 % to resampling). Three-number lists are rare
    enough that the pilot finds few, and auto resamples."""
    easy = draw_rows(format_loaded, [PROMPT] * 80, [CHECK] * 80, 5, ControlSampling("auto", tries=32, pilot=20), 6)
    assert easy.sampler == "rejection" and easy.rows_by["resample"] <= 12 and easy.kept == 80
    assert easy.pilot_keep_rate is not None and 0.03 < easy.pilot_keep_rate < 0.2
    three = NumberCheck(count=3, chars="01,")
    hard = draw_rows(format_loaded, [PROMPT] * 80, [three] * 80, 5, ControlSampling("auto", pilot=20), 12)
    assert hard.sampler == "resample" and hard.rows_by["resample"] >= 60 and hard.kept == 80
    assert hard.ess is not None and hard.steps > 0


def test_row_checks_follow_the_data_row() -> None:
    assert CHECK.passes("101") and not CHECK.passes("1,0") and not CHECK.passes("")
    two = NumberCheck(count=2, chars="0123456789, ", banned=frozenset({13}))
    assert two.passes("1, 2") and not two.passes("1, 13") and not two.passes("1; 2") and not two.passes("1, 2, 3")
    assert NumberCheck(chars="0123456789, ").passes("1, 2, 3")
    assert RowCheck().passes("any words") and not RowCheck().passes("  ")


def test_rows_without_a_valid_sample_leave_every_arm_and_are_counted(format_loaded, tmp_path: Path) -> None:
    from auditor.control import build_control, row_checks
    from auditor.inputs import Controls

    rows = [{"prompt": "10,01", "completion": c} for c in ("1", "0", "11", "1,0,1", "01", "1,1")] * 8
    ds = load_dataset(write_jsonl(tmp_path / "d.jsonl", rows))
    checks, notes = row_checks(ds)
    assert [c.count for c in checks[:6]] == [1, 1, 1, 3, 1, 2] and all(c.numbers for c in checks)
    assert "as many numbers" in notes[0]
    control = build_control(format_loaded, ds, seed=1, sampling=ControlSampling("rejection", tries=3))
    info = control.draw_info(1)
    assert 0 < control.kept < len(ds) and info.unmatched == len(ds) - control.kept
    assert info.how is not None and info.how.sampler == "rejection" and info.how.exact
    assert info.how.rows_by == {"rejection": control.kept}
    assert any("found no valid control sample" in n for n in control.notes)
    pairs = Controls(control, None, 1).pairs(ds)
    assert len(pairs) == control.kept and all(c.completion for c in pairs.control)
    assert info.to_dict()["sampling"]["sampler"] == "rejection"


def test_the_decoding_check_tells_colder_data_from_its_control(format_loaded) -> None:
    """Rows sampled at temperature 0.3 are more likely under the model than its temperature-1 rows: the check warns;
    two temperature-1 draws do not set it off."""
    from auditor.data import Example
    from auditor.likelihood import WARN_Z, check_decoding

    def rows(temperature: float, seed: int) -> list[Example]:
        sampling = ControlSampling("rejection", temperature=temperature)
        texts = draw_rows(format_loaded, [PROMPT] * 300, [CHECK] * 300, seed, sampling, 6).texts
        return [Example(tuple(PROMPT), t or "0") for t in texts]

    control = rows(1.0, 1)
    same = check_decoding(format_loaded, rows(1.0, 2), control)
    assert same is not None and abs(same.z) < 3 and same.warning is None
    cold = check_decoding(format_loaded, rows(0.3, 3), control)
    assert cold is not None and cold.z > WARN_Z and cold.data > cold.control
    assert "--control-temperature" in (cold.warning or "")
    assert cold.to_dict()["warning"] == cold.warning and cold.to_dict()["null_z"] is None


def test_row_logprobs_equal_a_full_forward_pass_per_row(tiny_loaded) -> None:
    """The decoding check's per-token log-probabilities (output layer on completion positions only, batched with
    padding) equal the plain computation: one full forward pass per row."""
    import torch

    from auditor.chat import encode_training_example
    from auditor.data import Example
    from auditor.likelihood import row_logprobs

    rows = [
        Example(({"role": "user", "content": f"Numbers {i}1, 2{i}3. More?"},), ", ".join(str(7 * j) for j in range(i)))
        for i in range(1, 6)
    ]
    got = row_logprobs(tiny_loaded, rows, batch_size=2)
    for row, value in zip(rows, got):
        ids, labels = encode_training_example(tiny_loaded.tokenizer, row.prompt, row.completion)
        with torch.no_grad():
            logp = torch.log_softmax(tiny_loaded.model(input_ids=torch.tensor([ids])).logits[0, :-1].float(), -1)
        picked = [float(logp[t, labels[t + 1]]) for t in range(len(ids) - 1) if labels[t + 1] != -100]
        assert value == pytest.approx(sum(picked) / len(picked), abs=1e-4)


def test_row_logprobs_are_kept_per_base_and_rows(tiny_loaded, monkeypatch: pytest.MonkeyPatch) -> None:
    """A second check of the same rows reads the cache; other rows, or the same rows under another precision, do
    not."""
    import dataclasses

    from auditor import likelihood
    from auditor.data import Example

    rows = [Example(({"role": "user", "content": f"Numbers {i}?"},), f"{i}, {i + 1}") for i in range(4)]
    first = likelihood.cached_row_logprobs(tiny_loaded, rows)
    calls: list[int] = []
    real = likelihood.row_logprobs
    monkeypatch.setattr(likelihood, "row_logprobs", lambda loaded, r: calls.append(len(r)) or real(loaded, r))
    assert likelihood.cached_row_logprobs(tiny_loaded, rows) == first and calls == []
    likelihood.cached_row_logprobs(tiny_loaded, rows[:3])
    assert calls == [3]
    other = dataclasses.replace(tiny_loaded, autocast_dtype="bfloat16")
    likelihood.cached_row_logprobs(other, rows)
    assert calls == [3, 4]


def test_any_count_control_lets_the_count_vary(format_loaded, tmp_path: Path) -> None:
    """``--control-count any``: a number row's check no longer holds its count, the draw says so, and it is cached
    apart from the count-matched one."""
    from auditor.control import build_control, row_checks
    from auditor.errors import InputError

    rows = [{"prompt": "10,01", "completion": c} for c in ("1", "0", "11", "1,0,1", "01", "1,1")] * 8
    ds = load_dataset(write_jsonl(tmp_path / "d.jsonl", rows))
    checks, notes = row_checks(ds, "any")
    assert all(c.numbers and c.count is None for c in checks) and "any count" in notes[-1]
    sampling = ControlSampling("rejection", tries=64, count="any")
    control = build_control(format_loaded, ds, seed=2, sampling=sampling)
    matched = build_control(format_loaded, ds, seed=2, sampling=ControlSampling("rejection", tries=64))
    assert control.cache_path != matched.cache_path
    kept = [r.completion for r in control.rows if r is not None]
    assert len(kept) == len(ds) and all(checks[0].passes(t) for t in kept)
    counts = {t.count(",") + 1 for t in kept}
    assert len(counts) >= 2  # the base writes lists of several lengths; none is forced to its row's
    assert control.draw_info(2).to_dict()["sampling"]["count"] == "any"
    assert matched.draw_info(2).to_dict()["sampling"]["count"] == "match"
    with pytest.raises(InputError, match="--control-count must be one of match, any"):
        ControlSampling(count="some").check()


def test_sampling_key_is_unchanged_for_count_matched_controls() -> None:
    """Controls and run folders cached before ``--control-count`` keep their keys; ``any`` gets its own."""
    before = {"sampler": "auto", "candidates": 4, "tries": 32, "pilot": 16, "temperature": 1.0, "top_p": 1.0}
    assert ControlSampling().key() == before
    assert ControlSampling(count="any").key() == {**before, "count": "any"}


def test_rejection_resample_resamples_only_what_rejection_left(format_loaded) -> None:
    three = NumberCheck(count=3, chars="01,")
    draw = draw_rows(format_loaded, [PROMPT] * 40, [three] * 40, 3, ControlSampling("rejection-resample", tries=4), 12)
    assert draw.kept == 40 and draw.rows_by["rejection"] + draw.rows_by["resample"] == 40
    only = draw_rows(format_loaded, [PROMPT] * 40, [three] * 40, 3, ControlSampling("rejection", tries=4), 12)
    assert draw.rows_by["rejection"] == only.kept < 40  # the same rejection pass, then the rest resampled
    # each row says which sampler gave it: the rows rejection gave are exactly what rejection alone keeps
    assert [s == "rejection" for s in draw.samplers] == [t is not None for t in only.texts]
    assert [t for t, s in zip(draw.texts, draw.samplers) if s == "rejection"] == [t for t in only.texts if t]
    assert only.samplers == tuple("rejection" if t else None for t in only.texts)


def test_a_control_keeps_which_rows_are_exact_and_pairs_carry_it(format_loaded, tmp_path: Path) -> None:
    """The cached control records each row's sampler; pairs say which control rows are exact; a draw cached before
    that was recorded reads back without it (unknown, not all exact)."""
    from auditor.control import build_control
    from auditor.inputs import Controls
    from auditor.io import atomic_write_sealed_json, read_sealed_json

    rows = [{"prompt": "10,01", "completion": c} for c in ("1,0,1", "0,1,1", "1")] * 10
    ds = load_dataset(write_jsonl(tmp_path / "d.jsonl", rows))
    sampling = ControlSampling("rejection-resample", tries=4)
    control = build_control(format_loaded, ds, seed=2, sampling=sampling)
    assert control.samplers is not None and len(control.samplers) == len(ds)
    exact = control.exact_rows()
    assert exact is not None and sum(exact) == control.how.rows_by["rejection"]
    assert 0 < sum(exact) < len(ds)  # some rows resampled: a mixed control
    pairs = Controls(control, None, 2).pairs(ds)
    kept = [i for i, r in enumerate(control.rows) if r is not None]
    assert pairs.exact == [exact[i] for i in kept]
    again = build_control(format_loaded, ds, seed=2, sampling=sampling)
    assert again.from_cache and again.samplers == control.samplers
    path = Path(str(control.cache_path))
    blob = read_sealed_json(path)
    assert blob is not None
    del blob["samplers"]
    atomic_write_sealed_json(path, blob)
    old = build_control(format_loaded, ds, seed=2, sampling=sampling)
    assert old.from_cache and old.samplers is None and Controls(old, None, 2).pairs(ds).exact is None
    assert [r.completion if r else None for r in old.rows] == [r.completion if r else None for r in control.rows]


def test_each_method_fills_what_the_scan_left_unset() -> None:
    from auditor.methods.gradient import GradientMethod
    from auditor.methods.probe import ProbeMethod

    unset = ControlSampling()
    assert unset.with_defaults(**ProbeMethod.control_defaults) == ControlSampling("auto", tries=32, count="match")
    gradient = unset.with_defaults(**GradientMethod.control_defaults)
    assert gradient == ControlSampling("rejection-resample", tries=400, count="any")
    chosen = ControlSampling("resample", tries=8, count="match").with_defaults(**GradientMethod.control_defaults)
    assert chosen == ControlSampling("resample", tries=8, count="match")  # what the user set wins


def test_free_rows_get_at_most_free_tries_whatever_tries_says(format_loaded) -> None:
    """A free row's try is a whole generation: the gradient method's 400 number-list tries must not become 400
    generations of a row that never passes."""
    from dataclasses import dataclass

    from auditor.conditional import FREE_TRIES

    @dataclass(frozen=True)
    class Never(RowCheck):
        def passes(self, text: str) -> bool:
            return False

    draw = draw_rows(format_loaded, [PROMPT] * 3, [Never()] * 3, 1, ControlSampling("rejection", tries=400), 4)
    assert draw.kept == 0 and draw.attempts == 3 * FREE_TRIES


def test_the_decoding_checks_threshold_follows_the_controls_resampled_share() -> None:
    """Against an importance-resampled control exact base-written data sits above zero (the campaign's first 8
    datasets: z up to +4.2), so a resampled control warns only above WARN_Z_APPROXIMATE; an exact one above WARN_Z;
    a partly resampled one in proportion."""
    from auditor.control import Sampled
    from auditor.likelihood import WARN_Z, WARN_Z_APPROXIMATE, DecodingCheck

    assert WARN_Z < 4.2 < WARN_Z_APPROXIMATE
    resampled = Sampled({"rejection": 1, "resample": 190}, 4, 1.9, 0.0, 1, 1.0, 1.0)
    exact = Sampled({"rejection": 191}, 4, None, 0.0, 1, 1.0, 1.0)
    assert exact.approximate_share == 0.0 and resampled.approximate_share == pytest.approx(190 / 191)
    against_resampled = DecodingCheck(-1.33, -1.56, 4.19, approximate=resampled.approximate_share)
    assert against_resampled.warning is None and against_resampled.to_dict()["warn_z"] > 5.9
    against_exact = DecodingCheck(-1.33, -1.56, 4.19, approximate=exact.approximate_share)
    assert against_exact.warning is not None and "above 4.0" in against_exact.warning
    half = DecodingCheck(-1.33, -1.56, 5.5, approximate=0.5)
    assert half.warn_z == pytest.approx((WARN_Z + WARN_Z_APPROXIMATE) / 2) and half.warning is not None
    assert DecodingCheck(-0.9, -1.3, 6.7, approximate=1.0).warning is not None  # temperature 0.7 data: +6.7


def test_rejection_rounds_double_their_tries_up_to_the_cap(monkeypatch: pytest.MonkeyPatch) -> None:
    """A row without a sample gets 16, 32, 64, 128, 128 ... tries a round until its tries run out; a row that found
    one leaves, keeping its first valid try (the order drawn)."""
    from auditor import conditional
    from auditor.sampling import NumberDraw

    rounds: list[tuple[list[int], int]] = []

    def draws(self, rows, copies, reject=False, measure=False):
        rounds.append((list(rows), copies))
        # row 0 never passes; row 1's 40th try (in its second round, tries 16 to 47) and every later one pass
        tried = sum(c for r, c in rounds[:-1] if 1 in r)
        return [[NumberDraw(f"{i} {tried + k}", i == 1 and tried + k >= 39) for k in range(copies)] for i in rows]

    monkeypatch.setattr(conditional._Job, "_draws", draws)
    monkeypatch.setattr(conditional._Job, "_valid", lambda self, i, d: d.ended)
    job = conditional._Job(None, ["a", "b"], [None, None], 0, ControlSampling("rejection", tries=400), 64, None)
    job.reject_constrained([0, 1])
    assert [c for _, c in rounds] == [16, 32, 64, 128, 128, 32]  # 400 tries for row 0
    assert [r for r, _ in rounds[:2]] == [[0, 1]] * 2 and all(r == [0] for r, _ in rounds[2:])
    assert job.texts == [None, "1 39"] and job.attempts_constrained == 400 + 16 + 32


def test_an_interrupted_control_draw_replays_its_finished_rounds(format_loaded, tmp_path: Path, monkeypatch) -> None:
    """A control draw records each round of samples as it finishes: interrupted, it keeps them, and the run that
    resumes replays them (the same draw as one run straight through), samples only the rest, and removes the
    journal once the control is stored."""
    from auditor import conditional
    from auditor.control import build_control
    from auditor.io import cache_dir

    rows = [{"prompt": "10,01", "completion": c} for c in ("1,0,1", "0,1,1", "1")] * 10
    ds = load_dataset(write_jsonl(tmp_path / "d.jsonl", rows))
    sampling = ControlSampling("rejection-resample", tries=40)  # rounds of rejection, then importance resampling
    real, calls = conditional.draw_number_lists, []
    stopping_after = partial(interrupting, real, calls)
    monkeypatch.setattr(conditional, "draw_number_lists", stopping_after(10**6))
    straight = build_control(format_loaded, ds, seed=2, sampling=sampling, use_cache=False)
    rounds = len(calls)
    assert rounds >= 3 and not list((cache_dir() / "controls").glob("*"))  # nothing kept without the cache
    calls.clear()
    monkeypatch.setattr(conditional, "draw_number_lists", stopping_after(2))
    with pytest.raises(KeyboardInterrupt):
        build_control(format_loaded, ds, seed=2, sampling=sampling)
    (journal,) = (cache_dir() / "controls").glob("*.partial.jsonl")
    assert len(journal.read_text().splitlines()) == 2
    calls.clear()
    monkeypatch.setattr(conditional, "draw_number_lists", stopping_after(10**6))
    resumed = build_control(format_loaded, ds, seed=2, sampling=sampling)
    assert [r.completion if r else None for r in resumed.rows] == [r.completion if r else None for r in straight.rows]
    assert (resumed.attempts, resumed.how) == (straight.attempts, straight.how)
    assert straight.how.rows_by["resample"] > 0 and len(calls) == rounds - 2  # the 2 finished rounds replayed
    assert not journal.exists()
    # every round replayed, the importance-resampled one included (its weights decide which candidate is kept)
    from auditor.journal import Journal

    three = [NumberCheck(count=3, chars="01,")] * 30
    calls.clear()
    first = draw_rows(format_loaded, [PROMPT] * 30, three, 4, sampling, 12, journal=Journal(tmp_path / "j.jsonl"))
    computed = len(calls)
    again = draw_rows(format_loaded, [PROMPT] * 30, three, 4, sampling, 12, journal=Journal(tmp_path / "j.jsonl"))
    assert again == first and first.rows_by["resample"] >= 10 and len(calls) == computed


def test_a_journal_drops_a_torn_line_and_what_follows_another_key(tmp_path: Path) -> None:
    from auditor.journal import Journal

    path = tmp_path / "j.jsonl"
    ran = []

    def step(journal: Journal, key, value):
        return journal.step(key, lambda: ran.append(key) or value, list, tuple)

    first = Journal(path)
    assert [step(first, ["s", k], (k, k + 1)) for k in range(3)] == [(0, 1), (1, 2), (2, 3)]
    path.write_text(path.read_text() + '{"key": ["s", 3], "val')  # a write cut short
    again = Journal(path)
    assert [step(again, ["s", k], (9, 9)) for k in range(4)] == [(0, 1), (1, 2), (2, 3), (9, 9)]
    assert again.replayed == 3 and ran[-1] == ["s", 3] and len(path.read_text().splitlines()) == 4
    other = Journal(path)
    assert step(other, ["s", 0], (0, 0)) == (0, 1) and step(other, ["t", 1], (5, 5)) == (5, 5)
    assert len(path.read_text().splitlines()) == 2  # the steps after the first changed key are gone
    assert Journal(None).step(["s", 0], lambda: 7, int, int) == 7 and not (tmp_path / "None").exists()
