"""Lint checks on rendered issues: each finding's severity, code and source."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime
from pathlib import Path

from newsletter import personalize as tok
from newsletter.config import EmailSettings, Settings, SiteSettings
from newsletter.content import Post
from newsletter.lint import Finding, findings_json, has_errors, lint_issue
from newsletter.render import render_issue
from newsletter.rendered import RenderedIssue

NOW = datetime(2026, 11, 2, tzinfo=UTC)
SITE = "https://news.example.org"


def settings_for(tmp_path: Path, **email: object) -> Settings:
    base = EmailSettings(postal_address="Example Org, 1 Main St, Springfield, USA")
    return Settings(
        root=tmp_path,
        site=SiteSettings(name="Example", url=SITE),
        email=dataclasses.replace(base, **email),  # type: ignore[arg-type]
    )


def post(tmp_path: Path, body: str = "Hello.", slug: str = "p", **kw: object) -> Post:
    values: dict[str, object] = {
        "path": tmp_path / "content" / f"{slug}.md",
        "slug": slug,
        "title": "A title",
        "date": datetime(2026, 10, 1, tzinfo=UTC),
        "url": f"{SITE}/{slug}/",
        "excerpt": "An excerpt.",
        "body": body,
        "markdown": body,
    }
    values.update(kw)
    return Post(**values)  # type: ignore[arg-type]


def codes(findings: list[Finding]) -> set[tuple[str, str]]:
    return {(f.severity, f.code) for f in findings}


def test_clean_issue_has_no_findings(tmp_path: Path) -> None:
    settings = settings_for(tmp_path)
    issue = render_issue([post(tmp_path)], settings, layout="post", now=NOW)
    assert lint_issue(issue, settings) == []


def test_images_name_their_post(tmp_path: Path) -> None:
    settings = settings_for(tmp_path)
    body = 'Look: <img src="https://cdn.example/a.png">'
    issue = render_issue([post(tmp_path, body, slug="bad")], settings, layout="post", now=NOW)
    findings = lint_issue(issue, settings)
    alt = [f for f in findings if f.code == "alt"]
    assert alt == [
        Finding(
            "warning",
            "alt",
            "image 'https://cdn.example/a.png' has no alt text",
            str(Path("content") / "bad.md"),
        )
    ]
    assert not has_errors(findings)


def test_relative_links_and_images_in_a_template(tmp_path: Path) -> None:
    user = tmp_path / "templates" / "partials"
    user.mkdir(parents=True)
    (user / "header.mjml.j2").write_text(
        '<mj-section><mj-column><mj-text><a href="/about/">About</a> '
        '<a href="ftp://files.example/x">Files</a></mj-text>'
        '<mj-image src="/logo.png" alt="Logo" /></mj-column></mj-section>',
        encoding="utf-8",
    )
    settings = settings_for(tmp_path)
    issue = render_issue([post(tmp_path)], settings, layout="post", now=NOW)
    findings = lint_issue(issue, settings)
    messages = {(f.code, f.message, f.source) for f in findings if f.severity == "error"}
    assert messages == {
        ("link", "link '/about/' is not an absolute http(s) URL", "post.mjml.j2"),
        ("link", "link 'ftp://files.example/x' is not an absolute http(s) URL", "post.mjml.j2"),
        ("image", "image '/logo.png' is not an absolute http(s) URL", "post.mjml.j2"),
    }


def test_missing_postal_address_and_long_subject(tmp_path: Path) -> None:
    settings = settings_for(tmp_path, postal_address="", subject_post="x" * 151)
    issue = render_issue([post(tmp_path)], settings, layout="post", now=NOW)
    findings = lint_issue(issue, settings)
    assert ("error", "postal-address") in codes(findings)
    subject = next(f for f in findings if f.code == "subject")
    assert subject.severity == "error" and "151 characters" in subject.message
    assert subject.source == "email.subject_post"


def test_missing_unsubscribe_and_raw_syntax_from_template(tmp_path: Path) -> None:
    user = tmp_path / "templates" / "partials"
    user.mkdir(parents=True)
    (user / "footer.mjml.j2").write_text(
        "<mj-section><mj-column><mj-text>{{ footer.postal_address }} {{ '{{' }} name }}"
        "</mj-text></mj-column></mj-section>",
        encoding="utf-8",
    )
    settings = settings_for(tmp_path)
    issue = render_issue([post(tmp_path)], settings, layout="post", now=NOW)
    findings = lint_issue(issue, settings)
    assert ("error", "unsubscribe") in codes(findings)
    raw = next(f for f in findings if f.code == "raw-syntax")
    assert raw.source == "post.mjml.j2" and "'{{'" in raw.message


def test_unknown_mjml_tag_left_in_output_is_found(tmp_path: Path) -> None:
    user = tmp_path / "templates" / "partials"
    user.mkdir(parents=True)
    (user / "header.mjml.j2").write_text(
        "<mj-section><mj-column><mj-texte>Typo</mj-texte></mj-column></mj-section>",
        encoding="utf-8",
    )
    settings = settings_for(tmp_path)
    issue = render_issue([post(tmp_path)], settings, layout="post", now=NOW)
    assert ("error", "raw-syntax") in codes(lint_issue(issue, settings))


def _sized(html_bytes: int) -> RenderedIssue:
    filler = "<p>" + "x" * (html_bytes - 200) + "</p>"
    html = (
        f'<html><body>{filler}<a href="{tok.UNSUBSCRIBE_URL}">u</a> Example Org, 1 Main St,'
        " Springfield, USA</body></html>"
    )
    text = f"{tok.UNSUBSCRIBE_URL}\nExample Org, 1 Main St, Springfield, USA\n"
    return RenderedIssue(
        subject="S", preheader="P", html=html, text=text, layout="post", post_paths=()
    )


def test_size_thresholds_use_longest_values(tmp_path: Path) -> None:
    settings = settings_for(tmp_path)
    small = lint_issue(_sized(80 * 1024), settings)
    assert not [f for f in small if f.code == "size"]
    near = [f for f in lint_issue(_sized(95 * 1024), settings) if f.code == "size"]
    assert near and near[0].severity == "warning"
    over = [f for f in lint_issue(_sized(103 * 1024), settings) if f.code == "size"]
    assert over and over[0].severity == "error"
    # just under the limit without substitutions, over it with a very long unsubscribe URL
    edge = _sized(102 * 1024 - 150)
    assert not [f for f in lint_issue(edge, settings) if f.severity == "error"]
    longest = {tok.UNSUBSCRIBE_URL: "https://u.example/" + "t" * 400}
    size = next(f for f in lint_issue(edge, settings, longest=longest) if f.code == "size")
    assert size.severity == "error"


def test_preheader_missing_is_a_warning(tmp_path: Path) -> None:
    settings = settings_for(tmp_path)
    issue = render_issue([post(tmp_path, excerpt="")], settings, layout="post", now=NOW)
    pre = [f for f in lint_issue(issue, settings) if f.code == "preheader"]
    assert pre and pre[0].severity == "warning"


def test_findings_json_is_a_list_of_objects(tmp_path: Path) -> None:
    data = json.loads(findings_json([Finding("error", "link", "bad", "content/a.md")]))
    assert data == [
        {"severity": "error", "code": "link", "message": "bad", "source": "content/a.md"}
    ]
