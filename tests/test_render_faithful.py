"""Both inliners give the same faithful email: doctype, pixel widths, head meta, and nothing
from the operator's disk (paths, comments, marks) in the HTML, the text, the .eml or the archive."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

import pytest

from newsletter.archive import write_archive
from newsletter.config import EmailSettings, Settings, SiteSettings, UnsubscribeSettings
from newsletter.content import Cover, Post
from newsletter.emailcompile import strip_comments
from newsletter.mime import build_message
from newsletter.render import generic_values, personalize_email, render_issue
from newsletter.templating import default_templates_dir

NOW = datetime(2026, 11, 2, 17, 0, tzinfo=UTC)
SITE = "https://letters.example.org"
CONDITIONAL = re.compile(r"<!--\[if|<!--<!\[endif\]|<!\[endif\]-->|<!--\[if !mso\]><!-->")


def _settings(tmp_path: Path, inliner: str) -> Settings:
    return Settings(
        root=tmp_path,
        site=SiteSettings(name="Letters", url=SITE, logo_url=SITE + "/logo.png", timezone="UTC"),
        email=EmailSettings(
            postal_address="Letters, 9 Quay Road, Portsmouth",
            archive_url=SITE + "/archive/",
            archive_dir="published",
            inliner=inliner,
        ),
        unsubscribe=UnsubscribeSettings(base_url="https://letters.example.org/news"),
    )


def _post(tmp_path: Path, slug: str) -> Post:
    body = "A paragraph with [a link](/elsewhere/).\n\n<!-- an author's note -->\n\nMore."
    return Post(
        path=tmp_path / "private-drafts" / f"{slug}.md",
        slug=slug,
        title=f"Notes on {slug}",
        date=datetime(2026, 10, 3, tzinfo=UTC),
        url=f"{SITE}/{slug}/",
        excerpt="An excerpt.",
        body=body,
        markdown=body,
        cover=Cover(url=SITE + "/cover.jpg", alt="A harbour at dawn"),
    )


@pytest.mark.parametrize("inliner", ["premailer", "css-inline"])
@pytest.mark.parametrize("layout", ["post", "digest"])
def test_faithful_output(tmp_path: Path, inliner: str, layout: str) -> None:
    settings = _settings(tmp_path, inliner)
    posts = [_post(tmp_path, "tides")] + (
        [_post(tmp_path, "ropes"), _post(tmp_path, "sails")] if layout == "digest" else []
    )
    issue = render_issue(posts, settings, layout=layout, now=NOW)
    html = issue.html
    assert html.lstrip().lower().startswith("<!doctype html>")
    # MJML's pixel widths survive the inliner (Outlook sizes images and columns by them)
    assert 'width="600"' in html
    assert not re.search(r'<img[^>]*\swidth="100%"', html)
    for meta in (
        '<meta name="color-scheme" content="light dark"',
        '<meta name="supported-color-schemes" content="light dark"',
        '<meta name="x-apple-disable-message-reformatting"',
        '<meta name="format-detection" content="telephone=no, date=no, address=no, email=no"',
    ):
        assert meta in html
    assert "<!--[if mso]><style" in html  # the Outlook font fallback
    assert re.search(r'<!--\[if !mso\]><!-->\s*<meta http-equiv="X-UA-Compatible"', html)
    # only Outlook's conditional comments are left
    for comment in re.findall(r"<!--.*?-->", html, flags=re.DOTALL):
        assert CONDITIONAL.match(comment), comment
    values = generic_values(settings)
    subject, filled_html, text = personalize_email(issue, values)
    message = build_message(
        from_email="news@letters.example.org",
        to="reader@letters.example.org",
        subject=subject,
        html=filled_html,
        text=text,
        now=NOW,
    )
    page = write_archive(issue, settings, now=NOW)
    for where, part in (
        ("html", html),
        ("text", issue.text),
        ("eml", message.as_string()),
        (
            "eml parts",
            "".join(str(p.get_content()) for p in message.walk() if not p.is_multipart()),
        ),
        ("archive", page.read_text(encoding="utf-8")),
    ):
        assert "private-drafts" not in part, where
        assert str(tmp_path) not in part, where
        assert "source:" not in part and "author's note" not in part, where
    if layout == "post":  # lint still knows which post a bad link sits in
        assert issue.sources and issue.sources[0][0].endswith("tides.md")


def test_inliners_agree_on_structure(tmp_path: Path) -> None:
    """Same tags and widths either way: css-inline is the fast option, not a different email."""
    out = {}
    for inliner in ("premailer", "css-inline"):
        issue = render_issue(
            [_post(tmp_path, "tides")], _settings(tmp_path, inliner), layout="post", now=NOW
        )
        out[inliner] = issue.html
    for pattern in (r"<img\b[^>]*>", r'\swidth="[^"]*"', r"<h[1-6]\b"):
        a = [
            re.sub(r'\s(style|bgcolor)="[^"]*"', "", x)
            for x in re.findall(pattern, out["premailer"])
        ]
        b = [
            re.sub(r'\s(style|bgcolor)="[^"]*"', "", x)
            for x in re.findall(pattern, out["css-inline"])
        ]
        assert len(a) == len(b), pattern
    assert "prefers-color-scheme: dark" in out["premailer"]
    assert "prefers-color-scheme: dark" in out["css-inline"]


@pytest.mark.parametrize("inliner", ["premailer", "css-inline"])
def test_comments_in_user_templates_reach_nobody(tmp_path: Path, inliner: str) -> None:
    """A note left in an overriding template, wherever it sits in the MJML, is not sent."""
    footer = (default_templates_dir() / "partials" / "footer.mjml.j2").read_text(encoding="utf-8")
    footer = footer.replace(
        "<mj-column>",
        "<!-- note in a section: /home/ada/notes.txt --><mj-column>"
        "<!-- note in a column: ask Bob -->",
        1,
    ).replace("{{ footer.why }}", "<!-- note in a text: draft -->{{ footer.why }}", 1)
    assert footer.count("<!-- note") == 3
    user = tmp_path / "templates" / "partials"
    user.mkdir(parents=True)
    (user / "footer.mjml.j2").write_text(footer, encoding="utf-8")
    (user / "head.mjml.j2").write_text(
        '<mj-raw><!-- note in the head --><meta name="x-note" content="1"></mj-raw>\n',
        encoding="utf-8",
    )
    issue = render_issue(
        [_post(tmp_path, "tides")], _settings(tmp_path, inliner), layout="digest", now=NOW
    )
    assert '<meta name="x-note" content="1">' in issue.html  # the override was used
    assert "Unsubscribe" in issue.html
    for comment in re.findall(r"<!--.*?-->", issue.html, flags=re.DOTALL):
        assert CONDITIONAL.match(comment), comment
    assert "note" not in issue.html.replace("x-note", "")


def test_strip_comments_keeps_outlook_conditionals() -> None:
    html = (
        '<!--[if !mso]><!--><meta name="a"><!--<![endif]-->'
        "<!-- /home/ada/site/post.md --><p>x</p><!--[if mso]><b>o</b><![endif]--><!---->"
    )
    assert strip_comments(html) == (
        '<!--[if !mso]><!--><meta name="a"><!--<![endif]--><p>x</p>'
        "<!--[if mso]><b>o</b><![endif]-->"
    )


def test_post_positions_survive_a_stored_campaign(tmp_path: Path) -> None:
    """A campaign stores its issue as JSON; read back, lint still names the post."""
    import json

    from newsletter.rendered import RenderedIssue

    issue = render_issue(
        [_post(tmp_path, "tides")], _settings(tmp_path, "css-inline"), layout="post", now=NOW
    )
    raw = json.loads(
        json.dumps(
            {
                k: getattr(issue, k)
                for k in ("subject", "preheader", "html", "text", "layout", "sources")
            }
        )
    )
    again = RenderedIssue(**raw)
    assert again.sources == issue.sources and isinstance(again.sources[0], tuple)
