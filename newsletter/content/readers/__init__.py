"""Readers, one per format, registered by file extension (as Pelican registers its readers).

=========  ==============================  ==============================================
reader     extensions                      metadata
=========  ==============================  ==============================================
markdown   .md .markdown .mdown .mkd       YAML ``---`` / TOML ``+++`` front matter, or
                                           Pelican ``Key: value`` lines
mdx        .mdx                            front matter; JSX removed or turned into text
rst        .rst                            docutils field list (``:date:``) under the title
=========  ==============================  ==============================================

Another format is one class with ``name``, ``extensions`` and ``read(text, path) -> Document``,
added with :func:`register`.
"""

from __future__ import annotations

from newsletter.content.readers.base import Document, Reader, Syntax
from newsletter.content.readers.markdown import MarkdownReader
from newsletter.content.readers.mdx import MDXReader
from newsletter.content.readers.rst import RSTReader

READERS: dict[str, Reader] = {}


def register(reader: Reader) -> None:
    """Read files with ``reader.extensions`` with ``reader`` (replacing any earlier one)."""
    for ext in reader.extensions:
        READERS[ext.lower()] = reader


def reader_for(name: str) -> Reader | None:
    """The reader for a file name (by its extension, case-insensitive), or None."""
    dot = name.rfind(".")
    return READERS.get(name[dot:].lower()) if dot > 0 else None


for _reader in (MarkdownReader(), MDXReader(), RSTReader()):
    register(_reader)

__all__ = ["READERS", "Document", "Reader", "Syntax", "reader_for", "register"]
