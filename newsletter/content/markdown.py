"""Markdown to email-safe HTML for one post.

Steps: Markdown -> HTML with mistune 3 (raw HTML passes through); video iframes -> a linked
thumbnail, other iframes -> a plain link; then nh3 sanitizes (no script/style/iframe/form, no
event attributes, only http(s)/mailto/tel links) and makes every relative URL absolute against the
post's public URL. Finally ``{{`` and ``{%`` are written as character references, so no template
syntax survives into an email even inside code samples.
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs, urlparse

import mistune
import nh3

from newsletter.config import Settings
from newsletter.content.excerpts import excerpt_of
from newsletter.content.fields import absolute
from newsletter.content.liquid import PostIndex, resolve_text
from newsletter.content.model import Post

_markdown: Any = mistune.create_markdown(
    escape=False, plugins=["table", "strikethrough", "footnotes", "url"]
)

_IFRAME = re.compile(r"<iframe\b(?P<attrs>[^>]*)>(?:.*?</iframe\s*>)?", re.IGNORECASE | re.DOTALL)
_ATTR = re.compile(r"""([a-zA-Z_:][-\w:.]*)\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s>]+))""")
_YOUTUBE_ID = re.compile(r"^[\w-]{6,20}$")

TAGS = (nh3.ALLOWED_TAGS - {"map", "area", "nav", "header", "footer", "hgroup"}) | {"tfoot"}
STYLE_PROPERTIES = {
    "float",
    "width",
    "max-width",
    "height",
    "text-align",
    "vertical-align",
    "margin",
    "margin-left",
    "margin-right",
    "margin-top",
    "margin-bottom",
    "display",
    "color",
    "background-color",
    "font-weight",
    "font-style",
    "text-decoration",
}
ATTRIBUTES: dict[str, set[str]] = {
    "*": {"title", "style", "lang", "dir"},
    "a": {"href", "hreflang"},
    "img": {"src", "alt", "width", "height", "align"},
    "td": {"colspan", "rowspan", "align", "valign"},
    "th": {"colspan", "rowspan", "align", "valign", "scope"},
    "ol": {"start", "type"},
    "blockquote": {"cite"},
    "q": {"cite"},
    "time": {"datetime"},
    "col": {"span", "width"},
    "colgroup": {"span"},
    "table": {"summary", "width", "align"},
}


def _attrs(text: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for name, dq, sq, bare in _ATTR.findall(text):
        out[name.lower()] = html.unescape(dq or sq or bare)
    return out


def youtube_id(url: str) -> str | None:
    parsed = urlparse(url if "://" in url else "https:" + url if url.startswith("//") else url)
    host = (parsed.hostname or "").lower().removeprefix("www.").removeprefix("m.")
    candidate: str | None = None
    if host in ("youtube.com", "youtube-nocookie.com"):
        if parsed.path.startswith(("/embed/", "/shorts/", "/v/")):
            candidate = parsed.path.split("/")[2]
        elif parsed.path == "/watch":
            candidate = (parse_qs(parsed.query).get("v") or [""])[0]
    elif host == "youtu.be":
        candidate = parsed.path.lstrip("/").split("/")[0]
    return candidate if candidate and _YOUTUBE_ID.match(candidate) else None


def vimeo_id(url: str) -> str | None:
    parsed = urlparse(url if "://" in url else "https:" + url if url.startswith("//") else url)
    host = (parsed.hostname or "").lower()
    if host in ("player.vimeo.com", "vimeo.com", "www.vimeo.com"):
        digits = [p for p in parsed.path.split("/") if p.isdigit()]
        return digits[0] if digits else None
    return None


def replace_embeds(markup: str, base: str) -> str:
    """Iframes cannot play in email: video -> linked thumbnail, anything else -> a link."""

    def swap(match: re.Match[str]) -> str:
        attrs = _attrs(match.group("attrs"))
        src = attrs.get("src", "").strip()
        label = attrs.get("title", "").strip()
        if not src:
            return ""
        video = youtube_id(src)
        if video:
            alt = html.escape(f"Video: {label or 'watch on YouTube'}", quote=True)
            return (
                f'<a href="https://www.youtube.com/watch?v={video}">'
                f'<img src="https://i.ytimg.com/vi/{video}/hqdefault.jpg" alt="{alt}" '
                'width="480" height="360"></a>'
            )
        clip = vimeo_id(src)
        if clip:
            text = html.escape(f"▶ Watch the video{': ' + label if label else ''} on Vimeo")
            return f'<p><a href="https://vimeo.com/{clip}">{text}</a></p>'
        url = html.escape(absolute(src, base), quote=True)
        text = html.escape(label or "View the embedded content on the web")
        return f'<p><a href="{url}">{text}</a></p>'

    return _IFRAME.sub(swap, markup)


_CSS_ESCAPE = re.compile(r"\\([0-9a-fA-F]{1,6})\s?|\\(.)")
_CSS_COMMENT = re.compile(r"/\*.*?(?:\*/|$)", re.DOTALL)
# what old Internet Explorer and Firefox ran from CSS: script in a style attribute
_CSS_ACTIVE = ("expression(", "behavior:", "behaviour:", "-moz-binding", "javascript:")


def _css_plain(text: str) -> str:
    """A declaration as a browser reads it: escapes decoded, comments and spaces gone."""

    def unescape(match: re.Match[str]) -> str:
        if match.group(1):
            try:
                return chr(int(match.group(1), 16))
            except (ValueError, OverflowError):
                return ""
        return match.group(2)

    text = _CSS_COMMENT.sub("", _CSS_ESCAPE.sub(unescape, text))
    return "".join(text.split()).lower()


def clean_style(value: str) -> str | None:
    """``value`` without declarations that run code (``expression(``, ``behavior:``,
    ``-moz-binding``, ``javascript:``), however they are escaped; None when nothing is left."""
    kept = [d.strip() for d in value.split(";") if d.strip()]
    safe = [d for d in kept if not any(a in _css_plain(d) for a in _CSS_ACTIVE)]
    return "; ".join(safe) or None


def _attribute_filter(tag: str, attr: str, value: str) -> str | None:
    """An ``href``/``src`` left empty (e.g. a link to a post that was not found) is dropped;
    a style loses every declaration that could run code."""
    if attr in ("href", "src") and not value.strip():
        return None
    if attr == "style":
        return clean_style(value)
    return value


def sanitize(markup: str, base: str) -> str:
    """nh3 with our email allow-list; relative URLs become absolute against ``base``."""
    clean = nh3.clean(
        markup,
        tags=set(TAGS),
        clean_content_tags={"script", "style", "template", "noscript", "textarea", "select"},
        attributes={k: set(v) for k, v in ATTRIBUTES.items()},
        url_schemes={"http", "https", "mailto", "tel"},
        url_relative=lambda url: absolute(url, base),
        link_rel=None,
        filter_style_properties=set(STYLE_PROPERTIES),
        strip_comments=True,
        attribute_filter=_attribute_filter,
    )
    if "<img" in clean:
        # an image whose source was removed (data:, javascript:, empty) shows nothing in any
        # client and fails lint as a non-http image: leave it out
        clean = _IMG_WITHOUT_SRC.sub("", clean)
    return clean.replace("{{", "&#123;&#123;").replace("{%", "&#123;%").replace("%}", "%&#125;")


_IMG_WITHOUT_SRC = re.compile(r"<img\b(?![^>]*\ssrc=)[^>]*>")


def markdown_to_email_html(markdown: str, base: str) -> str:
    rendered = str(_markdown(markdown))
    return sanitize(replace_embeds(rendered, base), base).strip()


def _resolved_body(post: Post, settings: Settings) -> str:
    if post.markdown is not None:
        return post.markdown
    text, _ = resolve_text(post.body, post, settings, PostIndex([post]), first_line=post.body_line)
    return text


def render_body(post: Post, settings: Settings) -> str:
    if post.body_format == "html":
        return html_to_email_html(_resolved_body(post, settings), post.url)
    return markdown_to_email_html(_resolved_body(post, settings), post.url)


def html_to_email_html(markup: str, base: str) -> str:
    """HTML that is already rendered (reStructuredText, feed entries) made email-safe."""
    return sanitize(replace_embeds(markup, base), base).strip()


def body_html(post: Post, settings: Settings) -> str:
    """The post's body as email-safe HTML: absolute links, no scripts, embeds as links.

    Cached on the post, so rendering it for several emails costs once.
    """
    return _cached(post, settings, "body", render_body)


def excerpt_html(post: Post, settings: Settings) -> str:
    """The excerpt as safe HTML: the author's excerpt rendered, else the plain-text excerpt."""
    return _cached(post, settings, "excerpt", render_excerpt)


def _cached(
    post: Post, settings: Settings, part: str, make: Callable[[Post, Settings], str]
) -> str:
    key = (part, settings.site.url, settings.site.permalink)
    cached = post._html_cache.get(key)
    if cached is None:
        cached = post._html_cache[key] = make(post, settings)
    return cached


def render_excerpt(post: Post, settings: Settings) -> str:
    excerpt = excerpt_of(post)
    if post.excerpt_markdown:
        if post.body_format == "html" and "<" in post.excerpt_markdown:
            return html_to_email_html(post.excerpt_markdown, post.url)
        return markdown_to_email_html(post.excerpt_markdown, post.url)
    return f"<p>{html.escape(excerpt)}</p>" if excerpt else ""
