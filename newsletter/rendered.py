"""The value the renderer hands to the dispatcher: one issue, rendered once, with tokens left in.

Kept in its own module so the renderer, the transports and the dispatcher share it without
importing each other.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

from newsletter.personalize import Template


@dataclass(frozen=True)
class RenderedIssue:
    subject: str  # may contain personalize tokens (text-part tokens)
    preheader: str
    html: str  # final inlined HTML, with HTML-part tokens
    text: str  # plain-text part, with text-part tokens
    layout: str  # "digest" | "post"
    post_paths: tuple[str, ...] = ()  # the posts in this issue, lead first
    slug: str = ""  # archive slug, e.g. "2026-11" or the post's slug
    newest_post_date: str = ""  # ISO 8601; what "since last-issue" reads back
    warnings: tuple[str, ...] = ()
    # (post path, start, end): where each post body sits in ``html``, for lint to say which post
    # a bad link comes from (the HTML itself carries no marks or paths)
    sources: tuple[tuple[str, int, int], ...] = field(default=(), compare=False)
    html_template: Template = field(init=False, repr=False, compare=False)
    text_template: Template = field(init=False, repr=False, compare=False)
    subject_template: Template = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # read back from JSON (a campaign's stored envelope) the positions are lists
        sources = tuple((str(p), int(a), int(b)) for p, a, b in self.sources)
        object.__setattr__(self, "sources", sources)
        object.__setattr__(self, "html_template", Template(self.html))
        object.__setattr__(self, "text_template", Template(self.text))
        object.__setattr__(self, "subject_template", Template(self.subject))

    @property
    def content_hash(self) -> str:
        """A stable digest of what is being sent; part of the campaign id."""
        h = hashlib.sha256()
        for part in (self.layout, self.subject, self.html, self.text, *self.post_paths):
            h.update(part.encode("utf-8"))
            h.update(b"\0")
        return h.hexdigest()
