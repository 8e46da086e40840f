"""The package layout a newcomer reads: subpackages by role, small modules, no import cycles."""

from __future__ import annotations

import ast
from collections import Counter
from pathlib import Path

from tests.conftest import REPO

PACKAGES = ("harness", "methods")
MAX_LINES = 400


def _modules() -> dict[str, Path]:
    modules = {}
    for package in PACKAGES:
        for path in (REPO / package).rglob("*.py"):
            parts = list(path.relative_to(REPO).with_suffix("").parts)
            modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return modules


def _module_level_imports(tree: ast.Module) -> list[str]:
    """Modules named by imports that run when the module loads (not under `if TYPE_CHECKING`, which
    still counts: a cycle there is one a reader has to untangle too; not inside functions)."""
    names = []
    for node in ast.walk(ast.Module(body=[n for n in tree.body if not isinstance(n, (ast.FunctionDef, ast.ClassDef))])):
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names += [node.module, *(f"{node.module}.{a.name}" for a in node.names)]
    return names


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while component[-1:] != [v]:
                component.append(stack.pop())
            if len(component) > 1:
                found.append(sorted(component))

    for v in graph:
        if v not in index:
            visit(v)
    return found


def test_no_import_cycles_between_modules():
    modules = _modules()
    graph = {name: {m for m in _module_level_imports(ast.parse(path.read_text())) if m in modules and m != name}
             for name, path in modules.items()}
    assert _cycles(graph) == []


def test_the_cycle_finder_finds_a_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_module_is_over_the_line_limit():
    long = {str(p.relative_to(REPO)): n for p in _modules().values() if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert long == {}


def test_top_level_harness_holds_subpackages_and_entry_modules_only():
    modules = sorted(p.name for p in (REPO / "harness").glob("*.py"))
    assert modules == ["__init__.py", "__main__.py", "results.py"]
    packages = sorted(p.name for p in (REPO / "harness").iterdir() if (p / "__init__.py").is_file())
    assert packages == ["budget", "cli", "config", "core", "costs", "data", "distributed", "models", "probes", "report", "run",
                        "scoring", "store", "tasks", "train"]


def test_test_files_have_unique_names():
    """Test folders are not packages: pytest imports two test files of one name as one module and
    stops collecting (`import file mismatch`)."""
    names = Counter(path.name for path in (REPO / "tests").rglob("test_*.py"))
    assert [name for name, count in names.items() if count > 1] == []
