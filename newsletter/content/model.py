"""The values every part of :mod:`newsletter.content` hands around: a leaf (standard library and
:mod:`newsletter.errors` only), so readers, generators, feeds, selection and rendering can all
import it without importing each other."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from newsletter.errors import LocatedError, PostError


@dataclass(frozen=True)
class Cover:
    url: str  # absolute
    alt: str


@dataclass
class Post:
    path: Path  # the file, as found (for a feed entry: the feed's URL or file)
    slug: str
    title: str
    date: datetime  # always timezone-aware
    url: str  # absolute public URL of the post
    authors: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    cover: Cover | None = None
    # plain text, never empty when the post has text; None until excerpt_of() works it out
    excerpt: str | None = None
    draft: bool = False
    body: str = ""  # raw Markdown/HTML body after the front matter
    body_line: int = 1  # 1-based line in the file where ``body`` starts
    metadata: Mapping[str, Any] = field(default_factory=dict)
    # ``body`` with template code resolved against the site and the other posts (None until
    # read_post/read_posts resolved it; body_html then resolves ``body`` itself).
    markdown: str | None = None
    excerpt_markdown: str | None = None  # the author's excerpt (front matter or <!--more-->)
    body_format: str = "markdown"  # "markdown", or "html" (reStructuredText, feed entries)
    updated: datetime | None = None  # Hugo lastmod, MkDocs date.updated, Atom <updated>
    expires: datetime | None = None  # Hugo expiryDate: not selected from this moment on
    _html_cache: dict[tuple[str, ...], str] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )
    # resolves template code in the author's excerpt (set when the post is read)
    _resolve: Callable[[str], str] | None = field(
        default=None, init=False, repr=False, compare=False
    )


@dataclass(frozen=True)
class SiteProfile:
    """What reading posts needs to know about the site's generator (see ``generators``)."""

    generator: str = ""  # "jekyll", "hugo", ... or "" for none
    authors: Mapping[str, str] = field(default_factory=dict)  # key -> name (authors.yml)
    default_syntax: str = "yaml"  # how the site writes front matter: "yaml" or "toml"


@dataclass
class ReadResult:
    posts: list[Post]  # every post read, in no particular order
    errors: list[PostError]  # one per post that could not be read
    warnings: list[LocatedError]  # e.g. template code removed, with path:line
    # files in the content folders that are not posts and were passed over, one line each
    # (a FIFO, a socket, a symlink loop)
    skipped: list[LocatedError] = field(default_factory=list)


__all__ = ["Cover", "Post", "ReadResult", "SiteProfile"]
