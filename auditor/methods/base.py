"""The seam every detection method implements: :class:`Method`, its settings and what it returns."""

from __future__ import annotations

import dataclasses
import typing
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

from ..config import ScanConfig
from ..errors import InputError
from ..inputs import ScanInputs
from ..result import MethodDetails
from ..traits import Battery
from ..verdict import Finding, Verdict


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
    :func:`auditor.methods.register`): ``scan``, the CLI, the dry run and the benchmarks then reach it by name.

    Attributes:
        name: what ``--method`` takes.
        summary: one line for ``subaudit methods``.
        settings: a dataclass of the method's own options, set with ``--method-arg KEY=VALUE`` (documented
            fields; defaults are the method's defaults).
        unit: what its shifts are measured in (``pp`` of a student's share, or ``push``).
        gate: whether the README recommends failing a pipeline on it.
    """

    name: ClassVar[str]
    summary: ClassVar[str]
    settings: ClassVar[type] = NoSettings
    unit: ClassVar[str] = "pp"
    gate: ClassVar[bool] = True

    def parse_settings(self, args: dict[str, Any]) -> Any:
        """The method's settings from ``--method-arg`` values (strings from the CLI are converted)."""
        fields = {f.name: f for f in dataclasses.fields(self.settings)}
        hints = typing.get_type_hints(self.settings)
        values: dict[str, Any] = {}
        for key, raw in args.items():
            if key not in fields:
                have = ", ".join(fields) or "none"
                raise InputError(f"--method-arg {key}: method {self.name!r} has no setting {key!r} (settings: {have})")
            values[key] = _convert(raw, hints[key], f"--method-arg {key}")
        return self.settings(**values)

    def validate(self, config: ScanConfig, settings: Any, batteries: list[Battery]) -> None:
        """Refuse settings or batteries this method cannot honour (raise :class:`~auditor.errors.InputError`);
        called before the base is loaded."""
        return None

    def check(self, inputs: ScanInputs) -> None:
        """Refuse what only the loaded inputs show (a profile, the base); called before anything is written."""
        return None

    #: Whether the method uses a calibration profile (``--calibration``); prepare finds it when it does.
    uses_profile: ClassVar[bool] = False

    def control_draws(self, inputs: ScanInputs) -> int:
        """How many draws of control rows the method needs (0, 1, or 2 with a null arm)."""
        return 1

    def key(self, config: ScanConfig, settings: Any) -> dict[str, Any]:
        """What besides the shared inputs decides this method's stages (part of the run folder's key)."""
        return {"settings": dataclasses.asdict(settings)}

    @abstractmethod
    def run(self, inputs: ScanInputs) -> MethodOutcome:
        """Measure, grade and return the findings (finished stages go to ``inputs.run``)."""

    def plan(self, inputs: ScanInputs) -> str:
        """What the method would run on these inputs, in one line (the dry run prints it)."""
        return f"method {self.name}"

    @abstractmethod
    def estimate(self, inputs: ScanInputs, measured: Estimator) -> dict[str, float]:
        """Seconds per stage of a cold run, from the dry run's measurements (base loading excluded)."""


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
