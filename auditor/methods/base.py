"""The seam every detection method implements: :class:`Method`, its settings and what it returns."""

from __future__ import annotations

import dataclasses
import typing
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from ..config import LEGACY_SETTINGS, ScanConfig
from ..errors import InputError
from ..finetune import ProbeConfig
from ..inputs import Controls, ScanInputs
from ..result import MethodDetails
from ..traits import Battery
from ..verdict import Finding, Verdict

if TYPE_CHECKING:
    from ..calibration.profile import NoiseProfile
    from ..models import LoadedModel
    from ..progress import Reporter
    from ..rundir import RunFolder


@dataclass(frozen=True)
class NoSettings:
    """A method without settings of its own."""


@dataclass
class MethodOutcome:
    """What a method's :meth:`Method.run` returns: graded findings, the verdict and the method's own details."""

    findings: list[Finding]
    verdict: Verdict
    details: MethodDetails
    rows_used: int  # dataset rows the method measured (paired with control rows)


class Estimator(typing.Protocol):
    """Seconds measured on the real base by the dry run (each measured once, when a method first asks)."""

    def generation_per_row(self) -> float:
        """Sampling one control row (the scan's decoding for the dataset's format)."""
        ...

    def train_step(self) -> float:
        """One optimiser step of the probe at its batch size (forward and backward)."""
        ...

    def score_question(self) -> float:
        """Scoring one battery question (exact, or sampled as configured)."""
        ...


class Method(ABC):
    """A detection method. Subclass it, give it a ``name``, and add it to :data:`auditor.methods.BUILTIN` (or call
    :func:`auditor.methods.register`): ``scan``, the CLI, the dry run, ``--budget`` and the benchmarks then reach it
    by name.

    Attributes:
        name: what ``--method`` takes.
        summary: one line for ``subaudit methods``.
        settings: a frozen dataclass of the method's own options, set by name in ``ScanConfig.method_args``
            (``--method-arg KEY=VALUE``, and the CLI options the method owns; documented fields, the method's
            defaults).
        unit: what its shifts are measured in (``pp`` of a student's share, or ``push``).
        gate: whether the README recommends failing a pipeline on it.
        repeats: the settings field that counts repeated runs (the probe's ``seeds``), which ``--budget`` may
            lower; ``None``: one run.
        shows_base: what its plots show: whether its findings' ``base`` is comparable with its arms (the shares
            plot draws it beside them), ``arms_label`` the arms' axis, and ``shift_thresholds`` whether its levels
            use the shift thresholds (the forest plot marks them).
        control_defaults: the control sampler's settings where a scan leaves them unset (``sampler``, ``tries``,
            ``count``: :meth:`auditor.conditional.ControlSampling.with_defaults`); empty: the probe's.
    """

    name: ClassVar[str]
    summary: ClassVar[str]
    settings: ClassVar[type] = NoSettings
    unit: ClassVar[str] = "pp"
    gate: ClassVar[bool] = True
    repeats: ClassVar[str | None] = None
    shows_base: ClassVar[bool] = True
    arms_label: ClassVar[str] = "share, %"
    shift_thresholds: ClassVar[bool] = True
    control_defaults: ClassVar[dict[str, Any]] = {}

    def parse_settings(self, args: dict[str, Any]) -> Any:
        """The method's settings from ``method_args`` (strings from the CLI are converted). A setting that was a
        ``ScanConfig`` field (:data:`auditor.config.LEGACY_SETTINGS`) and that this method lacks is ignored."""
        fields = {f.name: f for f in dataclasses.fields(self.settings)}
        hints = typing.get_type_hints(self.settings)
        values: dict[str, Any] = {}
        for key, raw in args.items():
            if key not in fields:
                if key in LEGACY_SETTINGS:
                    continue
                have = ", ".join(fields) or "none"
                raise InputError(f"--method-arg {key}: method {self.name!r} has no setting {key!r} (settings: {have})")
            values[key] = _convert(raw, hints[key], f"--method-arg {key}")
        return self.settings(**values)

    def check_settings(self, config: ScanConfig, settings: Any) -> None:
        """Refuse settings this method cannot honour, whatever the batteries (raise
        :class:`~auditor.errors.InputError`); :meth:`validate` calls it."""
        return None

    def validate(self, config: ScanConfig, settings: Any, batteries: list[Battery]) -> None:
        """Refuse settings or batteries this method cannot honour (raise :class:`~auditor.errors.InputError`);
        called before the base is loaded (and again when ``--budget`` changed the settings)."""
        self.check_settings(config, settings)

    def load_judge(self, config: ScanConfig, settings: Any, reporter: Reporter) -> LoadedModel | None:
        """A second model the method scores with (the probe's ``--judge``), loaded with the base; ``None``."""
        return None

    def find_profile(self, inputs: ScanInputs) -> NoiseProfile | None:
        """The calibration profile the method uses on these inputs (``None``: none, or it uses none)."""
        return None

    def check(self, inputs: ScanInputs) -> None:
        """Refuse what only the loaded inputs show (a profile, the base); called before anything is written."""
        return None

    def control_draws(self, inputs: ScanInputs) -> int:
        """How many draws of control rows the method needs (0, 1, or 2 with a null arm)."""
        return 1

    def second_draw_file(self, inputs: ScanInputs) -> str | None:
        """A file of rows for the second control draw (the probe's ``--null-control``); ``None``: the base draws it."""
        return None

    def seeds(self, inputs: ScanInputs) -> list[int]:
        """The seeds the method runs (the run folder's manifest records them)."""
        return [inputs.config.seed]

    def key(self, inputs: ScanInputs) -> dict[str, Any]:
        """What besides the shared inputs decides this method's stages (its part of the run folder's key)."""
        return {"settings": dataclasses.asdict(inputs.settings)}

    def training_length(self, settings: Any) -> int | None:
        """Tokens a training row is truncated to (the first row the report shows); ``None``: no truncation."""
        return None

    @abstractmethod
    def run(self, inputs: ScanInputs, run: RunFolder, controls: Controls | None) -> MethodOutcome:
        """Measure, grade and return the findings (finished stages go to ``run``; ``controls``: the draws asked
        for by :meth:`control_draws`, ``None`` for none)."""

    def plan(self, inputs: ScanInputs) -> str:
        """What the method would run on these inputs, in one line (the dry run prints it)."""
        return f"method {self.name}"

    @abstractmethod
    def cost(
        self, inputs: ScanInputs, measured: Estimator, rows: int, settings: Any, calibrated: bool | None = None
    ) -> dict[str, float]:
        """Seconds per stage of a cold run on ``rows`` rows with ``settings`` (base loading excluded), from the dry
        run's measurements: the dry run's estimate and ``--budget``'s plans. ``calibrated``: as if a calibration
        profile did (``True``) or did not (``False``) cover the scan; ``None``: as the inputs are."""

    def estimate(self, inputs: ScanInputs, measured: Estimator) -> dict[str, float]:
        """Seconds per stage of a cold run of these inputs (the dry run's estimate)."""
        return self.cost(inputs, measured, len(inputs.dataset), inputs.settings)

    def budget_profiles(self, inputs: ScanInputs) -> list[tuple[int, int]]:
        """The (rows, repeats) budgets a calibration profile covers for these inputs (``--budget`` tries them first)."""
        return []

    def with_repeats(self, settings: Any, repeats: int) -> Any:
        """``settings`` with ``repeats`` repeated runs (see :attr:`repeats`)."""
        return dataclasses.replace(settings, **{self.repeats: repeats}) if self.repeats else settings

    def max_repeats(self, settings: Any) -> int:
        """The most repeated runs the settings allow (``--budget`` chooses up to this)."""
        return int(getattr(settings, self.repeats)) if self.repeats else 1

    def budget_how(self, calibrated: bool) -> str:
        """How a budget plan runs, in a few words (its line in the report)."""
        return f"method {self.name}"


def check_students(p: ProbeConfig) -> None:
    """Refuse student settings that cannot train (the probe's and the gradient method's)."""
    if p.rank < 1 or p.alpha <= 0 or p.learning_rate <= 0 or p.batch_size < 1:
        raise InputError("probe settings must be positive (rank, alpha, learning rate, batch size)")
    if p.max_steps is None and p.epochs <= 0:
        raise InputError("--epochs must be positive")


def _convert(raw: Any, hint: Any, where: str) -> Any:
    """A CLI string as the setting's type (bool, int, float or str); typed values pass through."""
    if not isinstance(raw, str):
        return raw
    target: Callable[[str], Any] = {int: int, float: float, str: str}.get(hint, str)
    if hint is bool:
        if raw.lower() in ("1", "true", "yes", "on"):
            return True
        if raw.lower() in ("0", "false", "no", "off"):
            return False
        raise InputError(f"{where}: expected true or false, got {raw!r}")
    try:
        return target(raw)
    except ValueError:
        raise InputError(f"{where}: expected {getattr(hint, '__name__', hint)}, got {raw!r}") from None
