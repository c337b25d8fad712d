"""The reader on real files: date forms, line endings, caching, and the example site's HTML."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from newsletter.config import Settings, SiteSettings, load_settings
from newsletter.content import (
    Post,
    body_html,
    excerpt_html,
    excerpt_of,
    parse_date,
    read_post,
    read_posts,
)
from newsletter.selection import Criteria, Reason, select

LA = ZoneInfo("America/Los_Angeles")


def site(root: Path, *folders: str, **values: str) -> Settings:
    return Settings(
        root=root,
        site=SiteSettings(
            url="https://example.org",
            permalink="/blog/:year/:slug/",
            timezone="America/Los_Angeles",
            content=folders or ("content",),
            values=values,
        ),
    )


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2026-03-01", datetime(2026, 3, 1, tzinfo=LA)),
        ("2026-03-01T09:30:00Z", datetime(2026, 3, 1, 9, 30, tzinfo=UTC)),
        (
            "2026-03-01T09:30:00+05:30",
            datetime(2026, 3, 1, 9, 30, tzinfo=timezone(timedelta(hours=5, minutes=30))),
        ),
        (
            "2013-05-06 02:12:52 +0200",
            datetime(2013, 5, 6, 2, 12, 52, tzinfo=timezone(timedelta(hours=2))),
        ),
        ("2013-05-06 02:12 -05", datetime(2013, 5, 6, 2, 12, tzinfo=timezone(timedelta(hours=-5)))),
        ("2026-03-01 14:00", datetime(2026, 3, 1, 14, 0, tzinfo=LA)),
        ("March 3, 2026", datetime(2026, 3, 3, tzinfo=LA)),
        ("3 March 2026", datetime(2026, 3, 3, tzinfo=LA)),
        (datetime(2026, 3, 1, 8, 0), datetime(2026, 3, 1, 8, 0, tzinfo=LA)),
        ("next tuesday", None),
        ("2026-13-01", None),
        (20260301, None),
    ],
)
def test_parse_date_forms(value: object, expected: datetime | None) -> None:
    got = parse_date(value, LA)
    assert got == expected
    if got is not None:
        assert got.tzinfo is not None and got.utcoffset() == expected.utcoffset()  # type: ignore[union-attr]


def test_crlf_bom_and_leading_blank_lines(tmp_path: Path) -> None:
    content = tmp_path / "content"
    content.mkdir()
    text = "\n\n---\r\ntitle: Windows\r\ndate: 2026-01-05\r\n---\r\n\r\nFirst line.\r\n"
    (content / "win.md").write_bytes(b"\xef\xbb\xbf" + text.encode())
    post = read_post(content / "win.md", site(tmp_path), root=content)
    assert post.title == "Windows"
    assert post.body_line == 8
    assert post.body.splitlines()[0] == "First line."
    assert "\r" not in body_html(post, site(tmp_path))


def test_mixed_naive_and_offset_dates_sort(tmp_path: Path) -> None:
    content = tmp_path / "content"
    content.mkdir()
    forms = {
        "a.md": "date: 2026-03-01 10:00:00",
        "b.md": "date: 2026-03-01T18:30:00Z",
        "c.md": "date: 2026-03-01",
        "2026-03-02-d.md": "",
        "e.md": "date: 2026-03-01 09:00:00 -0500",
    }
    for name, line in forms.items():
        (content / name).write_text(f"---\ntitle: {name}\n{line}\n---\nx\n", "utf-8")
    result = read_posts(site(tmp_path))
    assert result.errors == []
    order = [
        p.slug
        for p in select(result.posts, Criteria(), now=datetime(2026, 12, 1, tzinfo=UTC)).selected
    ]
    assert order == ["d", "b", "a", "e", "c"]


def test_same_post_in_two_folders_is_a_duplicate(tmp_path: Path) -> None:
    for folder in ("content", "mirror"):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "2026-02-01-same.md").write_text("---\ntitle: Same\n---\nx\n", "utf-8")
    result = read_posts(site(tmp_path, "content", "mirror"))
    sel = select(result.posts, Criteria(), now=datetime(2026, 12, 1, tzinfo=UTC))
    assert [p.path.parent.name for p in sel.selected] == ["content"]
    assert [(p.path.parent.name, r) for p, r in sel.skipped] == [("mirror", Reason.DUPLICATE)]


def test_hidden_and_non_post_files_are_ignored(tmp_path: Path) -> None:
    content = tmp_path / "content"
    for rel in (".git/x.md", "node_modules/pkg/README.md", "README.md", ".draft.md", "notes.txt"):
        (content / rel).parent.mkdir(parents=True, exist_ok=True)
        (content / rel).write_text("not a post", "utf-8")
    (content / "ok.markdown").write_text("---\ntitle: OK\ndate: 2026-01-01\n---\nx\n", "utf-8")
    result = read_posts(site(tmp_path))
    assert [p.slug for p in result.posts] == ["ok"]
    assert result.errors == []


def test_body_html_is_cached_per_post(tmp_path: Path) -> None:
    settings = site(tmp_path, venue="Hall")
    post = Post(
        path=tmp_path / "p.md",
        slug="p",
        title="P",
        date=datetime(2026, 1, 1, tzinfo=UTC),
        url="https://example.org/blog/2026/p/",
        body="At {{ site.venue }}: [x](x.html)",
    )
    first = body_html(post, settings)
    assert first == '<p>At Hall: <a href="https://example.org/blog/2026/p/x.html">x</a></p>'
    assert body_html(post, settings) is first
    other = site(tmp_path, venue="Elsewhere")
    assert body_html(post, other) is first  # same site URL and permalink: same HTML
    assert excerpt_html(post, settings) == ""  # constructed without an excerpt


def test_read_post_alone_cannot_link_other_posts(tmp_path: Path) -> None:
    content = tmp_path / "content"
    content.mkdir()
    (content / "2026-01-01-a.md").write_text("---\ntitle: A\n---\nx\n", "utf-8")
    (content / "2026-01-02-b.md").write_text(
        "---\ntitle: B\n---\n[A]({% post_url 2026-01-01-a %})\n", "utf-8"
    )
    alone = read_post(content / "2026-01-02-b.md", site(tmp_path), root=content)
    assert "post_url" not in (alone.markdown or "")
    result = read_posts(site(tmp_path))
    (b,) = [p for p in result.posts if p.slug == "b"]
    assert body_html(b, site(tmp_path)) == '<p><a href="https://example.org/blog/2026/a/">A</a></p>'
    assert result.warnings == []


# ----- the example site in content/ -----

URL_ATTR = re.compile(r'\b(?:href|src)="([^"]*)"')


ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def example() -> tuple[list[Post], Settings]:
    settings = load_settings(ROOT / "newsletter.toml")
    result = read_posts(settings)
    assert result.errors == [] and result.warnings == []
    return result.posts, settings


def test_example_site_has_the_required_cases(example: tuple[list[Post], Settings]) -> None:
    posts, settings = example
    now = datetime(2026, 11, 26, 12, 0, tzinfo=LA)
    assert 10 <= len(posts) <= 15
    assert any(p.draft for p in posts)
    assert any(p.date > now for p in posts)
    assert any("<!--more-->" in p.body for p in posts)
    assert any("<iframe" in p.body and "youtube" in p.body for p in posts)
    assert any(re.search(r'<img [^>]*style="[^"]*float', p.body) for p in posts)
    assert any("<table>" in body_html(p, settings) for p in posts)
    assert any(re.search(r"[^\x00-\x7f]", p.body) and "🎉" in p.body for p in posts)
    months = {(p.date.year, p.date.month) for p in posts}
    assert len(months) >= 6


def test_example_bodies_are_safe_absolute_and_template_free(
    example: tuple[list[Post], Settings],
) -> None:
    posts, settings = example
    for post in posts:
        markup = body_html(post, settings)
        assert "{{" not in markup and "{%" not in markup, post.path
        assert not re.search(r"<(script|style|iframe|form|input)\b", markup), post.path
        assert not re.search(r"\son[a-z]+=", markup), post.path
        for url in URL_ATTR.findall(markup):
            assert url.startswith(("https://", "http://", "mailto:", "tel:", "#")), (post.path, url)
        assert excerpt_of(post), post.path


def test_example_wrap_up_becomes_email_friendly(example: tuple[list[Post], Settings]) -> None:
    posts, settings = example
    (wrap,) = [p for p in posts if p.slug == "conference-wrap-up"]
    markup = body_html(wrap, settings)
    assert (
        '<a href="https://www.youtube.com/watch?v=aBcD3fGh1jK"><img '
        'src="https://i.ytimg.com/vi/aBcD3fGh1jK/hqdefault.jpg" '
        'alt="Video: Closing keynote: Making Python Start Faster"' in markup
    )
    assert (
        'src="https://northbay-pyconf.example.org/assets/img/blog/lightning-talks-2026.webp"'
        in markup
    )
    assert (
        'href="https://northbay-pyconf.example.org/news/2026/call-for-2027-organisers/"' in markup
    )
    assert 'style="display:block;float:right"' in markup
    assert "loading=" not in markup


def test_five_post_digest_bodies_stay_small(example: tuple[list[Post], Settings]) -> None:
    posts, settings = example
    newest = sorted((p for p in posts if not p.draft), key=lambda p: p.date, reverse=True)[:5]
    size = sum(len(body_html(p, settings).encode()) for p in newest)
    assert size < 30_000  # leaves the renderer most of the 90 KB email budget


def test_an_image_whose_source_was_removed_is_left_out() -> None:
    from newsletter.content import markdown_to_email_html

    html = markdown_to_email_html(
        "![pixel](data:image/png;base64,iVBORw0KGgo=) ![ok](/x.png) "
        '<img alt="bad" src="javascript:alert(1)">',
        "https://e.org/p/",
    )
    assert html.count("<img") == 1 and 'src="https://e.org/x.png"' in html


def _git(repo: Path, *args: str, when: str = "") -> None:
    import os
    import subprocess

    env = dict(os.environ, GIT_AUTHOR_NAME="A", GIT_AUTHOR_EMAIL="a@example.org")
    env.update(GIT_COMMITTER_NAME="A", GIT_COMMITTER_EMAIL="a@example.org")
    if when:
        env.update(GIT_AUTHOR_DATE=when, GIT_COMMITTER_DATE=when)
    subprocess.run(["git", *args], cwd=repo, env=env, check=True, capture_output=True)


def test_eleventy_git_date_keywords_read_the_history(tmp_path: Path) -> None:
    content = tmp_path / "content"
    content.mkdir()
    _git(tmp_path, "init", "-q")
    first = content / "first.md"
    first.write_text("---\ntitle: First\ndate: git Created\n---\nv1\n", "utf-8")
    later = content / "later.md"
    later.write_text("---\ntitle: Later\ndate: git Last Modified\n---\nv1\n", "utf-8")
    _git(tmp_path, "add", ".")
    _git(tmp_path, "commit", "-q", "-m", "add", when="2026-10-03T10:00:00+02:00")
    for post in (first, later):
        post.write_text(post.read_text("utf-8").replace("v1", "v2"), "utf-8")
    _git(tmp_path, "commit", "-q", "-am", "edit", when="2026-10-20T18:30:00+00:00")
    (content / "new.md").write_text("---\ntitle: New\ndate: git Created\n---\nx\n", "utf-8")
    (content / "mtime.md").write_text("---\ntitle: M\ndate: Last Modified\n---\nx\n", "utf-8")

    result = read_posts(site(tmp_path))
    dates = {p.title: p.date for p in result.posts}
    assert dates == {
        "First": datetime(2026, 10, 3, 10, 0, tzinfo=timezone(timedelta(hours=2))),
        "Later": datetime(2026, 10, 20, 18, 30, tzinfo=UTC),
    }
    errors = {Path(e.path).name: e.format() for e in result.errors}
    assert errors["new.md"].endswith(
        ":3: date 'git Created' needs the file's git history, "
        "and git has no commit of it; commit the post, or write "
        "the date (e.g. date: 2026-10-01)"
    )
    assert "file times change with every checkout" in errors["mtime.md"]
