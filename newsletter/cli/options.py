"""Selection flags shared by ``posts``, ``render``, ``preview`` and ``send``.

Usage in a command module::

    @main.command()
    @selection_options
    @click.pass_obj
    def render(app: App, **opts: Any) -> None:
        result, selection = load_selection(app, opts)

``load_selection`` ignores keys it does not know, so a command may pass all its kwargs.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from datetime import date, datetime, time, timedelta, tzinfo
from typing import Any, TypeVar

import click

from newsletter.cli import App
from newsletter.config import Settings
from newsletter.content import ReadResult, parse_date, read_site
from newsletter.errors import ConfigError
from newsletter.selection import (
    Criteria,
    LastIssue,
    NoLastIssue,
    Reason,
    Selection,
    matches_pick,
    select,
)

F = TypeVar("F", bound=Callable[..., Any])

SELECTION_KEYS = (
    "since",
    "until",
    "days",
    "month",
    "category",
    "tag",
    "exclude_category",
    "exclude_tag",
    "post",
    "limit",
    "include_drafts",
    "include_future",
    "now",
    "strict",
)


def selection_options(f: F) -> F:
    """Add the selection flags (see the README, "Choosing posts") to a click command."""
    options = [
        click.option(
            "--since",
            metavar="DATE|last-issue",
            help="Posts on or after DATE (YYYY-MM-DD or ISO 8601), or after the last issue sent.",
        ),
        click.option("--until", metavar="DATE", help="Posts up to DATE (a date includes the day)."),
        click.option(
            "--days", type=click.IntRange(min=1), metavar="N", help="Posts of the last N days."
        ),
        click.option("--month", metavar="YYYY-MM", help="Posts of one calendar month."),
        click.option("--category", multiple=True, help="Only posts in this category (repeat)."),
        click.option("--tag", multiple=True, help="Only posts with this tag (repeatable)."),
        click.option("--exclude-category", multiple=True, help="Leave out this category."),
        click.option("--exclude-tag", multiple=True, help="Leave out posts with this tag."),
        click.option(
            "--post",
            multiple=True,
            metavar="PATH_OR_SLUG",
            help="Pick posts explicitly, e.g. for a one-post blast (repeatable).",
        ),
        click.option("--limit", type=click.IntRange(min=1), metavar="N", help="At most N posts."),
        click.option("--include-drafts", is_flag=True, help="Let drafts be selected."),
        click.option("--include-future", is_flag=True, help="Let future-dated posts be selected."),
        click.option(
            "--now",
            metavar="DATETIME",
            help="Pretend it is this moment (reproducible runs); default: the real time.",
        ),
        click.option("--strict", is_flag=True, help="Stop (exit 2) if any post cannot be read."),
    ]
    for option in reversed(options):
        f = option(f)
    return f


def _parse_flag(value: str, flag: str, tz: tzinfo) -> tuple[datetime, bool]:
    """(moment, whether the value was a bare date)."""
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


def resolve_now(opts: Mapping[str, Any], tz: tzinfo) -> datetime:
    """``--now`` if given, else the real clock, in the site's zone."""
    value = opts.get("now")
    if value:
        return _parse_flag(str(value), "--now", tz)[0]
    return datetime.now(tz)


def build_criteria(opts: Mapping[str, Any], tz: tzinfo, now: datetime) -> Criteria:
    """Turn the flags into :class:`Criteria`; conflicting or malformed flags raise ConfigError."""
    since_raw = opts.get("since")
    until_raw = opts.get("until")
    days = opts.get("days")
    month = opts.get("month")
    since: datetime | None = None
    until: datetime | None = None
    last_issue = False
    given = [n for n, v in (("--since", since_raw), ("--days", days), ("--month", month)) if v]
    if len(given) > 1:
        raise ConfigError(f"use only one of {', '.join(given)}; they each set the window's start")
    if month and until_raw:
        raise ConfigError("--month already sets the end of the window; drop --until", key="--month")
    if since_raw:
        if str(since_raw).strip().lower() in ("last-issue", "last_issue"):
            last_issue = True
        else:
            since = _parse_flag(str(since_raw), "--since", tz)[0]
    if days:
        since = now - timedelta(days=int(days))
    if month:
        match = re.fullmatch(r"(\d{4})-(\d{1,2})", str(month).strip())
        if not match or not 1 <= int(match.group(2)) <= 12:
            raise ConfigError(f"{month!r} is not a month; use YYYY-MM, e.g. 2026-10", key="--month")
        year, mon = int(match.group(1)), int(match.group(2))
        since = datetime(year, mon, 1, tzinfo=tz)
        until = datetime(year + mon // 12, mon % 12 + 1, 1, tzinfo=tz)
    if until_raw:
        until, bare = _parse_flag(str(until_raw), "--until", tz)
        if bare:  # a date includes that whole day
            until = datetime.combine(until.date() + timedelta(days=1), time(0), tzinfo=tz)
    if since is not None and until is not None and since >= until:
        raise ConfigError("the window is empty: --since/--days/--month starts after --until")
    return Criteria(
        since=since,
        until=until,
        since_last_issue=last_issue,
        categories=tuple(opts.get("category") or ()),
        tags=tuple(opts.get("tag") or ()),
        exclude_categories=tuple(opts.get("exclude_category") or ()),
        exclude_tags=tuple(opts.get("exclude_tag") or ()),
        posts=tuple(opts.get("post") or ()),
        limit=opts.get("limit"),
        include_drafts=bool(opts.get("include_drafts")),
        include_future=bool(opts.get("include_future")),
    )


def report(
    result: ReadResult, selection: Selection | None = None, *, all_warnings: bool = False
) -> None:
    """Print to stderr, one line each: files passed over, warnings, and every bad post.

    With a ``selection``, only warnings about the selected posts are printed (the ones the
    command uses) and the rest are counted in one line naming ``posts --warnings``, which
    (``all_warnings``) prints them all.
    """
    for note in result.skipped:
        click.echo(f"warning: {note.format()}", err=True)
    shown = result.warnings
    if selection is not None and not all_warnings:
        used = {str(p.path) for p in selection.selected}
        shown = [w for w in result.warnings if w.path in used]
    for warning in shown:
        click.echo(f"warning: {warning.format()}", err=True)
    hidden = len(result.warnings) - len(shown)
    if hidden:
        posts = len({w.path for w in result.warnings} - {w.path for w in shown})
        click.echo(
            f"note: {hidden} warning{'s' if hidden != 1 else ''} about {posts} "
            f"post{'s' if posts != 1 else ''} not selected; `newsletter posts --warnings` "
            "lists them",
            err=True,
        )
    for error in result.errors:
        click.echo(f"error: {error.format()}", err=True)


def load_selection(
    app: App, opts: Mapping[str, Any], *, last_issue: LastIssue | None = None
) -> tuple[ReadResult, Selection]:
    """Read the posts, report problems to stderr, and select with the flags in ``opts``.

    Under ``--strict`` any post that cannot be read stops the run (ConfigError, exit 2).
    A ``--post`` that matches no post is an error too.
    """
    settings = app.settings
    tz = settings.site.tz
    now = resolve_now(opts, tz)
    criteria = build_criteria(opts, tz, now)
    result = _read(settings)
    if opts.get("strict") and result.errors:
        report(result)
        count = len(result.errors)
        raise ConfigError(
            f"{count} post{'s' if count != 1 else ''} could not be read (listed above); "
            "fix them or run without --strict to skip them"
        )
    newest = None
    if criteria.since_last_issue:
        newest = _last_issue_date(app, last_issue)
        if newest is None:
            click.echo(
                "note: no issue has been sent yet, so --since last-issue has no start", err=True
            )
    selection = select(result.posts, criteria, now=now, last_issue=newest)
    report(result, selection, all_warnings=bool(opts.get("warnings")))
    if selection.unmatched:
        names = ", ".join(repr(p) for p in selection.unmatched)
        raise ConfigError(
            f"no post matches {names}; give a slug, file name or path that "
            "`newsletter posts` lists",
            key="--post",
        )
    if criteria.posts:
        # a post picked by name but held back by a rule the user can lift: say which flag
        held = {
            Reason.DRAFT: ("a draft", "--include-drafts"),
            Reason.FUTURE: ("dated in the future", "--include-future"),
        }
        for post, reason in selection.skipped:
            if reason in held and any(matches_pick(post, pick) for pick in criteria.posts):
                what, flag = held[reason]
                raise ConfigError(
                    f"the post {post.slug!r} you picked is {what}; add {flag} to include it",
                    key="--post",
                )
    return result, selection


def _read(settings: Settings) -> ReadResult:
    """Files and feeds; feeds fetched over HTTP keep their ETag cache in the store."""
    if not any(s.startswith(("http://", "https://")) for s in settings.site.feeds):
        return read_site(settings)
    from newsletter.store import open_store

    with open_store(settings.db_path) as store:
        return read_site(settings, feed_cache=store.feeds)


def _last_issue_date(app: App, last_issue: LastIssue | None) -> datetime | None:
    """The newest post of the last issue sent: from ``last_issue``, else the store if it exists.

    Listing and rendering never create a store; a site that has sent nothing has no last issue.
    """
    if last_issue is not None:
        return last_issue.newest_post_date()
    db_path = app.settings.db_path
    if not db_path.exists():
        return NoLastIssue().newest_post_date()
    from newsletter.store import open_store

    with open_store(db_path) as store:
        return store.campaigns.newest_post_date()


def issue_date(opts: Mapping[str, Any], selection: Selection) -> datetime | None:
    """The date an issue is named after: the month given with ``--month``, else None (now)."""
    return selection.since if opts.get("month") else None
