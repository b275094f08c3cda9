"""The CLI is a layer above the library: no module outside ``emoscope/cli/`` imports it or typer."""

from __future__ import annotations

import ast
from pathlib import Path

import emoscope

PACKAGE = Path(emoscope.__file__).resolve().parent
FORBIDDEN = ("typer", "click", "emoscope.cli")


def _forbidden(module: str) -> bool:
    return any(module == f or module.startswith(f + ".") for f in FORBIDDEN)


def cli_imports(source: str, filename: str = "<source>") -> list[str]:
    """``line: module`` for every import of typer/click/emoscope.cli in ``source``.

    Imports anywhere count (top level, inside functions, under ``TYPE_CHECKING``), and so do
    ``importlib.import_module("...")`` calls with a literal name.
    """
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(source, filename)):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute | ast.Name)
            and (node.func.attr if isinstance(node.func, ast.Attribute) else node.func.id)
            == "import_module"
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            names = [node.args[0].value]
        bad = [n for n in names if _forbidden(n)]
        if bad:
            found.append((node.lineno, bad[0]))
    return [f"{line}: {name}" for line, name in sorted(found)]


def library_modules() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if "cli" not in p.relative_to(PACKAGE).parts)


def test_the_scan_finds_every_kind_of_cli_import() -> None:
    source = (
        "import typer\n"
        "from emoscope.cli import main\n"
        "def f():\n"
        "    from emoscope.cli._common import note\n"
        "    import importlib\n"
        "    importlib.import_module('emoscope.cli.core')\n"
        "from emoscope import cli\n"
        "from emoscope.client import x\n"  # a name that only starts the same way
        "import typeguard\n"
    )
    assert cli_imports(source) == [
        "1: typer",
        "2: emoscope.cli",
        "4: emoscope.cli._common",
        "6: emoscope.cli.core",
        "7: emoscope.cli",
    ]


def test_library_modules_do_not_import_the_cli() -> None:
    modules = library_modules()
    assert len(modules) > 40 and PACKAGE / "recognizers" / "default.py" in modules
    offenders = [
        f"{path.relative_to(PACKAGE)}:{hit}"
        for path in modules
        for hit in cli_imports(path.read_text(encoding="utf-8"), str(path))
    ]
    assert offenders == [], "library modules import the CLI layer: " + ", ".join(offenders)


def test_the_cli_package_holds_every_command_module() -> None:
    cli = PACKAGE / "cli"
    names = {p.stem for p in cli.glob("*.py")}
    want = {"core", "llm", "inside", "retrieval", "support", "serve", "annotate", "_common"}
    assert want <= names
    assert not list(PACKAGE.glob("cli_*.py")) and not (PACKAGE / "_cli_common.py").exists()
