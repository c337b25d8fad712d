"""What an operator asks for: an :class:`IssueQuery` (which posts, which layout, which audience).

The command line and scripts both describe an issue with one of these; :meth:`IssueQuery.criteria`
turns it into concrete :class:`~newsletter.selection.Criteria` for a given ``now`` and time zone
(a ``--month`` becomes two instants). Validated on construction: conflicting or malformed values
raise :class:`~newsletter.errors.ConfigError` naming the flag.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, tzinfo
from pathlib import Path

from newsletter.content import parse_date
from newsletter.errors import ConfigError
from newsletter.selection import Criteria

LAYOUTS = ("digest", "post")


def parse_moment(value: str, flag: str, tz: tzinfo) -> tuple[datetime, bool]:
    """(moment, whether the value was a bare date) for a date or date-time flag value."""
    text = value.strip()
    if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
        try:
            return datetime.combine(date.fromisoformat(text), time(0), tzinfo=tz), True
        except ValueError:
            pass
    else:
        parsed = parse_date(text, tz)
        if parsed is not None:
            return parsed, False
    raise ConfigError(
        f"{value!r} is not a date; use YYYY-MM-DD or an ISO 8601 date-time such as "
        "2026-11-01T09:00:00",
        key=flag,
    )


def normalize_segment(tags: tuple[str, ...] | list[str]) -> tuple[str, ...]:
    """Subscriber tags compare case-insensitively everywhere: ``Core`` is ``core``."""
    return tuple(sorted({t.strip().casefold() for t in tags if t.strip()}))


def _month(value: str) -> tuple[int, int]:
    match = re.fullmatch(r"(\d{4})-(\d{1,2})", value.strip())
    if not match or not 1 <= int(match.group(2)) <= 12:
        raise ConfigError(f"{value!r} is not a month; use YYYY-MM, e.g. 2026-10", key="--month")
    return int(match.group(1)), int(match.group(2))


@dataclass(frozen=True)
class IssueQuery:
    """Which posts go into an issue and how it is laid out, as the operator says it.

    Give at most one of ``month`` ("2026-10"), ``since`` (a date, or "last-issue"), ``days``;
    ``until`` ends an open window; ``posts`` picks posts by slug, file name or path (a blast).
    ``segment`` limits the audience to subscribers with any of these tags.
    """

    month: str | None = None
    since: str | None = None
    until: str | None = None
    days: int | None = None
    posts: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    exclude_categories: tuple[str, ...] = ()
    exclude_tags: tuple[str, ...] = ()
    limit: int | None = None
    include_drafts: bool = False
    include_future: bool = False
    layout: str | None = None  # default: "post" with posts, else "digest"
    subject: str | None = None
    intro: Path | None = None
    segment: tuple[str, ...] = field(default=())
    strict: bool = False

    def __post_init__(self) -> None:
        given = [
            n
            for n, v in (("--since", self.since), ("--days", self.days), ("--month", self.month))
            if v
        ]
        if len(given) > 1:
            raise ConfigError(
                f"use only one of {', '.join(given)}; they each set the window's start"
            )
        if self.month and self.until:
            raise ConfigError(
                "--month already sets the end of the window; drop --until", key="--month"
            )
        if self.month:
            _month(self.month)
        if self.days is not None and self.days < 1:
            raise ConfigError("must be at least 1", key="--days")
        if self.limit is not None and self.limit < 1:
            raise ConfigError("must be at least 1", key="--limit")
        if self.layout is not None and self.layout not in LAYOUTS:
            raise ConfigError(f"unknown layout {self.layout!r}; use digest or post", key="--layout")
        object.__setattr__(self, "segment", normalize_segment(self.segment))

    @property
    def since_last_issue(self) -> bool:
        return bool(self.since) and str(self.since).strip().lower() in ("last-issue", "last_issue")

    @property
    def has_selection(self) -> bool:
        """Whether the query says which posts (a window or picks); ``send`` requires one."""
        return bool(self.month or self.since or self.days or self.until or self.posts)

    @property
    def effective_layout(self) -> str:
        return self.layout or ("post" if self.posts else "digest")

    @property
    def kind(self) -> str:
        """``blast`` (posts picked by name) or ``digest`` (a window of posts)."""
        return "blast" if self.posts else "digest"

    def criteria(self, tz: tzinfo, now: datetime) -> Criteria:
        """Concrete criteria: every relative value (month, days) turned into instants."""
        since: datetime | None = None
        until: datetime | None = None
        if self.since and not self.since_last_issue:
            since = parse_moment(str(self.since), "--since", tz)[0]
        if self.days:
            since = now - timedelta(days=int(self.days))
        if self.month:
            year, mon = _month(self.month)
            since = datetime(year, mon, 1, tzinfo=tz)
            until = datetime(year + mon // 12, mon % 12 + 1, 1, tzinfo=tz)
        if self.until:
            until, bare = parse_moment(str(self.until), "--until", tz)
            if bare:  # a date includes that whole day
                until = datetime.combine(until.date() + timedelta(days=1), time(0), tzinfo=tz)
        if since is not None and until is not None and since >= until:
            raise ConfigError("the window is empty: --since/--days/--month starts after --until")
        return Criteria(
            since=since,
            until=until,
            since_last_issue=self.since_last_issue,
            categories=tuple(self.categories),
            tags=tuple(self.tags),
            exclude_categories=tuple(self.exclude_categories),
            exclude_tags=tuple(self.exclude_tags),
            posts=tuple(self.posts),
            limit=self.limit,
            include_drafts=self.include_drafts,
            include_future=self.include_future,
        )
