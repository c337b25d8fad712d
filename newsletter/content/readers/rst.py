"""reStructuredText posts through docutils, the way Pelican reads them::

    Harbour lights
    ##############

    :date: 2026-03-01 10:20
    :category: Events
    :tags: music, summer
    :summary: The first concert of the season.

    The body starts here.

The document title is the post's title; the field list under it is the metadata (docutils'
bibliographic fields). The body becomes HTML here (``body_format = "html"``). For safety no file
is ever included (``.. include::``, ``:file:``) and ``.. raw::`` is off: nothing from the
operator's disk can reach a subscriber. What docutils warns about (such a directive, bad markup)
is a warning with its line.
"""

from __future__ import annotations

import io
import re
from pathlib import Path
from typing import Any

from docutils import nodes
from docutils.core import publish_doctree, publish_parts

from newsletter.content.readers.base import RST, Document, line_finder
from newsletter.errors import PostError

SETTINGS: dict[str, Any] = {
    "file_insertion_enabled": False,
    "raw_enabled": False,
    "report_level": 5,  # say nothing on stderr; problems are ours to report
    "halt_level": 5,
    "doctitle_xform": True,
    "docinfo_xform": True,
    "initial_header_level": 2,
    "syntax_highlight": "none",
    "embed_stylesheet": False,
    "input_encoding": "unicode",
}


_MESSAGE = re.compile(r"^[^:\n]*:(\d+): \((?:WARNING|ERROR|SEVERE)/\d\) (.+)$", re.MULTILINE)


def _settings(stream: io.StringIO | None = None, report_level: int = 5) -> dict[str, Any]:
    return {**SETTINGS, "warning_stream": stream or io.StringIO(), "report_level": report_level}


def _metadata(doctree: nodes.document) -> dict[str, Any]:
    data: dict[str, Any] = {}
    title = doctree.get("title")
    if title:
        data["title"] = str(title)
    for info in doctree.findall(nodes.docinfo):
        for child in info.children:
            if isinstance(child, nodes.field):
                name = child[0].astext().strip().lower()
                data[name] = child[1].astext().strip()
            elif isinstance(child, nodes.authors):
                data["authors"] = [a.astext().strip() for a in child.children]
            elif isinstance(child, nodes.Element):
                data[child.tagname.lower()] = child.astext().strip()
    status = str(data.get("status", "")).lower()
    if status in ("draft", "hidden"):
        data["draft"] = True
    if "modified" in data:
        data["updated"] = data["modified"]
    return data


class RSTReader:
    name = "rst"
    extensions: tuple[str, ...] = (".rst",)

    def read(self, text: str, path: Path) -> Document:
        stream = io.StringIO()
        try:
            # the first pass collects docutils' warnings (a disabled directive, bad markup)
            doctree = publish_doctree(
                text, source_path=path.name, settings_overrides=_settings(stream, 2)
            )
            parts = publish_parts(
                text, source_path=path.name, writer="html5", settings_overrides=_settings()
            )
        except Exception as err:  # docutils raises its own and plain errors alike
            raise PostError(
                f"reStructuredText cannot be read ({err}); fix the markup", path=path
            ) from err
        data = _metadata(doctree)
        body = str(parts["fragment"]).strip()
        return Document(
            metadata=data,
            body=body,
            body_line=1,
            syntax=RST,
            has_metadata=bool(data),
            body_format="html",
            key_line=line_finder(text, 1, r"^:{key}:"),
            notes=[
                (int(line), f"reStructuredText: {message.strip().rstrip('.')}; it was left out")
                for line, message in _MESSAGE.findall(stream.getvalue())
            ],
        )
