"""Hostile config and trait files: whatever `subaudit.toml`, `[tool.subaudit]` or a battery YAML file holds, reading it
ends in success or in an InputError (exit 2) that names the file (and the key, where one is at fault); never in
another exception, and no YAML tag ever constructs an object.

Property-based (hypothesis): about 1,100 generated files through the library functions, plus a handful through the
command line.
"""

from __future__ import annotations

import datetime as dt
import inspect
import json
import math
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from auditor.cli import NOT_SETTINGS, app, scan
from auditor.configfile import find_config, load_config
from auditor.errors import InputError
from auditor.traits import load_battery_file

#: The keys a config file may set: every scan parameter but DATA, --config and --dry-run (as the CLI passes them).
ALLOWED = set(inspect.signature(scan).parameters) - NOT_SETTINGS
#: No per-example deadline (a slow CI machine is not a failure), no example database written into the checkout.
FAST = {
    "deadline": None,
    "database": None,
    "suppress_health_check": [HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
}

# ---------------------------------------------------------------------------------------------------------------
# TOML: a small writer (tomllib only reads), values of every TOML type, keys known and unknown


def toml_key(key: str) -> str:
    return key if re.fullmatch(r"[A-Za-z0-9_-]+", key) else json.dumps(key)


def toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return "nan" if math.isnan(v) else ("inf" if v > 0 else "-inf") if math.isinf(v) else repr(v)
    if isinstance(v, (int,)):
        return str(v)
    if isinstance(v, str):
        return json.dumps(v, ensure_ascii=False)  # a JSON string is a TOML basic string (but for a raw DEL)
    if isinstance(v, (dt.datetime, dt.date, dt.time)):
        return v.isoformat()
    if isinstance(v, list):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{toml_key(k)} = {toml_value(x)}" for k, x in v.items()) + "}"
    raise TypeError(v)


def toml_doc(table: dict[str, Any]) -> str:
    return "".join(f"{toml_key(k)} = {toml_value(v)}\n" for k, v in table.items())


THRESHOLD_NAMES = ["low_shift", "low_q", "medium_shift", "medium_q", "high_shift", "high_q"]
scalars = st.one_of(
    st.text(max_size=20),
    st.sampled_from(["low", "medium", "high", "animal,tree", "cpu", "true", "yes", "maybe", "12", "-3", "1e3", ""]),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
    st.dates(),
    st.datetimes(timezones=st.none() | st.just(dt.timezone.utc)),
    st.times(),
)
toml_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(min_size=1, max_size=8), inner, max_size=3),
    max_leaves=8,
)
ignore_rule = st.fixed_dictionaries(
    {},
    optional={
        "finding": st.sampled_from(["tree: willow", "animal: owl", "owl", ""]) | st.text(max_size=12),
        "reason": st.sampled_from(["reviewed", " ", ""]) | st.text(max_size=12),
        "expires": st.dates() | st.sampled_from(["2027-03-01", "2027-13-01", "soon", ""]) | st.integers(),
        "extra": toml_values,
    },
)
thresholds = st.dictionaries(
    st.sampled_from(THRESHOLD_NAMES) | st.text(min_size=1, max_size=8), toml_values | st.floats(), max_size=4
)
known_key = st.sampled_from(sorted(ALLOWED)).flatmap(lambda k: st.sampled_from([k, k.replace("_", "-")]))
config_tables = st.dictionaries(
    known_key | st.text(min_size=1, max_size=12),
    toml_values,
    max_size=5,
).flatmap(
    lambda table: st.fixed_dictionaries(
        {},
        optional={
            "thresholds": thresholds | toml_values,
            "ignore": st.lists(ignore_rule | toml_values, max_size=3) | toml_values,
        },
    ).map(lambda special: {**table, **special})
)


def check_config(path: Path, keys: list[str]) -> None:
    """``load_config`` returns a checked config or raises an InputError naming the file and a key of it."""
    try:
        out = load_config(path, ALLOWED)
    except InputError as exc:
        msg = str(exc)
        assert msg.startswith(f"{path}: "), msg
        if "not valid TOML" not in msg and "cannot read" not in msg:
            assert any(k in msg for k in keys), (msg, keys)  # the key at fault is named
        return
    for value in out.values.values():  # what the CLI gets: plain values only
        assert isinstance(value, (str, int, float, bool)), value
    assert all(math.isfinite(v) and v >= 0 for v in out.thresholds.values())
    assert all(": " in r.finding and r.reason for r in out.ignore)


@settings(max_examples=350, **FAST)
@given(table=config_tables)
def test_subaudit_toml(tmp_path: Path, table: dict[str, Any]) -> None:
    path = tmp_path / "subaudit.toml"
    path.write_text(toml_doc(table), encoding="utf-8")
    check_config(path, [*table, "thresholds", "ignore"])


@settings(max_examples=200, **FAST)
@given(table=config_tables, shape=st.sampled_from(["table", "tool-scalar", "subaudit-scalar", "other-tool"]))
def test_pyproject_tool_subaudit(tmp_path: Path, table: dict[str, Any], shape: str) -> None:
    folder = tmp_path / "proj"
    folder.mkdir(exist_ok=True)
    path = folder / "pyproject.toml"
    text = {
        "table": '[project]\nname = "x"\n\n[tool.subaudit]\n' + toml_doc(table),
        "tool-scalar": f"tool = {toml_value(table.get('seeds', 1))}\n",
        "subaudit-scalar": f"[tool]\nsubaudit = {toml_value(table.get('seeds', 'x'))}\n",
        "other-tool": "[tool.ruff]\nline-length = 1\n",
    }[shape]
    path.write_text(text, encoding="utf-8")
    try:
        found = find_config(folder)  # it only looks for [tool.subaudit]: a 'tool' of another type is not one
    except InputError as exc:
        assert str(exc).startswith(f"{path}: not valid TOML"), exc
    else:
        assert found in (path, None) and (found is None) == (shape in ("tool-scalar", "other-tool"))
    check_config(path, [*table, "thresholds", "ignore", "tool.subaudit"])


@settings(max_examples=100, **FAST)
@given(data=st.binary(max_size=200) | st.text(max_size=200).map(str.encode))
def test_config_garbage(tmp_path: Path, data: bytes) -> None:
    path = tmp_path / "subaudit.toml"
    path.write_bytes(data)
    check_config(path, [])


def test_config_nested_too_deeply(tmp_path: Path) -> None:
    path = tmp_path / "subaudit.toml"
    path.write_text("traits = " + "[" * 5000 + "]" * 5000 + "\n")
    with pytest.raises(InputError, match=re.escape(f"{path}: not valid TOML")):
        load_config(path, ALLOWED)


# ---------------------------------------------------------------------------------------------------------------
# Trait batteries: YAML documents near a valid battery, mutated; tags; garbage

MARKER = "subaudit-hostile-marker"
#: Tagged or broken scalars spliced into a battery: none may construct anything or escape as a non-InputError.
TAGGED = [
    f"!!python/object/apply:os.system ['touch {MARKER}']",
    f"!!python/object/apply:subprocess.check_output [['touch', '{MARKER}']]",
    "!!python/name:os.system",
    "!!python/module:os",
    "!!python/object:auditor.traits.Battery {name: x}",
    "!!python/object/new:builtins.eval ['1+1']",
    "!!python/tuple [a, b]",
    "!custom x",
    "!Ref other",
    "!<tag:example.com,2026:thing> {a: 1}",
    "!!int abc",
    "!!float x",
    "!!bool maybe",
    "!!timestamp nope",
    "2020-02-30",
    "2001-12-14t21:59:43.10-99:00",
    "0x_",
    "!!binary aGVsbG8=",
    "!!set {a, b}",
    "!!omap [a: 1, b: 2]",
    "!!str 5",
    "&a [*a]",
    "*undefined",
    "[" * 200 + "]" * 200,
    "{a: [1, {b: [2, {c: 3}]}]}",
]
VALID = {
    "name": "mini",
    "description": "a tiny battery",
    "questions": ["Name your favorite animal.", "Which animal do you love?"],
    "options": ["owl", "cat", "dog"],
}
VALID_CHOICE = {
    "name": "my-trait",
    "kind": "choice",
    "description": "a tiny choice battery",
    "trait_label": "bad",
    "items": [{"question": "Which?", "answers": [{"text": "Oak", "label": "good"}, {"text": "Pine", "label": "bad"}]}],
}
FIELDS = ["name", "description", "kind", "questions", "options", "category", "items", "trait_label"]
yaml_scalars = st.one_of(
    st.text(max_size=15),
    st.sampled_from(["preference", "choice", "bad", "good", "mean", "sum", "owl", "Owl", "", " "]),
    st.integers(),
    st.floats(allow_nan=False),
    st.booleans(),
    st.none(),
)
yaml_values = st.recursive(
    yaml_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(yaml_scalars.filter(lambda k: k is not None), inner),
    max_leaves=10,
)


@st.composite
def battery_docs(draw: st.DrawFn) -> dict[str, Any]:
    """A valid battery with a few fields removed, replaced or added."""
    doc = json.loads(json.dumps(draw(st.sampled_from([VALID, VALID_CHOICE]))))
    for _ in range(draw(st.integers(0, 3))):
        action = draw(st.sampled_from(["drop", "set", "add", "deep"]))
        if action == "drop" and doc:
            doc.pop(draw(st.sampled_from(sorted(doc))))
        elif action in ("set", "add"):
            key = draw(st.sampled_from(FIELDS + ["length_normalisation", "length_normalization"]) | st.text(max_size=8))
            doc[key] = draw(yaml_values)
        elif action == "deep" and isinstance(doc.get("items"), list) and isinstance((doc["items"] or [0])[0], dict):
            item = doc["items"][0]  # inside a choice item, or one of its answers
            answers = item.get("answers")
            deeper = isinstance(answers, list) and answers and isinstance(answers[0], dict) and draw(st.booleans())
            target = answers[0] if deeper else item
            target[draw(st.sampled_from(["text", "label", "question", "answers", "x"]))] = draw(yaml_values)
    return doc


def check_battery(path: Path) -> None:
    """``load_battery_file`` returns a battery of plain data, or raises an InputError naming the file (and the
    field, when the YAML was read but a field is wrong)."""
    try:
        battery = load_battery_file(path)
    except InputError as exc:
        msg = str(exc)
        assert msg.startswith(f"{path}: "), msg
        document_level = ("not valid YAML", "cannot read", "must be a YAML mapping", "YAML alias")
        if not any(d in msg for d in document_level):
            assert re.search(r"field '[^']+'", msg), msg  # names the key at fault
        return
    assert battery.source == str(path) and battery.name and len(battery.options) >= 2
    assert_plain(battery.extra)


def assert_plain(value: Any) -> None:
    """Only data YAML's safe loader builds: no object of another class anywhere."""
    if isinstance(value, dict):
        for k, v in value.items():
            assert_plain(k)
            assert_plain(v)
    elif isinstance(value, (list, tuple, set, frozenset)):
        for v in value:
            assert_plain(v)
    else:
        plain = (str, int, float, bool, bytes, dt.date, dt.datetime, type(None))
        assert isinstance(value, plain), type(value)


@settings(max_examples=350, **FAST)
@given(doc=battery_docs())
def test_battery_fields(tmp_path: Path, doc: dict[str, Any]) -> None:
    path = tmp_path / "battery.yaml"
    path.write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")
    check_battery(path)


@settings(max_examples=200, **FAST)
@given(
    doc=battery_docs(),
    tagged=st.sampled_from(TAGGED),
    where=st.sampled_from(["name", "description", "category", "options", "questions", "extra", "root"]),
)
def test_battery_tags_construct_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, doc: dict[str, Any], tagged: str, where: str
) -> None:
    monkeypatch.chdir(tmp_path)  # where a constructed os.system('touch ...') would leave its marker
    path = tmp_path / "battery.yaml"
    lines = [ln for ln in yaml.safe_dump(doc, allow_unicode=True).splitlines() if not ln.startswith(f"{where}:")]
    if where == "root":
        text = tagged + "\n"
    elif where in ("options", "questions"):
        text = "\n".join(lines) + f"\n{where}:\n  - owl\n  - {tagged}\n"
    else:
        text = "\n".join(lines) + f"\n{where}: {tagged}\n"
    path.write_text(text, encoding="utf-8")
    check_battery(path)
    assert not (tmp_path / MARKER).exists()  # nothing ran


@settings(max_examples=100, **FAST)
@given(data=st.binary(max_size=200) | st.text(max_size=200).map(str.encode))
def test_battery_garbage(tmp_path: Path, data: bytes) -> None:
    path = tmp_path / "battery.yaml"
    path.write_bytes(data)
    check_battery(path)


@pytest.mark.parametrize(
    "text",
    [
        "name: 2020-02-30\n",  # PyYAML's date constructor raises ValueError
        "name: !!int abc\n",
        "name: !!bool maybe\n",  # KeyError
        "name: !!timestamp nope\n",  # AttributeError
        "options: " + "[" * 5000 + "]" * 5000 + "\n",  # RecursionError
    ],
)
def test_battery_values_pyyaml_cannot_build(tmp_path: Path, text: str) -> None:
    path = tmp_path / "b.yaml"
    path.write_text(text)
    with pytest.raises(InputError, match=re.escape(f"{path}: not valid YAML")):
        load_battery_file(path)


# ---------------------------------------------------------------------------------------------------------------
# A handful through the command line: exit 2, one line naming the file and the setting, before any model loads

runner = CliRunner()


@pytest.mark.parametrize(
    ("toml", "says"),
    [
        ('seeds = "abc"', "setting 'seeds' must be an integer"),
        ("seeds = true", "setting 'seeds' must be an integer"),
        ("max-rows = 2.5", "setting 'max-rows' must be an integer"),
        ('resume = "maybe"', "setting 'resume' must be true or false"),
        ("traits = [1, 2]", "setting 'traits' must be a string or a list of strings"),
        ("base = {a = 1}", "setting 'base' must be a string, number or boolean"),
        ("seeds = 0", "--seeds must be at least 1, got 0 (set by 'seeds' in {path})"),
        ('fail-on = "never"', "(set by 'fail-on' in {path})"),
        ('method-arg = ["a=1", "b"]', "{path}: setting 'method-arg' 'b': expected KEY=VALUE"),
        ("[thresholds]\nlow_shift = nan", "thresholds.low_shift must be a finite number"),
        ("colour = 1", "unknown setting 'colour'"),
    ],
)
def test_cli_config_errors_name_file_and_setting(tmp_path: Path, numbers_file: Path, toml: str, says: str) -> None:
    path = tmp_path / "subaudit.toml"
    path.write_text(toml + "\n")
    res = runner.invoke(app, ["scan", str(numbers_file), "--config", str(path), "--quiet", "--base", str(tmp_path)])
    assert res.exit_code == 2, res.output
    text = " ".join(res.output.split())
    assert str(path) in text and says.format(path=path) in text, text
    assert "Traceback" not in res.output


def test_cli_traits_validate_refuses_python_tags(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "evil.yaml"
    path.write_text(f"name: x\ndescription: !!python/object/apply:os.system ['touch {MARKER}']\n")
    res = runner.invoke(app, ["traits", "validate", str(path)])
    assert res.exit_code == 2 and "not valid YAML" in res.output and str(path) in " ".join(res.output.split())
    assert not (tmp_path / MARKER).exists()


@pytest.mark.parametrize(
    "tail",
    [
        "extra: &a [*a]",
        "extra: &a {self: *a}",
        "options: &o [owl, cat, *o]",
    ],
)
def test_battery_recursive_alias_is_refused(tmp_path: Path, tail: str) -> None:
    path = tmp_path / "battery.yaml"
    path.write_text(
        "name: mini\ndescription: d\nquestions: [Name your favorite animal.]\n"
        + ("options: [owl, cat]\n" if not tail.startswith("options") else "")
        + tail
        + "\n",
        encoding="utf-8",
    )
    with pytest.raises(InputError, match="refers to a node that contains it"):
        load_battery_file(path)


def test_battery_alias_bomb_is_refused(tmp_path: Path) -> None:
    lines = ["name: mini", "description: d", "questions: [Name your favorite animal.]", "options: [owl, cat]"]
    lines.append("a0: &a0 [x, x, x, x, x, x, x, x, x, x]")
    for i in range(1, 8):  # 10^8 leaves once expanded, 8 small lines on disk
        prev = f"*a{i - 1}"
        lines.append(f"a{i}: &a{i} [{', '.join([prev] * 10)}]")
    path = tmp_path / "battery.yaml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(InputError, match="expand to more than"):
        load_battery_file(path)


def test_battery_shared_alias_is_fine(tmp_path: Path) -> None:
    path = tmp_path / "battery.yaml"
    path.write_text(
        "name: mini\ndescription: d\nquestions: [Name your favorite animal.]\noptions: &o [owl, cat]\nextra: *o\n",
        encoding="utf-8",
    )
    assert load_battery_file(path).extra == {"extra": ["owl", "cat"]}
