"""Make a post's HTML safe and readable in an inbox, and tag links with UTM parameters.

The posts stage hands over sanitized HTML with absolute URLs (:func:`newsletter.content.body_html`).
This module owns what only matters in email: no active content even if some slipped through,
images with a pixel width (Outlook for Windows sizes them by it) that shrink to the screen and
keep their alt text, tables in a box that scrolls instead of widening the email on a 375 px
phone, and headings demoted below the post's own title.

It adds structure, not looks: colours, fonts and sizes of code, tables, quotes and images are in
the templates' CSS (``partials/styles.mjml.j2``), filled from ``[theme]``.
"""

from __future__ import annotations

import functools
import html
import itertools
import re
from dataclasses import dataclass
from html.parser import HTMLParser
from urllib.parse import parse_qsl, urlencode, urljoin, urlsplit, urlunsplit

_DROP_WITH_CONTENT = frozenset({"script", "style", "noscript", "template", "object", "title"})
_DROP_TAG_ONLY = frozenset({"form", "input", "button", "select", "option", "textarea", "embed"})
_DROP_TAG_ONLY |= {"label", "fieldset", "link", "meta", "base", "source", "track"}
_VOID = frozenset({"area", "br", "col", "hr", "img", "wbr", "source", "track", "input", "embed"})
_URL_ATTRS = frozenset({"href", "src"})
_HEADING = re.compile(r"^h([1-6])$")

# the width an in-body image gets when its own is unknown or wider than the text column
DEFAULT_IMAGE_WIDTH = 552
SCROLL_CLASS = "nl-scroll"  # the box around a table: it scrolls sideways on a phone


@dataclass(frozen=True)
class UtmTags:
    """Which links get UTM parameters: only those on ``domain`` (and its ``www.`` twin)."""

    domain: str
    source: str = ""
    medium: str = ""
    campaign: str = ""

    @property
    def enabled(self) -> bool:
        return bool(self.source and self.domain)


def _same_site(host: str, domain: str) -> bool:
    host, domain = host.lower().removeprefix("www."), domain.lower().removeprefix("www.")
    return bool(host) and host == domain


@functools.lru_cache(maxsize=4096)
def tag_url(url: str, utm: UtmTags) -> str:
    """``url`` with UTM parameters when it points to the site; never overwrites existing ones."""
    if not utm.enabled or not url.startswith(("http://", "https://")):
        return url
    parts = urlsplit(url)
    if not _same_site(parts.hostname or "", utm.domain):
        return url
    query = parse_qsl(parts.query, keep_blank_values=True)
    have = {k for k, _ in query}
    added = [
        (k, v)
        for k, v in (
            ("utm_source", utm.source),
            ("utm_medium", utm.medium),
            ("utm_campaign", utm.campaign),
        )
        if v and k not in have
    ]
    if not added:
        return url
    sep = "&" if parts.query else ""
    return urlunsplit(parts._replace(query=parts.query + sep + urlencode(added)))


# starts with a literal, so the regex engine jumps from one ``href="`` to the next (a leading
# ``\s`` made it try every position of the 45 KB email: 6x slower); the space is checked apart
_HREF = re.compile(r'href="([^"]*)"')
_TEXT_URL = re.compile(r"https?://[^\s<>()\[\]\"']+")


def tag_html_links(markup: str, utm: UtmTags) -> str:
    """Tag every ``href="..."`` in final HTML (entities inside the URL are respected)."""
    if not utm.enabled:
        return markup

    def repl(m: re.Match[str]) -> str:
        if m.start() == 0 or not markup[m.start() - 1].isspace():  # data-href="..." and the like
            return m.group(0)
        url = html.unescape(m.group(1))
        tagged = tag_url(url, utm)
        if tagged == url:
            return m.group(0)
        return f'href="{html.escape(tagged, quote=True)}"'

    return _HREF.sub(repl, markup)


def tag_text_links(text: str, utm: UtmTags) -> str:
    """Tag every http(s) URL written out in a plain-text part."""
    if not utm.enabled:
        return text
    return _TEXT_URL.sub(lambda m: tag_url(m.group(0), utm), text)


def _style(existing: str | None, add: str, *, drop: tuple[str, ...] = ()) -> str:
    kept = []
    for decl in (existing or "").split(";"):
        name = decl.split(":", 1)[0].strip().lower()
        if decl.strip() and name not in drop:
            kept.append(decl.strip())
    return add + ";".join(kept)


class _EmailRewriter(HTMLParser):
    def __init__(
        self,
        *,
        base_url: str,
        heading_shift: int,
        min_heading: int,
        styled: bool,
        image_width: int = DEFAULT_IMAGE_WIDTH,
    ) -> None:
        super().__init__(convert_charrefs=False)
        self.styled = styled
        self.image_width = image_width
        self.out: list[str] = []
        self.base_url = base_url
        self.heading_shift = heading_shift
        self.min_heading = min_heading
        self.skip_depth = 0  # inside <script> etc.
        self.stack: list[str] = []

    # -- helpers
    def _attrs(self, tag: str, attrs: list[tuple[str, str | None]]) -> dict[str, str | None]:
        kept: dict[str, str | None] = {}
        for name, value in attrs:
            name = name.lower()
            if name.startswith("on") or name in ("srcset", "sizes", "loading", "class", "id"):
                continue
            if name in _URL_ATTRS and value is not None:
                value = value.strip()
                if value.lower().startswith(("javascript:", "vbscript:", "data:text")):
                    continue
                if not value.startswith(("#", "mailto:", "tel:", "%%")):
                    value = urljoin(self.base_url, value)
            kept[name] = value
        return kept

    def _emit(self, tag: str, attrs: dict[str, str | None], *, close: bool = False) -> None:
        parts = [tag]
        for name, value in attrs.items():
            if value is None:
                parts.append(name)
            else:
                parts.append(f'{name}="{html.escape(html.unescape(value), quote=True)}"')
        self.out.append("<" + " ".join(parts) + (" />" if close else ">"))

    def _heading(self, tag: str) -> str:
        m = _HEADING.match(tag)
        if not m:
            return tag
        level = max(int(m.group(1)) + self.heading_shift, self.min_heading)
        return f"h{min(level, 6)}"

    # -- parser callbacks
    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _DROP_WITH_CONTENT:
            self.skip_depth += 1
            return
        if self.skip_depth or tag in _DROP_TAG_ONLY:
            return
        a = self._attrs(tag, attrs)
        if tag == "iframe":
            src = a.get("src") or ""
            if src.startswith(("http://", "https://")):
                self.out.append(f'<p><a href="{html.escape(src)}">Watch the video</a></p>')
            self.skip_depth += 1
            return
        if tag == "img":
            own = (a.pop("width", None) or "").strip().removesuffix("px")
            a.pop("height", None)
            width = int(own) if own.isdigit() and 0 < int(own) < self.image_width else 0
            a["width"] = str(width or self.image_width)
            kept = _style(a.get("style"), "", drop=("float", "width", "height", "max-width"))
            a["style"] = "height:auto;" + kept if self.styled else kept
            if not a["style"]:
                del a["style"]
            self._emit("img", a, close=True)
            return
        if tag in _VOID:
            self._emit(tag, a, close=True)
            return
        if tag == "code" and not self.styled and "pre" in self.stack:
            return  # text conversion collapses spaces in <code>, even inside <pre>
        if tag == "table":
            self.out.append(f'<div class="{SCROLL_CLASS}">' if self.styled else "<div>")
            a.setdefault("role", "table")
        if tag in ("table", "pre", "td", "th") and "style" in a:
            # the theme's CSS styles these; a post's own width or white-space would undo it
            a["style"] = _style(a["style"], "", drop=("width", "white-space", "min-width"))
            if not a["style"]:
                del a["style"]
        tag = self._heading(tag)
        self.stack.append(tag)
        self._emit(tag, a)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _VOID or tag == "img":
            self.handle_starttag(tag, attrs)
        else:
            self.handle_starttag(tag, attrs)
            self.handle_endtag(tag)

    def handle_endtag(self, tag: str) -> None:
        if tag in _DROP_WITH_CONTENT or tag == "iframe":
            self.skip_depth = max(0, self.skip_depth - 1)
            return
        if self.skip_depth or tag in _DROP_TAG_ONLY or tag in _VOID:
            return
        if tag == "code" and not self.styled and "pre" in self.stack:
            return
        out_tag = self._heading(tag)
        if out_tag not in self.stack:
            return  # stray end tag: drop rather than unbalance the email
        while self.stack:
            top = self.stack.pop()
            self.out.append(f"</{top}>")
            if top == out_tag:
                break
        if tag == "table":
            self.out.append("</div>")

    def handle_data(self, data: str) -> None:
        if not self.skip_depth:
            self.out.append(html.escape(data, quote=False))

    def handle_entityref(self, name: str) -> None:
        if not self.skip_depth:
            self.out.append(f"&{name};")

    def handle_charref(self, name: str) -> None:
        if not self.skip_depth:
            self.out.append(f"&#{name};")

    def handle_comment(self, data: str) -> None:
        return  # comments in posts have no business in an email

    def close(self) -> None:
        super().close()
        while self.stack:
            self.out.append(f"</{self.stack.pop()}>")


def top_heading_level(markup: str) -> int | None:
    found = [int(m) for m in re.findall(r"<h([1-6])[\s>]", markup, flags=re.I)]
    return min(found) if found else None


def email_safe_html(
    markup: str,
    *,
    base_url: str,
    title_level: int = 1,
    styled: bool = True,
    image_width: int = DEFAULT_IMAGE_WIDTH,
) -> str:
    """Rewrite a post's HTML for email; headings start one level below ``title_level``.

    Images get ``width`` = their own width or ``image_width`` (the text column), whichever is
    smaller. ``styled=False`` leaves out the email-only structure (for making the text part).
    """
    top = top_heading_level(markup)
    shift = 0 if top is None else max(0, title_level + 1 - top)
    parser = _EmailRewriter(
        base_url=base_url,
        heading_shift=shift,
        min_heading=title_level + 1,
        styled=styled,
        image_width=image_width,
    )
    parser.feed(markup)
    parser.close()
    return "".join(parser.out)


class _BlockSplitter(HTMLParser):
    """Offsets where a top-level element of an HTML fragment ends."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=False)
        self.depth = 0
        self.ends: list[tuple[int, int]] = []  # (line, column) after each top-level element

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag not in _VOID:
            self.depth += 1

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if self.depth == 0:
            self._mark()

    def handle_endtag(self, tag: str) -> None:
        self.depth = max(0, self.depth - 1)
        if self.depth == 0:
            self._mark()

    def _mark(self) -> None:
        self.ends.append(self.getpos())


def split_blocks(markup: str) -> list[str]:
    """``markup`` (our own rewritten post HTML) cut into its top-level elements, in order;
    joining them gives ``markup`` back."""
    splitter = _BlockSplitter()
    splitter.feed(markup)
    splitter.close()
    starts = [0]
    line_offsets = [0]
    for text in markup.splitlines(keepends=True):
        line_offsets.append(line_offsets[-1] + len(text))
    for line, col in splitter.ends:
        pos = line_offsets[line - 1] + col
        end = markup.find(">", pos) + 1  # getpos() is where the end tag starts
        if end > starts[-1]:
            starts.append(end)
    blocks = [markup[a:b] for a, b in itertools.pairwise(starts)]
    rest = markup[starts[-1] :]
    if rest.strip() or not blocks:
        blocks.append(rest)
    else:
        blocks[-1] += rest
    return blocks
