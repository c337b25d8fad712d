"""``newsletter resume``, ``cancel``, ``status`` and ``campaigns``: campaigns after ``send``."""

from __future__ import annotations

import json
import os
import sys
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from newsletter.api import ACCEPTED, LEDGER_STATES, CampaignStatus
from newsletter.cli import App, main
from newsletter.cli.send_wiring import options_from, progress_bar, report, send_options


@main.command("resume")
@click.argument("campaign")
@send_options
@click.option(
    "--retry-unknown",
    is_flag=True,
    help="Also resend batches whose answer was lost (they may get the email twice).",
)
@click.option(
    "--retry-rejected",
    is_flag=True,
    help="Also resend recipients SendGrid refused (after fixing what `status` lists).",
)
@click.pass_obj
def resume_command(
    app: App, campaign: str, retry_unknown: bool, retry_rejected: bool, **opts: Any
) -> None:
    """Finish an interrupted or paused campaign: send to everyone not yet accepted.

    Recipients in accepted batches never get a second message. Batches whose answer was lost
    (``unknown``) are resent only with --retry-unknown.

    \b
    Examples:
      newsletter resume 2026-10-3f9a2c1b7e
      newsletter resume 2026-10-3f9a2c1b7e --retry-unknown
      newsletter resume 2026-10-3f9a2c1b7e --retry-rejected
    """

    options = options_from(opts, retry_unknown=retry_unknown, retry_rejected=retry_rejected)
    with progress_bar(not opts.get("no_progress")) as progress:
        result = app.newsletter.resume(campaign, options, progress=progress)
    report(result)


@main.command("cancel")
@click.argument("campaign")
@click.pass_obj
def cancel_command(app: App, campaign: str) -> None:
    """Call off a scheduled campaign (send --send-at) at SendGrid before its time.

    Every request of a scheduled campaign carries one SendGrid batch id; cancelling it stops
    all of them, those already accepted included, as long as their time has not come.

    \b
    Example:
      newsletter cancel 2026-10-3f9a2c1b7e
    """
    click.echo(app.newsletter.cancel(campaign))


@main.command("status")
@click.argument("campaign", required=False)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_obj
def status_command(app: App, campaign: str | None, as_json: bool) -> None:
    """Show a campaign's recipients by state, webhook events, and errors grouped by reason.

    Without CAMPAIGN, the most recent one.

    \b
    Examples:
      newsletter status
      newsletter status 2026-10-3f9a2c1b7e --json
    """
    view = app.newsletter.status(campaign)
    if as_json:
        data = view.status.as_json()
        data["sender_running"] = view.sender_running
        data["interrupted"] = view.interrupted
        click.echo(json.dumps(data, indent=2, ensure_ascii=False))
        return
    _print_status(view.status, view.shown_state)


def _print_status(status: CampaignStatus, shown: str) -> None:
    c = status.campaign
    console = Console(highlight=False, markup=False)
    console.print(f"campaign  {c.id}  [{shown}]", soft_wrap=True)
    console.print(f"subject   {c.subject}")
    console.print(f"transport {c.transport}   segment {c.segment or '(all)'}")
    console.print(
        f"created   {c.created_at}   updated {c.updated_at}   finished {c.finished_at or '-'}"
    )
    table = Table("state", "recipients")
    for state in LEDGER_STATES:
        table.add_row(state, f"{status.counts.get(state, 0):,}")
    table.add_row("total", f"{c.total:,}")
    console.print(table)
    if status.events:
        events = Table("event (webhooks)", "recipients")
        for event, n in status.events.items():
            events.add_row(event, f"{n:,}")
        console.print(events)
    if status.reconciled:
        console.print(
            f"reconciled: {status.reconciled:,} recipients whose answer was lost were settled "
            "by SendGrid's webhook events"
        )
    if status.errors:
        console.print("errors by reason:")
        for state, reason, n in status.errors:
            console.print(f"  {state}: {n:,} — {reason}")
    if status.rejected:
        console.print(
            f"rejected by the provider (fix, then `newsletter resume {c.id} --retry-rejected`):",
            soft_wrap=True,
        )
        for email, reason in status.rejected:
            console.print(f"  {email} — {reason}", soft_wrap=True)
    if c.note:
        console.print(f"note: {c.note}")


@main.command("campaigns")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_obj
def campaigns_command(app: App, as_json: bool) -> None:
    """List past campaigns, newest first.

    \b
    Example:
      newsletter campaigns
    """
    views = app.newsletter.campaigns()
    rows = [(v.status.campaign, v.status.counts.get(ACCEPTED, 0), v) for v in views]
    if as_json:
        data = [
            {
                "id": c.id,
                "kind": c.kind,
                "state": c.state,
                "interrupted": v.interrupted,
                "created_at": c.created_at,
                "subject": c.subject,
                "segment": c.segment,
                "total": c.total,
                "accepted": a,
            }
            for c, a, v in rows
        ]
        click.echo(json.dumps(data, indent=2, ensure_ascii=False))
        return
    if not rows:
        click.echo("no campaigns yet")
        return
    table = Table("campaign", "kind", "state", "created", "recipients", "accepted", "subject")
    for c, accepted, v in rows:
        state = "interrupted" if v.interrupted else c.state
        table.add_row(c.id, c.kind, state, c.created_at, f"{c.total:,}", f"{accepted:,}", c.subject)
    Console(
        highlight=False,
        width=max(120, os.get_terminal_size().columns if sys.stdout.isatty() else 160),
    ).print(table)
