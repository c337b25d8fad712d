"""Which posts go into an issue, and why each other post was left out. Pure: ``now`` is an argument.

Rules, in the order they are checked (the first that applies is the reason):

1. duplicate: the same slug and date already seen (two folders holding one post);
2. draft / future: out unless ``include_drafts`` / ``include_future``;
3. not picked: ``posts`` names posts explicitly and this is not one of them;
4. before / after window: ``since`` is inclusive, ``until`` exclusive; with ``since_last_issue``
   the window starts where the last digest's window ended (``last_issue``);
   already sent: with ``since_last_issue``, a post another campaign to this audience carried;
5. category / tag: include lists need one match, exclude lists none (case-insensitive);
6. limit: after all the above, newest first, the first ``limit`` posts are selected.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from pathlib import Path

from newsletter.content import Post


class Reason(StrEnum):
    DRAFT = "draft"
    FUTURE = "future"
    BEFORE_WINDOW = "before_window"
    AFTER_WINDOW = "after_window"
    CATEGORY = "category"
    TAG = "tag"
    DUPLICATE = "duplicate"
    LIMIT = "limit"
    NOT_PICKED = "not_picked"
    INVALID = "invalid"
    EXPIRED = "expired"  # Hugo expiryDate passed
    ALREADY_SENT = "already_sent"

    @property
    def label(self) -> str:
        return self.value.replace("_", " ")


@dataclass(frozen=True)
class Criteria:
    since: datetime | None = None  # inclusive, aware
    until: datetime | None = None  # exclusive, aware
    since_last_issue: bool = False
    categories: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    exclude_categories: tuple[str, ...] = ()
    exclude_tags: tuple[str, ...] = ()
    posts: tuple[str, ...] = ()  # paths, file names or slugs picked explicitly
    limit: int | None = None
    include_drafts: bool = False
    include_future: bool = False


@dataclass
class Selection:
    selected: list[Post]  # newest first
    skipped: list[tuple[Post, Reason]]  # every other post, with why, newest first
    unmatched: list[str] = field(default_factory=list)  # picks in Criteria.posts that matched none
    since: datetime | None = None  # the window actually applied (after last-issue resolution)
    until: datetime | None = None
    sent_in: Mapping[str, str] = field(default_factory=dict)  # slug -> campaign that carried it

    def label(self, post: Post, reason: Reason) -> str:
        """The reason as shown to a person: ``already sent in 2026-10-3f9a2c1b7e``."""
        if reason is Reason.ALREADY_SENT:
            return f"already sent in {self.sent_in.get(post.slug, '?')}"
        return reason.label

    def reason_of(self, post: Post) -> Reason | None:
        for other, reason in self.skipped:
            if other is post:
                return reason
        return None


def sort_newest_first(posts: Iterable[Post]) -> list[Post]:
    return sorted(posts, key=lambda p: (p.date, p.slug, str(p.path)), reverse=True)


def matches_pick(post: Post, pick: str) -> bool:
    """A pick is a slug, a file name, a file stem or a path (relative or absolute)."""
    pick = pick.strip()
    if not pick:
        return False
    if pick in (post.slug, post.path.name, post.path.stem, post.url, post.url.rstrip("/")):
        return True
    if pick.casefold() == post.slug.casefold():  # slugs are typed by hand: Wrap-Up == wrap-up
        return True
    candidate = Path(pick)
    if len(candidate.parts) > 1 or candidate.suffix:
        try:
            if candidate.resolve() == post.path.resolve():
                return True
        except OSError:
            return False
        return post.path.as_posix().endswith("/" + candidate.as_posix().lstrip("./"))
    return False


def _lower(values: Iterable[str]) -> set[str]:
    return {v.strip().lower() for v in values}


def select(
    posts: Sequence[Post],
    criteria: Criteria,
    *,
    now: datetime,
    last_issue: datetime | None = None,
    already_sent: Mapping[str, str] | None = None,
) -> Selection:
    """Choose the posts for an issue; every post not chosen gets a :class:`Reason`.

    ``last_issue`` is where the last digest's window ended (inclusive start of this one);
    ``already_sent`` maps the slugs of posts other campaigns carried to those campaigns' ids:
    with ``since_last_issue`` such posts are left out.
    """
    since = criteria.since
    if criteria.since_last_issue and last_issue is not None:
        since = last_issue if since is None else max(since, last_issue)
    sent = dict(already_sent or {}) if criteria.since_last_issue else {}
    include_cats = _lower(criteria.categories)
    exclude_cats = _lower(criteria.exclude_categories)
    include_tags = _lower(criteria.tags)
    exclude_tags = _lower(criteria.exclude_tags)
    ordered = sorted(posts, key=lambda p: str(p.path))  # first folder wins a duplicate
    seen: set[tuple[str, datetime]] = set()
    reasons: dict[int, Reason] = {}
    for post in ordered:
        key = (post.slug, post.date)
        if key in seen:
            reasons[id(post)] = Reason.DUPLICATE
            continue
        seen.add(key)
        reason = _reason(
            post,
            criteria,
            now=now,
            since=since,
            include_cats=include_cats,
            exclude_cats=exclude_cats,
            include_tags=include_tags,
            exclude_tags=exclude_tags,
        )
        if reason is None and post.slug in sent:
            reason = Reason.ALREADY_SENT
        if reason is not None:
            reasons[id(post)] = reason
    selected: list[Post] = []
    skipped: list[tuple[Post, Reason]] = []
    for post in sort_newest_first(posts):
        reason = reasons.get(id(post))
        if reason is None and criteria.limit is not None and len(selected) >= criteria.limit:
            reason = Reason.LIMIT
        if reason is None:
            selected.append(post)
        else:
            skipped.append((post, reason))
    unmatched = [pick for pick in criteria.posts if not any(matches_pick(p, pick) for p in posts)]
    return Selection(selected, skipped, unmatched, since=since, until=criteria.until, sent_in=sent)


def _reason(
    post: Post,
    criteria: Criteria,
    *,
    now: datetime,
    since: datetime | None,
    include_cats: set[str],
    exclude_cats: set[str],
    include_tags: set[str],
    exclude_tags: set[str],
) -> Reason | None:
    if post.draft and not criteria.include_drafts:
        return Reason.DRAFT
    if post.date > now and not criteria.include_future:
        return Reason.FUTURE
    if post.expires is not None and post.expires <= now:
        return Reason.EXPIRED
    if criteria.posts and not any(matches_pick(post, pick) for pick in criteria.posts):
        return Reason.NOT_PICKED
    if since is not None and post.date < since:
        return Reason.BEFORE_WINDOW
    if criteria.until is not None and post.date >= criteria.until:
        return Reason.AFTER_WINDOW
    cats = _lower(post.categories)
    if (include_cats and not cats & include_cats) or cats & exclude_cats:
        return Reason.CATEGORY
    tags = _lower(post.tags)
    if (include_tags and not tags & include_tags) or tags & exclude_tags:
        return Reason.TAG
    return None
