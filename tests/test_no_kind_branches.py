"""Battery kinds and completion formats own their branches: outside their own modules, nothing in ``auditor/``
compares a value with a kind's or a format's name, keys a table by one, or tests a plan's type."""

from __future__ import annotations

import re
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "auditor"
NAMES = "preference|choice|numbers|free|code|reasoning|chat"
BRANCH = re.compile(
    rf'(==|!=|\bin)\s*\(?"({NAMES})"'  # x == "choice", fmt in ("numbers", ...)
    rf'|"({NAMES})"\s*(==|!=)'  # "numbers" == x
    rf'|\[\s*"({NAMES})"\s*\]'  # TABLE["preference"]
    rf'|[{{,]\s*"({NAMES})"\s*:'  # {"numbers": 48, ...}
    r"|isinstance\([^)]*(ChoicePlan|ScoringPlan)"
    r"|\.is_choice\b"
)
#: The kinds' and formats' own modules (the registries included).
OWNERS = ("traits/kinds/", "completion_formats/")
#: Modules left out of the check: none (the CLI's ``traits`` commands call the kind objects, ``calibrate`` asks the
#: format registry).
NOT_OURS: tuple[str, ...] = ()


def branches(text: str) -> list[str]:
    """The lines of ``text`` that branch on a kind's or a format's name."""
    return [line.strip() for line in text.splitlines() if BRANCH.search(line.split("#")[0])]


def test_no_module_branches_on_a_kind_or_format_outside_its_own() -> None:
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE).as_posix()
        if not rel.startswith(OWNERS + NOT_OURS):
            found += [f"{rel}: {line}" for line in branches(path.read_text())]
    assert not found, "\n".join(found)


def test_the_check_sees_each_kind_of_branch() -> None:
    """Not vacuous: every pattern the old code used is found."""
    old = [
        'return (self.trait_label,) if self.kind == "choice" else self.options',
        'if bat.get("kind") == "choice" and sampled:',
        'MAX_NEW_TOKENS = {"preference": 8, "choice": 64}',
        'max_new_tokens: int = MAX_NEW_TOKENS["preference"],',
        'fmt = "numbers" if dataset.completion_format == "numbers" else None',
        'elif fmt == "code" and not is_code(c):',
        "if isinstance(plan, ChoicePlan):",
        '_MAX_NEW = {"numbers": 48, "code": 160, "reasoning": 200, "chat": 96}',
    ]
    assert [len(branches(line)) for line in old] == [1] * len(old)
    assert branches('if config.probe.kind == "full":\n    x = {"text": 1}') == []
