"""No import cycle anywhere in the repository: the package, the tests, and the benchmarks and examples (folders of
scripts that import each other by plain name); an import inside a function counts. And the benchmarks import each
other without editing ``sys.path``; no module of the package needs the package root (its version included)."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
#: Each folder checked, and whether it is a package (modules named from the repository root: ``auditor.cli.common``)
#: or a folder of scripts (modules named as the scripts import them: ``cells``, ``calibration_setup``).
FOLDERS = {"auditor": True, "tests": True, "benchmarks": False, "examples": False}


def module_files(root: Path, folders: dict[str, bool]) -> dict[str, Path]:
    out = {}
    for folder, packaged in folders.items():
        for path in sorted((root / folder).rglob("*.py")):
            rel = path.relative_to(root if packaged else root / folder).with_suffix("")
            out[".".join(rel.parts).removesuffix(".__init__")] = path
    return out


def imports(path: Path, module: str, modules: set[str]) -> set[str]:
    """The known modules ``module`` imports anywhere in its file (functions and TYPE_CHECKING blocks too)."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    out = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        targets: list[str] = []
        if isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([p for p in parts if p] + ([base] if base else []))
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names]
        elif isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        for t in targets:
            while t and t not in modules:
                t = t.rpartition(".")[0]
            if t and t != module and not module.startswith(t + "."):  # a module's own package is no edge
                out.add(t)
    return out


def cycles(files: dict[str, Path], lazy_roots: tuple[str, ...] = ()) -> list[str]:
    """Every module that can reach itself, as one path each (``lazy_roots``: packages whose re-exports are lazy)."""
    edges = {m: set() if m in lazy_roots else imports(p, m, set(files)) for m, p in files.items()}
    found = []
    for start in edges:
        stack, seen = [(start, [start])], set()
        while stack:
            node, path = stack.pop()
            for nxt in edges[node]:
                if nxt == start:
                    found.append(" -> ".join([*path, nxt]))
                elif nxt not in seen:
                    seen.add(nxt)
                    stack.append((nxt, [*path, nxt]))
    return found


def test_no_import_cycle_in_the_repository() -> None:
    files = module_files(ROOT, FOLDERS)
    assert {"auditor.cli.scan_cmd", "calibration", "calibration_report", "calibration_setup", "tests.conftest"} <= set(
        files
    )
    found = cycles(files, lazy_roots=("auditor",))  # auditor/__init__.py re-exports on attribute access
    assert not found, found[0]


def test_the_check_sees_a_cycle_between_scripts(tmp_path: Path) -> None:
    """Not vacuous: the shape benchmarks/calibration.py and calibration_report.py had (one side imports the other
    inside a function), and a cycle through relative imports in a package."""
    (tmp_path / "bench").mkdir()
    (tmp_path / "bench" / "main.py").write_text("def report():\n    from main_report import write\n")
    (tmp_path / "bench" / "main_report.py").write_text("from main import RULE\n")
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "__init__.py").write_text("")
    (tmp_path / "pkg" / "a.py").write_text("from .b import f\n")
    (tmp_path / "pkg" / "b.py").write_text("def f():\n    from . import a\n")
    found = cycles(module_files(tmp_path, {"bench": False, "pkg": True}))
    assert any(c.startswith("main -> main_report -> main") for c in found)
    assert any(c.startswith("pkg.a -> pkg.b -> pkg.a") for c in found)


def _edits_sys_path(path: Path) -> bool:
    """Whether the file touches ``sys.path`` at all (insert, append, assignment)."""
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Attribute) and node.attr == "path":
            if isinstance(node.value, ast.Name) and node.value.id == "sys":
                return True
    return False


def test_benchmarks_import_each_other_without_sys_path_edits(tmp_path: Path) -> None:
    edits = [p.name for p in sorted((ROOT / "benchmarks").glob("*.py")) if _edits_sys_path(p)]
    assert not edits, edits
    (tmp_path / "x.py").write_text("import sys\nfrom pathlib import Path\nsys.path.insert(0, str(Path.cwd()))\n")
    assert _edits_sys_path(tmp_path / "x.py")  # the check sees an edit


def test_no_module_of_the_package_imports_the_package_root() -> None:
    """``runinfo`` reads the version from ``auditor._version``: no module needs ``auditor/__init__.py`` for a name."""
    files = module_files(ROOT, {"auditor": True})
    offenders = [m for m, p in files.items() if m != "auditor" and _imports_root(p, m)]
    assert not offenders, offenders


def _imports_root(path: Path, module: str) -> bool:
    """Whether the module imports a name (not a submodule) from the package root: ``from . import x`` at the top
    level, ``from .. import x`` one level down, ``from auditor import x``, ``import auditor``."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    submodules = {p.stem for p in (ROOT / "auditor").iterdir()}
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.level:
            depth = len(package.split(".")) - (node.level - 1)
            if depth == 1 and not node.module and any(a.name not in submodules for a in node.names):
                return True
        elif isinstance(node, ast.ImportFrom) and node.module == "auditor":
            return True
        elif isinstance(node, ast.Import) and any(a.name == "auditor" for a in node.names):
            return True
    return False
