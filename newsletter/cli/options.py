"""Selection flags shared by ``posts``, ``render``, ``preview`` and ``send``.

Usage in a command module::

    @main.command()
    @selection_options
    @click.pass_obj
    def render(app: App, **opts: Any) -> None:
        picked = load_selection(app, opts)

``load_selection`` ignores keys it does not know, so a command may pass all its kwargs.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime, tzinfo
from typing import Any, TypeVar

import click

from newsletter.api import Picked
from newsletter.cli import App
from newsletter.content import ReadResult
from newsletter.issue import IssueQuery, parse_moment
from newsletter.selection import Selection

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


def resolve_now(opts: Mapping[str, Any], tz: tzinfo) -> datetime:
    """``--now`` if given, else the real clock, in the site's zone."""
    value = opts.get("now")
    if value:
        return parse_moment(str(value), "--now", tz)[0]
    return datetime.now(tz)


def query_from(opts: Mapping[str, Any], segment: tuple[str, ...] = ()) -> IssueQuery:
    """The selection and issue flags as an :class:`~newsletter.IssueQuery`."""
    return IssueQuery(
        month=opts.get("month"),
        since=opts.get("since"),
        until=opts.get("until"),
        days=opts.get("days"),
        posts=tuple(opts.get("post") or ()),
        categories=tuple(opts.get("category") or ()),
        tags=tuple(opts.get("tag") or ()),
        exclude_categories=tuple(opts.get("exclude_category") or ()),
        exclude_tags=tuple(opts.get("exclude_tag") or ()),
        limit=opts.get("limit"),
        include_drafts=bool(opts.get("include_drafts")),
        include_future=bool(opts.get("include_future")),
        layout=opts.get("layout"),
        subject=opts.get("subject"),
        intro=opts.get("intro_file"),
        segment=tuple(opts.get("segment") or segment),
        strict=bool(opts.get("strict")),
    )


def report(result: ReadResult) -> None:
    """Print to stderr, one line each, what could not be read: files passed over (a FIFO, a
    symlink loop) and every bad post."""
    for note in result.skipped:
        click.echo(f"warning: {note.format()}", err=True)
    for error in result.errors:
        click.echo(f"error: {error.format()}", err=True)


def report_warnings(result: ReadResult, selection: Selection, *, everything: bool = False) -> None:
    """Print the warnings about the selected posts (the ones the command uses) to stderr, and
    count the rest in one line naming ``posts --warnings``, which (``everything``) prints all."""
    shown = result.warnings
    if not everything:
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


def load_selection(app: App, opts: Mapping[str, Any]) -> Picked:
    """Read the posts, report problems to stderr, and select with the flags in ``opts``.

    Under ``--strict`` any post that cannot be read stops the run (ConfigError, exit 2).
    A ``--post`` that matches no post is an error too.
    """
    nl = app.newsletter
    query = query_from(opts)
    now = resolve_now(opts, app.settings.site.tz)
    read = nl.read_posts()
    report(read)
    picked = nl.pick(query, now=now, read=read)
    report_warnings(read, picked.selection, everything=bool(opts.get("warnings")))
    if query.since_last_issue and picked.reference is None:
        click.echo(
            "note: no digest has been sent yet, so --since last-issue has no start", err=True
        )
    return picked
