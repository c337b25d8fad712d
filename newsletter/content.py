"""Read a site's posts (front matter + Markdown) into :class:`Post` values.

Reading parses front matter only; Markdown is rendered later, by :func:`body_html`, and only for
the posts an email needs. Site conventions (Jekyll, Eleventy, Hugo) that this module understands:

* front matter in YAML (``---``) or TOML (``+++``), read with python-frontmatter;
* dates from ``date``, ``published_datetime``, ``published`` (when a date), ``pubDate`` or the
  ``YYYY-MM-DD-`` prefix of the file name (see :mod:`newsletter.content_fields`);
* drafts from ``draft: true``, ``published: false``, ``hidden: true`` or a ``_drafts/`` folder;
* template code left in bodies (:mod:`newsletter.content_templates`).

YAML and TOML errors are translated into :class:`PostError` here and nowhere else.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

import toml
import yaml
from frontmatter.default_handlers import BaseHandler, TOMLHandler, YAMLHandler

from newsletter.config import Settings
from newsletter.errors import ConfigError, LocatedError, PostError


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
    _html_cache: dict[tuple[str, ...], str] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )
    # resolves template code in the author's excerpt (set when the post is read)
    _resolve: Callable[[str], str] | None = field(
        default=None, init=False, repr=False, compare=False
    )


def excerpt_of(post: Post) -> str:
    """The post's plain-text excerpt, worked out on first use.

    Reading a site's posts does not need them (a digest shows a handful of the thousands read),
    and finding one costs a pass over the post's first blocks.
    """
    if post.excerpt is None and post._resolve is None:  # made in code, not read: none given
        post.excerpt = ""
    if post.excerpt is None:
        from newsletter.content_fields import excerpts, plain_text

        text = post.markdown if post.markdown is not None else post.body
        excerpt, excerpt_md = excerpts(post.metadata, text)
        if (
            excerpt_md is not None
            and post._resolve is not None
            and ("{{" in excerpt_md or "{%" in excerpt_md)
        ):
            excerpt_md = post._resolve(excerpt_md)
            excerpt = plain_text(excerpt_md)
        post.excerpt, post.excerpt_markdown = excerpt, excerpt_md
    return post.excerpt


@dataclass
class ReadResult:
    posts: list[Post]  # every post read, in no particular order
    errors: list[PostError]  # one per post that could not be read
    warnings: list[LocatedError]  # e.g. template code removed, with path:line


_ISO_DAY = re.compile(r"\b(\d{4})-(\d{2})-(\d{2})\b")
POST_SUFFIXES = (".md", ".markdown", ".mdown", ".mkd")
_YAML = YAMLHandler()
_TOML = TOMLHandler()
_HANDLERS: tuple[BaseHandler, ...] = (_YAML, _TOML)


def _front_matter(text: str, path: Path) -> tuple[dict[str, Any], str, int, str, int]:
    """Split ``text`` into (metadata, body, body_line, front matter text, its first line).

    Raises PostError with the file line of a YAML/TOML syntax error.
    """
    lead = len(text) - len(text.lstrip())
    stripped = text[lead:]
    first_line = text.count("\n", 0, lead) + 1
    handler = next((h for h in _HANDLERS if h.detect(stripped)), None)
    if handler is None:
        return {}, text, 1, "", 1
    try:
        fm, body = handler.split(stripped)
    except ValueError as err:
        delim = handler.START_DELIMITER
        raise PostError(
            f"front matter opened with {delim!r} is never closed; add a closing {delim!r} line",
            path=path,
            line=first_line,
        ) from err
    fm_line = first_line  # fm starts with the newline that ends the opening delimiter
    body_start = len(stripped) - len(body)
    body_line = first_line + stripped.count("\n", 0, body_start)
    # the closing delimiter's line ends with a newline that belongs to it
    if body.startswith("\n"):
        body = body[1:]
        body_line += 1
    try:
        data = handler.load(fm)
    except yaml.YAMLError as err:
        # where the construct the user got wrong began (an unclosed '[' or quote), else where
        # the parser gave up
        mark = getattr(err, "context_mark", None) or getattr(err, "problem_mark", None)
        line = fm_line + mark.line if mark is not None else fm_line
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise PostError(
            f"front matter is not valid YAML ({problem}); fix the syntax (quote values that "
            "contain ': ' or start with '[', '{', '@', '`')",
            path=path,
            line=line,
        ) from err
    except toml.TomlDecodeError as err:
        raise PostError(
            f"front matter is not valid TOML ({err.msg}); fix the syntax",
            path=path,
            line=fm_line + err.lineno - 1,
        ) from err
    except (TypeError, ValueError) as err:  # impossible dates such as 2026-02-30
        line = fm_line
        for match in _ISO_DAY.finditer(fm):
            try:
                date(*(int(g) for g in match.groups()))
            except ValueError:
                line = fm_line + fm.count("\n", 0, match.start())
                break
        raise PostError(
            f"front matter has a value that cannot be read ({err}); fix it, e.g. the date",
            path=path,
            line=line,
        ) from err
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise PostError(
            "front matter must be a mapping of keys to values (key: value), "
            f"not a {type(data).__name__}",
            path=path,
            line=fm_line + 1,
        )
    return data, body, body_line, fm, fm_line


def _key_line(fm: str, key: str, fm_line: int) -> int:
    """The file line where ``key`` is set in the front matter (best effort)."""
    match = re.search(rf"^[ \t]*['\"]?{re.escape(key)}['\"]?\s*[:=]", fm, re.MULTILINE)
    if match is None:
        return fm_line
    return fm_line + fm.count("\n", 0, match.start())


def read_post(path: Path, settings: Settings, *, root: Path) -> Post:
    """Read one post's front matter. ``root`` is the content folder it was found in.

    Template code in its body is resolved against the site only (links to other posts need
    :func:`read_posts`). Raises :class:`PostError` for a post that cannot be read.
    """
    post = _parse(path, settings, root=root)
    from newsletter.content_templates import PostIndex, resolve_post

    resolve_post(post, settings, PostIndex([post]))
    return post


def _parse(path: Path, settings: Settings, *, root: Path) -> Post:
    from newsletter.content_fields import build_post

    try:
        raw = path.read_bytes()
    except OSError as err:
        reason = err.strerror or str(err)
        raise PostError(
            f"cannot read the file ({reason}); check that it exists and is readable",
            path=path,
        ) from err
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = raw.count(b"\n", 0, err.start) + 1
        raise PostError(
            f"file is not UTF-8 (byte 0x{raw[err.start]:02x} at offset {err.start}); "
            "re-save it as UTF-8",
            path=path,
            line=line,
        ) from err
    if "\r" in text:
        text = text.replace("\r\n", "\n")
    data, body, body_line, fm, fm_line = _front_matter(text, path)

    def key_line(key: str) -> int:
        return _key_line(fm, key, fm_line) if fm else 1

    return build_post(
        path, data, body, body_line, settings, root=root, key_line=key_line, has_fm=bool(fm)
    )


def _skip_dir(name: str) -> bool:
    return name.startswith(".") or name == "node_modules"


def find_post_files(settings: Settings) -> list[tuple[Path, Path]]:
    """(file, content folder) for every post file, in a stable order.

    Hidden folders and files, ``node_modules``, README and LICENSE files are not posts.
    """
    found: list[tuple[Path, Path]] = []
    for folder in settings.content_dirs:
        if not folder.is_dir():
            raise ConfigError(
                "content folder not found; set [site] content in newsletter.toml or pass "
                "--content DIR",
                path=folder,
            )
        for dirpath, dirnames, filenames in os.walk(folder, followlinks=True):
            dirnames[:] = sorted(d for d in dirnames if not _skip_dir(d))
            base = Path(dirpath)
            for name in sorted(filenames):  # a broken symlink is listed too, and reported
                lower = name.lower()
                if (
                    not lower.endswith(POST_SUFFIXES)
                    or name.startswith(".")
                    or lower in ("readme.md", "license.md")
                ):
                    continue
                found.append((base / name, folder))
    return found


def read_posts(settings: Settings) -> ReadResult:
    """Read the front matter of every post in the site's content folders.

    Bad posts are collected in ``errors`` (one line each); template code that cannot be resolved
    is removed and reported in ``warnings``. Markdown is not rendered here.
    """
    from newsletter.content_templates import PostIndex, resolve_post

    posts: list[Post] = []
    errors: list[PostError] = []
    for path, folder in find_post_files(settings):
        try:
            posts.append(_parse(path, settings, root=folder))
        except PostError as err:
            errors.append(err)
    index = PostIndex(posts)
    warnings: list[LocatedError] = []
    for post in posts:
        warnings.extend(resolve_post(post, settings, index))
    return ReadResult(posts=posts, errors=errors, warnings=warnings)


def body_html(post: Post, settings: Settings) -> str:
    """The post's body as email-safe HTML: absolute links, no scripts, embeds as links.

    Cached on the post, so rendering it for several emails costs once.
    """
    from newsletter.content_html import render_body

    return _cached(post, settings, "body", render_body)


def excerpt_html(post: Post, settings: Settings) -> str:
    """The excerpt as safe HTML: the author's excerpt rendered, else the plain-text excerpt."""
    from newsletter.content_html import render_excerpt

    return _cached(post, settings, "excerpt", render_excerpt)


def _cached(
    post: Post, settings: Settings, part: str, make: Callable[[Post, Settings], str]
) -> str:
    key = (part, settings.site.url, settings.site.permalink)
    cached = post._html_cache.get(key)
    if cached is None:
        cached = post._html_cache[key] = make(post, settings)
    return cached


__all__ = [
    "Cover",
    "Post",
    "ReadResult",
    "body_html",
    "excerpt_html",
    "find_post_files",
    "read_post",
    "read_posts",
]
