"""Read a site's posts (front matter + Markdown) into :class:`Post` values.

INTERFACE FIRST: the dataclasses below are the contract other stages use. The reader itself is
being written (issue #2).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Cover:
    url: str  # absolute
    alt: str


@dataclass
class Post:
    path: Path  # the file, as found
    slug: str
    title: str
    date: datetime  # always timezone-aware
    url: str  # absolute public URL of the post
    authors: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    cover: Cover | None = None
    excerpt: str = ""  # plain text, never empty when the post has text
    draft: bool = False
    body: str = ""  # raw Markdown/HTML body after the front matter
    body_line: int = 1  # 1-based line in the file where ``body`` starts
    metadata: Mapping[str, Any] = field(default_factory=dict)
