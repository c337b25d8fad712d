"""Render an issue once: Jinja2 fills MJML, MRML compiles it, the CSS is inlined, a text part made.

    posts ──► context (post views, slots) ──► <layout>.mjml.j2 ──► MJML ──► HTML
          ──► post bodies into their slots ──► inline CSS ──► UTM tags ──► RenderedIssue.html
          ──► <layout>.txt.j2 (post bodies as text) ─────────────────────► RenderedIssue.text

Post bodies and the intro are not fed through MRML: the template receives a placeholder (a
"slot") and the HTML goes in after compilation. That keeps MRML's strict XML-like parser away
from user HTML and keeps compile time independent of how long the posts are.

Per-recipient values are tokens from :mod:`newsletter.personalize`; :func:`personalize_email`
fills them for one recipient.
"""

from __future__ import annotations

import html as htmlmod
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import jinja2
from inscriptis import get_text
from inscriptis.model.config import ParserConfig
from markupsafe import Markup

from newsletter import content
from newsletter import personalize as tok
from newsletter.config import Settings
from newsletter.content import Post, markdown_to_email_html
from newsletter.emailcompile import compile_mjml, inline_css
from newsletter.emailhtml import UtmTags, email_safe_html, tag_html_links, tag_text_links
from newsletter.errors import ConfigError, InputError, RenderError
from newsletter.rendered import RenderedIssue
from newsletter.templating import environment, render_string, render_template

LAYOUTS = ("digest", "post")
PREHEADER_MAX = 140
# Invisible characters after the preheader so the inbox preview stops there.
PREHEADER_PADDING = "&#847;&zwnj;&nbsp;" * 60
_TEXT_CONFIG = ParserConfig(display_links=True, display_images=True)
_SLOT = "%%NLSLOT{}%%"
_SLOT_RE = re.compile(r"%%NLSLOT(\d+)%%")


@dataclass(frozen=True)
class PostView:
    """What a template sees of one post (HTML templates get ``body`` as a slot)."""

    title: str
    url: str
    path: str
    date: datetime
    date_display: str
    authors: tuple[str, ...]
    authors_display: str
    excerpt: str
    cover: Mapping[str, str] | None
    body: str | Markup
    categories: tuple[str, ...]
    tags: tuple[str, ...]


def load_intro(settings: Settings, intro_file: Path | None) -> str | None:
    """The digest intro as Markdown: ``--intro FILE`` first, else ``email.intro`` (text or a
    path to a Markdown file, relative to the config). ``None`` when there is none."""
    if intro_file is None:
        value = settings.email.intro
        if not value.strip():
            return None
        candidate = settings.path(value) if "\n" not in value and len(value) < 300 else None
        if candidate is None or not candidate.suffix or not candidate.is_file():
            if _looks_like_a_path(value):
                raise ConfigError(
                    f"email.intro names the file {value!r}, which does not exist (relative "
                    "paths start at the config file's folder); fix the path, or write the "
                    "intro text itself",
                    path=settings.config_path,
                    key="email.intro",
                )
            return value
        intro_file = candidate
    try:
        return intro_file.read_text(encoding="utf-8")
    except FileNotFoundError as err:
        raise InputError(
            "intro file not found; pass an existing Markdown file", path=intro_file
        ) from err
    except (OSError, UnicodeDecodeError) as err:
        raise InputError(f"cannot read the intro file ({err})", path=intro_file) from err


def _quote_template_braces(part: str, *, text: bool = False) -> str:
    """Keep template code a post shows on purpose (``{% raw %}``, code samples) as text.

    The sanitizer writes ``{{`` as character references, but the inliners parse and write the
    HTML again, which turns them back into raw ``{{``: template syntax that an ESP, a mail
    client's template engine or our own lint would take for unrendered code. In the HTML part
    they become character references again (shown the same); in the text part a zero-width
    space goes between the braces (shown the same, no longer template syntax).
    """
    if "{{" not in part and "{%" not in part:
        return part
    if text:
        return part.replace("{{", "{\u200b{").replace("{%", "{\u200b%")
    return part.replace("{{", "&#123;&#123;").replace("{%", "&#123;%")


_SOURCE_REGION = re.compile(r"(<!-- source: [^>]*-->)(.*?)(<!-- /source -->)", re.DOTALL)


def _quote_post_braces(html: str) -> str:
    """:func:`_quote_template_braces` inside post bodies only: braces a template left in the
    output are a template mistake, and lint must still see them."""
    if "{{" not in html and "{%" not in html:
        return html
    return _SOURCE_REGION.sub(
        lambda m: m.group(1) + _quote_template_braces(m.group(2)) + m.group(3), html
    )


_FIRST_NAME_CODE = re.compile(r"\{\{-?\s*(?:subscriber\.)?first_name\s*-?\}\}")


def _resolve_intro(markdown: str, settings: Settings, now: datetime, warnings: list[str]) -> str:
    """Template code in the intro, as in a post: ``{{ first_name }}`` becomes the reader's first
    name (a per-recipient token), ``{{ site.x }}`` is resolved, the rest removed with a warning."""
    if "{{" not in markdown and "{%" not in markdown:
        return markdown
    from newsletter.content import PostIndex, resolve_text

    markdown = _FIRST_NAME_CODE.sub(tok.FIRST_NAME, markdown)
    intro = Post(path=Path("email.intro"), slug="intro", title="", date=now, url=settings.site.url)
    text, found = resolve_text(markdown, intro, settings, PostIndex([]), first_line=1)
    warnings.extend(w.format() for w in found)
    return text


def _looks_like_a_path(value: str) -> bool:
    text = value.strip()
    return (
        " " not in text
        and "\n" not in text
        and text.lower().endswith((".md", ".markdown", ".txt", ".html"))
    )


def _display_date(when: datetime, settings: Settings) -> str:
    local = when.astimezone(settings.site.tz)
    return f"{local:%B} {local.day}, {local.year}"


def _authors(authors: Sequence[str]) -> str:
    if len(authors) <= 2:
        return " and ".join(authors)
    return ", ".join(authors[:-1]) + " and " + authors[-1]


def _relpath(post: Post, settings: Settings) -> str:
    try:
        return str(post.path.resolve().relative_to(settings.root.resolve()))
    except ValueError:
        return str(post.path)


def _truncate(text: str, limit: int) -> str:
    text = " ".join(text.split())
    if len(text) <= limit:
        return text
    cut = text[: limit - 1].rsplit(" ", 1)[0]
    return cut.rstrip(",.;:") + "…"


class _Slots:
    """HTML kept out of MJML; the template gets ``%%NLSLOTn%%`` in its place."""

    def __init__(self) -> None:
        self.items: list[str] = []

    def add(self, html: str, source: str) -> Markup:
        self.items.append(f"<!-- source: {htmlmod.escape(source)} -->{html}<!-- /source -->")
        return Markup(_SLOT.format(len(self.items) - 1))

    def fill(self, compiled: str) -> str:
        return _SLOT_RE.sub(lambda m: self.items[int(m.group(1))], compiled)


_UNSAFE_SLUG = re.compile(r"[^\w-]+")


def _issue_slug(layout: str, lead: Post, now: datetime, settings: Settings) -> str:
    """The issue's name in archive URLs and folders: one safe path segment, never ``..``."""
    if layout == "post":
        return _UNSAFE_SLUG.sub("-", lead.slug).strip("-_") or "issue"
    return f"{now.astimezone(settings.site.tz):%Y-%m}"


def _archive_link(settings: Settings, slug: str) -> str:
    base = settings.email.archive_url
    if not base:
        return ""
    return base.rstrip("/") + "/" + slug + "/"


@dataclass
class _Prepared:
    """An issue after Jinja: the MJML source, the slots to put back, the text context."""

    env: jinja2.Environment
    layout: str
    mjml_src: str
    slots: _Slots
    text_ctx: dict[str, Any]
    utm: UtmTags
    subject: str
    preheader: str
    slug: str
    warnings: list[str]

    def template_names(self) -> list[str]:
        partials = self.env.list_templates(filter_func=lambda n: n.startswith("partials/"))
        return [f"{self.layout}.mjml.j2", *partials, "base.mjml.j2"]


def _prepare(
    posts: Sequence[Post],
    settings: Settings,
    *,
    layout: str,
    now: datetime,
    subject: str | None,
    intro: str | None,
    issue_date: datetime | None = None,
) -> _Prepared:
    if layout not in LAYOUTS:
        raise ConfigError(f"unknown layout {layout!r}; use one of: {', '.join(LAYOUTS)}")
    if not posts:
        raise ConfigError("no posts selected; widen the selection (see `newsletter posts`)")
    if layout == "post" and len(posts) != 1:
        raise ConfigError(
            f"the post layout shows one post but {len(posts)} were selected; pick one with --post"
        )
    email = settings.email
    env = environment(settings.path(email.templates))
    warnings: list[str] = []
    lead = posts[0]
    named = (issue_date or now).astimezone(settings.site.tz)
    slug = _issue_slug(layout, lead, named, settings)
    utm = UtmTags(
        domain=_host(settings.site.url),
        source=email.utm_source,
        medium=email.utm_medium,
        campaign=email.utm_campaign or slug,
    )
    intro_md = email.intro if intro is None else intro
    if intro_md and layout == "post":
        warnings.append("the post layout has no intro; the intro was not used")
        intro_md = ""

    html_slots = _Slots()
    html_views: list[PostView] = []
    text_views: list[PostView] = []
    for index, post in enumerate(posts):
        rel = _relpath(post, settings)
        email_body = ""
        body_text = ""
        if layout == "post":
            source = content.body_html(post, settings)
            email_body = email_safe_html(source, base_url=post.url)
            plain = email_safe_html(source, base_url=post.url, styled=False)
            body_text = _quote_template_braces(get_text(plain, _TEXT_CONFIG).strip(), text=True)
        if layout == "digest" and index > 0 and not content.excerpt_of(post):
            warnings.append(f"{rel}: post has no excerpt; its card shows only the title")
        common: dict[str, Any] = {
            "title": post.title,
            "url": post.url,
            "path": rel,
            "date": post.date,
            "date_display": _display_date(post.date, settings),
            "authors": tuple(post.authors),
            "authors_display": _authors(post.authors),
            "excerpt": content.excerpt_of(post),
            "cover": {"url": post.cover.url, "alt": post.cover.alt} if post.cover else None,
            "categories": tuple(post.categories),
            "tags": tuple(post.tags),
        }
        html_views.append(PostView(body=html_slots.add(email_body, rel), **common))
        text_views.append(PostView(body=body_text, **common))

    intro_html = ""
    intro_text = ""
    if intro_md:
        intro_md = _resolve_intro(intro_md, settings, now, warnings)
        intro_html = email_safe_html(
            markdown_to_email_html(intro_md, settings.site.url), base_url=settings.site.url
        )
        intro_text = get_text(intro_html, _TEXT_CONFIG).strip()
        intro_text = intro_text.replace(tok.FIRST_NAME, tok.FIRST_NAME_TEXT)
    site = {
        "name": settings.site.name,
        "url": settings.site.url,
        "logo_url": settings.site.logo_url,
        "language": settings.site.language,
        **{k: v for k, v in settings.site.values.items() if k not in ("name", "url")},
    }
    subject_ctx = {
        "site": site,
        "issue_date": named,
        "lead": text_views[0],
        "posts": text_views,
        "first_name": tok.FIRST_NAME_TEXT,
    }
    subject_src = (
        subject
        if subject is not None
        else (email.subject_digest if layout == "digest" else email.subject_post)
    )
    setting = "--subject" if subject is not None else f"email.subject_{layout}"
    final_subject = " ".join(render_string(subject_src, subject_ctx, setting=setting).split())
    preheader = _truncate(email.preheader or content.excerpt_of(lead), PREHEADER_MAX)

    footer = {
        "why": email.why,
        "postal_address": email.postal_address,
        "unsubscribe_url": tok.UNSUBSCRIBE_URL,
        "view_in_browser_url": _archive_link(settings, slug),
    }
    issue_ctx = {
        "subject": final_subject,
        "preheader": preheader,
        "preheader_padding": Markup(PREHEADER_PADDING),
        "layout": layout,
        "date": named,
        "slug": slug,
    }
    # The subject carries text-part tokens; inside the HTML (<title>) it needs the HTML ones.
    html_subject = final_subject.replace(tok.FIRST_NAME_TEXT, tok.FIRST_NAME).replace(
        tok.EMAIL_TEXT, tok.EMAIL
    )
    html_ctx = {
        "site": site,
        "issue": {
            **issue_ctx,
            "subject": html_subject,
            "intro": html_slots.add(intro_html, "intro") if intro_md else "",
        },
        "lead": html_views[0],
        "posts": html_views[1:],
        "first_name": Markup(tok.FIRST_NAME),
        "email": Markup(tok.EMAIL),
        "footer": {**footer, "unsubscribe_url": Markup(tok.UNSUBSCRIBE_URL)},
        "now": now,
    }
    text_ctx = {
        **html_ctx,
        "issue": {**issue_ctx, "intro": intro_text},
        "lead": text_views[0],
        "posts": text_views[1:],
        "first_name": tok.FIRST_NAME_TEXT,
        "email": tok.EMAIL_TEXT,
        "footer": footer,
    }

    mjml_src = render_template(env, f"{layout}.mjml.j2", html_ctx)
    return _Prepared(
        env=env,
        layout=layout,
        mjml_src=mjml_src,
        slots=html_slots,
        text_ctx=text_ctx,
        utm=utm,
        subject=final_subject,
        preheader=preheader,
        slug=slug,
        warnings=warnings,
    )


def render_issue(
    posts: Sequence[Post],
    settings: Settings,
    *,
    layout: str,
    now: datetime,
    subject: str | None = None,
    intro: str | None = None,
    issue_date: datetime | None = None,
) -> RenderedIssue:
    """Render ``posts`` (the lead first) once, with per-recipient tokens left in.

    ``intro`` is Markdown (for the digest); ``None`` uses ``email.intro`` from the settings.
    ``subject`` replaces the subject from the settings (it may use the same Jinja variables).
    ``issue_date`` is the date the issue is named after (``--month``); ``None`` uses ``now``.
    """
    prep = _prepare(
        posts,
        settings,
        layout=layout,
        now=now,
        subject=subject,
        intro=intro,
        issue_date=issue_date,
    )
    compiled = compile_mjml(prep.mjml_src, prep.env, prep.template_names)
    inlined = inline_css(prep.slots.fill(compiled), settings.email.inliner)
    final_html = _quote_post_braces(tag_html_links(inlined, prep.utm))
    text = render_template(prep.env, f"{layout}.txt.j2", prep.text_ctx)
    final_text = tag_text_links(_tidy_text(text), prep.utm)
    newest = max(p.date for p in posts)
    return RenderedIssue(
        subject=prep.subject,
        preheader=prep.preheader,
        html=final_html,
        text=final_text,
        layout=layout,
        post_paths=tuple(_relpath(p, settings) for p in posts),
        slug=prep.slug,
        newest_post_date=newest.isoformat(),
        warnings=tuple(prep.warnings),
    )


def render_mjml(
    posts: Sequence[Post],
    settings: Settings,
    *,
    layout: str,
    now: datetime,
    subject: str | None = None,
    intro: str | None = None,
) -> str:
    """The MJML an issue compiles from, post bodies included (for benchmarks and debugging)."""
    prep = _prepare(posts, settings, layout=layout, now=now, subject=subject, intro=intro)
    return prep.slots.fill(prep.mjml_src)


def _host(url: str) -> str:
    from urllib.parse import urlsplit

    return urlsplit(url).hostname or ""


def _tidy_text(text: str) -> str:
    """Trailing spaces off, at most one blank line in a row, one final newline."""
    lines = [line.rstrip() for line in text.splitlines()]
    out: list[str] = []
    for line in lines:
        if not line and (not out or not out[-1]):
            continue
        out.append(line)
    return "\n".join(out).strip("\n") + "\n"


def personalize_email(issue: RenderedIssue, values: Mapping[str, str]) -> tuple[str, str, str]:
    """(subject, html, text) for one recipient; ``values`` from :func:`personalize.token_values`."""
    missing = [t for t in tok.ALL_TOKENS if t not in values]
    if missing:
        raise RenderError(f"no value for {', '.join(missing)}", template="personalize")
    return (
        issue.subject_template.fill(values),
        issue.html_template.fill(values),
        issue.text_template.fill(values),
    )


def generic_values(settings: Settings) -> dict[str, str]:
    """Token values for the public archive page and previews: no personal data."""
    return tok.token_values(
        tok.Personal(
            email="",
            first_name="",
            unsubscribe_url=settings.unsubscribe.base_url.rstrip("/") + "/u/",
        ),
        first_name_fallback=settings.email.first_name_fallback,
    )
