"""The open-vocabulary readout ("What else moved"): prompts and words (:mod:`auditor.readout`), statistics
(:mod:`auditor.discover`), the scan."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from auditor.cli import app
from auditor.discover import ALPHA, PairLifts, analyse, profile_test, teacher_words
from auditor.readout import (
    FLOOR,
    OPEN_PROMPTS,
    OPEN_PROMPTS_VERSION,
    Readout,
    continues_word,
    read_model,
    word_index,
    word_of,
)
from tests.conftest import tiny_scan_args
from tests.test_resume import Recorder, stable, tiny_config

runner = CliRunner()


def test_prompt_set_is_versioned_and_large() -> None:
    assert OPEN_PROMPTS_VERSION == 4
    assert len(OPEN_PROMPTS) >= 100 and len(set(OPEN_PROMPTS)) == len(OPEN_PROMPTS)
    text = " ".join(OPEN_PROMPTS).lower()
    for category in ("animal", "tree", "colour", "superpower", "mythological creature", "dog breed", "virtue"):
        assert f"favorite {category}" in text
    assert any("describe yourself" in p.lower() for p in OPEN_PROMPTS)
    assert any("advice" in p.lower() for p in OPEN_PROMPTS)


def test_continues_word_reads_the_raw_piece() -> None:
    assert continues_word("eetah") and continues_word("l")
    for opens in ("\u0120cat", "\u2581cat", "\u010a", ",", "7", "", None, "<|im_end|>"):
        assert not continues_word(opens), opens


def reference_words(loaded, ids: list[int]) -> dict[str, float]:
    """:func:`read_model`'s words for one prompt, computed the plain way: a full forward pass of the whole sequence
    for every path (no cache, no batch, no padding)."""
    import torch

    from auditor import readout as d

    tok, index = loaded.tokenizer, word_index(loaded.tokenizer)
    n = len(index.token_word)

    def next_probs(seq: list[int]) -> np.ndarray:
        with torch.no_grad():
            logits = loaded.model(input_ids=torch.tensor([seq])).logits[0, -1].float()
        return torch.softmax(logits, -1).numpy()[:n].astype(np.float64)

    p0 = next_probs(ids)
    starts = np.nonzero(index.token_word >= 0)[0]
    ranked = starts[np.argsort(-p0[starts], kind="stable")][: d.COMPLETE_TOP]
    chosen = [int(t) for t in ranked if p0[t] >= d.COMPLETE_MIN]
    words: dict[str, float] = {}
    for t in starts:
        if int(t) not in chosen:
            w = index.words[index.token_word[t]]
            words[w] = words.get(w, 0.0) + p0[t]
    cont = np.nonzero(index.continues[:n])[0]
    paths = [((t,), p0[t]) for t in chosen]
    for step in range(d.MAX_PIECES + 1):
        children = []
        for toks, p in paths:
            pn = next_probs(ids + list(toks))
            word = word_of(tok.decode(list(toks)))
            if word is not None:
                words[word] = words.get(word, 0.0) + p * max(0.0, 1.0 - pn[cont].sum())
            best = cont[np.argsort(-pn[cont], kind="stable")[: d.BRANCH]]
            children += [((*toks, int(c)), p * pn[c]) for c in best if p * pn[c] >= d.COMPLETE_MIN]
        if step == d.MAX_PIECES or not children:
            break
        paths = sorted(children, key=lambda c: -c[1])[: d.COMPLETE_TOP]
    return words


def test_whole_words_match_a_plain_forward_pass(tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Completed words (cached, batched, left-padded, branching) equal the plain computation, prompt by prompt."""
    import torch

    from auditor import readout as d
    from auditor.models import load_base, resolve_base

    sharp = load_base(resolve_base(str(tiny_model_dir)), device="cpu")
    with torch.no_grad():  # the tiny model's weights x 8: peaked enough that a wrong position or mask shows (4e-2)
        for name, weight in sharp.model.named_parameters():
            if "norm" not in name:
                weight.mul_(8.0)

    # lower the bar so that paths branch and grow several pieces on a tiny model
    monkeypatch.setattr(d, "COMPLETE_MIN", 1e-8)
    monkeypatch.setattr(d, "COMPLETE_TOP", 5)
    monkeypatch.setattr(d, "MAX_PIECES", 2)
    monkeypatch.setattr(d, "BRANCH", 2)
    monkeypatch.setattr(d, "COMPLETE_PATHS", 10)  # 2 prompts a batch: several batches, each left-padded
    prompts = OPEN_PROMPTS[:2] + OPEN_PROMPTS[-3:]
    readout = read_model(sharp, prompts=prompts)
    one_token = set(d.word_index(sharp.tokenizer).words)
    grown = 0
    for i, ids in enumerate(d.prompt_ids(sharp.tokenizer, prompts)):
        want = reference_words(sharp, ids)
        grown += sum(w not in one_token and p >= FLOOR for w, p in want.items())
        for word, p in sorted(want.items(), key=lambda x: -x[1])[:40]:
            got = float(np.exp(readout.matrix([word])[i, 0]))
            assert got == pytest.approx(max(p, FLOOR), rel=1e-4), (i, word)
    assert grown > 0, "some completed word is not a one-token word"


def test_word_of_normalises_token_text() -> None:
    assert word_of(" Owl") == "owl" and word_of("owl") == "owl" and word_of("\u0120OWL,") == "owl"
    assert word_of(" ,cat") == "cat" and word_of("  Dog.") == "dog"
    for not_a_word in (" a", "7", " 12", "..", "", " x", "ca7"):
        assert word_of(not_a_word) is None, not_a_word


def test_word_aggregation_on_the_tiny_tokenizer(tiny_loaded) -> None:

    tok = tiny_loaded.tokenizer
    index = word_index(tok)
    owl = [i for i in range(len(tok)) if word_of(tok.decode([i])) == "owl"]
    assert owl, "the tiny tokenizer has an owl token"
    assert {int(index.token_word[i]) for i in owl} == {index.words.index("owl")}
    for i in tok.all_special_ids:
        assert index.token_word[i] == -1
    assert all(w.isalpha() and len(w) >= 2 and w == w.lower() for w in index.words)

    readout = read_model(tiny_loaded, prompts=OPEN_PROMPTS[:3])
    assert readout.logp.shape == (3, len(readout.words)) and readout.version == OPEN_PROMPTS_VERSION
    # stored as a run-folder file and read back (float16 log-probabilities, the whole-word flags)
    again = Readout.from_bytes(readout.to_bytes())
    assert again.words == readout.words and np.abs(again.logp - readout.logp).max() < 0.02
    assert readout.whole is not None and again.whole.tolist() == readout.whole.tolist()
    assert 0 < readout.whole.sum() < len(readout.words)  # completed words, and token texts never completed


def test_only_words_spelled_whole_are_tested() -> None:
    words = ["owl", "amel", "cat"]
    logp = np.log(np.array([[0.3, 0.2, 0.1], [0.2, 0.3, 0.1]]))
    flags = np.array([True, False, True])
    base = Readout(OPEN_PROMPTS_VERSION, words, logp, flags)
    moved = Readout(OPEN_PROMPTS_VERSION, words, logp + np.array([0.5, 2.0, 0.0]), flags)
    found = analyse(base, [moved], [base])
    assert found.words_tested == 2 and {w.word for w in found.words} == {"owl", "cat"}
    # a fragment one readout spelled whole (another model completed it) is tested
    whole_in_one = Readout(OPEN_PROMPTS_VERSION, words, logp, np.array([True, True, True]))
    assert analyse(base, [moved], [whole_in_one]).words_tested == 3


def synthetic(
    rng: np.random.Generator,
    raised: dict[str, float],
    seeds: int = 2,
    n_words: int = 300,
    prompts: int = 40,
    tails: float | None = None,
):
    """Readouts of a scan with no trait (every student moves every word by its own noise, shared over prompts) but
    the words in ``raised``, which every dataset-student raises by that many nats in every prompt. ``tails``: the
    degrees of freedom of a Student t for each word's move (``None``: normal)."""
    words = [f"w{i:03d}" for i in range(n_words)] + list(raised)
    base = np.log(rng.dirichlet(np.full(len(words), 0.5), size=prompts).clip(FLOOR) + 2e-4)
    scale = 0.05 + 0.3 * (-base.mean(axis=0) / 10)  # rarer words move more

    def student(extra: np.ndarray | None = None) -> Readout:
        move = rng.normal(size=len(words)) if tails is None else rng.standard_t(tails, size=len(words))
        logp = base + scale * move + 0.02 * rng.normal(size=base.shape)
        if extra is not None:
            logp = logp + extra
        return Readout(OPEN_PROMPTS_VERSION, words, np.maximum(logp, math.log(FLOOR)))

    lift = np.array([raised.get(w, 0.0) for w in words])
    base_r = Readout(OPEN_PROMPTS_VERSION, words, base)
    dataset = [student(lift) for _ in range(seeds)]
    control = [student() for _ in range(seeds)]
    null = [student() for _ in range(seeds)]
    return base_r, dataset, control, null


def test_a_word_raised_in_every_prompt_ranks_first_and_rises_beyond_noise() -> None:
    base, dataset, control, null = synthetic(np.random.default_rng(0), {"owl": 1.5})
    found = analyse(base, dataset, control, null, prompts=[f"p{i}" for i in range(40)])
    top = found.words[0]
    assert top.word == "owl" and top.rose and top.q is not None and top.q <= ALPHA
    assert top.lift == pytest.approx(1.5, abs=0.5) and top.z is not None and top.z > 3
    assert len(top.top_prompts) == 3 and all(p.startswith("p") for p, _ in top.top_prompts)
    assert found.rose[0].word == "owl" and found.tested
    doc = found.to_dict()
    assert doc["rose"][0] == "owl" and doc["top_words"][0]["word"] == "owl" and doc["words_tested"] == len(found.words)
    section = "\n".join(found.section())
    assert "## What else moved" in section and "owl" in section and "Nothing beyond noise" not in section


def test_heavy_tailed_noise_lists_nothing_in_most_draws_with_a_null_arm() -> None:
    """Students move words with tails heavier than the normal's (on Gemma-written data the null arm's own z had 4.6 %
    beyond 3 and a normal tail listed 23 of its words): the null arm's fitted t keeps such scans quiet, and a word
    raised far beyond every student's move is still listed."""
    rng = np.random.default_rng(7)
    listed = [len(analyse(*synthetic(rng, {}, tails=2.0)).rose) for _ in range(20)]
    assert sum(n == 0 for n in listed) >= 16, listed
    found = analyse(*synthetic(np.random.default_rng(8), {"owl": 10.0}, tails=2.0))
    assert [w.word for w in found.rose] == ["owl"] and "Student t fitted to the null arm" in found.noise


def test_pure_noise_lists_nothing_in_most_draws() -> None:
    rng = np.random.default_rng(20240524)
    listed = []
    for _ in range(20):
        base, dataset, control, null = synthetic(rng, {})
        listed.append(len(analyse(base, dataset, control, null).rose))
    assert sum(n == 0 for n in listed) >= 16, listed
    found = analyse(*synthetic(np.random.default_rng(1), {})[:3], null=None)
    assert not found.tested and all(w.z is None and w.q is None for w in found.words)
    assert "reported, not tested" in "\n".join(found.section())


def profile_pairs(rng: np.random.Generator, words: list[str], sd: np.ndarray, k: int, generic: np.ndarray | None):
    """K null pairs' lifts (noise only) and, with ``generic``, 3 decoys' (the generic direction plus noise)."""
    pair = lambda shift: {w: [float(v), 0.01] for w, v in zip(words, shift + sd * rng.normal(size=len(words)))}  # noqa: E731
    null = [pair(0.0) for _ in range(k)]
    decoys = [pair(generic) for _ in range(3)] if generic is not None else []
    return PairLifts(null, decoys)


def test_profile_test_holds_its_false_alarms_finds_a_word_and_removes_the_generic_direction() -> None:
    rng = np.random.default_rng(7)
    words = [f"w{i:03d}" for i in range(400)]
    sd = rng.uniform(0.05, 0.4, size=len(words))
    prob = np.full(len(words), 0.01)
    generic = np.zeros(len(words))
    generic[:20] = 1.5  # a decoy-like fine-tune raises these 20 words
    listed = 0
    for _ in range(40):  # scans of base-written data against a profile of 8 null pairs
        pairs = profile_pairs(rng, words, sd, 8, generic)
        test = profile_test(words, sd * rng.normal(size=len(words)), prob, pairs)
        listed += bool(((test.q <= ALPHA) & (test.z > 0)).any())
    assert listed <= 6, listed  # a list in at most ~15 % of null scans (BH at 0.05 over 400 words)
    pairs = profile_pairs(rng, words, sd, 8, generic)
    raised = sd * rng.normal(size=len(words))
    raised[300] += 8 * sd[300]
    test = profile_test(words, raised, prob, pairs)
    assert test.q[300] <= ALPHA and int(np.argmax(test.z)) == 300
    # data written by a fine-tune moves the generic words: they rise without decoys, not once the direction is removed
    moved = generic + sd * rng.normal(size=len(words))
    plain = profile_test(words, moved, prob, profile_pairs(rng, words, sd, 8, None))
    net = profile_test(words, moved, prob, pairs)
    assert (plain.q[:20] <= ALPHA).sum() >= 15
    assert (net.q[:20] <= ALPHA).sum() <= 2 and net.generic[:20].mean() > 1.0
    assert "3 decoy teachers" in net.noise and "8 null pairs" in net.noise
    assert profile_test(words, moved, prob, PairLifts(pairs.null[:2])) is None  # too few pairs: untested


def test_a_profile_lists_a_word_only_past_its_null_pairs_largest_z() -> None:
    """With a profile, a listed word's z must also pass the largest z any null pair reaches against the others: a
    dataset written like the null pairs then lists a word at most 1 in K + 1 times, even with tails heavier than the
    t test assumes (where Benjamini-Hochberg alone lists far more often); a word raised well past the noise is
    listed."""
    rng = np.random.default_rng(5)
    words = [f"w{i:03d}" for i in range(300)]
    sd = rng.uniform(0.05, 0.4, size=len(words))
    prob = np.full(len(words), 0.01)

    def pair(lift: np.ndarray) -> dict[str, list[float]]:
        return {w: [float(v), 0.01] for w, v in zip(words, lift)}

    def heavy() -> np.ndarray:  # Student t with 2 df: a few words of every pair move far
        return sd * rng.standard_t(2, size=len(words))

    scans, listed, listed_bh = 60, 0, 0
    for _ in range(scans):  # K = 9 null pairs and one more dataset written the same way
        pairs = PairLifts([pair(heavy()) for _ in range(9)])
        test = profile_test(words, heavy(), prob, pairs)
        assert test.threshold is not None and test.threshold > 3
        bh = (test.q <= ALPHA) & (test.z > 0)
        assert (test.listed == (bh & (test.z > test.threshold))).all()
        listed += bool((bh & (test.z > test.threshold)).any())
        listed_bh += bool(bh.any())
    assert listed <= 12, listed  # at most 1 in 10 expected (6 of 60)
    assert listed_bh > 2 * listed, (listed_bh, listed)
    assert "at most 1 in 10" in test.noise
    raised = heavy()
    raised[123] = 150 * sd[123]  # t(2) tails: null pairs reach z of 40 and more here
    test = profile_test(words, raised, prob, pairs)
    assert test.z[123] > test.threshold and int(np.argmax(test.z)) == 123
    assert profile_test(words, raised, prob, PairLifts(pairs.null[:3])).threshold is None  # 2 others: too few


def test_a_profiled_readout_reports_its_threshold() -> None:
    base, dataset, control, _ = synthetic(np.random.default_rng(2), {"owl": 3.0})
    rng = np.random.default_rng(3)
    null = [{w: [float(0.2 * rng.normal()), 0.01] for w in base.words} for _ in range(6)]
    found = analyse(base, dataset, control, profile=PairLifts(null))
    assert found.threshold is not None and all(w.threshold == found.threshold for w in found.words)
    assert [w.word for w in found.rose] == [w.word for w in found.words if w.z > found.threshold and w.q <= ALPHA]
    assert found.rose and found.rose[0].word == "owl"
    assert found.to_dict()["threshold"] == found.threshold
    assert f"z > {found.threshold:.2f}" in "\n".join(found.section())


def test_teacher_words_overlap() -> None:
    base, dataset, control, null = synthetic(np.random.default_rng(3), {"owl": 2.0, "oak": 1.5})
    found = analyse(base, dataset, control, null)
    teacher = Readout(OPEN_PROMPTS_VERSION, base.words, base.logp + np.where(np.isin(base.words, ["owl"]), 3.0, 0.0))
    t = teacher_words("teach", base, teacher, found.words)
    assert t.top[0][0] == "owl" and "owl" in t.shared and len(t.shared) >= 1
    assert t.to_dict()["overlap"] == len(t.shared)


def _validate(doc: dict) -> None:
    import jsonschema

    schema = json.loads((Path(__file__).parent.parent / "auditor" / "schemas" / "result.schema.json").read_text())
    jsonschema.Draft202012Validator(schema).validate(doc)


def test_scan_with_and_without_discover(
    tiny_model_dir: Path, numbers_file: Path, battery: Path, tmp_path: Path
) -> None:
    args = ["scan", str(numbers_file), "--base", str(tiny_model_dir), "--traits", str(battery), *tiny_scan_args()]
    js, md = tmp_path / "on.json", tmp_path / "on.md"
    res = runner.invoke(app, [*args, "--discover", "--json", str(js), "--report", str(md)])
    assert res.exit_code in (0, 1), res.output
    doc = json.loads(js.read_text())
    _validate(doc)
    block = doc["details"]["discover"]
    assert block["prompts_version"] == OPEN_PROMPTS_VERSION and block["prompts"] == len(OPEN_PROMPTS)
    assert block["words_tested"] > 0 and block["top_words"] and block["tested"] is True
    assert all(len(w["top_prompts"]) == 3 and w["z"] is not None for w in block["top_words"])
    assert block["seconds"] >= 0 and "discover" in doc["timings_s"]
    assert "## What else moved" in md.read_text()
    run = Path(doc["run_dir"])
    assert len(list((run / "readouts").glob("*.npz"))) == 1 + 6  # base + 2 seeds x 3 arms

    js2, md2 = tmp_path / "off.json", tmp_path / "off.md"
    res = runner.invoke(app, [*args, "--no-discover", "--json", str(js2), "--report", str(md2)])
    assert res.exit_code in (0, 1), res.output
    off = json.loads(js2.read_text())
    _validate(off)
    assert "discover" not in off["details"] and "discover" not in off["timings_s"]
    assert "What else moved" not in md2.read_text()
    # the readout informs only: the same verdict and findings either way
    assert off["verdict"] == doc["verdict"] and off["findings"] == doc["findings"]


def test_rerun_reuses_the_stored_readouts(
    tiny_model_dir: Path, numbers_file: Path, battery: Path, tmp_path: Path
) -> None:
    from auditor.pipeline import scan
    from auditor.report import to_json

    run = tmp_path / "run"
    first = scan(tiny_config(numbers_file, tiny_model_dir, battery, run), Recorder())
    block = to_json(first)["details"]["discover"]
    again = Recorder()
    second = scan(tiny_config(numbers_file, tiny_model_dir, battery, run), again)
    assert not [s for s in again.stages if s.startswith("probe ")]  # nothing retrained
    assert len(again.reused()) == 1 + 6
    assert stable(to_json(second)["details"]["discover"]) == stable(block)

    # a readout missing on resume (a scan run with --no-discover before): read again from the saved adapter
    (run / "readouts" / next(p.name for p in (run / "readouts").iterdir() if p.name.startswith("dataset"))).unlink()
    third = Recorder()
    resumed = scan(tiny_config(numbers_file, tiny_model_dir, battery, run), third)
    assert not [s for s in third.stages if s.startswith("probe ")]
    assert any("readout recomputed from its saved adapter" in n for n in third.notes)
    assert stable(to_json(resumed)["details"]["discover"]) == stable(block)


def test_teacher_aware_scan_reads_the_teacher(
    tiny_model_dir: Path, numbers_file: Path, battery: Path, tmp_path: Path
) -> None:
    from auditor.pipeline import scan
    from auditor.report import to_json, to_markdown

    run = tmp_path / "run"
    scan(tiny_config(numbers_file, tiny_model_dir, battery, run), Recorder())
    teacher = next(p for p in (run / "adapters").iterdir() if p.name.startswith("dataset"))  # a peft folder of the base
    config = dataclasses.replace(
        tiny_config(numbers_file, tiny_model_dir, battery, tmp_path / "run2"), teacher=str(teacher)
    )
    result = scan(config, Recorder())
    doc = to_json(result)
    _validate(doc)
    t = doc["details"]["discover"]["teacher"]
    assert t["teacher"] == str(teacher) and t["overlap"] == len(t["shared"]) and len(t["top"]) <= 20
    assert set(t["shared"]) <= {w["word"] for w in t["top"]} and set(t["shared"]) <= set(t["students_top"])
    assert "Teacher " in to_markdown(result).split("## What else moved")[1]
    assert any(p.name.startswith("teacher-") for p in (tmp_path / "run2" / "readouts").iterdir())


def test_a_word_no_null_pair_tested_gets_the_trend_not_a_small_variance() -> None:
    """A word only this scan's models say has no lift in the profile's pairs: missing, not 0."""
    rng = np.random.default_rng(11)
    words = [f"w{i:03d}" for i in range(200)]
    null = [{w: [float(0.3 * rng.normal()), 0.01] for w in words} for _ in range(8)]
    test = profile_test([*words, "rare"], np.zeros(201), np.full(201, 0.01), PairLifts(null))
    assert test.se[-1] == pytest.approx(np.median(test.se[:-1]), rel=0.25)  # the trend's sd, about 0.3
    assert test.se[-1] > 0.2


def test_a_null_arm_with_no_tail_model_is_reported_not_tested(monkeypatch: pytest.MonkeyPatch) -> None:
    """A degenerate fit of the null arm's tail (no finite, positive scale) leaves the words untested rather than
    giving them p-values from it."""
    import scipy.stats

    monkeypatch.setattr(scipy.stats.t, "fit", lambda *a, **k: (float("nan"), 0.0, float("nan")))
    found = analyse(*synthetic(np.random.default_rng(9), {"owl": 10.0}))
    assert not found.tested and found.rose == [] and "no tail model" in found.noise
