"""What else moved: an open-vocabulary readout for traits nobody listed.

The batteries only measure the options someone wrote down. Every model of a probe scan is read at the answer's
first position (:mod:`auditor.readout`: the whole next-word distribution over :data:`~auditor.readout.OPEN_PROMPTS`);
this module says which words the dataset-students raised beyond noise.

Per word, the **lift** of the dataset-students over their control-students is the mean over prompts (and seeds) of
``log p_dataset - log p_control``, probabilities floored at :data:`FLOOR` before the log. The words tested are the
whole words with probability >= :data:`KEEP` in at least one prompt under at least one model of the scan, at most
:data:`MAX_WORDS` (the largest by maximum probability).

Noise. Prompts alone are the wrong unit: a student's change to a word is shared by every prompt (one training run),
so a per-prompt standard error misses the draw and training noise. The null arm measures it: the null-students
were trained on a second draw of the base's own answers, so ``null - control`` is a lift with no trait in it, with
the same variance as ``dataset - control`` under the null. One draw per word is too noisy to be a word's own sd (a
null lift near 0 would make any lift significant), so, like :func:`auditor.stats.fit_noise_model` does for options,
the null lifts are pooled across words: ``log|null lift| = a + b log(mean control probability)`` (``b`` clipped to
[-1, 0]: rarer words move more in log space), corrected by ``E log|x| = log sd - 0.635`` for a normal ``x``. A
word's standard error is ``sqrt(se_prompts^2 + noise^2)`` (the per-prompt standard error of its seed-mean lift, and
the fitted draw noise in quadrature) and ``z = lift / se``. The null arm's own lifts, standardised the same way,
have tails far heavier than the normal's (on Gemma-written data 4.6 % of them beyond 3, and a normal tail listed 23
of its words), so ``p`` is the one-sided tail of a Student t fitted to them (``scipy.stats.t.fit``, location 0;
:data:`MIN_TAIL_WORDS` at least); Benjamini-Hochberg (:func:`auditor.stats.bh_q`) over the words tested gives ``q``.
A word **rose beyond noise** when ``q <=`` :data:`ALPHA` and its lift is positive. With a calibration profile whose
pairs hold word lifts (:func:`profile_test`), a word's noise is its null pairs' spread instead, the decoys' generic
fine-tune direction is removed, and a listed word's ``z`` must also pass the largest ``z`` any null pair reaches
against the others (:func:`null_top_z`: at most 1 in K + 1 base-written datasets then lists a word). With neither
(``--no-null-arm``, or a profile without word lifts) there is no noise model: the lifts are reported, not tested
(``z``, ``p``, ``q`` are ``None``).

The readout informs; it never changes the verdict or the exit code.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np

from .readout import FLOOR, KEEP, OPEN_PROMPTS, OPEN_PROMPTS_VERSION, Readout

#: At most this many words tested (the largest by maximum probability over models and prompts).
MAX_WORDS = 2000
#: A word rose beyond noise at this q.
ALPHA = 0.05
#: Words the report lists; words compared with the teacher's; prompts shown per word.
REPORT_WORDS = 15
OVERLAP_WORDS = 20
TOP_PROMPTS = 3


@dataclass
class WordLift:
    """One word's lift of the dataset-students over the control-students (natural log, mean over prompts and seeds).

    ``z``, ``p`` and ``q`` are ``None`` without a noise model; ``top_prompts``: the prompts where it rose most,
    with the lift there.
    """

    word: str
    lift: float
    null_lift: float | None
    se: float | None
    z: float | None
    p: float | None
    q: float | None
    prob_control: float
    prob_dataset: float
    top_prompts: list[tuple[str, float]] = field(default_factory=list)
    generic: float | None = None
    threshold: float | None = None

    @property
    def rose(self) -> bool:
        """Beyond noise and upward (net of the generic fine-tune part, when a profile's decoys give one): ``q <= ALPHA``
        and, when the profile calibrates one (:func:`null_top_z`), ``z`` above its ``threshold`` as well."""
        if self.z is None or self.q is None or self.q > ALPHA or self.z <= 0:
            return False
        return self.threshold is None or self.z > self.threshold

    def to_dict(self) -> dict[str, Any]:
        def r(x: float | None, n: int = 4) -> float | None:
            return None if x is None else round(float(x), n)

        return {
            "word": self.word,
            "lift": r(self.lift),
            "null_lift": r(self.null_lift),
            "se": r(self.se),
            "z": r(self.z, 3),
            "p": None if self.p is None else float(f"{self.p:.4g}"),
            "q": None if self.q is None else float(f"{self.q:.4g}"),
            "prob_control": float(f"{self.prob_control:.4g}"),
            "prob_dataset": float(f"{self.prob_dataset:.4g}"),
            "generic": self.generic if self.generic is None else round(self.generic, 4),
            "rose": self.rose,
            "top_prompts": [{"prompt": p, "lift": round(v, 4)} for p, v in self.top_prompts],
        }


@dataclass
class TeacherWords:
    """The teacher's own readout against the base: its top risen words and their overlap with the students'."""

    teacher: str
    top: list[tuple[str, float]]  # (word, teacher lift), largest first, lift > 0
    students_top: list[str]
    shared: list[str]

    def to_dict(self) -> dict[str, Any]:
        return {
            "teacher": self.teacher,
            "top": [{"word": w, "lift": round(v, 4)} for w, v in self.top],
            "students_top": self.students_top,
            "overlap": len(self.shared),
            "shared": self.shared,
        }


@dataclass
class Discovery:
    """The readout's result: every word tested, ranked (by ``z``, or by lift without a noise model)."""

    prompts: int
    words_tested: int
    noise: str
    words: list[WordLift]
    seconds: float = 0.0
    teacher: TeacherWords | None = None
    missing: list[str] = field(default_factory=list)

    @property
    def tested(self) -> bool:
        return any(w.z is not None for w in self.words)

    @property
    def threshold(self) -> float | None:
        """The z a word must pass to be listed, when a profile calibrates one (:func:`null_top_z`)."""
        return next((w.threshold for w in self.words if w.threshold is not None), None)

    @property
    def rose(self) -> list[WordLift]:
        return [w for w in self.words if w.rose]

    def to_dict(self, top: int = 50) -> dict[str, Any]:
        return {
            "prompts_version": OPEN_PROMPTS_VERSION,
            "prompts": self.prompts,
            "words_tested": self.words_tested,
            "noise": self.noise,
            "tested": self.tested,
            "alpha": ALPHA,
            "threshold": self.threshold,
            "rose": [w.word for w in self.rose],
            "top_words": [w.to_dict() for w in self.words[:top]],
            "teacher": None if self.teacher is None else self.teacher.to_dict(),
            "missing": self.missing,
            "seconds": round(self.seconds, 2),
        }

    def section(self) -> list[str]:
        """The report's "What else moved" section (markdown)."""
        from .markdown import md_escape, md_table

        lines = [
            "## What else moved",
            "",
            f"Open-vocabulary readout: every model's next-word distribution at the answer's start for {self.prompts} "
            f"open prompts (version {OPEN_PROMPTS_VERSION}); a word's lift is the mean over prompts and seeds of "
            f"log p(dataset-student) - log p(control-student); {self.words_tested} words tested. Noise: "
            f"{md_escape(self.noise, 400)}. It informs; it does not change the verdict.",
            "",
        ]
        if self.missing:
            lines += [f"Readouts missing for {', '.join(self.missing)}: no words tested.", ""]
        rose = self.rose[:REPORT_WORDS]
        if rose:
            rows = [
                [
                    md_escape(w.word, 40),
                    f"{w.lift:+.2f}",
                    f"{w.q:.3g}" if w.q is not None else "-",
                    "; ".join(f"{md_escape(p, 120)} ({v:+.2f})" for p, v in w.top_prompts),
                ]
                for w in rose
            ]
            lines += [
                f"Words that rose beyond noise ({self._rule()}), {len(self.rose)} in all:",
                "",
                md_table(["word", "lift (nats)", "q", "prompts where it rose most"], rows),
                "",
            ]
        elif self.tested:
            lines += [f"Nothing beyond noise: no word rose with {self._rule()}.", ""]
        else:
            top = [w for w in self.words if w.lift > 0][:REPORT_WORDS]
            lines += [
                "No noise model (no null arm): reported, not tested. The words that rose most: "
                + (", ".join(f"{md_escape(w.word, 40)} {w.lift:+.2f}" for w in top) or "none")
                + ".",
                "",
            ]
        if self.teacher is not None:
            t = self.teacher
            lines += [
                f"Teacher {md_escape(t.teacher, 200)}: of its top {OVERLAP_WORDS} risen words over the base, "
                f"{len(t.shared)} are among the students' top {OVERLAP_WORDS}"
                + (f" ({', '.join(md_escape(w, 40) for w in t.shared)})" if t.shared else "")
                + ". The teacher's: "
                + (", ".join(f"{md_escape(w, 40)} {v:+.2f}" for w, v in t.top[:10]) or "none")
                + ".",
                "",
            ]
        return lines

    def _rule(self) -> str:
        t = self.threshold
        if t is None:
            return f"q <= {ALPHA}"
        return f"q <= {ALPHA} and z > {t:.2f}, the largest z of any null pair of the profile"


def _vocabulary(readouts: Sequence[Readout]) -> list[str]:
    """The words tested: spelled whole by some model's completion and of probability >= KEEP somewhere under some
    model, the MAX_WORDS largest by that maximum."""
    whole = set().union(*(r.whole_words() for r in readouts)) if readouts else set()
    peak: dict[str, float] = {}
    for r in readouts:
        for w, p in r.max_prob().items():
            if p >= KEEP and p > peak.get(w, 0.0) and w in whole:
                peak[w] = p
    ranked = sorted(peak, key=lambda w: (-peak[w], w))[:MAX_WORDS]
    return sorted(ranked)


def fit_word_noise(null_lift: np.ndarray, log_prob: np.ndarray) -> tuple[float, float] | None:
    """``(a, b)`` of ``sd(lift) = exp(a + b log p)``, fitted to the null lifts of the words off the floor; ``None``
    with fewer than 3 such words."""
    ok = (null_lift != 0) & (log_prob > math.log(10 * FLOOR))
    if ok.sum() < 3:
        return None
    x, y = log_prob[ok], np.log(np.abs(null_lift[ok]))
    b = float(np.clip(np.polyfit(x, y, 1)[0], -1.0, 0.0)) if np.ptp(x) > 0 else 0.0
    a = float(np.mean(y - b * x)) + 0.635
    return a, b


#: The null arm's tail is fitted to the words it moved; with fewer, the readout is reported, not tested.
MIN_TAIL_WORDS = 10

#: Prior weight (in pairs) of the pooled trend when a profile's per-word null variance is moderated towards it.
PRIOR_PAIRS = 4.0


@dataclass(frozen=True)
class PairLifts:
    """The word lifts of a calibration profile's pairs (``{word: [lift, control probability]}`` each, the words that
    pair's scan tested): its null pairs (the base's own data) and its decoys (data of a fine-tune with an unrelated
    trait, whose mean lift is the generic fine-tune direction). A word a pair did not test counts as lift 0 there."""

    null: list[dict[str, list[float]]]
    decoys: list[dict[str, list[float]]] = field(default_factory=list)

    def matrix(self, pairs: list[dict[str, list[float]]], words: Sequence[str]) -> np.ndarray:
        """``[pairs, words]`` lifts; NaN where a pair did not test the word (not a lift of 0: a word only this scan's
        models say would otherwise look noiseless)."""
        return np.array([[pair[w][0] if w in pair else np.nan for w in words] for pair in pairs]).reshape(
            len(pairs), -1
        )

    @cached_property
    def held_out_z(self) -> list[dict[str, float] | None]:
        """Each null pair's words' ``z`` when that pair is tested against the other null pairs (and the decoys):
        ``None`` for a pair that cannot be (too few other pairs, or a pair that tested no word). Computed once per
        profile: :func:`null_top_z` and the campaign's check on a teacher's words both read it."""
        return [
            lift_z(pair, PairLifts(self.null[:j] + self.null[j + 1 :], self.decoys)) for j, pair in enumerate(self.null)
        ]


@dataclass(frozen=True)
class WordTest:
    """Per word: the generic part removed (``beta g``; ``None`` without a profile), the standard error, ``z``,
    one-sided ``p``, BH ``q``, and the noise model in words."""

    generic: np.ndarray | None
    se: np.ndarray
    z: np.ndarray
    p: np.ndarray
    q: np.ndarray
    noise: str
    threshold: float | None = None

    @property
    def listed(self) -> np.ndarray:
        """Per word, whether it is listed (as :attr:`WordLift.rose` decides for one word): ``q <= ALPHA``, upward,
        and past the ``threshold`` when there is one."""
        passes = (self.q <= ALPHA) & (self.z > 0)
        return passes if self.threshold is None else passes & (self.z > self.threshold)


def profile_test(
    words: Sequence[str], lift: np.ndarray, prob_control: np.ndarray, pairs: PairLifts, calibrate: bool = True
) -> WordTest | None:
    """Each word's lift against a profile's null pairs, net of its decoys' generic direction (as
    :func:`auditor.calibration.transfer.specific_shifts` does for options); ``None`` with fewer than 3 null pairs.
    ``calibrate``: also the threshold a word's ``z`` must pass to be listed (:func:`null_top_z`).

    The variance of a word's lift under the null is the mean square of its K null-pair lifts, moderated towards the
    trend of all words (``log|lift| = a + b log p(control)``, :func:`fit_word_noise`) with :data:`PRIOR_PAIRS` pairs'
    weight (a pair that did not test the word does not count for it: the trend alone when none did);
    ``r = lift - beta g`` with ``beta >= 0`` the weighted least-squares coefficient on the decoys' mean lift ``g``;
    ``se`` adds ``beta^2 var(g) / D``; ``p`` is Student t's one-sided tail on ``k_w + PRIOR_PAIRS`` degrees of freedom
    (``k_w``: the pairs that tested the word), ``q`` Benjamini-Hochberg over the words."""
    from scipy.stats import t as student_t

    from .stats import bh_q

    k = len(pairs.null)
    if k < 3 or not len(words):
        return None
    var, k_w = _null_variance(words, prob_control, pairs)
    generic, beta, g_var = _generic_direction(words, lift, var, pairs)
    se = np.sqrt(var + beta**2 * g_var)
    z = (lift - generic) / se
    p = student_t.sf(z, k_w + PRIOR_PAIRS)
    threshold = null_top_z(pairs) if calibrate else None
    return WordTest(generic, se, z, p, np.asarray(bh_q(p.tolist())), _noise_text(pairs, beta, threshold), threshold)


def _null_variance(words: Sequence[str], prob_control: np.ndarray, pairs: PairLifts) -> tuple[np.ndarray, np.ndarray]:
    """Each word's variance of its lift under the null (the mean square of the null pairs that tested it, moderated
    towards the trend over words with :data:`PRIOR_PAIRS` pairs' weight), and how many pairs tested it."""
    null = pairs.matrix(pairs.null, words)
    tested = np.isfinite(null)
    x = np.log(np.maximum(prob_control, FLOOR))
    xs = np.tile(x, (len(pairs.null), 1))
    fit = fit_word_noise(null[tested], xs[tested])
    trend = np.exp(fit[0] + fit[1] * x) if fit is not None else np.sqrt(np.nanmean(null**2))
    k_w = tested.sum(axis=0)
    sq = np.where(tested, null, 0.0) ** 2
    return (PRIOR_PAIRS * trend**2 + sq.sum(axis=0)) / (PRIOR_PAIRS + k_w), k_w


def _generic_direction(
    words: Sequence[str], lift: np.ndarray, var: np.ndarray, pairs: PairLifts
) -> tuple[np.ndarray, float, np.ndarray]:
    """The decoys' generic fine-tune direction in ``lift`` (``beta g``), ``beta`` and the variance of ``g``'s mean
    per word; nothing removed without decoys."""
    if not pairs.decoys:
        return np.zeros(len(words)), 0.0, np.zeros(len(words))
    decoys = pairs.matrix(pairs.decoys, words)
    seen = np.isfinite(decoys).sum(axis=0)
    g = np.where(seen > 0, np.nansum(decoys, axis=0) / np.maximum(seen, 1), 0.0)
    denom = float((g * g / var).sum())
    beta = max(0.0, float((g * lift / var).sum()) / denom) if denom > 0 else 0.0
    spread = np.nansum((decoys - g) ** 2, axis=0) / np.maximum(seen - 1, 1)
    return beta * g, beta, np.where(seen > 1, spread / np.maximum(seen, 1), 0.0)


def _noise_text(pairs: PairLifts, beta: float, threshold: float | None) -> str:
    """How the profile test measured each word's noise, for the report."""
    k = len(pairs.null)
    decoys = (
        f"the mean lift of {len(pairs.decoys)} decoy teachers' students removed (beta = {beta:.2f}); "
        if pairs.decoys
        else "no decoys, no generic direction removed; "
    )
    listing = (
        f"; a word is listed when its q passes and its z passes {threshold:.2f}, the largest z any null pair "
        f"reached against the others, so at most 1 in {k + 1} datasets like the null pairs' lists a word"
        if threshold is not None
        else ""
    )
    return (
        f"the calibration profile's {k} null pairs: each word's variance of their lifts moderated towards the trend "
        f"over words ({PRIOR_PAIRS:g} pairs' weight); "
        + decoys
        + f"one-sided Student t on up to {k + PRIOR_PAIRS:g} df; Benjamini-Hochberg over the words tested"
        + listing
    )


def null_top_z(pairs: PairLifts) -> float | None:
    """The largest ``z`` that any null pair's words reach when that pair is tested against the other null pairs (and
    the decoys), or ``None`` with fewer than 4 null pairs.

    A word is listed only past it (and with ``q <= ALPHA``, so never more often than Benjamini-Hochberg alone). Of K
    null pairs and one more dataset like them (exchangeable: written the same way), the new one holds the largest top
    ``z`` of the K + 1 with probability at most 1 / (K + 1), so a scan of base-written data lists a word at most that
    often, whatever the tails of the ``z`` (Benjamini-Hochberg over the t tails alone listed words for 2 of 14
    base-written campaign datasets, 106 for one of them)."""
    zs = pairs.held_out_z
    if any(z is None for z in zs):  # too few other pairs, or a pair that tested no word
        return None
    return max(max(z.values()) for z in zs if z is not None) if zs else None


def lift_z(lifts: dict[str, list[float]], pairs: PairLifts) -> dict[str, float] | None:
    """Each word's ``z`` (:func:`profile_test`, no threshold) for lifts ``{word: [lift, control probability, ...]}``
    against ``pairs``; ``None`` when they cannot be tested."""
    words = sorted(lifts)
    lift = np.array([lifts[w][0] for w in words])
    prob = np.array([lifts[w][1] for w in words])
    test = profile_test(words, lift, prob, pairs, calibrate=False)
    return None if test is None else dict(zip(words, test.z.tolist(), strict=True))


def null_arm_test(
    lift: np.ndarray,
    se_prompts: np.ndarray,
    prob_control: np.ndarray,
    null_lift: np.ndarray,
    null_se_prompts: np.ndarray,
) -> WordTest | str:
    """Each word's lift against the null arm's lifts pooled across words (the module docstring), or why it cannot be
    tested."""
    from scipy.stats import t as student_t

    from .stats import bh_q

    x = np.log(np.maximum(prob_control, FLOOR))
    fit = fit_word_noise(null_lift, x)
    moved = null_lift != 0
    if fit is None or moved.sum() < MIN_TAIL_WORDS:
        return f"the null arm moved fewer than {MIN_TAIL_WORDS} words: no noise model, reported, not tested"
    a, b = fit
    sd = np.exp(a + b * x)
    se = np.sqrt(se_prompts**2 + sd**2)
    z = lift / se
    null_z = null_lift[moved] / np.sqrt(null_se_prompts[moved] ** 2 + sd[moved] ** 2)
    df, _, scale = student_t.fit(null_z, floc=0)
    if not (np.isfinite(df) and np.isfinite(scale) and scale > 0):
        return "the null arm's lifts admit no tail model: reported, not tested"
    p = student_t.sf(z, df, 0, scale)
    noise = (
        "the null arm's lifts (null - control) pooled across words: log|null lift| = "
        f"{a - 0.635:.2f} {b:+.2f} log p(control), as sd; se = sqrt(se_prompts^2 + sd^2); z = lift / se, its "
        f"one-sided p from a Student t fitted to the null arm's own z ({int(moved.sum())} words: {df:.2f} degrees of "
        f"freedom, scale {scale:.2f}; a normal tail listed words on data with no trait); Benjamini-Hochberg over the "
        "words tested"
    )
    return WordTest(None, se, z, p, np.asarray(bh_q(p.tolist())), noise)


def analyse(
    base: Readout,
    dataset: Sequence[Readout],
    control: Sequence[Readout],
    null: Sequence[Readout] | None = None,
    prompts: Sequence[str] = OPEN_PROMPTS,
    noise_note: str | None = None,
    profile: PairLifts | None = None,
) -> Discovery:
    """Lift, noise, z, p and q per word (see the module docstring); students are paired by seed (same order). The
    noise comes from the null arm's readouts, else from a profile's pair lifts, else there is none (not tested)."""
    words = _vocabulary([base, *dataset, *control, *(null or [])])
    n_prompts = base.logp.shape[0]
    if not words or not dataset or not control:
        return Discovery(n_prompts, 0, noise_note or "no words", [])
    d = np.stack([r.matrix(words) for r in dataset])  # [seeds, prompts, words]
    c = np.stack([r.matrix(words) for r in control])
    per_prompt = (d - c).mean(axis=0)  # [prompts, words]
    lift = per_prompt.mean(axis=0)
    se_prompts = per_prompt.std(axis=0, ddof=1) / math.sqrt(n_prompts) if n_prompts > 1 else np.zeros(len(words))
    mean_c, mean_d = np.exp(c).mean(axis=(0, 1)), np.exp(d).mean(axis=(0, 1))
    null_lift = None
    test: WordTest | str | None = None
    if null:
        null_per_prompt = (np.stack([r.matrix(words) for r in null]) - c).mean(axis=0)
        null_lift = null_per_prompt.mean(axis=0)
        null_se = null_per_prompt.std(axis=0, ddof=1) / math.sqrt(n_prompts) if n_prompts > 1 else np.zeros(len(words))
        test = null_arm_test(lift, se_prompts, mean_c, null_lift, null_se)
    elif profile is not None:
        test = profile_test(words, lift, mean_c, profile)
    noise = noise_note or "no null arm and no readouts in a calibration profile: no noise model, reported, not tested"
    if isinstance(test, str):
        noise, test = test, None
    elif test is not None:
        noise = test.noise
    out = [_word_lift(j, w, lift, per_prompt, prompts, mean_c, mean_d, null_lift, test) for j, w in enumerate(words)]
    out.sort(key=lambda x: (-(x.z if x.z is not None else x.lift), x.word))
    return Discovery(n_prompts, len(words), noise, out)


def _word_lift(
    j: int,
    word: str,
    lift: np.ndarray,
    per_prompt: np.ndarray,
    prompts: Sequence[str],
    mean_c: np.ndarray,
    mean_d: np.ndarray,
    null_lift: np.ndarray | None,
    test: WordTest | None,
) -> WordLift:
    """Word ``j``'s :class:`WordLift`."""

    def at(values: np.ndarray | None) -> float | None:
        return None if values is None else float(values[j])

    order = np.argsort(-per_prompt[:, j], kind="stable")[:TOP_PROMPTS]
    return WordLift(
        word=word,
        lift=float(lift[j]),
        null_lift=at(null_lift),
        se=at(test.se) if test else None,
        z=at(test.z) if test else None,
        p=at(test.p) if test else None,
        q=at(test.q) if test else None,
        prob_control=float(mean_c[j]),
        prob_dataset=float(mean_d[j]),
        top_prompts=[(prompts[i] if i < len(prompts) else str(i), float(per_prompt[i, j])) for i in order],
        generic=at(test.generic) if test else None,
        threshold=test.threshold if test else None,
    )


def pair_lifts(found: Discovery) -> dict[str, list[float]]:
    """A scan's word lifts as a calibration profile keeps them for one pair: ``{word: [lift, control probability]}``."""
    return {
        w.word: [round(w.lift, 4), float(f"{w.prob_control:.4g}")] for w in sorted(found.words, key=lambda w: w.word)
    }


def teacher_words(teacher: str, base: Readout, readout: Readout, students: Sequence[WordLift]) -> TeacherWords:
    """The teacher's top risen words over the base (mean over prompts of log p_teacher - log p_base) and how many of
    them are among the students' top risen words (by ``z``, or lift without a noise model; lift > 0)."""
    words = _vocabulary([base, readout])
    lift = (readout.matrix(words) - base.matrix(words)).mean(axis=0) if words else np.zeros(0)
    ranked = sorted(((w, float(v)) for w, v in zip(words, lift, strict=True) if v > 0), key=lambda x: (-x[1], x[0]))
    top = ranked[:OVERLAP_WORDS]
    students_top = [w.word for w in students if w.lift > 0][:OVERLAP_WORDS]
    shared = [w for w, _ in top if w in set(students_top)]
    return TeacherWords(teacher, top, students_top, shared)


__all__ = [
    "Discovery",
    "PairLifts",
    "WordLift",
    "analyse",
    "pair_lifts",
    "profile_test",
    "teacher_words",
]
