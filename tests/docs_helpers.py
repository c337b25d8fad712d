"""The user documentation as one text: README.md plus every hand-written page under docs/.

Doc tests read this rather than README.md alone (the README is a quickstart; the guide lives in
docs/). Generated pages (the CLI and settings references) are not included: a flag or a setting
is documented only when a person wrote about it.
"""

from __future__ import annotations

from pathlib import Path

import click

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"


def docs_pages() -> list[Path]:
    return sorted(DOCS.rglob("*.md"))


def docs_text() -> str:
    parts = [(ROOT / "README.md").read_text(encoding="utf-8")]
    parts += [page.read_text(encoding="utf-8") for page in docs_pages()]
    return "\n".join(parts)


def command_at(path: tuple[str, ...]) -> click.Command:
    """The CLI command at ``path`` (e.g. ``("subscribers", "import")``)."""
    from newsletter.cli import main

    cmd: click.Command = main
    for name in path:
        assert isinstance(cmd, click.Group), path
        cmd = cmd.commands[name]
    return cmd
