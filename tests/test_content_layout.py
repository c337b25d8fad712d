"""The content package's layering: ``model`` is a leaf, and no module imports the package root
(``newsletter.content``) or a module above it in the pipeline, so there is no import cycle."""

from __future__ import annotations

import ast
from pathlib import Path

CONTENT = Path(__file__).resolve().parent.parent / "newsletter" / "content"
STDLIB_OK = {"__future__", "collections.abc", "dataclasses", "datetime", "pathlib", "typing"}
# who may import whom, by layer (a module imports only modules of a lower layer)
LAYERS = {
    "model": 0,
    "readers": 1,
    "dates": 1,
    "excerpts": 1,
    "generators": 1,
    "fields": 2,
    "liquid": 3,
    "markdown": 4,
    "feeds": 4,
    "reading": 5,
}


def _imports(path: Path) -> list[str]:
    tree = ast.parse(path.read_text("utf-8"))
    found: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            found.append(node.module)
        elif isinstance(node, ast.Import):
            found.extend(alias.name for alias in node.names)
    return found


def _layer(module: str) -> str:
    return module.removeprefix("newsletter.content.").split(".")[0]


def test_model_is_a_leaf() -> None:
    imports = _imports(CONTENT / "model.py")
    assert set(imports) <= STDLIB_OK | {"newsletter.errors"}, imports


def test_every_module_imports_only_lower_layers() -> None:
    wrong: list[str] = []
    for path in sorted(CONTENT.rglob("*.py")):
        if path.name == "__init__.py" and path.parent == CONTENT:
            continue  # the package root re-exports everything
        here = _layer(".".join(path.relative_to(CONTENT).with_suffix("").parts))
        for module in _imports(path):
            if module == "newsletter.content":
                wrong.append(f"{path.name} imports the package root")
            elif module.startswith("newsletter.content."):
                there = _layer(module)
                if there != here and LAYERS[there] >= LAYERS[here]:
                    wrong.append(f"{path.relative_to(CONTENT)} imports {module}")
    assert wrong == []
