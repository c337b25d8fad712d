"""``newsletter posts``: list the site's posts and which ones an issue would contain."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import click

from newsletter.api import Campaign
from newsletter.cli import App, main
from newsletter.cli.options import load_selection, selection_options
from newsletter.cli.output import emit_list, json_options
from newsletter.content import Post, excerpt_of
from newsletter.content.generators import describe
from newsletter.selection import Reason, Selection, sort_newest_first


def post_json(
    post: Post, reason: Reason | None, selection: Selection, sent_in: list[str]
) -> dict[str, Any]:
    return {
        "path": str(post.path),
        "slug": post.slug,
        "title": post.title,
        "date": post.date.isoformat(),
        "url": post.url,
        "author": list(post.authors),
        "categories": list(post.categories),
        "tags": list(post.tags),
        "cover": {"url": post.cover.url, "alt": post.cover.alt} if post.cover else None,
        "excerpt": excerpt_of(post),
        "draft": post.draft,
        "selected": reason is None,
        "reason": reason.value if reason is not None else None,
        "reason_text": selection.label(post, reason) if reason is not None else None,
        "sent_in": sent_in,
    }


def summary_line(selection: Selection, unreadable: int, reference: Campaign | None = None) -> str:
    total = len(selection.selected) + len(selection.skipped)
    counts = Counter(reason.label for _, reason in selection.skipped)
    parts = [f"{total} post{'s' if total != 1 else ''} read", f"{len(selection.selected)} selected"]
    if selection.skipped:
        detail = ", ".join(f"{n} {label}" for label, n in sorted(counts.items()))
        parts.append(f"{len(selection.skipped)} left out ({detail})")
    if unreadable:
        parts.append(f"{unreadable} could not be read and were skipped (see above)")
    if reference is not None:
        end = reference.window_end or reference.newest_post_date
        parts.append(f"since the last issue {reference.id} (its window ended {end})")
    return "; ".join(parts)


def _cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


@main.command("posts")
@selection_options
@json_options(stream=True)
@click.option("--selected", is_flag=True, help="List only the posts the issue would contain.")
@click.option(
    "--warnings",
    is_flag=True,
    help="Print the warnings about every post, not only about the selected ones.",
)
@click.pass_obj
def posts_command(app: App, output: str, selected: bool, **opts: Any) -> None:
    """List the posts and whether each would be in the issue, with the reason if not.

    \b
    Examples:
      newsletter posts --month 2026-10
      newsletter posts --month 2026-10 --selected
      newsletter posts --since last-issue --exclude-category Sponsors
      newsletter posts --post conference-wrap-up --json
      newsletter posts --warnings
    """
    site = describe(app.settings)  # what the site generator's config supplied
    if site is not None:
        click.echo(f"note: {site}", err=True)
    picked = load_selection(app, opts)
    result, selection = picked.read, picked.selection
    reasons: dict[int, Reason | None] = {id(p): None for p in selection.selected}
    reasons.update({id(p): r for p, r in selection.skipped})
    others = [] if selected else [p for p, _ in selection.skipped]
    ordered = sort_newest_first([*selection.selected, *others])
    rows_json = (
        post_json(p, reasons[id(p)], selection, picked.sent_in.get(p.slug, [])) for p in ordered
    )
    if emit_list(rows_json, output):
        return
    tz = app.settings.site.tz
    rows = [
        (
            p.date.astimezone(tz).strftime("%Y-%m-%d"),
            _cut(p.title, 48),
            _cut(", ".join(p.categories) or "-", 18),
            "selected"
            if reasons[id(p)] is None
            else selection.label(p, reasons[id(p)] or Reason.INVALID),
            _cut(", ".join(picked.sent_in.get(p.slug, [])) or "-", 40),
        )
        for p in ordered
    ]
    # posts that could not be read are listed too (their errors went to stderr above)
    if not selected:
        rows += [
            ("-", _cut(Path(e.path).name, 48), "-", Reason.INVALID.label, "-")
            for e in result.errors
        ]
    header = ("date", "title", "category", "status", "sent in")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(5)]
    for row in [header, *rows]:
        click.echo("  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip())
    click.echo(summary_line(selection, len(result.errors), picked.reference))
