"""Excerpts and plain text: what a digest shows of a post, worked out on first use."""

from __future__ import annotations

import html
import re
from collections.abc import Iterator, Mapping
from typing import Any

from newsletter.content.model import Post

EXCERPT_KEYS = ("excerpt", "summary", "description")
# <!--more--> (Hugo, Jekyll, MkDocs), <!--truncate--> (Docusaurus)


# <!--more--> (Hugo, Jekyll, MkDocs), <!--truncate--> (Docusaurus)
MORE_RE = re.compile(r"<!--\s*(?:more|excerpt|truncate)\s*-->", re.IGNORECASE)


EXCERPT_MAX = 300


_BLANK_LINE = re.compile(r"\n\s*\n")


_ONLY_TAGS = re.compile(r"\s*(?:<[^>]+>\s*)+")


_ONLY_IMAGE = re.compile(r"\s*!\[[^\]]*\]\([^)]*\)\s*")


# Eleventy's date keywords: from git history (stable), or from file times (not: a checkout or a
# copy resets them, which would put every post in "this month")


_MD_IMAGE = re.compile(r"!\[([^\]]*)\]\([^)]*\)")


_MD_LINK = re.compile(r"\[([^\]]+)\]\([^)]*\)|\[([^\]]+)\]\[[^\]]*\]")


_TAG = re.compile(r"<[^>]+>")


_TEMPLATE = re.compile(r"\{\{.*?\}\}|\{%.*?%\}", re.DOTALL)


_INVISIBLE = re.compile(
    r"<(script|style|template|noscript|iframe|textarea|select)\b.*?</\1\s*>",
    re.IGNORECASE | re.DOTALL,
)


_COMMENT = re.compile(r"<!--.*?-->", re.DOTALL)


_BLOCK_MARK = re.compile(r"^\s{0,3}(?:#{1,6}|>|[-*+]|\d+[.)])\s+", re.MULTILINE)


_EMPH = re.compile(r"(\*\*|__|\*|_|~~|`)(?=\S)(.+?)(?<=\S)\1")


def plain_text(markdown: str) -> str:
    """Markdown/HTML snippet to one line of plain text (cheap; no full render)."""
    text = markdown
    if "{" in text:
        text = _TEMPLATE.sub("", text)
    if "<" in text:
        text = _INVISIBLE.sub("", text)
        text = _COMMENT.sub("", text)
    if "[" in text:
        text = _MD_IMAGE.sub("", text)
        text = _MD_LINK.sub(lambda m: m.group(1) or m.group(2), text)
    if "<" in text:
        text = _TAG.sub("", text)
    if "*" in text or "_" in text or "`" in text or "~" in text:
        text = _EMPH.sub(r"\2", text)
    text = _BLOCK_MARK.sub("", text)
    if "&" in text:
        text = html.unescape(text)
    return " ".join(text.split())


def shorten(text: str, limit: int = EXCERPT_MAX) -> str:
    if len(text) <= limit:
        return text
    cut = text[:limit].rsplit(" ", 1)[0].rstrip(",;:.-–— ")
    return cut + "…"


def _is_prose_block(block: str) -> bool:
    first = block.lstrip()
    return not (
        first.startswith(("#", "```", "~~~", "|", "<iframe", "<table", "<figure", "{%", "<!--"))
        or first.startswith("    ")
        or _ONLY_TAGS.fullmatch(block) is not None
        or _ONLY_IMAGE.fullmatch(block) is not None
    )


def excerpts(data: Mapping[str, Any], body: str) -> tuple[str, str | None]:
    """(plain-text excerpt, the author's excerpt as Markdown or None)."""
    for key in EXCERPT_KEYS:
        value = data.get(key)
        if isinstance(value, str) and value.strip():
            return plain_text(value), value.strip()
    match = MORE_RE.search(body)
    if match:
        before = body[: match.start()].strip()
        text = plain_text(before)
        if text:
            return text, before
    for block in _blocks(body):
        if _is_prose_block(block):
            text = plain_text(block)
            if text:
                return shorten(text), None
    for block in _blocks(body):
        text = plain_text(block)
        if text:
            return shorten(text), None
    return "", None


def _blocks(body: str) -> Iterator[str]:
    """Blank-line separated blocks, lazily (most posts need only the first one or two)."""
    pos = 0
    while pos < len(body):
        match = _BLANK_LINE.search(body, pos)
        end = match.start() if match else len(body)
        block = body[pos:end]
        if block.strip():
            yield block
        pos = match.end() if match else len(body)


def excerpt_of(post: Post) -> str:
    """The post's plain-text excerpt, worked out on first use.

    Reading a site's posts does not need them (a digest shows a handful of the thousands read),
    and finding one costs a pass over the post's first blocks.
    """
    if post.excerpt is None and post._resolve is None:  # made in code, not read: none given
        post.excerpt = ""
    if post.excerpt is None:
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
