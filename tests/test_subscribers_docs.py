"""Every audience command is in the docs and has help with an example."""

from __future__ import annotations

import click
import pytest
from docs_helpers import command_at, docs_text

README = docs_text()
COMMANDS = [
    ("subscribers", "import"),
    ("subscribers", "list"),
    ("subscribers", "stats"),
    ("subscribers", "remove"),
    ("subscribers", "export"),
    ("suppressions", "sync"),
    ("suppressions", "list"),
    ("suppressions", "add"),
    ("suppressions", "remove"),
    ("serve",),
]


@pytest.mark.parametrize("path", COMMANDS, ids=" ".join)
def test_command_is_documented_with_an_example(path: tuple[str, ...]) -> None:
    assert f"newsletter {' '.join(path)}" in README
    cmd = command_at(path)
    assert cmd.help and "Example" in cmd.help
    for param in cmd.params:
        if isinstance(param, click.Option) and param.name not in {"help"}:
            flag = max(param.opts, key=len)
            assert flag in README or param.help, (
                f"{flag} of {path} is neither documented nor helped"
            )
