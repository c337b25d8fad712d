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

import dataclasses
import functools
import html as htmlmod
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import jinja2
from markupsafe import Markup

from newsletter import content
from newsletter import personalize as tok
from newsletter.config import Settings
from newsletter.content import Post, markdown_to_email_html
from newsletter.emailcompile import compile_mjml, inline_css, strip_comments
from newsletter.emailhtml import (
    UtmTags,
    email_safe_html,
    split_blocks,
    tag_html_links,
    tag_text_links,
)
from newsletter.errors import ConfigError, InputError, RenderError
from newsletter.rendered import RenderedIssue
from newsletter.templating import environment, render_string, render_template
from newsletter.textpart import post_text
from newsletter.theme import ThemeSettings

LAYOUTS = ("digest", "post")
STYLES_TEMPLATE = "partials/styles.mjml.j2"
CONTENTS_FROM = 5  # a digest with this many posts starts with a list of them
GROUPINGS = ("", "category")
PREHEADER_MAX = 140
# Invisible characters after the preheader so the inbox preview stops there.
PREHEADER_PADDING = "&#847;&zwnj;&nbsp;" * 60
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
    continued: bool = False  # the body was cut to fit the size limit; the rest is on the site


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


def _unmark(html: str) -> tuple[str, tuple[tuple[str, int, int], ...]]:
    """``html`` without the slot marks, post bodies without comments, and where each post body
    now sits in it: (post path, start, end).

    The rest of ``html`` has no comments but Outlook's conditional ones already: they were
    stripped from the MJML before compiling (16 KB with a comment or two, where the compiled
    email is 45 KB with a hundred of MRML's conditional comments to step over).

    Template code in a post body is quoted (:func:`_quote_template_braces`) on the way; braces
    a template left in the output are a template mistake, and lint must still see them.
    """
    out: list[str] = []
    sources: list[tuple[str, int, int]] = []
    size = 0
    last = 0
    for m in _SOURCE_REGION.finditer(html):
        before = html[last : m.start()]
        body = strip_comments(_quote_template_braces(m.group(2)))
        out += [before, body]
        size += len(before)
        path = htmlmod.unescape(m.group(1)[len("<!-- source: ") : -len(" -->")])
        if body and path != "intro":
            sources.append((path, size, size + len(body)))
        size += len(body)
        last = m.end()
    out.append(html[last:])
    return "".join(out), tuple(sources)


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


@functools.lru_cache(maxsize=16)
def _intro_parts(markdown: str, base_url: str) -> tuple[str, str]:
    """The intro's email HTML and its text part, once per text: the intro is usually the
    ``email.intro`` setting, the same in every issue a process renders (the preview renders
    again on every save), and these are pure functions of the Markdown and the site's URL."""
    html = email_safe_html(markdown_to_email_html(markdown, base_url), base_url=base_url)
    text = post_text(html).replace(tok.FIRST_NAME, tok.FIRST_NAME_TEXT)
    return html, text


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
    return _relative(post.path, settings.root)


@functools.lru_cache(maxsize=4096)
def _relative(path: Path, root: Path) -> str:
    """``path`` relative to ``root`` after resolving both, once per pair (resolving costs system
    calls and ``relative_to`` is slow; every render asks for every post)."""
    try:
        return str(path.resolve().relative_to(root.resolve()))
    except ValueError:
        return str(path)


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


_TAG = re.compile(r"<([a-z][a-z0-9]*)")


def _styles(env: jinja2.Environment, theme: ThemeSettings, layout: str, slots: _Slots) -> Markup:
    """``partials/styles.mjml.j2`` for this theme and the elements the post bodies and intro
    use (``issue.uses``): rendered once per combination (a changed template file is a new
    template object, so edits still show)."""
    uses = frozenset(_TAG.findall("".join(slots.items)))
    try:
        template = env.get_template(STYLES_TEMPLATE)
    except jinja2.TemplateError:
        return Markup(render_template(env, STYLES_TEMPLATE, {}))  # raises with template:line
    return _rendered_styles(env, template, theme, layout, uses)


@functools.lru_cache(maxsize=64)
def _rendered_styles(
    env: jinja2.Environment,
    template: jinja2.Template,
    theme: ThemeSettings,
    layout: str,
    uses: frozenset[str],
) -> Markup:
    ctx = {"theme": theme, "issue": {"layout": layout, "uses": uses}}
    return Markup(render_template(env, STYLES_TEMPLATE, ctx))


@dataclass(frozen=True)
class _Cut:
    """How much of an issue to leave out so its HTML stays under ``email.max_html_kb``."""

    blocks: int | None = None  # a blast: keep this many top-level blocks of the body
    no_excerpts: int = 0  # a digest: the last n posts lose their excerpt


@dataclass(frozen=True)
class Section:
    """Posts under one heading in a digest (``name`` empty: not grouped)."""

    name: str
    posts: tuple[PostView, ...]


def _sections(views: Sequence[PostView], group_by: str) -> list[Section]:
    """The digest's posts after the lead: one section, or one per first category in order of
    appearance (posts without a category last, under "More")."""
    if not views:
        return []
    if group_by != "category":
        return [Section("", tuple(views))]
    groups: dict[str, list[PostView]] = {}
    for view in views:
        groups.setdefault(view.categories[0] if view.categories else "", []).append(view)
    named = [Section(name, tuple(group)) for name, group in groups.items() if name]
    rest = groups.get("", [])
    return named + ([Section("More" if named else "", tuple(rest))] if rest else [])


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
    post_paths: tuple[str, ...]  # relative to the site folder, lead first

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
    group_by: str | None = None,
    cut: _Cut | None = None,
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
    group_by = email.group_by if group_by is None else group_by
    if group_by not in GROUPINGS:
        raise ConfigError(f"unknown grouping {group_by!r}; use: category")
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
        if intro is not None:  # asked for (--intro); email.intro is meant for digests
            warnings.append("the post layout has no intro; the intro was not used")
        intro_md = ""

    cut = cut or _Cut()
    html_slots = _Slots()
    html_views: list[PostView] = []
    text_views: list[PostView] = []
    post_paths = tuple(_relpath(post, settings) for post in posts)
    for index, (post, rel) in enumerate(zip(posts, post_paths, strict=True)):
        email_body = ""
        body_text = ""
        if layout == "post":
            source = content.body_html(post, settings)
            email_body = email_safe_html(
                source, base_url=post.url, image_width=settings.theme.content_width
            )
            if cut.blocks is not None:
                email_body = "".join(split_blocks(email_body)[: cut.blocks])
            plain = email_safe_html(source, base_url=post.url, styled=False)
            body_text = _quote_template_braces(post_text(plain), text=True)
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
            "excerpt": "" if index >= len(posts) - cut.no_excerpts else content.excerpt_of(post),
            "cover": {"url": post.cover.url, "alt": post.cover.alt} if post.cover else None,
            "categories": tuple(post.categories),
            "tags": tuple(post.tags),
        }
        continued = layout == "post" and cut.blocks is not None
        html_views.append(
            PostView(body=html_slots.add(email_body, rel), continued=continued, **common)
        )
        text_views.append(PostView(body=body_text, continued=False, **common))

    intro_html = ""
    intro_text = ""
    if intro_md:
        intro_md = _resolve_intro(intro_md, settings, now, warnings)
        intro_html, intro_text = _intro_parts(intro_md, settings.site.url)
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
        "title": f"{named:%B %Y}" if layout == "digest" else "",
        "date_display": _display_date(now, settings),
        "contents": layout == "digest" and len(posts) >= CONTENTS_FROM,
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
        "sections": _sections(html_views[1:], group_by),
        "theme": settings.theme,
        "styles": _styles(env, settings.theme, layout, html_slots),
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
        "sections": _sections(text_views[1:], group_by),
        "first_name": tok.FIRST_NAME_TEXT,
        "email": tok.EMAIL_TEXT,
        "footer": footer,
    }

    # no comment in a template reaches anyone (MRML adds only Outlook's conditional ones)
    mjml_src = strip_comments(render_template(env, f"{layout}.mjml.j2", html_ctx))
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
        post_paths=post_paths,
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
    group_by: str | None = None,
    full: bool = False,
) -> RenderedIssue:
    """Render ``posts`` (the lead first) once, with per-recipient tokens left in.

    ``intro`` is Markdown (for the digest); ``None`` uses ``email.intro`` from the settings.
    ``subject`` replaces the subject from the settings (it may use the same Jinja variables).
    ``issue_date`` is the date the issue is named after (``--month``); ``None`` uses ``now``.
    ``group_by`` ("category" or "") replaces ``email.group_by`` for a digest's sections.

    An issue whose HTML would pass ``email.max_html_kb`` (Gmail clips at 102 KB) is shortened:
    a blast is cut at a block boundary with "Continue reading on the website"; a digest drops
    excerpts, last post first. Each cut is in ``warnings``. ``full=True`` refuses instead.
    """
    args: dict[str, Any] = {
        "layout": layout,
        "now": now,
        "subject": subject,
        "intro": intro,
        "issue_date": issue_date,
        "group_by": group_by,
    }
    issue = _render(posts, settings, args, _Cut())
    limit = settings.email.max_html_kb * 1024
    size = _size(issue, settings)
    if not limit or size <= limit:
        return issue
    over = (
        f"the HTML is {size / 1024:.1f} KB, over email.max_html_kb = "
        f"{settings.email.max_html_kb} (Gmail clips emails above 102 KB)"
    )
    if full:
        raise RenderError(
            f"{over}; shorten the {'post' if layout == 'post' else 'issue'}, raise the "
            "setting, or leave out --full to cut it and link to the rest",
            template="email.max_html_kb",
        )
    if layout == "post":
        return _cut_blast(posts, settings, args, limit, over)
    return _shorten_digest(posts, settings, args, limit, over)


def _render(
    posts: Sequence[Post], settings: Settings, args: Mapping[str, Any], cut: _Cut
) -> RenderedIssue:
    prep = _prepare(posts, settings, cut=cut, **args)
    compiled = compile_mjml(prep.mjml_src, prep.env, prep.template_names)
    inlined = inline_css(prep.slots.fill(compiled), settings.email.inliner)
    final_html, sources = _unmark(tag_html_links(inlined, prep.utm))
    text = render_template(prep.env, f"{prep.layout}.txt.j2", prep.text_ctx)
    final_text = tag_text_links(_tidy_text(text), prep.utm)
    newest = max(p.date for p in posts)
    return RenderedIssue(
        subject=prep.subject,
        preheader=prep.preheader,
        html=final_html,
        text=final_text,
        layout=prep.layout,
        post_paths=prep.post_paths,
        slug=prep.slug,
        newest_post_date=newest.isoformat(),
        warnings=tuple(prep.warnings),
        sources=sources,
    )


def _size(issue: RenderedIssue, settings: Settings) -> int:
    """The HTML's size in bytes for the longest realistic name, address and unsubscribe link."""
    from newsletter.lint import default_longest

    return len(issue.html_template.fill(default_longest(settings)).encode("utf-8"))


CLIPPED = "clipped: "  # the start of a warning that says what was cut to fit


def _cut_blast(
    posts: Sequence[Post], settings: Settings, args: Mapping[str, Any], limit: int, over: str
) -> RenderedIssue:
    """The most top-level blocks of the post that fit, found by bisection (a few renders)."""
    body = email_safe_html(
        content.body_html(posts[0], settings),
        base_url=posts[0].url,
        image_width=settings.theme.content_width,
    )
    total = len(split_blocks(body))
    low, high = 1, total - 1  # keep at least the first block: a post is never empty
    best: RenderedIssue | None = None
    kept = 0
    while low <= high:
        mid = (low + high) // 2
        trial = _render(posts, settings, args, _Cut(blocks=mid))
        if _size(trial, settings) <= limit:
            best, kept, low = trial, mid, mid + 1
        else:
            high = mid - 1
    if best is None:
        raise RenderError(
            f"{over}, and even the first paragraph of the post does not fit: raise "
            "email.max_html_kb or shorten the templates",
            template="email.max_html_kb",
        )
    message = (
        f"{CLIPPED}{over}: the email shows the first {kept} of {total} blocks of "
        f'{_relpath(posts[0], settings)} and links to the rest ("Continue reading on the '
        'website"); send with --full to refuse instead'
    )
    return dataclasses.replace(best, warnings=(*best.warnings, message))


def _shorten_digest(
    posts: Sequence[Post], settings: Settings, args: Mapping[str, Any], limit: int, over: str
) -> RenderedIssue:
    """Excerpts go before posts: the last posts lose theirs first; the posts all stay."""
    for dropped in range(1, len(posts) + 1):
        trial = _render(posts, settings, args, _Cut(no_excerpts=dropped))
        if _size(trial, settings) <= limit:
            message = (
                f"{CLIPPED}{over}: the excerpts of the last {dropped} of {len(posts)} posts "
                "were left out; select fewer posts or send with --full to refuse instead"
            )
            return dataclasses.replace(trial, warnings=(*trial.warnings, message))
    raise RenderError(
        f"{over} even without excerpts; select fewer posts (--limit) or raise the setting",
        template="email.max_html_kb",
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
