"""The web archive (pages without personal data, index newest first) and the MIME builder."""

from __future__ import annotations

import dataclasses
import email
import email.policy
from datetime import UTC, datetime
from pathlib import Path

import pytest

from newsletter.archive import write_archive
from newsletter.config import EmailSettings, Settings, SiteSettings, UnsubscribeSettings
from newsletter.content import Post
from newsletter.mime import build_message
from newsletter.render import render_issue

SITE = "https://news.example.org"


def _settings(tmp_path: Path) -> Settings:
    return Settings(
        root=tmp_path,
        site=SiteSettings(name="Example News", url=SITE),
        email=EmailSettings(
            postal_address="1 Main St",
            archive_url=SITE + "/letters/",
            subject_post="{{ lead.title }}",
        ),
        unsubscribe=UnsubscribeSettings(base_url="https://example.org/unsub"),
    )


def _post(tmp_path: Path, slug: str, title: str) -> Post:
    return Post(
        path=tmp_path / f"{slug}.md",
        slug=slug,
        title=title,
        date=datetime(2026, 10, 1, tzinfo=UTC),
        url=f"{SITE}/{slug}/",
        excerpt="Excerpt.",
        body="Body text.",
        markdown="Body text.",
    )


def test_archive_pages_and_index(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    settings = dataclasses.replace(
        settings,
        email=dataclasses.replace(
            settings.email, subject_post="{{ lead.title }} for {{ first_name }}"
        ),
    )
    older = render_issue(
        [_post(tmp_path, "first", "First & <b>best</b>")],
        settings,
        layout="post",
        now=datetime(2026, 10, 2, tzinfo=UTC),
    )
    newer = render_issue(
        [_post(tmp_path, "second", "Second")],
        settings,
        layout="post",
        now=datetime(2026, 11, 2, tzinfo=UTC),
    )
    write_archive(older, settings, now=datetime(2026, 10, 2, tzinfo=UTC))
    page = write_archive(newer, settings, now=datetime(2026, 11, 2, tzinfo=UTC))
    assert page == tmp_path / "archive" / "second" / "index.html"
    html = page.read_text(encoding="utf-8")
    assert "%%" not in html
    assert 'href="https://example.org/unsub/u/"' in html  # generic unsubscribe link
    assert f"{SITE}/letters/second/" in html  # its own "view in browser" address
    index = (tmp_path / "archive" / "index.html").read_text(encoding="utf-8")
    assert index.index('href="second/"') < index.index('href="first/"')
    assert "First &amp; &lt;b&gt;best&lt;/b&gt; for there" in index


def test_build_message_headers_and_parts() -> None:
    when = datetime(2026, 11, 2, 9, 30, tzinfo=UTC)
    msg = build_message(
        from_email="news@example.org",
        from_name="Example, Inc.",
        reply_to="hello@example.org",
        to="ann@example.com",
        to_name="Ann O'Brien",
        subject="Héllo — news",
        html="<p>Hi</p>",
        text="Hi",
        headers={"List-Unsubscribe": "<https://example.org/u/t>"},
        now=when,
        message_id="<abc@example.org>",
    )
    parsed = email.message_from_bytes(bytes(msg), policy=email.policy.default)
    assert parsed["From"] == '"Example, Inc." <news@example.org>'
    assert parsed["To"] == "Ann O'Brien <ann@example.com>"
    assert parsed["Reply-To"] == "hello@example.org"
    assert parsed["Subject"] == "Héllo — news"
    assert parsed["Date"] == "Mon, 02 Nov 2026 09:30:00 +0000"
    assert parsed["Message-ID"] == "<abc@example.org>"
    assert parsed["List-Unsubscribe"] == "<https://example.org/u/t>"
    assert [p.get_content_type() for p in parsed.iter_parts()] == ["text/plain", "text/html"]
    with pytest.raises(ValueError, match="set by build_message"):
        build_message(
            from_email="a@b.c",
            to="d@e.f",
            subject="s",
            html="",
            text="",
            headers={"Subject": "x"},
            now=when,
        )
