"""Pelican-style Markdown metadata: ``Key: value`` lines at the top, ended by a blank line.

::

    Title: Harbour lights
    Date: 2026-03-01 10:20
    Category: Events
    Tags: music, summer

    The body starts here.

Keys are case-insensitive (Pelican lower-cases them); a line indented by spaces continues the
previous value. The block counts as metadata only when it sets ``Title`` or ``Date``, so a post
that merely opens with "Note: ..." stays prose.
"""

from __future__ import annotations

import re

from newsletter.content.readers.base import PELICAN, Document, line_finder

_LINE = re.compile(r"^([A-Za-z][A-Za-z0-9_-]*)[ \t]*:[ \t]*(.*)$")
KEY_PATTERN = r"^{key}[ \t]*:"
LISTS = ("tags", "authors")


def split_metadata_lines(text: str) -> Document | None:
    """The document if ``text`` opens with Pelican metadata lines, else None."""
    if not _LINE.match(text[: text.find("\n")] if "\n" in text else text):
        return None
    data: dict[str, str] = {}
    last: str | None = None
    lines = text.split("\n")
    end = len(lines)
    for i, line in enumerate(lines):
        if not line.strip():
            end = i
            break
        match = _LINE.match(line)
        if match:
            last = match.group(1).lower()
            data[last] = match.group(2).strip()
        elif line[:1] in (" ", "\t") and last is not None:
            data[last] = f"{data[last]} {line.strip()}".strip()
        else:  # prose right under the block: not metadata after all
            return None
    if "title" not in data and "date" not in data:
        return None
    body_start = min(end + 1, len(lines))
    block = "\n".join(lines[:end])
    metadata: dict[str, object] = dict(data)
    status = data.get("status", "").lower()
    if status in ("draft", "hidden"):
        metadata["draft"] = True
    if "modified" in data:
        metadata["updated"] = data["modified"]
    return Document(
        metadata=metadata,
        body="\n".join(lines[body_start:]),
        body_line=body_start + 1,
        syntax=PELICAN,
        key_line=line_finder(block, 1, KEY_PATTERN),
    )
