"""Feeds as a source of posts: RSS 0.9x/1.0/2.0 and Atom through feedparser, JSON Feed 1.1 read
directly. For sites whose Markdown is not at hand (Ghost, WordPress, Substack, Medium).

Fetching (:func:`fetch_feed`) uses httpx with a connect/read timeout, an overall deadline and a
size limit; the last body of each feed is cached with its ``ETag``/``Last-Modified`` (the store's
``feed_cache`` table) and a 304 Not Modified reuses it. Every failure is a :class:`FeedError`
naming the feed and what to do; a feed that cannot be fetched stops the command, so an issue is
never built (or sent) without it.

Entries become posts: title, date (published, else updated), link, authors, categories, the
content (else the summary) as HTML, sanitized and made absolute against the entry's link like a
post's body; the cover is ``media:thumbnail``, an image ``media:content`` or enclosure, JSON
Feed's ``image``, else the first image of the content.
"""

from __future__ import annotations

import calendar
import html
import json
import re
import time as _time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlparse
from xml.sax import SAXParseException

import feedparser
import httpx

from newsletter.config import Settings
from newsletter.content.dates import parse_date
from newsletter.content.excerpts import EXCERPT_MAX, plain_text, shorten
from newsletter.content.fields import absolute, slugify
from newsletter.content.model import Cover, Post, ReadResult
from newsletter.errors import FeedError, LocatedError, PostError
from newsletter.store.feeds import CachedFeed

MAX_BYTES = 10 * 1024 * 1024  # a feed of 1,000 full posts is ~5 MB
TIMEOUT = 10.0  # seconds to connect, and between two reads
DEADLINE = 30.0  # seconds for the whole download (a server that trickles bytes)
USER_AGENT = "newsletter (+https://github.com/; feed reader)"
_FIRST_IMG = re.compile(r"""<img\b[^>]*?\bsrc\s*=\s*["']([^"']+)["'][^>]*>""", re.IGNORECASE)
_TAG = re.compile(r"<[^>]+>")  # replaced by a space: "</p><p>" separates words
_IMG_ALT = re.compile(r"""\balt\s*=\s*["']([^"']*)["']""", re.IGNORECASE)


class FeedCache(Protocol):
    def get(self, url: str) -> CachedFeed | None: ...

    def put(self, feed: CachedFeed) -> None: ...


@dataclass(frozen=True)
class FetchedFeed:
    source: str  # the URL or file as given
    body: bytes
    content_type: str = ""
    not_modified: bool = False  # the server said 304 and the cached body is used


def is_url(source: str) -> bool:
    return source.startswith(("http://", "https://"))


def fetch_feed(
    source: str,
    *,
    cache: FeedCache | None = None,
    client: httpx.Client | None = None,
    timeout: float = TIMEOUT,
    deadline: float = DEADLINE,
    max_bytes: int = MAX_BYTES,
    root: Path | None = None,
) -> FetchedFeed:
    """The feed's bytes, from a file or over HTTP(S). Raises FeedError with what went wrong."""
    if not is_url(source):
        return _read_file(source, root, max_bytes)
    cached = cache.get(source) if cache is not None else None
    headers = {"User-Agent": USER_AGENT, "Accept-Encoding": "gzip, deflate"}
    if cached is not None:
        if cached.etag:
            headers["If-None-Match"] = cached.etag
        if cached.last_modified:
            headers["If-Modified-Since"] = cached.last_modified
    own = client is None
    http = client or httpx.Client(follow_redirects=True, timeout=httpx.Timeout(timeout))
    try:
        body, response = _download(http, source, headers, timeout, deadline, max_bytes)
    finally:
        if own:
            http.close()
    if response.status_code == 304:
        if cached is None:
            raise FeedError(
                "the server answered 304 Not Modified to a request that asked for no cached "
                "copy; try again later or report it to the feed's owner",
                source=source,
            )
        return FetchedFeed(source, cached.body, not_modified=True)
    if cache is not None:
        cache.put(
            CachedFeed(
                url=source,
                etag=response.headers.get("ETag", ""),
                last_modified=response.headers.get("Last-Modified", ""),
                body=body,
                fetched_at=datetime.now(UTC).isoformat(timespec="seconds"),
            )
        )
    return FetchedFeed(source, body, response.headers.get("Content-Type", ""))


def _download(
    http: httpx.Client,
    url: str,
    headers: Mapping[str, str],
    timeout: float,
    deadline: float,
    max_bytes: int,
) -> tuple[bytes, httpx.Response]:
    """GET ``url`` with the limits; every httpx error becomes a FeedError here."""
    limit = _size(max_bytes)
    started = _time.monotonic()
    try:
        with http.stream(
            "GET", url, headers=dict(headers), timeout=httpx.Timeout(timeout)
        ) as response:
            if response.status_code == 304:
                return b"", response
            if response.status_code >= 400:
                raise FeedError(
                    f"the server answered HTTP {response.status_code} "
                    f"{response.reason_phrase}; check the feed URL",
                    source=url,
                )
            declared = response.headers.get("Content-Length", "")
            if declared.isdigit() and int(declared) > max_bytes:
                raise FeedError(
                    f"the feed is {_size(int(declared))}, more than the {limit} limit; use a "
                    "feed with fewer entries (many sites take ?limit= or /page/)",
                    source=url,
                )
            chunks: list[bytes] = []
            total = 0
            for chunk in response.iter_bytes():
                total += len(chunk)
                if total > max_bytes:
                    raise FeedError(
                        f"the feed is larger than the {limit} limit; use a feed with fewer "
                        "entries (many sites take ?limit= or /page/)",
                        source=url,
                    )
                if _time.monotonic() - started > deadline:
                    raise FeedError(
                        f"the download took more than {deadline:g} s; the server is too slow, "
                        "try again later",
                        source=url,
                    )
                chunks.append(chunk)
            return b"".join(chunks), response
    except httpx.TimeoutException as err:
        raise FeedError(
            f"no answer within {timeout:g} s ({type(err).__name__}); the server is too slow or "
            "down, try again later",
            source=url,
        ) from err
    except httpx.HTTPError as err:
        raise FeedError(
            f"cannot fetch the feed ({err}); check the URL and the network", source=url
        ) from err


def _size(n: int) -> str:
    return f"{n / 1024 / 1024:.0f} MB" if n >= 1024 * 1024 else f"{n} bytes"


def _read_file(source: str, root: Path | None, max_bytes: int) -> FetchedFeed:
    path = Path(source).expanduser()
    if not path.is_absolute() and root is not None:
        path = root / path
    try:
        if path.stat().st_size > max_bytes:
            raise FeedError(
                f"the feed file is larger than the {_size(max_bytes)} limit", source=source
            )
        if not path.is_file():
            raise FeedError("not a regular file; give a feed file or an http(s) URL", source=source)
        return FetchedFeed(source, path.read_bytes())
    except OSError as err:
        raise FeedError(
            f"cannot read the feed file ({err.strerror}); give an existing file or an http(s) URL",
            source=source,
        ) from err


@dataclass
class _Entry:
    title: str
    link: str
    entry_id: str
    published: datetime | None
    updated: datetime | None
    authors: tuple[str, ...]
    categories: tuple[str, ...]
    content: str  # HTML
    summary: str  # HTML or text
    cover: tuple[str, str] | None  # (url, alt)


def parse_feed(fetched: FetchedFeed, settings: Settings) -> ReadResult:
    """The feed's entries as posts (``errors`` for entries without a date or link).

    Raises FeedError when the body is not a feed at all (malformed XML, invalid JSON).
    """
    body = fetched.body
    head = body[:200].lstrip()
    if "json" in fetched.content_type.lower() or head.startswith(b"{"):
        entries, base = _json_feed(body, fetched.source)
    else:
        entries, base = _xml_feed(body, fetched.source)
    posts: list[Post] = []
    errors: list[PostError] = []
    for number, entry in enumerate(entries, 1):
        try:
            posts.append(_post(entry, number, base, fetched.source, settings))
        except PostError as err:
            errors.append(err)
    return ReadResult(posts=posts, errors=errors, warnings=[])


def _xml_feed(body: bytes, source: str) -> tuple[list[_Entry], str]:
    parsed = feedparser.parse(
        body, resolve_relative_uris=False, sanitize_html=False, response_headers={}
    )
    err = parsed.get("bozo_exception")
    # not well-formed XML: feedparser's lenient parser may still guess entries, but what it
    # guesses (a title running into the next item, a lost date) must not reach subscribers
    if parsed.get("bozo") and (isinstance(err, SAXParseException) or not parsed.get("entries")):
        line = getattr(err, "getLineNumber", lambda: None)()
        where = f" at line {line}" if line else ""
        raise FeedError(
            f"not a valid RSS or Atom feed ({err}{where}); check the URL points at the feed "
            "itself, or ask the site to fix it",
            source=source,
        )
    if not parsed.get("version") and not parsed.get("entries"):
        raise FeedError(
            "not an RSS, Atom or JSON feed (no channel or entries found); check the URL points "
            "at the feed itself, not a web page",
            source=source,
        )
    feed = parsed.get("feed", {})
    base = str(feed.get("link") or (source if is_url(source) else ""))
    return [_xml_entry(e) for e in parsed.get("entries", [])], base


def _struct_date(value: Any) -> datetime | None:
    if not value:
        return None
    return datetime.fromtimestamp(calendar.timegm(value), UTC)


def _xml_entry(e: Any) -> _Entry:
    content = ""
    for part in e.get("content") or []:
        if "html" in str(part.get("type", "")).lower() or not content:
            content = str(part.get("value") or "")
    summary = str(e.get("summary") or "")
    authors = tuple(str(a.get("name")) for a in e.get("authors") or [] if a.get("name"))
    if not authors and e.get("author"):
        authors = (str(e.get("author")),)
    categories = tuple(str(t.get("term")) for t in e.get("tags") or [] if t.get("term"))
    cover: tuple[str, str] | None = None
    for thumb in e.get("media_thumbnail") or []:
        if thumb.get("url"):
            cover = (str(thumb["url"]), "")
            break
    if cover is None:
        for media in e.get("media_content") or []:
            kind = str(media.get("medium") or media.get("type") or "")
            if media.get("url") and kind.startswith("image"):
                cover = (str(media["url"]), "")
                break
    if cover is None:
        for link in e.get("enclosures") or []:
            if link.get("href") and str(link.get("type", "")).startswith("image/"):
                cover = (str(link["href"]), "")
                break
    return _Entry(
        title=str(e.get("title") or ""),
        link=str(e.get("link") or ""),
        entry_id=str(e.get("id") or ""),
        published=_struct_date(e.get("published_parsed")),
        # dict.get: feedparser's own get() maps a missing updated to published, with a warning
        updated=_struct_date(dict.get(e, "updated_parsed")),
        authors=authors,
        categories=categories,
        content=content,
        summary=summary,
        cover=cover,
    )


def _json_feed(body: bytes, source: str) -> tuple[list[_Entry], str]:
    try:
        data = json.loads(body.decode("utf-8-sig"))
    except UnicodeDecodeError as err:
        raise FeedError(f"the JSON feed is not UTF-8 ({err.reason})", source=source) from err
    except json.JSONDecodeError as err:
        raise FeedError(
            f"not valid JSON ({err.msg} at line {err.lineno}, column {err.colno}); ask the site "
            "to fix its feed",
            source=source,
        ) from err
    if not isinstance(data, dict) or not str(data.get("version", "")).startswith(
        "https://jsonfeed.org/version/1"
    ):
        raise FeedError(
            'not a JSON Feed (no "version": "https://jsonfeed.org/version/1.1"); check the URL',
            source=source,
        )
    items = data.get("items")
    if not isinstance(items, list):
        raise FeedError('a JSON Feed needs an "items" list', source=source)
    tz = UTC
    entries: list[_Entry] = []
    for item in items:
        if not isinstance(item, dict):
            continue
        people = item.get("authors") or ([item["author"]] if item.get("author") else [])
        authors = tuple(str(a.get("name")) for a in people if isinstance(a, dict) and a.get("name"))
        text = item.get("content_text")
        content = str(item.get("content_html") or "") or (
            "".join(f"<p>{html.escape(p)}</p>" for p in str(text).split("\n\n")) if text else ""
        )
        image = item.get("image") or item.get("banner_image")
        entries.append(
            _Entry(
                title=str(item.get("title") or ""),
                link=str(item.get("url") or item.get("external_url") or ""),
                entry_id=str(item.get("id") or ""),
                published=parse_date(item.get("date_published"), tz),
                updated=parse_date(item.get("date_modified"), tz),
                authors=authors,
                categories=tuple(str(t) for t in item.get("tags") or [] if str(t).strip()),
                content=content,
                summary=str(item.get("summary") or ""),
                cover=(str(image), "") if isinstance(image, str) and image else None,
            )
        )
    base = str(data.get("home_page_url") or (source if is_url(source) else ""))
    return entries, base


def _post(entry: _Entry, number: int, base: str, source: str, settings: Settings) -> Post:
    where = f"{source}#entry-{number}"
    link = absolute(entry.link, base) if entry.link else ""
    if not link.startswith(("http://", "https://")):
        raise PostError(
            f"entry {number} ({entry.title or 'no title'!r}) has no link to the post; "
            "the feed must give each entry a URL",
            path=where,
        )
    when = entry.published or entry.updated
    if when is None:
        raise PostError(
            f"entry {number} ({entry.title or 'no title'!r}) has no date (published or "
            "updated); the feed must date its entries",
            path=where,
        )
    body = entry.content or entry.summary
    text = plain_text(_TAG.sub(" ", body)) if "<" in body else plain_text(body)
    title = plain_text(entry.title) or shorten(text, 80) or link
    cover: Cover | None = None
    if entry.cover is not None:
        cover = Cover(url=absolute(entry.cover[0], link), alt=entry.cover[1])
    elif "<img" in body:
        match = _FIRST_IMG.search(body)
        if match is not None:
            alt = _IMG_ALT.search(match.group(0))
            cover = Cover(
                url=absolute(html.unescape(match.group(1)), link), alt=alt.group(1) if alt else ""
            )
    path_part = urlparse(link).path.rstrip("/")
    slug = slugify(path_part.rsplit("/", 1)[-1].rsplit(".", 1)[0]) if path_part else ""
    slug = slug or slugify(title)
    summary = entry.summary if entry.content and entry.summary else ""
    excerpt = shorten(plain_text(_TAG.sub(" ", summary)) if summary else text, EXCERPT_MAX)
    post = Post(
        path=Path(urlparse(link).netloc or "feed") / slug,
        slug=slug,
        title=title,
        date=when.astimezone(settings.site.tz),
        url=link,
        authors=entry.authors,
        categories=entry.categories,
        cover=cover,
        excerpt=excerpt,
        body=body,
        markdown=body,  # HTML, final: feeds carry no template code to resolve
        excerpt_markdown=summary or None,
        body_format="html",
        updated=entry.updated,
        metadata={"feed": source, "id": entry.entry_id},
    )
    return post


def read_feeds(
    sources: Iterable[str],
    settings: Settings,
    *,
    cache: FeedCache | None = None,
    client: httpx.Client | None = None,
    timeout: float = TIMEOUT,
    max_bytes: int = MAX_BYTES,
) -> ReadResult:
    """Every entry of every feed in ``sources``. A feed that fails raises FeedError."""
    result = ReadResult(posts=[], errors=[], warnings=[])
    for source in sources:
        fetched = fetch_feed(
            source,
            cache=cache,
            client=client,
            timeout=timeout,
            max_bytes=max_bytes,
            root=settings.root,
        )
        part = parse_feed(fetched, settings)
        if not part.posts and not part.errors:
            result.warnings.append(
                LocatedError(
                    "the feed has no entries; nothing from it is in the issue", path=source
                )
            )
        result.posts.extend(part.posts)
        result.errors.extend(part.errors)
    return result
