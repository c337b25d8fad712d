"""What a campaign *is*: the operator's intent, never the rendered bytes (issue #9).

- a digest is its resolved window (two instants), the filters that narrowed it, the layout
  and the audience;
- a blast is the set of posts picked, the layout and the audience.

Editing a post does not change the id of the campaign that carried it, so re-running the same
command finds that campaign ("already sent", or resumed with its frozen content) instead of
mailing everyone again. Content is recorded per post (:func:`fingerprint`) only to say what
changed. Pure functions: no clock, no store.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from newsletter.content import Post
from newsletter.selection import Criteria
from newsletter.store.campaigns import BLAST, DIGEST, CarriedPost


@dataclass(frozen=True)
class Identity:
    campaign_id: str
    kind: str  # digest | blast
    window: tuple[str, str]  # ISO instants (UTC) of a digest's window; ("", "") for a blast
    segment: str  # normalised tags, comma-separated ("" = everyone)
    rehearsal: bool  # an outbox send: it never makes the real issue "already sent"

    @property
    def label(self) -> str:
        """How a person names this issue: "the October 2026 issue", "the blast of 'x'"."""
        if self.kind == BLAST:
            return f"the blast {self.campaign_id}"
        start, end = self.window
        if start and end:
            s, e = datetime.fromisoformat(start), datetime.fromisoformat(end)
            return f"the issue for {s:%Y-%m-%d %H:%M} to {e:%Y-%m-%d %H:%M} UTC"
        return f"the issue {self.campaign_id}"


def _iso(moment: datetime | None) -> str:
    return moment.astimezone(UTC).isoformat(timespec="seconds") if moment else ""


def _slugish(text: str) -> str:
    return re.sub(r"[^a-z0-9-]+", "-", text.lower()).strip("-")[:40]


def identify(
    *,
    criteria: Criteria,
    window: tuple[datetime | None, datetime],
    picked: Sequence[Post],
    layout: str,
    segment: Sequence[str],
    rehearsal: bool,
    salt: str = "",
    stem: str = "",
) -> Identity:
    """The campaign id for an issue.

    ``window`` is the digest's resolved (start, end): for an open window (``--since``,
    ``--days``, ``--since last-issue``) the end is the moment of the run. ``picked`` are the
    posts of a blast. ``stem`` names the id (e.g. ``2026-10``); ``salt`` makes a deliberate
    new campaign (``--new-campaign``).
    """
    seg = ",".join(segment)
    parts: list[str]
    if criteria.posts:
        kind = BLAST
        slugs = sorted({p.slug for p in picked})
        parts = [kind, *slugs]
        win = ("", "")
        stem = stem or (slugs[0] if len(slugs) == 1 else "blast")
    else:
        kind = DIGEST
        win = (_iso(window[0]), _iso(window[1]))
        filters = [
            ",".join(sorted(v.casefold() for v in values))
            for values in (
                criteria.categories,
                criteria.tags,
                criteria.exclude_categories,
                criteria.exclude_tags,
            )
        ]
        parts = [kind, *win, *filters, str(criteria.limit or "")]
        stem = stem or (f"digest-{window[1]:%Y-%m-%d}")
    parts += [layout, seg, "rehearsal" if rehearsal else "", salt]
    digest = hashlib.sha256("\0".join(parts).encode("utf-8")).hexdigest()[:10]
    return Identity(f"{_slugish(stem) or 'issue'}-{digest}", kind, win, seg, rehearsal)


def fingerprint(post: Post) -> str:
    """A digest of what the post says: the file's bytes, or its fields when it has no file."""
    h = hashlib.sha256()
    try:
        h.update(post.path.read_bytes())
    except OSError:
        for part in (post.title, post.date.isoformat(), post.url, post.body):
            h.update(part.encode("utf-8"))
            h.update(b"\0")
    return h.hexdigest()


def fingerprint_text(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def carried(posts: Sequence[Post], *, root_of: dict[str, str] | None = None) -> list[CarriedPost]:
    """The records of the posts an issue carries (lead first)."""
    return [
        CarriedPost(
            path=(root_of or {}).get(str(p.path), p.path.name),
            slug=p.slug,
            date=_iso(p.date),
            content_hash=fingerprint(p),
        )
        for p in posts
    ]


def changed_since(records: Sequence[CarriedPost], posts: Sequence[Post]) -> list[str]:
    """Slugs (or paths) of carried posts whose content differs now, or that are gone."""
    now = {p.slug: fingerprint(p) for p in posts}
    out = []
    for r in records:
        if not r.content_hash:  # recorded before fingerprints existed: cannot tell
            continue
        if now.get(r.slug) != r.content_hash:
            out.append(r.slug or r.path)
    return out
