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


class _Scanner(HTMLParser):
    """Collects links and images with the source (post path or template) they sit in."""

    def __init__(self, template: str) -> None:
        super().__init__(convert_charrefs=True)
        self.sources = [template]
        self.links: list[tuple[str, str]] = []  # (href, source)
        self.images: list[tuple[str, str | None, str]] = []  # (src, alt, source)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "a" and "href" in a:
            self.links.append(((a["href"] or "").strip(), self.sources[-1]))
        elif tag == "img":
            self.images.append(((a.get("src") or "").strip(), a.get("alt"), self.sources[-1]))

    handle_startendtag = handle_starttag


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


def lint_issue(
    issue: RenderedIssue, settings: Settings, *, longest: Mapping[str, str] | None = None
) -> list[Finding]:
    """Everything wrong with ``issue`` that a reader or a mailbox provider would notice."""
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
    for src, alt, source in scanner.images:
        if not _absolute(src) and ("img", src, source) not in seen:
            seen.add(("img", src, source))
            add("error", "image", f"image {src!r} is not an absolute http(s) URL", source)
        if alt is None or not alt.strip():
            add("warning", "alt", f"image {src!r} has no alt text", source)

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


def has_errors(findings: list[Finding]) -> bool:
    return any(f.severity == "error" for f in findings)


def findings_json(findings: list[Finding]) -> str:
    return json.dumps([asdict(f) for f in findings], indent=2, ensure_ascii=False)
