"""Imports point one way: each part of ``newsletter/`` imports only parts listed below it.

The order is the pipeline seen from the top (docs/development.md shows it as a table): the CLI
calls the API, the API wires the web endpoints, campaigns, providers and transports, which use
rendering, selection and the store, which use the leaves. A new module must be placed here, so
a cycle or an upward import is a failing test, not something found later.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "newsletter"

#: top to bottom; modules on one line may import each other
LAYERS = [
    ["__main__", "cli"],
    ["__init__", "api", "issue", "settings_reference"],
    ["web", "fakes"],
    ["signup"],
    ["campaign"],
    ["providers", "doctor"],
    ["transports", "mime"],
    ["archive", "render", "lint", "emailcompile", "emailhtml", "textpart", "templating"],
    ["selection", "content", "subscribers", "site_setup", "personalize", "rendered"],
    ["store"],
    ["unsubscribe", "signing"],
    ["config", "theme", "errors"],
]


def _imports(path: Path) -> set[str]:
    """The parts of ``newsletter`` that ``path`` imports (at any depth, lazy ones too)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        names = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
        for name in names:
            parts = name.split(".")
            if parts[0] == "newsletter" and len(parts) > 1:
                found.add(parts[1])
    return found


def upward_imports(package: Path) -> list[str]:
    rank = {part: i for i, layer in enumerate(LAYERS) for part in layer}
    wrong = []
    for path in sorted(package.rglob("*.py")):
        part = path.relative_to(package).parts[0].removesuffix(".py")
        for used in sorted(_imports(path)):
            if used in rank and rank[used] < rank[part]:
                wrong.append(f"{path.relative_to(package)} imports newsletter.{used}")
    return wrong


def test_every_part_of_the_package_has_a_layer() -> None:
    parts = {p.name.removesuffix(".py") for p in PACKAGE.iterdir()}
    parts = {p for p in parts if not p.startswith((".", "__pycache__")) and p != "py.typed"}
    placed = {part for layer in LAYERS for part in layer}
    assert parts - placed == set(), "place these in LAYERS"


def test_imports_point_down_the_pipeline() -> None:
    assert upward_imports(PACKAGE) == []


def test_an_upward_import_is_found(tmp_path: Path) -> None:
    (tmp_path / "store").mkdir()
    (tmp_path / "store" / "x.py").write_text("def f():\n    from newsletter.api import X\n")
    (tmp_path / "errors.py").write_text("import newsletter.config\n")  # same layer: fine
    assert upward_imports(tmp_path) == ["store/x.py imports newsletter.api"]
