"""Markdown posts: YAML/TOML front matter, else Pelican metadata lines, else none (an error
later, with advice in the site's own syntax)."""

from __future__ import annotations

from pathlib import Path

from newsletter.content.readers.base import YAML, Document
from newsletter.content.readers.frontmatter import split_front_matter
from newsletter.content.readers.pelican import split_metadata_lines


class MarkdownReader:
    name = "markdown"
    extensions: tuple[str, ...] = (".md", ".markdown", ".mdown", ".mkd")

    def read(self, text: str, path: Path) -> Document:
        doc = split_front_matter(text, path)
        if doc is None and text[:1].isalpha():
            doc = split_metadata_lines(text)
        if doc is None:
            doc = Document(metadata={}, body=text, body_line=1, syntax=YAML, has_metadata=False)
        return doc
