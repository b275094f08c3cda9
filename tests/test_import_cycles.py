"""No import cycles among emoscope's modules, and one place for the package version.

The import graph is read from the source (AST), not by importing: an edge ``a -> b`` is an
``import b`` / ``from b import x`` in module ``a`` (``from pkg import sub`` is an edge to the
submodule ``pkg.sub``). Imports under ``if TYPE_CHECKING:`` never run and do not count.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

import emoscope
from emoscope._version import __version__

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src"


def _module_name(path: Path, src: Path) -> str:
    parts = list(path.relative_to(src).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _is_type_checking(node: ast.If) -> bool:
    t = node.test
    return (isinstance(t, ast.Name) and t.id == "TYPE_CHECKING") or (
        isinstance(t, ast.Attribute) and t.attr == "TYPE_CHECKING"
    )


def _imports(body: list[ast.stmt], lazy: bool) -> Iterator[ast.Import | ast.ImportFrom]:
    """The import statements that run when the module (``lazy``: or any of its code) runs."""
    for node in body:
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield node
        elif isinstance(node, ast.If):
            if not _is_type_checking(node):
                yield from _imports(node.body, lazy)
            yield from _imports(node.orelse, lazy)
        elif isinstance(node, ast.Try):
            for block in (node.body, node.orelse, node.finalbody):
                yield from _imports(block, lazy)
            for handler in node.handlers:
                yield from _imports(handler.body, lazy)
        elif isinstance(node, ast.With | ast.For | ast.While | ast.ClassDef) or (
            lazy and isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        ):
            # Class bodies run at import time; function bodies only when called.
            yield from _imports(node.body, lazy)


def import_graph(src: Path, package: str, *, lazy: bool = False) -> dict[str, set[str]]:
    """Module -> the package's modules it imports (at import time; ``lazy``: anywhere)."""
    files = {_module_name(p, src): p for p in (src / package).rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in files.items():
        edges: set[str] = set()
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in _imports(tree.body, lazy):
            if isinstance(node, ast.Import):
                edges.update(a.name for a in node.names if a.name in files)
                continue
            base = node.module or ""
            if node.level:
                pkg = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
                pkg = pkg[: len(pkg) - (node.level - 1)]
                base = ".".join([*pkg, base] if base else pkg)
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                if sub in files:
                    edges.add(sub)
                elif base in files:
                    edges.add(base)
        edges.discard(name)
        graph[name] = edges
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp: list[str] = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def _describe(graph: dict[str, set[str]], found: list[list[str]]) -> str:
    lines = []
    for comp in found:
        members = set(comp)
        edges = [f"{a} -> {b}" for a in comp for b in sorted(graph[a] & members)]
        lines.append(f"cycle among {', '.join(comp)}: {'; '.join(edges)}")
    return "\n".join(lines)


def test_no_import_cycle_among_modules() -> None:
    graph = import_graph(SRC, "emoscope")
    assert len(graph) > 50 and "emoscope.llm.base" in graph["emoscope.recognizers.llm"]
    found = cycles(graph)
    assert not found, _describe(graph, found)


def test_no_import_cycle_even_through_imports_inside_functions() -> None:
    # A function-level import breaks an import-time cycle but not the dependency: probe and
    # stimuli used to reach each other that way. Extension points are imported by name
    # (``"module:Class"`` maps, as in recognizers/base.py and llm/base.py), not by statements.
    graph = import_graph(SRC, "emoscope", lazy=True)
    found = cycles(graph)
    assert not found, _describe(graph, found)


def test_cycle_detection_sees_every_kind_of_import(tmp_path: Path) -> None:
    pkg = tmp_path / "pkg"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("from pkg import a\n")
    (pkg / "a.py").write_text("from pkg.sub import b\n")
    (pkg / "sub" / "__init__.py").write_text("")
    (pkg / "sub" / "b.py").write_text("try:\n    from .. import c\nexcept ImportError:\n    pass\n")
    (pkg / "c.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import pkg.a\n"
        "def f():\n    import pkg.a\n"
    )
    (pkg / "d.py").write_text("import pkg.e\n")
    (pkg / "e.py").write_text("from pkg import d, __name__\n")
    graph = import_graph(tmp_path, "pkg")
    assert graph["pkg"] == {"pkg.a"} and graph["pkg.sub.b"] == {"pkg.c"}
    assert graph["pkg.c"] == set()
    assert cycles(graph) == [["pkg.d", "pkg.e"]]
    lazy = import_graph(tmp_path, "pkg", lazy=True)
    assert sorted(cycles(lazy)) == [["pkg.a", "pkg.c", "pkg.sub.b"], ["pkg.d", "pkg.e"]]
    assert "pkg.c -> pkg.a" in _describe(lazy, cycles(lazy))


def test_version_is_defined_once_and_matches_pyproject() -> None:
    assert emoscope.__version__ is __version__
    pyproject = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    match = re.search(r'^version = "([^"]+)"', pyproject, re.MULTILINE)
    assert match, "no version in pyproject.toml"
    assert __version__ == match.group(1)
    offenders = [
        str(p.relative_to(SRC))
        for p in (SRC / "emoscope").rglob("*.py")
        if re.search(r"^\s*from emoscope import .*__version__", p.read_text(encoding="utf-8"), re.M)
    ]
    assert not offenders, f"import __version__ from emoscope._version instead: {offenders}"


@pytest.mark.parametrize("module", ["emoscope.probe", "emoscope.stimuli"])
def test_probe_and_stimuli_share_the_llm_layer(module: str) -> None:
    # parse_label and generate_texts live in the LLM layer and are re-exported, not copied.
    import importlib

    from emoscope.llm.base import generate_texts
    from emoscope.llm.parsing import parse_label

    mod = importlib.import_module(module)
    assert getattr(mod, "parse_label", parse_label) is parse_label
    assert getattr(mod, "generate_texts", generate_texts) is generate_texts
