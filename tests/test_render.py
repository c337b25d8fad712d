"""The render pipeline: templates, MJML, inliners, tokens, escaping, errors with template:line."""

from __future__ import annotations

import dataclasses
import re
from datetime import UTC, datetime
from pathlib import Path

import pytest

from newsletter import personalize as tok
from newsletter.config import EmailSettings, Settings, SiteSettings
from newsletter.content import Cover, Post
from newsletter.errors import ConfigError, InputError, RenderError
from newsletter.render import generic_values, load_intro, personalize_email, render_issue
from newsletter.templating import forget_templates

NOW = datetime(2026, 11, 2, 17, 0, tzinfo=UTC)
SITE = "https://news.example.org"


def make_settings(tmp_path: Path, **email: object) -> Settings:
    base = EmailSettings(
        postal_address="Example Org, 1 Main St, Springfield, USA",
        archive_url=SITE + "/newsletter/",
        utm_source="newsletter",
        templates="templates",
    )
    return Settings(
        root=tmp_path,
        site=SiteSettings(name="Example News", url=SITE, timezone="UTC"),
        email=dataclasses.replace(base, **email),  # type: ignore[arg-type]
    )


def make_post(
    tmp_path: Path, slug: str = "hello", body: str = "Hello **world**.", **kw: object
) -> Post:
    path = tmp_path / "content" / f"{slug}.md"
    values: dict[str, object] = {
        "path": path,
        "slug": slug,
        "title": f"Post {slug}",
        "date": datetime(2026, 10, 5, 12, 0, tzinfo=UTC),
        "url": f"{SITE}/news/{slug}/",
        "authors": ("Ada Lovelace",),
        "excerpt": f"The excerpt of {slug}.",
        "body": body,
        "markdown": body,
    }
    values.update(kw)
    return Post(**values)  # type: ignore[arg-type]


@pytest.fixture(params=["premailer", "css-inline"])
def inliner(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def test_digest_has_lead_cards_and_footer(tmp_path: Path, inliner: str) -> None:
    settings = make_settings(tmp_path, inliner=inliner)
    lead = make_post(tmp_path, "lead", cover=Cover(SITE + "/img/lead.jpg", "Lead photo"))
    posts = [lead, make_post(tmp_path, "second"), make_post(tmp_path, "third")]
    issue = render_issue(posts, settings, layout="digest", now=NOW, intro="Welcome *back*!")
    html = issue.html
    assert issue.layout == "digest"
    assert issue.slug == "2026-11"
    assert issue.subject == "Example News — November 2026"
    assert issue.preheader == "The excerpt of lead."
    # relative to the site folder: the campaign id must not depend on where the site is checked out
    assert issue.post_paths == tuple(str(p.path.relative_to(tmp_path)) for p in posts)
    for title in ("Post lead", "Post second", "Post third"):  # link text says where it goes
        assert html.count(f"Read “{title}”") == 1
    assert "Read more" not in html
    assert 'alt="Lead photo"' in html
    assert "<em>back</em>" in html
    for title in ("Post lead", "Post second", "Post third"):
        assert title in html and title in issue.text
    assert "Example Org, 1 Main St, Springfield, USA" in html
    assert f'href="{tok.UNSUBSCRIBE_URL}"' in html
    assert f"Unsubscribe: {tok.UNSUBSCRIBE_URL}" in issue.text
    assert f"{SITE}/newsletter/2026-11/" in html  # view in browser
    assert "<mj-" not in html and "{{" not in html
    assert "%%NLSLOT" not in html
    # the CSS was inlined: class rules became style attributes
    assert re.search(r'class="[^"]*nl-title[^"]*"[^>]*style="', html) or "nl-title" in html
    assert "!important" in html  # media queries keep !important (strip_important=False)


def test_post_layout_renders_body_safely(tmp_path: Path, inliner: str) -> None:
    body = (
        "# Big heading\n\nText with [a link](/about/) and [mail](mailto:a@b.org).\n\n"
        "## Smaller\n\n"
        '<img src="/img/x.png" alt="An x" style="float:right" width="900">\n\n'
        "| a | b |\n|---|---|\n| 1 | 2 |\n\n"
        "```\nline one\n    indented two\n```\n\n"
        '<script>alert(1)</script><form><input name="q"></form>\n'
    )
    settings = make_settings(tmp_path, inliner=inliner)
    issue = render_issue([make_post(tmp_path, body=body)], settings, layout="post", now=NOW)
    html = issue.html
    assert issue.subject == "Post hello"
    assert issue.slug == "hello"
    assert "<script" not in html and "alert(1)" not in html
    assert "<form" not in html and "<input" not in html
    # headings demoted below the post title (h1)
    assert re.search(r"<h2[^>]*>\s*Big heading", html)
    assert re.search(r"<h3[^>]*>\s*Smaller", html)
    # images shrink to the screen and keep alt text; relative URLs made absolute
    img = re.search(r'<img[^>]*alt="An x"[^>]*>', html)
    assert img and "max-width:100%" in img.group(0).replace(" ", "")
    assert 'width="552"' in img.group(0)  # its own 900 px, narrowed to the text column
    assert f"{SITE}/img/x.png" in img.group(0) and "float" not in img.group(0)
    # tables sit in a scrolling wrapper; code keeps its line breaks
    assert re.search(r"overflow-x:\s*auto", html)
    assert "line one\n    indented two" in html
    assert "\n    line one\n        indented two\n" in issue.text  # code: four spaces in
    # UTM on the site's own links only; mailto untouched
    assert (
        f"{SITE}/about/?utm_source=newsletter&amp;utm_medium=email&amp;utm_campaign=hello" in html
    )
    assert 'href="mailto:a@b.org"' in html
    assert f"{SITE}/about/?utm_source=newsletter&utm_medium=email&utm_campaign=hello" in issue.text


def test_tokens_survive_mjml_and_inliner_in_hrefs(tmp_path: Path, inliner: str) -> None:
    user = tmp_path / "templates" / "partials"
    user.mkdir(parents=True)
    (user / "footer.mjml.j2").write_text(
        "<mj-section><mj-column><mj-text>{{ footer.postal_address }} "
        '<a href="{{ footer.unsubscribe_url }}">Leave</a> for {{ email }}</mj-text>'
        '<mj-button href="{{ footer.unsubscribe_url }}">Unsubscribe {{ first_name }}</mj-button>'
        "</mj-column></mj-section>",
        encoding="utf-8",
    )
    settings = make_settings(tmp_path, inliner=inliner, intro="Hello.")
    issue = render_issue([make_post(tmp_path)], settings, layout="digest", now=NOW)
    assert issue.html.count(f'href="{tok.UNSUBSCRIBE_URL}"') == 2
    assert "Unsubscribe %%FIRST_NAME%%" in issue.html
    assert "for %%EMAIL%%" in issue.html
    assert issue.html_template.tokens >= {tok.UNSUBSCRIBE_URL, tok.FIRST_NAME, tok.EMAIL}
    assert issue.text_template.tokens >= {tok.UNSUBSCRIBE_URL, tok.FIRST_NAME_TEXT}


@pytest.mark.parametrize("name", ["<script>alert(1)</script>", "O'Brien & Co"])
def test_first_name_is_text_in_html(tmp_path: Path, name: str) -> None:
    settings = make_settings(tmp_path, subject_digest="Hi {{ first_name }}: news")
    issue = render_issue([make_post(tmp_path)], settings, layout="digest", now=NOW, intro="News.")
    values = tok.token_values(
        tok.Personal(
            email="a&b@example.org", first_name=name, unsubscribe_url="https://u.example/u/t0k3n"
        )
    )
    subject, html, text = personalize_email(issue, values)
    assert subject == f"Hi {name}: news"
    assert f"Hi {name}," in text
    assert "<script>alert(1)" not in html
    import html as htmlmod

    assert f"Hi {htmlmod.escape(name)}," in html
    assert 'href="https://u.example/u/t0k3n"' in html
    assert "Unsubscribe: https://u.example/u/t0k3n" in text


def test_first_name_fallback(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, first_name_fallback="friend", intro="News.")
    issue = render_issue([make_post(tmp_path)], settings, layout="digest", now=NOW)
    _, html, text = personalize_email(issue, generic_values(settings))
    assert "Hi friend," in html and "Hi friend," in text


def test_subject_flag_and_errors(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    post = make_post(tmp_path)
    issue = render_issue([post], settings, layout="post", now=NOW, subject="{{ lead.title }}!")
    assert issue.subject == "Post hello!"
    with pytest.raises(RenderError) as err:
        render_issue([post], settings, layout="post", now=NOW, subject="{{ nope }}")
    assert err.value.format().startswith("--subject: ")
    assert "'nope' is undefined" in err.value.format()


def test_undefined_variable_names_template_and_line(tmp_path: Path) -> None:
    user = tmp_path / "templates" / "partials"
    user.mkdir(parents=True)
    (user / "header.mjml.j2").write_text(
        "<mj-section>\n<mj-column>\n<mj-text>{{ site.motto }}</mj-text>\n"
        "</mj-column>\n</mj-section>\n",
        encoding="utf-8",
    )
    with pytest.raises(RenderError) as err:
        render_issue([make_post(tmp_path)], make_settings(tmp_path), layout="digest", now=NOW)
    assert err.value.format().startswith("partials/header.mjml.j2:3: ")
    assert "motto" in err.value.format()


def test_template_syntax_error_names_line(tmp_path: Path) -> None:
    user = tmp_path / "templates"
    user.mkdir()
    (user / "post.mjml.j2").write_text(
        '{% extends "base.mjml.j2" %}\n{% block content %}\n{% if %}\n{% endblock %}\n',
        encoding="utf-8",
    )
    with pytest.raises(RenderError) as err:
        render_issue([make_post(tmp_path)], make_settings(tmp_path), layout="post", now=NOW)
    assert err.value.format().startswith("post.mjml.j2:3: template syntax error")


def test_mjml_error_maps_to_template_line(tmp_path: Path) -> None:
    user = tmp_path / "templates"
    user.mkdir()
    (user / "post.mjml.j2").write_text(
        '{% extends "base.mjml.j2" %}\n{% block content %}\n<mj-section>\n  <mj-column>\n'
        "    <mj-text>{{ lead.title }}\n  </mj-column>\n</mj-section>\n{% endblock %}\n",
        encoding="utf-8",
    )
    with pytest.raises(RenderError) as err:
        render_issue([make_post(tmp_path)], make_settings(tmp_path), layout="post", now=NOW)
    message = err.value.format()
    assert message.startswith("post.mjml.j2:5: MJML: <mj-text> is not closed"), message


def test_mjml_byte_offset_error_maps_to_partial_line(tmp_path: Path) -> None:
    user = tmp_path / "templates" / "partials"
    user.mkdir(parents=True)
    (user / "preheader.mjml.j2").write_text(
        "<mj-preview>{{ issue.preheader }}</mj-preview>\n<mj-bogus-head-tag />\n",
        encoding="utf-8",
    )
    with pytest.raises(RenderError) as err:
        render_issue([make_post(tmp_path)], make_settings(tmp_path), layout="post", now=NOW)
    message = err.value.format()
    assert message.startswith("partials/preheader.mjml.j2:2: MJML: unexpected element"), message


def test_mjml_unquoted_attribute_names_line(tmp_path: Path) -> None:
    user = tmp_path / "templates" / "partials"
    user.mkdir(parents=True)
    (user / "header.mjml.j2").write_text(
        "<mj-section>\n  <mj-column>\n    <mj-text padding=4px>{{ site.name }}</mj-text>\n"
        "  </mj-column>\n</mj-section>\n",
        encoding="utf-8",
    )
    with pytest.raises(RenderError) as err:
        render_issue([make_post(tmp_path)], make_settings(tmp_path), layout="post", now=NOW)
    message = err.value.format()
    assert message.startswith("partials/header.mjml.j2:3: MJML: an attribute of <mj-text>"), message


def test_mj_html_attributes_is_refused_with_location(tmp_path: Path) -> None:
    user = tmp_path / "templates" / "partials"
    user.mkdir(parents=True)
    (user / "preheader.mjml.j2").write_text(
        "<mj-preview>{{ issue.preheader }}</mj-preview>\n"
        '<mj-html-attributes><mj-selector path=".x"></mj-selector></mj-html-attributes>\n',
        encoding="utf-8",
    )
    with pytest.raises(RenderError) as err:
        render_issue([make_post(tmp_path)], make_settings(tmp_path), layout="post", now=NOW)
    assert err.value.format().startswith("partials/preheader.mjml.j2:2: <mj-html-attributes>")


def test_user_templates_override_only_what_they_name(tmp_path: Path) -> None:
    user = tmp_path / "templates" / "partials"
    user.mkdir(parents=True)
    (user / "footer.txt.j2").write_text(
        "Bye! {{ footer.unsubscribe_url }} {{ footer.postal_address }}\n", encoding="utf-8"
    )
    issue = render_issue([make_post(tmp_path)], make_settings(tmp_path), layout="post", now=NOW)
    assert f"Bye! {tok.UNSUBSCRIBE_URL} Example Org" in issue.text
    assert "View in browser" in issue.html  # the HTML footer is still the default


def test_template_caches_follow_the_folder(tmp_path: Path) -> None:
    """Compiled templates and the folder's resolved path are kept between renders, as in the
    preview: a folder that appears is used at once, an edit after forget_templates()."""
    settings = make_settings(tmp_path, inliner="css-inline")
    posts = [make_post(tmp_path)]

    def footer_text() -> str:
        return render_issue(posts, settings, layout="post", now=NOW).text

    def footer(folder: Path, word: str) -> None:
        (folder / "partials").mkdir(parents=True, exist_ok=True)
        (folder / "partials" / "footer.txt.j2").write_text(f"{word}\n", encoding="utf-8")

    assert "Unsubscribe:" in footer_text()  # no folder yet: the defaults
    first, second = tmp_path / "look-one", tmp_path / "look-two"
    footer(first, "FIRST")
    footer(second, "SECOND")
    (tmp_path / "templates").symlink_to(first, target_is_directory=True)
    assert "FIRST" in footer_text()  # the folder is looked for on every render

    footer(first, "FIRST-EDITED")
    forget_templates()
    assert "FIRST-EDITED" in footer_text()

    (tmp_path / "templates").unlink()
    (tmp_path / "templates").symlink_to(second, target_is_directory=True)
    forget_templates()
    assert "SECOND" in footer_text()  # where the folder points is asked again too


def test_layout_and_selection_errors(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    posts = [make_post(tmp_path, "a"), make_post(tmp_path, "b")]
    with pytest.raises(ConfigError, match="one post but 2"):
        render_issue(posts, settings, layout="post", now=NOW)
    with pytest.raises(ConfigError, match="unknown layout"):
        render_issue(posts, settings, layout="weekly", now=NOW)
    with pytest.raises(ConfigError, match="no posts"):
        render_issue([], settings, layout="digest", now=NOW)


def test_unknown_inliner_is_a_clear_error(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, inliner="juice")
    with pytest.raises(RenderError, match="unknown inliner 'juice'"):
        render_issue([make_post(tmp_path)], settings, layout="post", now=NOW)


def test_both_inliners_give_the_same_layout(tmp_path: Path) -> None:
    posts = [make_post(tmp_path, "a"), make_post(tmp_path, "b")]
    a = render_issue(posts, make_settings(tmp_path), layout="digest", now=NOW)
    b = render_issue(posts, make_settings(tmp_path, inliner="css-inline"), layout="digest", now=NOW)
    assert a.text == b.text

    def skeleton(html: str) -> list[str]:
        return re.findall(r"<(table|td|div|a|img|h[1-6]|p)\b", html)

    assert skeleton(a.html) == skeleton(b.html)


def test_preheader_is_padded_and_from_settings(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, preheader="Our October news")
    issue = render_issue([make_post(tmp_path)], settings, layout="digest", now=NOW)
    assert issue.preheader == "Our October news"
    hidden = re.search(r'<div style="display:\s*none[^"]*">(.*?)</div>', issue.html, re.S)
    assert hidden and hidden.group(1).startswith("Our October news")
    assert hidden.group(1).count("\u200c") >= 40  # zero-width non-joiners


def test_utm_never_overwrites_and_skips_other_domains(tmp_path: Path) -> None:
    body = (
        f"[mine]({SITE}/a/?utm_source=blog) [www](https://www.news.example.org/b/) "
        "[other](https://elsewhere.example/c/) [anchor](#top) [phone](tel:+15551234)"
    )
    settings = make_settings(tmp_path, utm_campaign="fall")
    html = render_issue([make_post(tmp_path, body=body)], settings, layout="post", now=NOW).html
    assert f"{SITE}/a/?utm_source=blog&amp;utm_medium=email&amp;utm_campaign=fall" in html
    assert "https://www.news.example.org/b/?utm_source=newsletter" in html
    assert 'href="https://elsewhere.example/c/"' in html
    assert 'href="tel:+15551234"' in html


def test_no_utm_without_source(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, utm_source="")
    html = render_issue([make_post(tmp_path)], settings, layout="digest", now=NOW).html
    assert "utm_" not in html


def test_intro_from_file_and_setting(tmp_path: Path) -> None:
    intro = tmp_path / "intro.md"
    intro.write_text("Hello from the **file**.", encoding="utf-8")
    settings = make_settings(tmp_path, intro="intro.md")
    assert load_intro(settings, None) == "Hello from the **file**."
    assert load_intro(make_settings(tmp_path, intro="Plain *text* intro"), None) == (
        "Plain *text* intro"
    )
    assert load_intro(make_settings(tmp_path), None) is None
    with pytest.raises(InputError) as err:
        load_intro(settings, tmp_path / "missing.md")
    assert err.value.format().startswith(f"{tmp_path / 'missing.md'}: intro file not found")
    # a mistyped path in the setting is not sent as the intro's text
    with pytest.raises(ConfigError, match=r"email.intro names the file 'intros/oct.md'"):
        load_intro(make_settings(tmp_path, intro="intros/oct.md"), None)


def test_issue_date_names_the_digest_after_the_month_given(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    posts = [make_post(tmp_path, "lead")]
    october = datetime(2026, 10, 1, tzinfo=settings.site.tz)
    issue = render_issue(posts, settings, layout="digest", now=NOW, issue_date=october)
    assert issue.subject == "Example News — October 2026"
    assert issue.slug == "2026-10"
    plain = render_issue(posts, settings, layout="digest", now=NOW)
    assert plain.subject == "Example News — November 2026"


def test_same_site_in_two_folders_renders_the_same_issue(tmp_path: Path) -> None:
    # the campaign id comes from content_hash: moving the site must not make it a new campaign
    hashes = set()
    for folder in ("checkout-a", "elsewhere/checkout-b"):
        root = tmp_path / folder
        root.mkdir(parents=True)
        settings = make_settings(root)
        posts = [make_post(root, "lead"), make_post(root, "second")]
        hashes.add(render_issue(posts, settings, layout="digest", now=NOW).content_hash)
    assert len(hashes) == 1


@pytest.mark.parametrize("slug", ["../../escaped", "/etc/x", "a/b", ".."])
def test_a_post_slug_never_leads_the_archive_out_of_its_folder(tmp_path: Path, slug: str) -> None:
    from newsletter.archive import write_archive

    settings = make_settings(tmp_path)
    post = dataclasses.replace(make_post(tmp_path, "p"), slug=slug)
    issue = render_issue([post], settings, layout="post", now=NOW)
    assert "/" not in issue.slug and issue.slug not in ("", ".", "..")
    page = write_archive(issue, settings, now=NOW)
    assert page.resolve().parent.parent == (tmp_path / "archive").resolve()


@pytest.mark.parametrize("inliner", ["premailer", "css-inline"])
def test_template_code_a_post_shows_on_purpose_is_text_not_syntax(
    tmp_path: Path, inliner: str
) -> None:
    from newsletter.lint import lint_issue

    settings = make_settings(tmp_path, inliner=inliner)
    sample = "Use this:\n\n```liquid\n{{ site.title }} {% if x %}y{% endif %}\n```\n"
    issue = render_issue(
        [make_post(tmp_path, "code", body=sample)], settings, layout="post", now=NOW
    )
    assert "{{" not in issue.html and "{%" not in issue.html
    assert "&#123;&#123; site.title }}" in issue.html
    assert "{\u200b{ site.title }}" in issue.text and "{{" not in issue.text
    codes = {f.code for f in lint_issue(issue, settings, longest=None)}
    assert "raw-syntax" not in codes, codes


def test_template_code_in_the_intro_is_resolved_like_a_post(tmp_path: Path) -> None:
    settings = dataclasses.replace(
        make_settings(tmp_path),
        site=SiteSettings(url=SITE, name="Example News", values={"venue": "Harbour Hall"}),
    )
    intro = "Hello **{{ first_name }}**! See you at {{ site.venue }}. {{ site.nope }}"
    issue = render_issue(
        [make_post(tmp_path, "a")], settings, layout="digest", now=NOW, intro=intro
    )
    assert "{{" not in issue.html and "{{" not in issue.text
    assert "See you at Harbour Hall." in issue.text
    values = tok.token_values(tok.Personal("o@x.org", "O'Brien & Co", "https://u/1"))
    _, html, text = personalize_email(issue, values)
    assert "Hello **O'Brien & Co**" not in text and "Hello O'Brien & Co!" in text
    assert "O&#x27;Brien &amp; Co" in html or "O&#39;Brien &amp; Co" in html
    assert any("site.nope" in w for w in issue.warnings), issue.warnings
