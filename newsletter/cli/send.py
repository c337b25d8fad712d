"""``newsletter send``: select, render once, lint, resolve recipients, and send a campaign.

``resume``, ``status`` and ``campaigns`` live in :mod:`newsletter.cli.campaigns`; the wiring
both share (transports, secrets, progress, summary) in :mod:`newsletter.cli.send_wiring`.
"""

from __future__ import annotations

import dataclasses
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click

import newsletter.cli.campaigns  # noqa: F401 - registers resume, status and campaigns
from newsletter.cli import App, main
from newsletter.cli.audience import sync_before_send
from newsletter.cli.options import resolve_now, selection_options
from newsletter.cli.render import issue_options, print_findings, select_and_render
from newsletter.cli.send_wiring import (
    TEST_RECIPIENT,
    build_transport,
    choose_transport,
    envelope_for,
    outbox_folder,
    personalizer_for,
    prepared_batch_size,
    print_summary,
    recipient_rows,
    run_dispatch,
    send_options,
    stderr_console,
)
from newsletter.config import Settings
from newsletter.dispatch import (
    Envelope,
    campaign_id_for,
    prepare,
)
from newsletter.errors import ConfigError, LintFailed, NewsletterError
from newsletter.lint import has_errors, lint_issue
from newsletter.store import Store, open_store
from newsletter.store import campaigns as cs
from newsletter.store.campaign_lock import CampaignLock, lock_dir_for
from newsletter.store.campaigns import LedgerRow


def _parse_send_at(value: str | None, settings: Settings) -> int:
    if not value:
        return 0
    try:
        when = datetime.fromisoformat(value)
    except ValueError as err:
        raise ConfigError(
            f"{value!r} is not a date-time; use ISO 8601, e.g. 2026-12-01T09:00", key="--send-at"
        ) from err
    if when.tzinfo is None:
        when = when.replace(tzinfo=settings.site.tz)
    delta = when.timestamp() - time.time()
    if delta < 0 or delta > 72 * 3600:
        raise ConfigError("must be in the next 72 hours (SendGrid's limit)", key="--send-at")
    return int(when.timestamp())


@main.command("send")
@selection_options
@issue_options
@send_options
@click.option(
    "--segment",
    multiple=True,
    metavar="TAG",
    help="Only subscribers with this tag (repeatable: any of them).",
)
@click.option("--dry-run", is_flag=True, help="Do everything but send (memory transport).")
@click.option("--sandbox", is_flag=True, help="SendGrid sandbox mode: validated, not delivered.")
@click.option(
    "--test",
    "test_to",
    multiple=True,
    metavar="ADDRESS",
    help="Send only to this address (repeatable): [TEST] subject, no ledger.",
)
@click.option("--send-at", metavar="DATETIME", help="Schedule delivery (within 72 hours).")
@click.option("--batch-id", default="", help="SendGrid batch id, to cancel a scheduled send.")
@click.option("--new-campaign", is_flag=True, help="Send again even if this was already sent.")
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@click.pass_obj
def send_command(
    app: App,
    segment: tuple[str, ...],
    dry_run: bool,
    sandbox: bool,
    test_to: tuple[str, ...],
    send_at: str | None,
    batch_id: str,
    new_campaign: bool,
    yes: bool,
    **opts: Any,
) -> None:
    """Select posts, render once, and send the issue to every subscriber exactly once.

    The campaign id comes from what is sent (posts, content, layout, segment): running the same
    command again reports "already sent", or finishes an interrupted send.

    \b
    Examples:
      newsletter send --month 2026-10 --yes                 # outbox/ unless SENDGRID_API_KEY
      newsletter send --since last-issue --transport sendgrid
      newsletter send --post my-big-news --test me@example.org
      newsletter send --month 2026-10 --dry-run
    """
    settings = app.settings
    now = resolve_now(opts, settings.site.tz)
    transport_name = "memory" if dry_run else choose_transport(settings, app, opts["transport"])
    if sandbox and transport_name != "sendgrid":
        raise ConfigError("--sandbox needs the sendgrid transport", key="--sandbox")
    send_at_epoch = _parse_send_at(send_at, settings)
    with open_store(settings.db_path) as store:
        selection, issue = select_and_render(app, opts, last_issue=store.campaigns)
        findings = lint_issue(issue, settings, longest=None)
        if findings:
            print_findings(findings)
        if has_errors(findings):
            raise LintFailed("lint found errors (listed above); nothing was sent", list(findings))
        envelope = envelope_for(
            settings, issue, sandbox=sandbox, send_at=send_at_epoch, batch_id=batch_id
        )
        if test_to:
            _send_test(app, store, envelope, test_to, transport_name, now=now)
            return
        segments = tuple(sorted(segment))
        # an outbox send is a rehearsal: it must not make the real SendGrid send "already sent".
        # --new-campaign salts with the real clock, not --now: a fixed --now must not give the
        # second --new-campaign run the id of the first
        fresh = datetime.now(UTC).isoformat() if new_campaign else ""
        salt = "|".join(
            part for part in (fresh, transport_name) if part and part not in ("sendgrid", "memory")
        )
        cid = campaign_id_for(issue, ",".join(segments), salt=salt)
        if dry_run:
            _dry_run(app, store, cid, envelope, segments, opts)
            return
        with CampaignLock(lock_dir_for(settings.db_path), cid):
            existing = store.campaigns.get(cid)
            if existing is not None and existing.state == cs.CANCELLED:
                click.echo(
                    f"campaign {cid} was cancelled ({existing.note}); nothing to do. Use "
                    "--new-campaign to send it after all."
                )
                return
            if existing is not None and existing.state == cs.DONE:
                click.echo(
                    f"campaign {cid} was already sent (finished {existing.finished_at}); "
                    "nothing to do. Use --new-campaign to send it again."
                )
                return
            resuming = existing is not None and existing.state != cs.PREPARING
            # credentials are checked before anything is written
            transport = build_transport(app, transport_name, now=now)
            try:
                personalize = personalizer_for(app, transport_name, cid)
            except NewsletterError:
                transport.close()
                raise
            if transport_name == "sendgrid":
                synced = sync_before_send(
                    app, store, skip=opts.get("skip_sync", False)
                )  # SendGrid's own suppressions first
                if synced:
                    click.echo(f"suppressions: {synced}", err=True)
            if not resuming:
                count = store.audience.count_recipients(segments)
                if count == 0:
                    transport.close()
                    where = f" with tag {', '.join(segments)}" if segments else ""
                    raise ConfigError(
                        f"no subscribers{where} to send to; import some with "
                        "`newsletter subscribers import FILE.csv`"
                    )
                try:
                    _confirm(issue, selection.selected, count, transport_name, cid, yes)
                    if send_at_epoch and not envelope.batch_id:
                        envelope = dataclasses.replace(envelope, batch_id=_new_batch(transport))
                except NewsletterError:
                    transport.close()
                    raise
                total = prepare(
                    store.campaigns,
                    cid,
                    envelope,
                    store.audience.recipient_query(segments),
                    segment=",".join(segments),
                    transport=transport_name,
                    now=datetime.now(UTC),
                    batch_size=prepared_batch_size(settings, opts),
                )
                if total == 0:
                    raise ConfigError("no subscribers to send to (they were all suppressed)")
            else:
                click.echo(f"resuming campaign {cid} (interrupted earlier)", err=True)
            summary = run_dispatch(
                app,
                store,
                cid,
                transport,
                personalize,
                retry_unknown=False,
                overrides=opts,
                show_progress=not opts.get("no_progress"),
                check_suppressions=True,  # before every batch, fresh send or resume
            )
        print_summary(summary, outbox=outbox_folder(settings, transport_name, cid))
        if send_at_epoch and envelope.batch_id and transport_name == "sendgrid":
            when = datetime.fromtimestamp(send_at_epoch, UTC).isoformat(timespec="minutes")
            click.echo(f"scheduled for {when}; to call it off before then: newsletter cancel {cid}")


def _new_batch(transport: Any) -> str:
    """A SendGrid batch id for a scheduled campaign (``newsletter cancel`` needs one)."""
    from newsletter.providers.sendgrid.transport import SendGridTransport

    if not isinstance(transport, SendGridTransport):
        return ""  # the outbox and dry runs have nothing to cancel
    return transport.create_batch()


def _confirm(issue: Any, posts: Any, count: int, transport: str, cid: str, yes: bool) -> None:
    console = stderr_console()
    console.print(f"campaign   {cid}")
    console.print(f"subject    {issue.subject}")
    console.print(f"posts      {len(posts)}: " + ", ".join(p.title for p in posts[:5]))
    console.print(f"recipients {count:,}")
    console.print(f"transport  {transport}")
    if yes:
        return
    if not sys.stdin.isatty():
        raise ConfigError("not confirmed; add --yes to send without a prompt", key="--yes")
    if not click.confirm("Send now?", default=False, err=True):
        raise NewsletterError("not confirmed; nothing was sent")


def _send_test(
    app: App,
    store: Store,
    envelope: Envelope,
    addresses: tuple[str, ...],
    transport_name: str,
    *,
    now: datetime,
) -> None:
    from email_validator import EmailNotValidError, validate_email

    cid = f"test-{campaign_id_for(envelope.issue, '')}"
    personalize = personalizer_for(app, transport_name, cid)
    recipients = []
    for address in dict.fromkeys(addresses):
        try:
            email = validate_email(address, check_deliverability=False).normalized
        except EmailNotValidError as err:
            raise ConfigError(f"{address!r} is not an email address ({err})", key="--test") from err
        sub = store.audience.get_subscriber(email)
        row = LedgerRow(
            str(sub.id) if sub else TEST_RECIPIENT, email, sub.first_name if sub else ""
        )
        recipients.append(personalize(row))
    batch = dataclasses.replace(envelope, subject_prefix="[TEST] ").batch(cid, 0, recipients)
    transport = build_transport(app, transport_name, now=now)
    try:
        transport.send(batch)
    finally:
        transport.close()
    click.echo(f"test sent to {', '.join(r.email for r in recipients)} via {transport_name}")
    folder = outbox_folder(app.settings, transport_name, cid)
    if folder is not None:
        click.echo(f"open {folder / 'index.html'}")


def _dry_run(
    app: App,
    store: Store,
    cid: str,
    envelope: Envelope,
    segments: tuple[str, ...],
    opts: dict[str, Any],
) -> None:
    """Run the whole campaign against a throwaway ledger and the memory transport."""
    with (
        tempfile.TemporaryDirectory(prefix="newsletter-dry-") as tmp,
        open_store(Path(tmp) / "dry.db") as scratch,
    ):
        total = prepare(
            scratch.campaigns,
            cid,
            envelope,
            recipient_rows(store, segments),
            segment=",".join(segments),
            transport="memory",
            now=datetime.now(UTC),
            batch_size=prepared_batch_size(app.settings, opts),
        )
        stderr_console().print(
            f"dry run of campaign {cid}: {total:,} recipients, subject {envelope.issue.subject!r}"
        )
        transport = build_transport(app, "memory", now=datetime.now(UTC))
        summary = run_dispatch(
            app,
            scratch,
            cid,
            transport,
            personalizer_for(app, "memory", cid),
            retry_unknown=False,
            overrides=opts,
            show_progress=False,
            check_suppressions=False,
        )
    print_summary(summary)
    click.echo("dry run: nothing was sent and the ledger is unchanged")
