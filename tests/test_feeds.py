"""Feeds as a source, against feed files served from a real HTTP server on 127.0.0.1.

Golden pairs: ``tests/golden/feeds/<feed>`` beside ``<feed>.expected.json`` (the posts and
errors the feed gives). Then the failures, each with its exact message: malformed XML, a 50 MB
feed, a server that does not answer, a 404; the ETag cache in a real SQLite store (304 Not
Modified); and the CLI, which stops rather than build an issue without a feed.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from newsletter.cli import main
from newsletter.config import Settings, SiteSettings
from newsletter.content import body_html, excerpt_html, excerpt_of
from newsletter.content.feeds import fetch_feed, parse_feed, read_feeds
from newsletter.errors import FeedError
from newsletter.store import open_store
from tests.feed_server import ETAG, LAST_MODIFIED, FeedServer, feed_server

FEEDS = Path(__file__).parent / "golden" / "feeds"
CASES = sorted(p.name for p in FEEDS.iterdir() if not p.name.endswith(".expected.json"))
TYPES = {".xml": "application/xml", ".json": "application/feed+json"}
MALFORMED = b'<?xml version="1.0"?>\n<rss version="2.0">\n<channel>\n<item><title>Oops</item>\n'


def settings(root: Path) -> Settings:
    return Settings(root=root, site=SiteSettings(url="https://mail.example.org", timezone="UTC"))


@pytest.fixture(scope="module")
def server() -> Iterator[FeedServer]:
    routes = {f"/{name}": (TYPES[Path(name).suffix], (FEEDS / name).read_bytes()) for name in CASES}
    routes["/bad.xml"] = ("application/xml", MALFORMED)
    routes["/page.html"] = ("text/html", b"<html><body><p>Not a feed</p></body></html>")
    with feed_server(routes) as running:
        yield running


@pytest.mark.parametrize("case", CASES)
def test_feed_golden(case: str, server: FeedServer, tmp_path: Path, update_golden: bool) -> None:
    url = f"{server.url}/{case}"
    result = read_feeds([url], settings(tmp_path))
    s = settings(tmp_path)
    got: dict[str, Any] = {
        "posts": [
            {
                "slug": p.slug,
                "title": p.title,
                "date": p.date.isoformat(),
                "updated": p.updated.isoformat() if p.updated else None,
                "url": p.url,
                "author": list(p.authors),
                "categories": list(p.categories),
                "cover": {"url": p.cover.url, "alt": p.cover.alt} if p.cover else None,
                "excerpt": excerpt_of(p),
                "excerpt_html": excerpt_html(p, s),
                "body_html": body_html(p, s),
            }
            for p in result.posts
        ],
        "errors": [e.format().replace(server.url, "SERVER") for e in result.errors],
    }
    expected_path = FEEDS / f"{case}.expected.json"
    if update_golden:
        expected_path.write_text(json.dumps(got, indent=2, ensure_ascii=False) + "\n", "utf-8")
    assert expected_path.exists(), f"no expectation {expected_path}; run pytest --update-golden"
    assert got == json.loads(expected_path.read_text("utf-8"))


def test_relative_links_are_made_absolute_against_the_entry_link(
    server: FeedServer, tmp_path: Path
) -> None:
    (post, _) = read_feeds([f"{server.url}/rss2.xml"], settings(tmp_path)).posts
    html = body_html(post, settings(tmp_path))
    assert 'href="https://quay.example.org/2026/02/knots/"' in html
    assert 'href="https://quay.example.org/about/"' in html
    assert 'src="https://quay.example.org/2026/03/net-mending/mending.jpg"' in html
    assert "<script" not in html and "expression" not in html
    assert post.cover is not None
    assert post.cover.url == "https://quay.example.org/img/nets-thumb.jpg"


def _error(source: str, tmp_path: Path, **kwargs: Any) -> str:
    with pytest.raises(FeedError) as err:
        read_feeds([source], settings(tmp_path), **kwargs)
    return err.value.format()


FAILURES = {
    "malformed-xml": (
        "/bad.xml",
        {},
        "not a valid RSS or Atom feed (<unknown>:4:19: mismatched tag at line 4); check the URL "
        "points at the feed itself, or ask the site to fix it",
    ),
    "web-page": (
        "/page.html",
        {},
        "not an RSS, Atom or JSON feed (no channel or entries found); check the URL points at "
        "the feed itself, not a web page",
    ),
    "50-mb": (
        "/huge.xml",
        {},
        "the feed is larger than the 10 MB limit; use a feed with fewer entries (many sites "
        "take ?limit= or /page/)",
    ),
    "50-mb-declared": (
        "/declared-50mb.xml",
        {},
        "the feed is 50 MB, more than the 10 MB limit; use a feed with fewer entries (many "
        "sites take ?limit= or /page/)",
    ),
    "no-answer": (
        "/slow.xml",
        {"timeout": 0.3},
        "no answer within 0.3 s (ReadTimeout); the server is too slow or down, try again later",
    ),
    "not-found": ("/missing.xml", {}, "the server answered HTTP 404 Not Found; check the feed URL"),
}


@pytest.mark.parametrize("case", sorted(FAILURES))
def test_a_feed_that_fails_says_why(case: str, server: FeedServer, tmp_path: Path) -> None:
    path, limits, message = FAILURES[case]
    url = f"{server.url}{path}"
    assert _error(url, tmp_path, **limits) == f"{url}: {message}"


def test_nothing_listens(tmp_path: Path) -> None:
    with feed_server({}) as gone:
        url = f"{gone.url}/rss.xml"
    message = _error(url, tmp_path)
    assert message.startswith(f"{url}: cannot fetch the feed (")
    assert message.endswith("); check the URL and the network")


def test_304_not_modified_reuses_the_cached_body(server: FeedServer, tmp_path: Path) -> None:
    server.routes["/rss.xml"] = server.routes["/rss2.xml"]
    url = f"{server.url}/cached.xml"
    db = tmp_path / "store.db"
    with open_store(db) as store:
        first = fetch_feed(url, cache=store.feeds)
        second = fetch_feed(url, cache=store.feeds)
    assert (first.not_modified, second.not_modified) == (False, True)
    assert second.body == first.body == (FEEDS / "rss2.xml").read_bytes()
    sent = [headers for path, headers in server.requests if path == "/cached.xml"]
    assert "If-None-Match" not in sent[-2]
    assert (sent[-1]["If-None-Match"], sent[-1]["If-Modified-Since"]) == (ETAG, LAST_MODIFIED)
    assert server.statuses[-2:] == [200, 304]
    row = sqlite3.connect(db).execute("SELECT url, etag, last_modified FROM feed_cache").fetchone()
    assert row == (url, ETAG, LAST_MODIFIED)
    names = [r[0] for r in sqlite3.connect(db).execute("SELECT name FROM schema_migrations")]
    assert "feeds.0001_cache" in names


def test_a_feed_file_is_read_too(tmp_path: Path) -> None:
    result = read_feeds([str(FEEDS / "feed.json")], settings(tmp_path))
    assert [p.slug for p in result.posts] == ["12", "11"]


def test_json_feed_that_is_not_json(tmp_path: Path) -> None:
    path = tmp_path / "feed.json"
    path.write_text('{"version": "https://jsonfeed.org/version/1.1",\n "items": [,]}', "utf-8")
    fetched = fetch_feed(str(path))
    with pytest.raises(FeedError) as err:
        parse_feed(fetched, settings(tmp_path))
    assert err.value.format() == (
        f"{path}: not valid JSON (Expecting value at line 2, column 12); ask the site to fix "
        "its feed"
    )


CONFIG = """\
[site]
name = "Feed Site"
url = "https://quay.example.org"
timezone = "UTC"
feeds = ["{feed}"]
"""


def test_cli_posts_from_a_feed(server: FeedServer, tmp_path: Path) -> None:
    (tmp_path / "newsletter.toml").write_text(CONFIG.format(feed=f"{server.url}/rss2.xml"))
    result = CliRunner().invoke(
        main,
        [
            "--config",
            str(tmp_path / "newsletter.toml"),
            "posts",
            "--now",
            "2026-03-31",
            "--month",
            "2026-03",
            "--selected",
        ],
    )
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[1].split()[:2] == ["2026-03-03", "Net"]
    assert result.stdout.splitlines()[-1] == (
        "2 posts read; 1 selected; 1 left out (1 before window)"
    )


def test_cli_stops_when_a_feed_cannot_be_fetched(server: FeedServer, tmp_path: Path) -> None:
    """No issue (and no outbox) without the feed: exit 2 and one line saying why."""
    url = f"{server.url}/missing.xml"
    (tmp_path / "newsletter.toml").write_text(
        CONFIG.format(feed=url)
        + '\n[email]\nfrom_email = "news@quay.example.org"\n'
        + 'postal_address = "1 Quay Street, Port Town, CA 95501, USA"\n'
    )
    (tmp_path / "subs.csv").write_text("email\nreader@example.com\n")
    config = ["--config", str(tmp_path / "newsletter.toml")]
    runner = CliRunner(env={"NEWSLETTER_SECRET": "x" * 40})
    assert (
        runner.invoke(
            main, [*config, "subscribers", "import", str(tmp_path / "subs.csv")]
        ).exit_code
        == 0
    )
    result = runner.invoke(
        main,
        [
            *config,
            "send",
            "--month",
            "2026-03",
            "--now",
            "2026-03-31",
            "--transport",
            "outbox",
            "--yes",
            "--no-progress",
        ],
    )
    assert result.exit_code == 2
    assert result.stderr.splitlines() == [
        f"error: {url}: the server answered HTTP 404 Not Found; check the feed URL"
    ]
    assert not (tmp_path / "outbox").exists()
