"""Lint rules for design and delivery (issue 11), and how long issues are cut to fit Gmail."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
from test_lint import NOW, SITE, codes, post, settings_for

from newsletter.config import UnsubscribeSettings
from newsletter.errors import RenderError
from newsletter.lint import lint_issue
from newsletter.render import render_issue
from newsletter.theme import ThemeSettings


def test_image_formats_and_widths(tmp_path: Path) -> None:
    body = (
        f"![a chart]({SITE}/chart.webp)\n\n![a logo]({SITE}/logo.svg)\n\n"
        f"![a photo]({SITE}/photo.jpg)"
    )
    settings = settings_for(tmp_path)
    issue = render_issue([post(tmp_path, body)], settings, layout="post", now=NOW)
    findings = [f for f in lint_issue(issue, settings) if f.code == "image-format"]
    assert sorted(f.message.split(" is ")[1][:4] for f in findings) == ["SVG:", "WebP"]
    assert all(f.source.endswith("p.md") for f in findings)
    # our in-body images all carry a width; a template image without one is reported
    assert "image-width" not in {f.code for f in lint_issue(issue, settings)}
    user = tmp_path / "templates" / "partials"
    user.mkdir(parents=True)
    (user / "footer.mjml.j2").write_text(
        '<mj-section><mj-column><mj-text><img src="https://cdn.example.org/badge.png" alt="b">'
        '<a href="{{ footer.unsubscribe_url }}">Unsubscribe</a> {{ footer.postal_address }}'
        "</mj-text></mj-column></mj-section>",
        encoding="utf-8",
    )
    issue = render_issue([post(tmp_path, body)], settings, layout="post", now=NOW)
    widths = [f for f in lint_issue(issue, settings) if f.code == "image-width"]
    assert [(f.source, "badge.png" in f.message) for f in widths] == [("post.mjml.j2", True)]


def test_same_link_text_to_different_pages(tmp_path: Path) -> None:
    body = (
        f"[Read more]({SITE}/a/) and [read more]({SITE}/b/); "
        f"[the guide]({SITE}/g/) twice: [the guide]({SITE}/g/)."
    )
    settings = settings_for(tmp_path, utm_source="newsletter")
    issue = render_issue([post(tmp_path, body)], settings, layout="post", now=NOW)
    found = [f for f in lint_issue(issue, settings) if f.code == "link-text"]
    assert len(found) == 1 and "'read more' leads to 2 different pages" in found[0].message


def test_the_default_digest_has_no_ambiguous_links(tmp_path: Path) -> None:
    settings = settings_for(tmp_path)
    posts = [post(tmp_path, slug=f"p{i}", title=f"Post {i}") for i in range(6)]
    issue = render_issue(posts, settings, layout="digest", now=NOW)
    assert not {"link-text", "image-width"} & {f.code for f in lint_issue(issue, settings)}


def test_real_send_refuses_placeholder_settings(tmp_path: Path) -> None:
    settings = dataclasses.replace(
        settings_for(tmp_path, from_email="news@news.example.org"),
        unsubscribe=UnsubscribeSettings(base_url="http://127.0.0.1:8000"),
    )
    issue = render_issue([post(tmp_path)], settings, layout="post", now=NOW)
    assert not {"sender", "unsubscribe-http", "unsubscribe-local"} & {
        f.code for f in lint_issue(issue, settings)
    }  # trying things out locally is fine
    real = codes(lint_issue(issue, settings, real_send=True))
    assert {
        ("error", "sender"),
        ("error", "unsubscribe-http"),
        ("error", "unsubscribe-local"),
    } <= real
    public_http = dataclasses.replace(
        settings, unsubscribe=UnsubscribeSettings(base_url="http://news.example.org/n")
    )
    assert ("warning", "unsubscribe-http") in codes(lint_issue(issue, public_http))


def test_theme_contrast_is_an_error(tmp_path: Path) -> None:
    settings = dataclasses.replace(
        settings_for(tmp_path), theme=ThemeSettings(dark_muted="#3a3f45")
    )
    issue = render_issue([post(tmp_path)], settings, layout="post", now=NOW)
    found = [f for f in lint_issue(issue, settings) if f.code == "contrast"]
    assert [(f.severity, f.source) for f in found] == [
        ("error", "theme.dark_muted"),
        ("error", "theme.dark_muted"),
    ]


def _long_body(paragraphs: int) -> str:
    return "\n\n".join(
        f"Paragraph {i}: " + "the tide came in over the harbour wall again. " * 12
        for i in range(paragraphs)
    )


def test_a_long_blast_is_cut_at_a_block(tmp_path: Path) -> None:
    settings = settings_for(tmp_path, max_html_kb=40)
    body = _long_body(120)
    issue = render_issue([post(tmp_path, body)], settings, layout="post", now=NOW)
    size = len(issue.html.encode())
    assert 30 * 1024 < size <= 40 * 1024
    assert "Continue reading on the website" in issue.html
    assert "Paragraph 0:" in issue.html and "Paragraph 119:" not in issue.html
    # cut between paragraphs: the last one shown is whole
    kept = [i for i in range(120) if f"Paragraph {i}:" in issue.html]
    assert kept == list(range(len(kept)))
    assert issue.html.count("harbour wall again.") == 12 * len(kept)
    assert "Paragraph 119:" in issue.text  # the text part is not clipped by Gmail
    clipped = [f for f in lint_issue(issue, settings) if f.code == "clipped"]
    assert len(clipped) == 1 and f"first {len(kept)} of 120 blocks" in clipped[0].message
    with pytest.raises(RenderError) as info:
        render_issue([post(tmp_path, body)], settings, layout="post", now=NOW, full=True)
    assert "email.max_html_kb" in info.value.format() and "--full" in info.value.format()


def test_a_long_digest_drops_excerpts_first(tmp_path: Path) -> None:
    posts = [
        post(tmp_path, slug=f"p{i}", title=f"Post {i}", excerpt="A long excerpt. " * 60)
        for i in range(12)
    ]
    settings = settings_for(tmp_path, max_html_kb=60)
    issue = render_issue(posts, settings, layout="digest", now=NOW)
    assert len(issue.html.encode()) <= 60 * 1024
    for i in range(12):
        assert f"Post {i}" in issue.html  # every post stays
    assert "A long excerpt." in issue.html  # the first posts keep theirs
    assert any(w.startswith("clipped: ") and "excerpts of the last" in w for w in issue.warnings)
    small = settings_for(tmp_path, max_html_kb=0)
    assert not render_issue(posts, small, layout="digest", now=NOW).warnings


def test_digest_sections_by_category(tmp_path: Path) -> None:
    posts = [
        post(tmp_path, slug="lead", title="Lead story"),
        post(tmp_path, slug="a", title="Boat repairs", categories=("Harbour",)),
        post(tmp_path, slug="b", title="Quiz night", categories=("Events",)),
        post(tmp_path, slug="c", title="New moorings", categories=("Harbour",)),
        post(tmp_path, slug="d", title="Odds and ends"),
    ]
    settings = settings_for(tmp_path, group_by="category")
    issue = render_issue(posts, settings, layout="digest", now=NOW)
    html, text = issue.html, issue.text
    marks = ("Harbour</h2>", "Boat repairs", "New moorings", "Events</h2>", "Quiz night")
    order = [html.rindex(s) for s in (*marks, "More</h2>", "Odds and ends")]
    assert order == sorted(order)
    assert "HARBOUR" in text and "EVENTS" in text and "MORE" in text
    assert "In this issue" in html  # five posts: a contents list
    flat = render_issue(posts, settings, layout="digest", now=NOW, group_by="")
    assert "Also in this issue" in flat.html and "Harbour</h2>" not in flat.html


def test_full_flag_refuses_on_the_command_line(tmp_path: Path, project_root: Path) -> None:
    from click.testing import CliRunner

    from newsletter.cli import main

    text = (project_root / "newsletter.toml").read_text(encoding="utf-8")
    (tmp_path / "content").symlink_to(project_root / "content")
    config = tmp_path / "newsletter.toml"
    config.write_text(text, "utf-8")
    args = ["--config", str(config), "render", "--post", "2026-10-05-conference-wrap-up"]
    args += ["--now", "2026-11-01T09:00:00", "--out", str(tmp_path / "o")]
    whole = CliRunner().invoke(main, [*args, "--json"])
    size_kb = json.loads(whole.stdout)["html_bytes"] // 1024
    # under the size with the longest name and address: room for the layout, not the whole body
    limit = f"[email]\nmax_html_kb = {size_kb}\n"
    config.write_text(text.replace("[email]\n", limit, 1), "utf-8")
    cut = CliRunner().invoke(main, args)
    assert cut.exit_code == 0, cut.output
    assert "Continue reading on the website" in (tmp_path / "o" / "email.html").read_text("utf-8")
    refused = CliRunner().invoke(main, [*args, "--full"])
    assert refused.exit_code != 0 and "email.max_html_kb" in refused.output
    assert "Traceback" not in refused.output
