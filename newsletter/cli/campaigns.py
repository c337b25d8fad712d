"""``newsletter resume``, ``status`` and ``campaigns``: campaigns after ``send`` started them."""

from __future__ import annotations

import fcntl
import json
import os
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from newsletter.cli import App, main
from newsletter.cli.audience import sync_before_send
from newsletter.cli.send_wiring import (
    build_transport,
    choose_transport,
    outbox_folder,
    personalizer_for,
    print_summary,
    run_dispatch,
    send_options,
)
from newsletter.errors import ConfigError, NewsletterError
from newsletter.store import campaigns as cs
from newsletter.store import open_store
from newsletter.store.campaign_lock import CampaignLock, lock_dir_for
from newsletter.store.campaigns import Campaign, CampaignStatus


def sender_running(lock_dir: Path, campaign_id: str) -> bool:
    """Whether a process holds the campaign's lock (a non-blocking flock attempt, let go at once).

    A shared lock is enough to tell: it fails while a sender holds the exclusive one, and the
    kernel drops that one when the sender dies, even by ``kill -9``.
    """
    try:
        fd = os.open(lock_dir / f"{campaign_id}.lock", os.O_RDONLY)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # closing drops our shared lock, if we got it
    return False


def shown_state(campaign: Campaign, lock_dir: Path) -> str:
    """The state to show: a campaign left ``sending``/``preparing`` by a dead process says so."""
    if campaign.state not in (cs.RUNNING, cs.PREPARING) or sender_running(lock_dir, campaign.id):
        return campaign.state
    if campaign.state == cs.PREPARING:
        return "interrupted while preparing (no sender running; run the same newsletter send again)"
    return f"interrupted (no sender running; run newsletter resume {campaign.id})"


@main.command("resume")
@click.argument("campaign")
@send_options
@click.option(
    "--retry-unknown",
    is_flag=True,
    help="Also resend batches whose answer was lost (they may get the email twice).",
)
@click.pass_obj
def resume_command(app: App, campaign: str, retry_unknown: bool, **opts: Any) -> None:
    """Finish an interrupted or paused campaign: send to everyone not yet accepted.

    Recipients in accepted batches never get a second message. Batches whose answer was lost
    (``unknown``) are resent only with --retry-unknown.

    \b
    Examples:
      newsletter resume 2026-10-3f9a2c1b7e
      newsletter resume 2026-10-3f9a2c1b7e --retry-unknown
    """
    settings = app.settings
    with open_store(settings.db_path) as store:
        existing = store.campaigns.get(campaign)
        if existing is None:
            raise ConfigError(f"no campaign {campaign!r}; `newsletter campaigns` lists them")
        if existing.state == cs.PREPARING:
            raise ConfigError(
                f"campaign {campaign} never finished preparing (nothing was sent); run the "
                "same `newsletter send` command again"
            )
        if existing.state == cs.CANCELLED:
            raise ConfigError(
                f"campaign {campaign} was cancelled; to send it after all, run the same "
                "`newsletter send` command with --new-campaign"
            )
        name = opts.get("transport") or existing.transport
        name = choose_transport(settings, app, name) if name != "memory" else name
        with CampaignLock(lock_dir_for(settings.db_path), campaign):
            status = store.campaigns.status(campaign)
            assert status is not None
            todo = sum(status.counts.get(s, 0) for s in (cs.PENDING, cs.SENDING, cs.FAILED))
            if retry_unknown:
                todo += status.counts.get(cs.UNKNOWN, 0)
            if existing.state == cs.DONE and not todo:
                click.echo(f"campaign {campaign} is complete; nothing to resume")
                return
            transport = build_transport(app, name, now=datetime.now(UTC))
            if name == "sendgrid":
                synced = sync_before_send(app, store, skip=opts.get("skip_sync", False))
                if synced:
                    click.echo(f"suppressions: {synced}", err=True)
            try:
                personalize = personalizer_for(app, name, campaign)
            except NewsletterError:
                transport.close()
                raise
            summary = run_dispatch(
                app,
                store,
                campaign,
                transport,
                personalize,
                retry_unknown=retry_unknown,
                overrides=opts,
                show_progress=not opts.get("no_progress"),
                check_suppressions=True,
            )
        print_summary(summary, outbox=outbox_folder(settings, name, campaign))


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
    from newsletter.dispatch import Envelope
    from newsletter.providers.sendgrid.transport import SendGridTransport

    settings = app.settings
    with open_store(settings.db_path) as store:
        existing = store.campaigns.get(campaign)
        if existing is None:
            raise ConfigError(f"no campaign {campaign!r}; `newsletter campaigns` lists them")
        envelope = Envelope.from_json(store.campaigns.envelope(campaign))
        if existing.transport != "sendgrid" or not envelope.send_at or not envelope.batch_id:
            raise ConfigError(
                f"campaign {campaign} is not a scheduled SendGrid send (send --send-at), so "
                "there is nothing to call off; what was sent is delivered"
            )
        now = datetime.now(UTC)
        if envelope.send_at <= now.timestamp():
            when = datetime.fromtimestamp(envelope.send_at, UTC).isoformat(timespec="minutes")
            raise ConfigError(
                f"campaign {campaign} was scheduled for {when}, which has passed: SendGrid has "
                "sent it and it can no longer be cancelled"
            )
        transport = build_transport(app, "sendgrid", now=now)
        try:
            assert isinstance(transport, SendGridTransport)
            transport.cancel_scheduled(envelope.batch_id)
        finally:
            transport.close()
        note = f"cancelled at SendGrid (batch {envelope.batch_id}) before its send time"
        try:
            with CampaignLock(lock_dir_for(settings.db_path), campaign):
                store.campaigns.set_state(campaign, cs.CANCELLED, now=now, note=note)
        except NewsletterError:  # a send of it is still running: SendGrid drops what it adds
            click.echo(
                f"campaign {campaign}: cancelled at SendGrid. Its send is still running here; "
                "what it still sends carries the same batch id and will be dropped too. Run "
                f"`newsletter cancel {campaign}` again once it has stopped to record it."
            )
            return
    click.echo(f"campaign {campaign}: {note}")


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
    with open_store(app.settings.db_path) as store:
        if campaign is None:
            recent = store.campaigns.all()
            if not recent:
                raise ConfigError("no campaigns yet; `newsletter send` starts one")
            campaign = recent[0].id
        status = store.campaigns.status(campaign)
    if status is None:
        raise ConfigError(f"no campaign {campaign!r}; `newsletter campaigns` lists them")
    shown = shown_state(status.campaign, lock_dir_for(app.settings.db_path))
    if as_json:
        data = status.as_json()
        data["sender_running"] = shown == status.campaign.state and status.campaign.state in (
            cs.RUNNING,
            cs.PREPARING,
        )
        data["interrupted"] = shown != status.campaign.state
        click.echo(json.dumps(data, indent=2, ensure_ascii=False))
        return
    _print_status(status, shown)


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
    for state in cs.BATCH_STATES:
        table.add_row(state, f"{status.counts.get(state, 0):,}")
    table.add_row("total", f"{c.total:,}")
    console.print(table)
    if status.events:
        events = Table("event (webhooks)", "recipients")
        for event, n in status.events.items():
            events.add_row(event, f"{n:,}")
        console.print(events)
    if status.errors:
        console.print("errors by reason:")
        for state, reason, n in status.errors:
            console.print(f"  {state}: {n:,} — {reason}")
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
    lock_dir = lock_dir_for(app.settings.db_path)
    with open_store(app.settings.db_path) as store:
        rows = []
        for c in store.campaigns.all():
            status = store.campaigns.status(c.id)
            accepted = status.counts.get(cs.ACCEPTED, 0) if status else 0
            rows.append((c, accepted))
    if as_json:
        data = [
            {
                "id": c.id,
                "state": c.state,
                "created_at": c.created_at,
                "subject": c.subject,
                "total": c.total,
                "accepted": a,
            }
            for c, a in rows
        ]
        click.echo(json.dumps(data, indent=2, ensure_ascii=False))
        return
    if not rows:
        click.echo("no campaigns yet")
        return
    table = Table("campaign", "state", "created", "recipients", "accepted", "subject")
    for c, accepted in rows:
        state = c.state if shown_state(c, lock_dir) == c.state else "interrupted"
        table.add_row(c.id, state, c.created_at, f"{c.total:,}", f"{accepted:,}", c.subject)
    Console(
        highlight=False,
        width=max(120, os.get_terminal_size().columns if sys.stdout.isatty() else 160),
    ).print(table)
