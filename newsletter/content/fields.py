"""Turn a post's metadata into :class:`~newsletter.content.model.Post` fields.

Each site generator spells things its own way; the rules here are the ones the README lists:
authors, categories/tags, covers, drafts, slugs and permalinks, and which date wins (the formats
are :mod:`newsletter.content.dates`; excerpts :mod:`newsletter.content.excerpts`).
"""

from __future__ import annotations

import functools
import os
import re
import unicodedata
from collections.abc import Mapping
from datetime import date, datetime, time, tzinfo
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

from newsletter.config import Settings
from newsletter.content.dates import (
    ELEVENTY_DATES,
    eleventy_date,
    optional_date,
    parse_date,
    plain_zone,
)
from newsletter.content.model import Cover, Post, SiteProfile
from newsletter.content.readers.base import Document
from newsletter.errors import LocatedError, PostError

# Hugo publishDate first: the day a post went public, which may be later than its date
DATE_KEYS = ("publishDate", "publishdate", "date", "published_datetime", "published", "pubDate")
_NAME_DATE_RE = re.compile(r"^(\d{4})-(\d{2})-(\d{2})[-_](.+)$")  # Zola allows 2026-03-01_slug
_PERMA_TOKEN = re.compile(
    r":(categories|i_month|i_day|month|title|year|slug|day|output_ext|filename|contentbasename"
    r"|short_year)\b"
)
_SLASHES = re.compile(r"/{2,}")
_SCHEME = re.compile(r"^[a-z][a-z0-9+.-]*://")


def _strings(value: Any) -> tuple[str, ...]:
    """A string, a comma-separated string or a list, as a tuple of non-empty strings."""
    if value is None or value is False:
        return ()
    if isinstance(value, str):
        items: list[Any] = value.split(",")
    elif isinstance(value, list | tuple):
        items = list(value)
    else:
        items = [value]
    out: list[str] = []
    for item in items:
        if isinstance(item, Mapping):
            item = item.get("name") or item.get("title") or ""
        text = str(item).strip().strip("\"'").strip()
        if text and text not in out:
            out.append(text)
    return tuple(out)


def slugify(text: str) -> str:
    """URL slug: ASCII where possible, lower case, words joined by hyphens."""
    norm = unicodedata.normalize("NFKD", text)
    ascii_text = norm.encode("ascii", "ignore").decode("ascii")
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_text.lower()).strip("-")
    return slug or re.sub(r"\s+", "-", text.strip().lower())


def _truthy(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("true", "yes", "on", "1")
    return bool(value)


def is_draft(data: Mapping[str, Any], path: Path, root: Path) -> bool:
    if _truthy(data.get("draft")) or _truthy(data.get("hidden")):
        return True
    published = data.get("published")
    if published is False or (isinstance(published, str) and published.lower() == "false"):
        return True
    full, top = str(path), str(root)
    rel = full[len(top) :] if full.startswith(top) else full
    return f"{os.sep}_drafts{os.sep}" in f"{os.sep}{rel.lstrip(os.sep)}"


def file_slug(path: Path) -> tuple[str, date | None]:
    """Slug from the file name without its date prefix (or the folder for ``index.md``)."""
    stem = path.stem
    if stem.lower() in ("index", "_index") and path.parent.name:
        stem = path.parent.name
    match = _NAME_DATE_RE.match(stem)
    if match:
        year, month, day, rest = match.groups()
        try:
            return rest, date(int(year), int(month), int(day))
        except ValueError:
            return rest, None
    return stem, None


def _origin(base: str) -> str:
    """``https://host`` of an absolute URL (string slicing: this runs once per post)."""
    start = base.find("//")
    end = base.find("/", start + 2) if start >= 0 else -1
    return base if end < 0 else base[:end]


def absolute(url: str, base: str) -> str:
    """Make ``url`` absolute against ``base``; keep mailto:, tel: and #fragments."""
    url = url.strip()
    if not url or url.startswith(("#", "mailto:", "tel:")):
        return url
    if url.startswith("//"):
        return "https:" + url
    if url.startswith("/") and "/." not in url:  # the common root-relative case, without urljoin
        return _origin(base) + url
    return urljoin(base, url)


@functools.lru_cache(maxsize=32)
def _permalink_parts(pattern: str) -> tuple[str, ...]:
    """The pattern split into literal text and ``:token`` names (even index = literal)."""
    return tuple(_PERMA_TOKEN.split(pattern))


def permalink_url(
    pattern: str, settings: Settings, *, slug: str, when: datetime, categories: tuple[str, ...]
) -> str:
    if _SCHEME.match(pattern):
        return pattern
    local = when.astimezone(settings.site.tz)
    parts = _permalink_parts(pattern)
    out: list[str] = []
    for i, part in enumerate(parts):
        if i % 2 == 0:
            out.append(part)
        elif part in ("slug", "title"):
            out.append(slug)
        elif part == "year":
            out.append(f"{local.year:04d}")
        elif part == "month":
            out.append(f"{local.month:02d}")
        elif part == "day":
            out.append(f"{local.day:02d}")
        elif part == "i_month":
            out.append(str(local.month))
        elif part == "i_day":
            out.append(str(local.day))
        elif part in ("filename", "contentbasename"):
            out.append(slug)
        elif part == "output_ext":
            out.append(".html")
        elif part == "short_year":
            out.append(f"{local.year % 100:02d}")
        elif part == "categories":
            out.append("/".join(slugify(c) for c in categories))
        else:
            out.append(":" + part)
    path = "".join(out)
    if "//" in path:
        path = _SLASHES.sub("/", path)
    if not path.startswith("/"):
        path = "/" + path
    return settings.site.url.rstrip("/") + path


def _cover(data: Mapping[str, Any], base: str) -> Cover | None:
    url: Any = None
    alt: Any = None
    cover = data.get("cover")
    image = data.get("image")
    if isinstance(cover, Mapping):
        url = cover.get("url") or cover.get("image") or cover.get("src")
        alt = cover.get("alt")
    elif isinstance(cover, str):
        url = cover
    if not url and isinstance(data.get("heroImage"), str):  # Astro
        url = data["heroImage"]
    if not url and isinstance(image, Mapping):
        url = image.get("path") or image.get("url") or image.get("src")
        alt = alt or image.get("alt")
    elif not url and isinstance(image, str):
        url = image
    if not url or not isinstance(url, str):
        return None
    alt = alt or data.get("image_alt") or data.get("cover_alt") or ""
    return Cover(url=absolute(url, base), alt=str(alt).strip())


_PATH_DATE = re.compile(r"^/?(\d{4})/(\d{1,2})/(\d{1,2})(?:/|$)")
_H1 = re.compile(r"^#[ \t]+(.+?)[ \t#]*$")


def _title_from_heading(body: str) -> tuple[str, str] | None:
    """(title, body without it) when the body opens with a ``# Heading`` (MkDocs, Docusaurus)."""
    stripped = body.lstrip("\n")
    first, _, rest = stripped.partition("\n")
    match = _H1.match(first)
    if match is None:
        return None
    return match.group(1).strip(), rest.lstrip("\n")


def _date_value(
    data: Mapping[str, Any], key: str, value: Any, path: Path, doc: Document, tz: tzinfo
) -> datetime | None:
    """The date ``value`` of ``key`` stands for, None when it is not a date."""
    if isinstance(value, Mapping):  # MkDocs: date: {created: ..., updated: ...}
        value = value.get("created")
        if value is None:
            return None
    when = parse_date(value, tz)
    if when is None and isinstance(value, str) and value.strip().lower() in ELEVENTY_DATES:
        when = eleventy_date(value.strip(), path, key=key, line=doc.key_line(key))
    return when


def build_post(
    path: Path,
    doc: Document,
    settings: Settings,
    *,
    root: Path,
    profile: SiteProfile,
    warnings: list[LocatedError],
) -> Post:
    """Validate the metadata and build the Post. Raises PostError for a missing title or date.

    A date that does not parse is read from the file (or folder) name when it has one, with a
    warning in ``warnings``.
    """
    tz = settings.site.tz
    data = doc.metadata
    syntax = doc.syntax
    if not doc.has_metadata:
        if profile.generator == "pelican":
            advice = "no metadata; start the file with 'Title: ...' and 'Date: 2026-03-01' lines"
        else:
            opener = "'+++'" if profile.default_syntax == "toml" else "'---'"
            advice = (
                f"no front matter; start the file with a {opener} block that sets at least "
                "title and date"
            )
        raise PostError(advice, path=path, line=1)
    body = doc.body
    title = data.get("title")
    if (title is None or not str(title).strip()) and doc.body_format == "markdown":
        found = _title_from_heading(body)
        if found is not None:
            title, body = found
    if title is None or not str(title).strip():
        raise PostError(
            f"no title; {syntax.add('title', '...')}", path=path, line=doc.key_line("title")
        )
    slug_from_name, name_date = file_slug(path)
    when: datetime | None = None
    for key in DATE_KEYS:
        value = data.get(key)
        if value is None or isinstance(value, bool) or value == "":
            continue
        when = _date_value(data, key, value, path, doc, tz)
        if when is None and name_date is not None:
            when = datetime.combine(name_date, time(0, 0), tzinfo=tz)
            warnings.append(
                PostError(
                    f"{key} {_shown(value)} is not a date; used {name_date.isoformat()} from the "
                    f"file name instead; write it as "
                    f"'{syntax.assign(key, name_date.isoformat())}'",
                    path=path,
                    line=doc.key_line(key),
                    field=key,
                )
            )
        if when is None:
            raise PostError(
                f"{key} {_shown(value)} is not a date; write it as "
                f"'{syntax.assign(key, '2026-03-01')}' or with a time, e.g. "
                f"'{syntax.assign(key, '2026-03-01T09:00:00-08:00')}'",
                path=path,
                line=doc.key_line(key),
                field=key,
            )
        break
    zola_path = data.get("path") if profile.generator == "zola" else None
    if not isinstance(zola_path, str):
        zola_path = None
    if when is None and zola_path is not None:
        match = _PATH_DATE.match(zola_path)
        if match is not None:
            try:
                year, month, day = (int(g) for g in match.groups())
                when = datetime(year, month, day, tzinfo=tz)
            except ValueError:
                when = None
    if when is None and name_date is not None:
        when = datetime.combine(name_date, time(0, 0), tzinfo=tz)
    if when is None:
        raise PostError(
            f"no date; {syntax.add('date', '2026-03-01')} or prefix the file name with YYYY-MM-DD-",
            path=path,
            line=doc.key_line("title"),
        )
    when = plain_zone(when)
    for line, note in doc.notes:
        warnings.append(PostError(note, path=path, line=line))
    slug = str(data.get("slug") or "").strip() or slug_from_name
    taxonomies = data.get("taxonomies")  # Zola: [taxonomies] tags = [...]
    terms: Mapping[str, Any] = taxonomies if isinstance(taxonomies, Mapping) else data
    categories = _strings(terms.get("categories")) + tuple(
        c for c in _strings(data.get("category")) if c not in _strings(terms.get("categories"))
    )
    own = data.get("permalink")
    if zola_path is not None:
        url = settings.site.url.rstrip("/") + "/" + zola_path.strip("/") + "/"
    elif isinstance(own, str) and own.strip():
        url = permalink_url(own.strip(), settings, slug=slug, when=when, categories=categories)
    else:
        url = permalink_url(
            settings.site.permalink.strip(), settings, slug=slug, when=when, categories=categories
        )
    authors = _strings(data.get("author")) or _strings(data.get("authors"))
    if profile.authors and authors:
        authors = tuple(profile.authors.get(a, a) for a in authors)
    post = Post(
        path=path,
        slug=slug,
        title=str(title).strip(),
        date=when,
        url=url,
        authors=authors,
        categories=categories,
        tags=_strings(terms.get("tags")),
        cover=_cover(data, url),
        draft=is_draft(data, path, root),
        body=body,
        body_line=doc.body_line + (doc.body.count("\n") - body.count("\n")),
        metadata=data,
        body_format=doc.body_format,
        updated=optional_date(data, ("lastmod", "updated", "updatedDate", "last_modified_at"), tz),
        expires=optional_date(data, ("expiryDate", "expirydate", "expires"), tz),
    )
    return post


def _shown(value: Any) -> str:
    return repr(value.isoformat() if isinstance(value, date) else str(value))
