"""What a reader gives back (:class:`Document`) and how a file's own syntax spells a key.

A reader turns one file's text into metadata plus a body; it knows nothing about sites, dates or
URLs (that is :mod:`newsletter.content.fields`). Messages about a missing or bad key are written in
the file's own syntax (:class:`Syntax`), so a TOML post is told ``date = 2026-03-01`` and a Pelican
post ``Date: 2026-03-01``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol


@dataclass(frozen=True)
class Syntax:
    """How this file writes ``key``/``value`` and where its metadata lives."""

    name: str  # yaml | toml | pelican | rst
    where: str  # "the front matter", "the metadata lines at the top", ...

    def assign(self, key: str, value: str) -> str:
        if self.name == "toml":
            return f"{key} = {value}"
        if self.name == "pelican":
            return f"{key[:1].upper()}{key[1:]}: {value}"
        if self.name == "rst":
            return f":{key}: {value}"
        return f"{key}: {value}"

    def add(self, key: str, value: str) -> str:
        """``add 'date: 2026-03-01' to the front matter``"""
        return f"add '{self.assign(key, value)}' to {self.where}"


YAML = Syntax("yaml", "the front matter")
TOML = Syntax("toml", "the front matter")
PELICAN = Syntax("pelican", "the metadata lines at the top of the file")
RST = Syntax("rst", "the field list under the title")


@dataclass
class Document:
    """One file as a reader sees it."""

    metadata: dict[str, Any]
    body: str
    body_line: int  # 1-based line of the file where ``body`` starts
    syntax: Syntax
    has_metadata: bool = True
    body_format: str = "markdown"  # or "html"
    key_line: Callable[[str], int] = field(default=lambda key: 1)
    notes: list[tuple[int, str]] = field(default_factory=list)  # (line, warning) from the reader


class Reader(Protocol):
    """Reads one format. Registered by file extension in :mod:`newsletter.content.readers`."""

    name: str
    extensions: tuple[str, ...]

    def read(self, text: str, path: Path) -> Document:
        """Split ``text`` into metadata and body; raise PostError for bad syntax."""
        ...


def line_finder(block: str, first_line: int, pattern: str) -> Callable[[str], int]:
    """A ``key_line`` for metadata text ``block`` starting at file line ``first_line``.

    ``pattern`` has one ``{key}`` slot (already escaped) and is matched per line, case-insensitive.
    """

    def key_line(key: str) -> int:
        rx = re.compile(pattern.format(key=re.escape(key)), re.MULTILINE | re.IGNORECASE)
        match = rx.search(block)
        return first_line if match is None else first_line + block.count("\n", 0, match.start())

    return key_line
