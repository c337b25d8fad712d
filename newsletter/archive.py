"""The public web archive: each issue's page without personal data, an index and a feed.

The archive follows sends: a campaign that goes out (through the outbox or SendGrid) publishes
its page, dated by the send, from the content frozen when it started; ``newsletter archive
build`` writes every page again from the store. A render enters the archive only with
``render --archive``.

``archive/<slug>/index.html`` is the email filled with generic values (no name, no address, a
generic unsubscribe link); ``archive/<slug>/issue.json`` remembers its subject and date so
``archive/index.html`` and the Atom feed ``archive/feed.xml`` list every issue, newest first.
Publish the folder with the site at ``email.archive_url`` (``email.archive_dir`` may point into
the site's output folder); the "View in browser" link in every email points there.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

from newsletter.config import Settings
from newsletter.errors import NewsletterError
from newsletter.render import generic_values, personalize_email
from newsletter.rendered import RenderedIssue
from newsletter.templating import environment, render_template


class ArchiveError(NewsletterError):
    """The archive folder cannot be written."""


def write_archive(
    issue: RenderedIssue, settings: Settings, *, now: datetime, campaign: str = ""
) -> Path:
    """Write the issue's public page and refresh the index and feed; returns the page's path.

    ``now`` is the date the page shows (the send's); ``campaign`` the campaign it went out in.
    """
    root = settings.path(settings.email.archive_dir)
    page_dir = root / issue.slug
    if page_dir.resolve().parent != root.resolve():
        raise ArchiveError(
            f"issue slug {issue.slug!r} is not one folder name; it would be written outside {root}"
        )
    subject, html, _ = personalize_email(issue, generic_values(settings))
    meta = {
        "slug": issue.slug,
        "subject": subject,
        "date": now.isoformat(),
        "layout": issue.layout,
        "campaign": campaign,
    }
    try:
        page_dir.mkdir(parents=True, exist_ok=True)
        (page_dir / "index.html").write_text(html, encoding="utf-8")
        (page_dir / "issue.json").write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
        write_index(settings)
        write_feed(settings)
    except OSError as err:
        raise ArchiveError(f"{root}: cannot write the archive ({err.strerror})") from err
    return page_dir / "index.html"


def read_entries(root: Path) -> list[dict[str, str]]:
    entries: list[dict[str, str]] = []
    for meta in root.glob("*/issue.json"):
        try:
            data = json.loads(meta.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue  # a foreign or broken folder is not an issue; leave it out of the index
        if isinstance(data, dict) and all(isinstance(data.get(k), str) for k in ("slug", "date")):
            entries.append({k: str(v) for k, v in data.items()})
    entries.sort(key=lambda e: e["date"], reverse=True)
    return entries


def write_index(settings: Settings) -> Path:
    root = settings.path(settings.email.archive_dir)
    env = environment(settings.path(settings.email.templates))
    site = {
        "name": settings.site.name,
        "url": settings.site.url,
        "language": settings.site.language,
    }
    html = render_template(
        env, "archive_index.html.j2", {"site": site, "issues": read_entries(root)}
    )
    path = root / "index.html"
    path.write_text(html, encoding="utf-8")
    return path


def write_feed(settings: Settings) -> Path:
    """``archive/feed.xml``: an Atom feed of the issues, for readers who follow by feed."""
    root = settings.path(settings.email.archive_dir)
    env = environment(settings.path(settings.email.templates))
    base = (settings.email.archive_url or settings.site.url.rstrip("/") + "/newsletter/").rstrip(
        "/"
    )
    entries = read_entries(root)
    xml = render_template(
        env,
        "archive_feed.xml.j2",
        {
            "site": {"name": settings.site.name, "url": settings.site.url},
            "base": base,
            "updated": entries[0]["date"] if entries else "1970-01-01T00:00:00+00:00",
            "issues": entries,
        },
    )
    path = root / "feed.xml"
    path.write_text(xml, encoding="utf-8")
    return path
