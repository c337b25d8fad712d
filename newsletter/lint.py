"""Checks on a rendered issue before it goes out (``newsletter lint``, the send, the preview).

Each :class:`Finding` names where it comes from: the post (its path, from where the renderer
says each post body sits in the HTML, ``RenderedIssue.sources``) or the layout's template.
Errors stop a send; warnings are printed.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from html.parser import HTMLParser

from newsletter import personalize as tok
from newsletter.config import Settings
from newsletter.rendered import RenderedIssue

GMAIL_CLIP_BYTES = 102 * 1024
WARN_BYTES = 90 * 1024
SUBJECT_MAX = 150
PREHEADER_MAX = 150
# Longest realistic values, used when the caller has no better idea (RFC 5321 address limit).
DEFAULT_LONGEST_EMAIL = "x" * 64 + "@" + "y" * 185 + ".example"
DEFAULT_LONGEST_NAME = "Maximiliana-Alexandrina"
_TOKEN_LENGTH = 96  # signed unsubscribe tokens are well under this


@dataclass(frozen=True)
class Finding:
    severity: str  # "error" | "warning"
    code: str
    message: str
    source: str

    def format(self) -> str:
        return f"{self.source}: {self.severity}: {self.message} [{self.code}]"


def default_longest(settings: Settings) -> dict[str, str]:
    base = settings.unsubscribe.base_url.rstrip("/") + "/u/"
    return tok.longest_values(
        unsubscribe_url=base + "x" * _TOKEN_LENGTH,
        first_name=DEFAULT_LONGEST_NAME,
        email=DEFAULT_LONGEST_EMAIL,
    )


@dataclass(frozen=True)
class _Image:
    src: str
    alt: str | None
    width: str | None
    source: str


class _Scanner(HTMLParser):
    """Collects links (with their text) and images with the source (post path or template)."""

    def __init__(self, template: str) -> None:
        super().__init__(convert_charrefs=True)
        self.sources = [template]
        self.links: list[tuple[str, str]] = []  # (href, source)
        self.link_texts: list[tuple[str, str, str]] = []  # (text, href, source)
        self.images: list[_Image] = []
        self._open: list[tuple[str, list[str]]] = []  # <a> being read: (href, text parts)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "a" and "href" in a:
            href = (a["href"] or "").strip()
            self.links.append((href, self.sources[-1]))
            self._open.append((href, []))
        elif tag == "img":
            src = (a.get("src") or "").strip()
            self.images.append(_Image(src, a.get("alt"), a.get("width"), self.sources[-1]))

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag != "a":
            self.handle_starttag(tag, attrs)

    def handle_data(self, data: str) -> None:
        if self._open:
            self._open[-1][1].append(data)

    def handle_endtag(self, tag: str) -> None:
        if tag == "a" and self._open:
            href, parts = self._open.pop()
            text = " ".join("".join(parts).split())
            if text:
                self.link_texts.append((text, href, self.sources[-1]))


def _scan(issue: RenderedIssue, template: str) -> _Scanner:
    """Links and images of ``issue``, each with the post it sits in (or the template)."""
    scanner = _Scanner(template)
    last = 0
    parts: list[str] = []
    for path, start, end in sorted((str(p), int(s), int(e)) for p, s, e in issue.sources):
        parts.append(issue.html[last:start])
        scanner.sources.append(path)
        scanner.feed(issue.html[start:end])
        scanner.sources.pop()
        last = end
    parts.append(issue.html[last:])
    scanner.feed("".join(parts))
    scanner.close()
    return scanner


def _absolute(url: str) -> bool:
    return url.startswith(("https://", "http://"))


_LOOPBACK = ("127.0.0.1", "localhost", "::1", "[::1]")


def _image_format(src: str) -> str | None:
    from urllib.parse import parse_qs, urlsplit

    parts = urlsplit(src)
    path = parts.path.lower()
    for ext, name in ((".webp", "WebP"), (".svg", "SVG"), (".svgz", "SVG")):
        if path.endswith(ext):
            return name
    fmt = {v.lower() for vs in parse_qs(parts.query).values() for v in vs}
    if fmt & {"webp", "svg"}:
        return "WebP" if "webp" in fmt else "SVG"
    return None


def lint_issue(
    issue: RenderedIssue,
    settings: Settings,
    *,
    longest: Mapping[str, str] | None = None,
    real_send: bool = False,
) -> list[Finding]:
    """Everything wrong with ``issue`` that a reader or a mailbox provider would notice.

    ``real_send``: the issue goes to real inboxes (SendGrid), so settings that only do for
    trying things out (a placeholder sender domain, http or local unsubscribe links) are errors
    rather than warnings. (A real send also refuses them before it renders.)
    """
    template = f"{issue.layout}.mjml.j2"
    text_template = f"{issue.layout}.txt.j2"
    out: list[Finding] = []

    def add(severity: str, code: str, message: str, source: str = template) -> None:
        out.append(Finding(severity, code, message, source))

    values = dict(default_longest(settings))
    values.update(longest or {})
    size = len(issue.html_template.fill(values).encode("utf-8"))
    kb = f"{size / 1024:.1f} KB"
    if size > GMAIL_CLIP_BYTES:
        add("error", "size", f"HTML is {kb}; Gmail clips emails above 102 KB: shorten the issue")
    elif size >= WARN_BYTES:
        add("warning", "size", f"HTML is {kb}, close to Gmail's 102 KB clipping limit")

    scanner = _scan(issue, template)
    seen: set[tuple[str, str, str]] = set()
    for href, source in scanner.links:
        if href.startswith(("mailto:", "tel:", "#")) or href == tok.UNSUBSCRIBE_URL:
            continue
        if not _absolute(href) and ("link", href, source) not in seen:
            seen.add(("link", href, source))
            add("error", "link", f"link {href!r} is not an absolute http(s) URL", source)
    for image in scanner.images:
        src, source = image.src, image.source
        if not _absolute(src) and ("img", src, source) not in seen:
            seen.add(("img", src, source))
            add("error", "image", f"image {src!r} is not an absolute http(s) URL", source)
        if image.alt is None or not image.alt.strip():
            add("warning", "alt", f"image {src!r} has no alt text", source)
        fmt = _image_format(src)
        if fmt:
            add(
                "warning",
                "image-format",
                f"image {src!r} is {fmt}: Outlook for Windows and several webmail clients do "
                "not show it; use PNG, JPEG or GIF",
                source,
            )
        if not (image.width or "").strip().isdigit():
            add(
                "warning",
                "image-width",
                f'image {src!r} has no pixel width attribute (width="600"); Outlook for '
                "Windows then shows it at its full size",
                source,
            )
    by_text: dict[str, dict[str, str]] = {}
    for text, href, source in scanner.link_texts:
        if href.startswith(("http://", "https://")):
            by_text.setdefault(text.casefold(), {}).setdefault(_untagged(href), source)
    for text, targets in by_text.items():
        if len(targets) > 1:
            first = next(iter(targets.values()))
            add(
                "warning",
                "link-text",
                f"the link text {text!r} leads to {len(targets)} different pages; say where each "
                "link goes (screen readers list links by their text)",
                first,
            )

    out.extend(_settings_findings(issue, settings, real_send=real_send))

    if tok.UNSUBSCRIBE_URL not in issue.html:
        add(
            "error",
            "unsubscribe",
            "no unsubscribe link in the HTML part (use footer.unsubscribe_url)",
        )
    if tok.UNSUBSCRIBE_URL not in issue.text:
        add("error", "unsubscribe", "no unsubscribe URL in the text part", text_template)
    address = settings.email.postal_address.strip()
    if not address:
        add(
            "error",
            "postal-address",
            "no postal address: set email.postal_address in newsletter.toml (required for bulk "
            "mail in the US)",
            "newsletter.toml",
        )
    else:
        import html as htmlmod

        if htmlmod.escape(address, quote=False) not in issue.html and address not in issue.html:
            add("error", "postal-address", "the postal address is missing from the HTML part")
        if address not in issue.text:
            add(
                "error",
                "postal-address",
                "the postal address is missing from the text part",
                text_template,
            )

    for part, body, src in (("HTML", issue.html, template), ("text", issue.text, text_template)):
        for mark in ("{{", "{%", "<mj-", "</mj-"):
            if mark in body:
                i = body.index(mark)
                snippet = " ".join(body[max(0, i - 20) : i + 30].split())
                add(
                    "error",
                    "raw-syntax",
                    f"raw template syntax {mark!r} in the {part} part near {snippet!r}",
                    src,
                )
                break

    subject = issue.subject.strip()
    if not subject:
        add("error", "subject", "the subject is empty", f"email.subject_{issue.layout}")
    elif len(subject) > SUBJECT_MAX:
        add(
            "error",
            "subject",
            f"the subject is {len(subject)} characters; keep it under {SUBJECT_MAX}",
            f"email.subject_{issue.layout}",
        )
    pre = issue.preheader.strip()
    if not pre:
        add(
            "warning",
            "preheader",
            "no preheader: set email.preheader or give the lead post an excerpt",
            "partials/preheader.mjml.j2",
        )
    elif len(pre) > PREHEADER_MAX:
        add(
            "warning",
            "preheader",
            f"the preheader is {len(pre)} characters; keep it under {PREHEADER_MAX}",
            "partials/preheader.mjml.j2",
        )
    return out


def _untagged(url: str) -> str:
    """``url`` without utm_* parameters (the same page, tagged, is still the same page)."""
    from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

    parts = urlsplit(url)
    if "utm_" not in parts.query:
        return url
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True)]
    kept = [(k, v) for k, v in query if not k.startswith("utm_")]
    return urlunsplit(parts._replace(query=urlencode(kept)))


def _settings_findings(
    issue: RenderedIssue, settings: Settings, *, real_send: bool
) -> list[Finding]:
    """What the settings make wrong in every issue: links, sender, theme, what was cut."""
    from urllib.parse import urlsplit

    from newsletter.render import CLIPPED
    from newsletter.theme import contrast_problems

    out: list[Finding] = []
    base = settings.unsubscribe.base_url
    host = urlsplit(base).hostname or ""
    if base.startswith("http://") and (real_send or host not in _LOOPBACK):
        out.append(
            Finding(
                "error" if real_send else "warning",
                "unsubscribe-http",
                f"unsubscribe links start with {base!r}: use https:// (mail clients warn about "
                "http links, and Gmail's one-click unsubscribe needs https)",
                "unsubscribe.base_url",
            )
        )
    if real_send and host in _LOOPBACK:
        out.append(
            Finding(
                "error",
                "unsubscribe-local",
                f"unsubscribe links point at {host}, which no subscriber can reach: set "
                "unsubscribe.base_url to the public URL of `newsletter serve`",
                "unsubscribe.base_url",
            )
        )
    from newsletter.site_setup import is_placeholder_address

    sender = settings.email.from_email
    if (real_send or settings.send.transport == "sendgrid") and is_placeholder_address(sender):
        out.append(
            Finding(
                "error" if real_send else "warning",
                "sender",
                f"the sender {sender!r} is on a placeholder domain: set email.from_email to "
                "an address on your own domain (a real send refuses it)",
                "email.from_email",
            )
        )
    for key, message in contrast_problems(settings.theme):
        out.append(Finding("error", "contrast", message, key))
    for warning in issue.warnings:
        if warning.startswith(CLIPPED):
            out.append(
                Finding("warning", "clipped", warning.removeprefix(CLIPPED), "email.max_html_kb")
            )
    return out


def has_errors(findings: list[Finding]) -> bool:
    return any(f.severity == "error" for f in findings)


def findings_json(findings: list[Finding]) -> str:
    return json.dumps([asdict(f) for f in findings], indent=2, ensure_ascii=False)
