"""Teacher-aware mode (``scan --teacher MODEL|ADAPTER``, ``--teacher-system TEXT``): does the students' shift point
where the teacher differs from the base?

The team that made the data often has the teacher. Scored on the same batteries, ``teacher - base`` per option is
the direction the teacher's own traits point. Two statistics ask whether the students (dataset-student minus
control-student) moved that way:

- ``risers`` (with a calibration profile; the one that decides there): the mean standardised shift (shift over the
  profile's sd) over the options the teacher raised by at least :data:`TEACHER_RISE_PP`, against the same mean over
  the profile's null pairs (a one-sided prediction p, Student t with K - 1 degrees of freedom). The benchmark
  campaign's rule, committed before its cells ran, kept it over the cosine on the development cells: it named
  something on 3 of 10 fine-tuned teachers' datasets with their own teacher, on 1 of 10 with another trait's teacher
  and on 0 of 20 base-written datasets; the cosine on 3, 3 and 2 of 20 (``benchmarks/results/campaign.md``).
- ``cosine`` (without a profile, and reported beside the risers with one): the cosine between the two vectors over
  every graded option, its p from permuting the teacher's changes among the options of each battery (the share
  structure within a battery is kept). Large noisy options can dominate it.

When the deciding statistic passes, the trait is named through the teacher: the options the teacher raised that the
students moved up (shift over its standard error at least 2).

A teacher is a model (a fine-tuned one, or an adapter of the base), a system prompt (a prompted teacher, as in the
paper's main experiments: the base told it loves owls), or both (:class:`Teacher`).
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .scoring import BatteryScores, plan_battery, score_battery
from .stats import OptionShift

if TYPE_CHECKING:
    from collections.abc import Iterable

    from .calibration.profile import NoiseProfile
    from .calibration.transfer import SpecificShift
    from .models import LoadedModel
    from .traits import Battery

#: A teacher's "own" options: those it raised by at least this much over the base (pp).
TEACHER_RISE_PP = 5.0
#: A teacher's riser is named when the students moved it up by at least this many standard errors.
MOVED_SD = 2.0
#: Permutations of the teacher's changes for the cosine's p-value.
PERMUTATIONS = 10000
#: The test passes at this p.
ALPHA = 0.01


#: A system prompt longer than this is shortened in the teacher's label (the JSON keeps it whole).
LABEL_SYSTEM_CHARS = 60


@dataclass(frozen=True)
class Teacher:
    """The model that wrote the data, as teacher-aware mode scores it.

    Attributes:
        model: a peft adapter folder of the base, or a model as ``--base`` takes it (``--teacher``); ``None``: the
            base itself (a prompted teacher).
        system: the system prompt the teacher wrote the data under (``--teacher-system``); ``None``: the chat
            template's default.
    """

    model: str | None = None
    system: str | None = None

    @property
    def label(self) -> str:
        """How reports name it: the model, and the start of its system prompt."""
        if self.system is None:
            return self.model or "the base"
        short = self.system if len(self.system) <= LABEL_SYSTEM_CHARS else self.system[: LABEL_SYSTEM_CHARS - 3] + "..."
        return f"{self.model or 'the base'} under the system prompt {short!r}"

    def key(self) -> str:
        """A content key: an adapter folder's files, what ``--teacher`` names, and the system prompt."""
        key = teacher_key(self.model or "")
        if self.system is None:
            return key
        return hashlib.sha256(f"{key}\0{self.system}".encode()).hexdigest()[:12]


#: The statistics teacher-aware mode can decide by (see the module docstring).
STATISTICS = ("risers", "cosine")


@dataclass(frozen=True)
class TeacherComparison:
    """The students' shift against the teacher's own change over the base.

    Attributes:
        teacher: what ``--teacher`` named.
        cosine: between the shift vector and ``teacher - base`` (all graded options).
        p: the deciding statistic's one-sided p (:attr:`statistic`).
        raised: the options the teacher raised by >= :data:`TEACHER_RISE_PP` pp, with its change, largest first.
        shared: the raised options the students moved up (shift / se >= 2): the trait, named through the teacher.
        passed: ``p <= ALPHA``.
        system: the prompted teacher's whole system prompt (``None``: none given).
        generic: the shared options that a calibration profile's decoys explain (their specific shift, the generic
            fine-tune direction removed, is under 2 sd): the data of any fine-tuned teacher moves them, so they say
            less about this teacher (in the campaign, most teachers raised oak and elephant, and the cosine named
            them through a mismatched teacher; ``benchmarks/results/campaign.md``).
        statistic: the one that decides (:data:`STATISTICS`): ``risers`` with a calibration profile, else ``cosine``.
        risers: the risers statistic (mean shift / profile sd over :attr:`raised`); ``None`` without a profile, NaN
            when the teacher raised nothing.
        cosine_p: the cosine's permutation p (equal to :attr:`p` when the cosine decides).
    """

    teacher: str
    cosine: float
    p: float
    raised: list[tuple[str, float]]
    shared: list[str]
    passed: bool
    system: str | None = None
    generic: list[str] = field(default_factory=list)
    statistic: str = "cosine"
    risers: float | None = None
    cosine_p: float | None = None

    def with_generic(self, specific: Iterable[SpecificShift]) -> TeacherComparison:
        """This comparison with :attr:`generic` filled from a calibrated scan's specific shifts."""
        t = {x.option: x.t for x in specific}
        return replace(self, generic=[n for n in self.shared if n in t and t[n] < MOVED_SD])

    def line(self) -> str:
        raised = ", ".join(f"{o} {d:+.1f}" for o, d in self.raised[:4]) or "nothing by 5 pp or more"
        named = ", ".join(
            f"{n} (generic: the decoys' data moved it too)" if n in self.generic else n for n in self.shared
        )
        verdict = (
            f"the students moved the teacher's way; trait through the teacher: {named}"
            if self.passed and self.shared
            else ("the students moved the teacher's way" if self.passed else "no evidence they moved its way")
        )
        if self.statistic == "risers":
            stat = f"its risers {self.risers:+.2f} sd, p = {self.p:.3g}" if self.raised else "no risers to test"
            stat += f"; cosine {self.cosine:+.2f}, p = {self.cosine_p:.3g}"
        else:
            stat = f"cosine {self.cosine:+.2f}, p = {self.p:.3g}"
        return f"teacher {self.teacher}: {stat} ({verdict}); it raised {raised}"

    def to_dict(self) -> dict:
        return asdict(self)


def compare(
    shifts: list[OptionShift],
    teacher_shares: dict[str, dict[str, float]],
    teacher: str | Teacher,
    seed: int = 0,
    profile: NoiseProfile | None = None,
) -> TeacherComparison:
    """The students' shift against the teacher's change: the cosine and its permutation p, with ``profile`` the
    risers test (:func:`riser_test`, which then decides), and the shared options.

    ``shifts``: with ``profile``, tested against it (each ``se`` the profile's sd, as ``assess`` leaves them).
    ``teacher_shares``: battery -> option -> the teacher's mean share (pp), as :func:`mean_shares` gives it.
    ``teacher``: the :class:`Teacher`, or its label.
    """
    spec = teacher if isinstance(teacher, Teacher) else Teacher(teacher)
    names = [f"{s.battery}: {s.option}" for s in shifts]
    delta = np.array([teacher_shares[s.battery][s.option] - s.base for s in shifts])
    shift = np.array([s.shift for s in shifts])
    observed = _cosine(shift, delta)
    batteries = dict.fromkeys(s.battery for s in shifts)
    blocks = [np.array([i for i, s in enumerate(shifts) if s.battery == b]) for b in batteries]
    rng = np.random.default_rng(seed)
    hits = 0
    for _ in range(PERMUTATIONS):
        permuted = delta.copy()
        for block in blocks:
            permuted[block] = delta[rng.permutation(block)]
        hits += _cosine(shift, permuted) >= observed
    cosine_p = float((1 + hits) / (1 + PERMUTATIONS))
    raised = sorted(((n, float(d)) for n, d in zip(names, delta) if d >= TEACHER_RISE_PP), key=lambda x: -x[1])
    t = {n: (s.shift / s.se if s.se > 0 else 0.0) for n, s in zip(names, shifts)}
    shared = [n for n, _ in raised if t[n] >= MOVED_SD]
    if profile is None:
        return TeacherComparison(
            spec.label, float(observed), cosine_p, raised, shared, cosine_p <= ALPHA, spec.system, cosine_p=cosine_p
        )
    risers, p = riser_test(shifts, dict(zip(names, delta)), profile)
    return TeacherComparison(
        spec.label, float(observed), p, raised, shared, p <= ALPHA, spec.system,
        statistic="risers", risers=risers, cosine_p=cosine_p,
    )  # fmt: skip


def riser_test(shifts: list[OptionShift], change: dict[str, float], profile: NoiseProfile) -> tuple[float, float]:
    """The mean standardised shift over the teacher's risers (the options ``change`` raised by at least
    :data:`TEACHER_RISE_PP`) and its one-sided p against the same mean over ``profile``'s null pairs: a prediction
    interval's Student t with K - 1 degrees of freedom (K null pairs). ``(nan, 1.0)`` when the teacher raised
    nothing."""
    from scipy.stats import t as student_t

    names = [f"{s.battery}: {s.option}" for s in shifts]
    raised = [i for i, n in enumerate(names) if change.get(n, 0.0) >= TEACHER_RISE_PP]
    if not raised:
        return float("nan"), 1.0
    sd = np.array([shifts[i].se for i in raised])
    observed = float(np.mean([shifts[i].shift for i in raised] / sd))
    nulls = (profile.null_shifts(profile.index([names[i] for i in raised])) / sd).mean(axis=1)
    k = len(nulls)
    spread = float(np.std(nulls, ddof=1)) * np.sqrt(1 + 1 / k)
    return observed, float(student_t.sf((observed - float(np.mean(nulls))) / spread, k - 1))


def _cosine(a: np.ndarray, b: np.ndarray) -> float:
    norm = float(np.linalg.norm(a) * np.linalg.norm(b))
    return float(a @ b) / norm if norm > 0 else 0.0


def teacher_key(teacher: str) -> str:
    """A content key for the teacher (an adapter folder's files, or what ``--teacher`` names)."""
    path = Path(teacher)
    h = hashlib.sha256(teacher.encode())
    if path.is_dir() and (path / "adapter_config.json").exists():
        for f in sorted(path.glob("adapter_*")):
            h.update(f.read_bytes())
    return h.hexdigest()[:12]


def mean_shares(scores: dict[str, BatteryScores]) -> dict[str, dict[str, float]]:
    """Battery -> option -> mean share over questions (pp)."""
    return {name: {o: float(v) for o, v in zip(s.options, s.share.mean(axis=0) * 100)} for name, s in scores.items()}


def score_teacher(
    loaded: LoadedModel, batteries: Iterable[Battery], system: str | None = None
) -> dict[str, BatteryScores]:
    """Every battery scored by ``loaded`` under ``system`` (``None``: the chat template's default): a teacher's
    scores, or the base's when it is the base without a system prompt."""
    return {b.name: score_battery(loaded, plan_battery(loaded.tokenizer, b, system)) for b in batteries}
