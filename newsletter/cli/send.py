"""``newsletter send``, ``resume``, ``status`` and ``campaigns``: the composition root of dispatch.

Exit codes: 0 sent (or already sent), 4 another process is sending this campaign, 5 paused
(progress saved; ``resume`` continues), 6 finished but some recipients were rejected, failed
or are unknown (``status`` says which and why).
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from newsletter.cli import App, main
from newsletter.cli.audience import sync_before_send
from newsletter.cli.options import load_selection, resolve_now, selection_options
from newsletter.cli.render import issue_options, print_findings
from newsletter.config import Settings
from newsletter.dispatch import (
    Dispatcher,
    Envelope,
    Options,
    Personalizer,
    Summary,
    campaign_id_for,
    prepare,
)
from newsletter.errors import ConfigError, LintFailed, NewsletterError, SecretMissing
from newsletter.lint import has_errors, lint_issue
from newsletter.pacing import Backoff, Pacer
from newsletter.render import load_intro, render_issue
from newsletter.store import Store, open_store
from newsletter.store import campaigns as cs
from newsletter.store.campaigns import CampaignLock, CampaignStatus, LedgerRow, lock_dir_for
from newsletter.transports.base import Batch, Sender, Transport
from newsletter.unsubscribe import (
    SECRET_FILE,
    list_unsubscribe_headers,
    make_token,
    signing_secret,
    unsubscribe_url,
)

TRANSPORTS = ("auto", "outbox", "sendgrid")
TEST_RECIPIENT = "0"


class CampaignPaused(NewsletterError):
    """The send stopped with progress saved (too many failures, Ctrl-C, bad credentials)."""

    exit_code = 5


class CampaignIncomplete(NewsletterError):
    """The send finished, but not every recipient was accepted."""

    exit_code = 6


def _err() -> Console:
    return Console(stderr=True, highlight=False, markup=False, soft_wrap=True)


def secret_path(settings: Settings) -> Path:
    """Where a generated signing secret is kept for outbox/demo sends (never for SendGrid).

    The same file ``newsletter serve`` reads, so the demo's unsubscribe links work there.
    """
    return settings.db_path.parent / SECRET_FILE


def choose_transport(settings: Settings, app: App, requested: str | None) -> str:
    name = requested or settings.send.transport
    if name not in TRANSPORTS:
        raise ConfigError(f"unknown transport {name!r}; use {', '.join(TRANSPORTS)}")
    if name == "auto":
        name = "sendgrid" if app.secrets.sendgrid_api_key else "outbox"
    return name


def build_transport(app: App, name: str, *, now: datetime) -> Transport:
    settings = app.settings
    if name == "sendgrid":
        from newsletter.transports.sendgrid import SendGridTransport

        secrets = app.secrets
        if not secrets.sendgrid_api_key:
            raise SecretMissing(
                "SENDGRID_API_KEY is not set; export it (a key with Mail Send permission), or "
                "use --transport outbox to write the messages to files"
            )
        return SendGridTransport(
            secrets.sendgrid_api_key,
            api_url=secrets.sendgrid_api_url,
            timeout=settings.send.timeout_seconds,
        )
    if name == "memory":
        from newsletter.transports.memory import MemoryTransport

        return MemoryTransport(keep_bodies=False)
    from newsletter.transports.outbox import OutboxTransport

    return OutboxTransport(settings.path(settings.send.outbox_dir), now=lambda: now)


def personalizer_for(app: App, transport: str, campaign_id: str) -> Personalizer:
    settings = app.settings
    secret = signing_secret(
        app.secrets, allow_generated=transport != "sendgrid", keep_at=secret_path(settings)
    )
    base = settings.unsubscribe.base_url
    mailto = settings.unsubscribe.mailto

    def url(recipient_id: str, email: str) -> str:
        if recipient_id == TEST_RECIPIENT:  # a --test address that is not a subscriber
            return base.rstrip("/") + "/u/test-send"
        return unsubscribe_url(base, make_token(secret, int(recipient_id), email))

    return Personalizer(
        campaign_id,
        url,
        lambda u: list_unsubscribe_headers(u, mailto),
        settings.email.first_name_fallback,
    )


def envelope_for(
    settings: Settings, issue: Any, *, sandbox: bool, send_at: int, batch_id: str
) -> Envelope:
    e = settings.email
    return Envelope(
        issue=issue,
        sender=Sender(email=e.from_email, name=e.from_name, reply_to=e.reply_to),
        categories=settings.send.categories,
        asm_group_id=settings.send.asm_group_id,
        send_at=send_at,
        batch_id=batch_id,
        sandbox=sandbox,
    )


def _options(settings: Settings, overrides: dict[str, Any]) -> Options:
    s = settings.send
    return Options(
        concurrency=overrides.get("concurrency") or s.concurrency,
        max_retries=s.max_retries,
        max_consecutive_failures=s.max_consecutive_failures,
        batch_size=max(1, min(1000, s.batch_size)),
    )


def _progress_bar(enabled: bool) -> tuple[Progress | None, Callable[[int, int], None] | None]:
    if not enabled:
        return None, None
    progress = Progress(
        TextColumn("sending"),
        BarColumn(),
        MofNCompleteColumn(),
        TaskProgressColumn(),
        TextColumn("{task.fields[rate]} recipients/s"),
        TimeRemainingColumn(),
        console=_err(),
        transient=False,
    )
    task = progress.add_task("send", total=None, rate="-")
    started = time.monotonic()
    first: list[int] = []

    def update(done: int, total: int) -> None:
        if not first:
            first.append(done)
        elapsed = max(time.monotonic() - started, 1e-6)
        rate = f"{(done - first[0]) / elapsed:,.0f}"
        progress.update(task, completed=done, total=total, rate=rate)

    return progress, update


def run_dispatch(
    app: App,
    store: Store,
    campaign_id: str,
    transport: Transport,
    personalize: Personalizer,
    *,
    retry_unknown: bool,
    overrides: dict[str, Any],
    show_progress: bool,
    check_suppressions: bool,
) -> Summary:
    settings = app.settings
    envelope = Envelope.from_json(store.campaigns.envelope(campaign_id))
    pacer = Pacer(
        per_second=overrides.get("max_per_second") or settings.send.max_per_second,
        per_hour=overrides.get("max_per_hour") or settings.send.max_per_hour,
    )
    base = overrides.get("retry_base")
    audience = store.audience
    dispatcher = Dispatcher(
        store.campaigns,
        transport,
        envelope,
        personalize,
        options=_options(settings, overrides),
        pacer=pacer,
        backoff=Backoff(base=base) if base is not None else Backoff(),
        now=lambda: datetime.now(UTC),
        suppressed=audience.is_suppressed if check_suppressions else None,
        on_progress=None,
    )
    progress, update = _progress_bar(show_progress)
    dispatcher.on_progress = update
    try:
        if progress is not None:
            with progress:
                return dispatcher.run(campaign_id, retry_unknown=retry_unknown)
        return dispatcher.run(campaign_id, retry_unknown=retry_unknown)
    finally:
        transport.close()


def print_summary(summary: Summary, *, outbox: Path | None = None) -> None:
    console = _err()
    table = Table(title=f"campaign {summary.campaign_id}: {summary.state}")
    table.add_column("state")
    table.add_column("recipients", justify="right")
    for state in cs.BATCH_STATES:
        n = summary.counts.get(state, 0)
        if n:
            table.add_row(state, f"{n:,}")
    table.add_row("total", f"{summary.total:,}")
    console.print(table)
    rate = summary.accepted_now / summary.elapsed if summary.elapsed > 0 else 0.0
    console.print(
        f"this run: {summary.accepted_now:,} accepted in {summary.elapsed:.1f} s "
        f"({rate:,.0f}/s), {summary.requests} requests, {summary.retries} retries"
    )
    for state, reason, n in summary.errors[:10]:
        console.print(f"  {state}: {n:,} — {reason}")
    if outbox is not None:
        console.print(f"messages written to {outbox}/ — open {outbox / 'index.html'}")
    if summary.state == cs.PAUSED:
        raise CampaignPaused(summary.note)
    if any(summary.counts.get(s, 0) for s in (cs.REJECTED, cs.FAILED, cs.UNKNOWN)):
        raise CampaignIncomplete(
            summary.note
            or f"not every recipient was accepted; `newsletter status {summary.campaign_id}` "
            "lists the reasons"
        )


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


def _recipient_rows(store: Store, segments: tuple[str, ...]) -> Iterator[tuple[str, str, str]]:
    for sub in store.audience.iter_recipients(segments):
        yield str(sub.id), sub.email, sub.first_name


def send_options(f: Callable[..., Any]) -> Callable[..., Any]:
    for option in reversed(
        [
            click.option(
                "--transport",
                type=click.Choice(TRANSPORTS),
                help="outbox (files), sendgrid, or auto: sendgrid when SENDGRID_API_KEY is set.",
            ),
            click.option(
                "--concurrency",
                type=click.IntRange(1, 64),
                help="Requests in flight at once (default: send.concurrency, 4).",
            ),
            click.option(
                "--max-per-second",
                type=click.FloatRange(min=0),
                help="At most this many recipients per second (default: no limit).",
            ),
            click.option(
                "--max-per-hour",
                type=click.IntRange(min=0),
                help="At most this many recipients per hour (default: no limit).",
            ),
            click.option(
                "--retry-base",
                type=click.FloatRange(min=0),
                help="First retry wait in seconds (doubles each time, with jitter). Default 1.",
            ),
            click.option("--no-progress", is_flag=True, help="No progress bar."),
        ]
    ):
        f = option(f)
    return f


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
        _, selection = load_selection(app, opts, last_issue=store.campaigns)
        if not selection.selected:
            raise ConfigError(
                "no post matches the selection; nothing to send (see `newsletter posts`)"
            )
        layout = opts.get("layout") or ("post" if opts.get("post") else "digest")
        issue = render_issue(
            selection.selected,
            settings,
            layout=layout,
            now=now,
            subject=opts.get("subject"),
            intro=load_intro(settings, opts.get("intro_file")),
        )
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
        # an outbox send is a rehearsal: it must not make the real SendGrid send "already sent"
        salt = "|".join(
            part
            for part in (now.isoformat() if new_campaign else "", transport_name)
            if part and part not in ("sendgrid", "memory")
        )
        cid = campaign_id_for(issue, ",".join(segments), salt=salt)
        if dry_run:
            _dry_run(app, store, cid, envelope, segments, opts)
            return
        with CampaignLock(lock_dir_for(settings.db_path), cid):
            existing = store.campaigns.get(cid)
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
                synced = sync_before_send(app, store)  # SendGrid's own suppressions first
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
                except NewsletterError:
                    transport.close()
                    raise
                total = prepare(
                    store.campaigns,
                    cid,
                    envelope,
                    _recipient_rows(store, segments),
                    segment=",".join(segments),
                    transport=transport_name,
                    now=datetime.now(UTC),
                    batch_size=_options(settings, opts).batch_size,
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
                check_suppressions=resuming,
            )
        print_summary(summary, outbox=_outbox_dir(settings, transport_name, cid))


def _outbox_dir(settings: Settings, transport_name: str, cid: str) -> Path | None:
    if transport_name != "outbox":
        return None
    return settings.path(settings.send.outbox_dir) / cid


def _confirm(issue: Any, posts: Any, count: int, transport: str, cid: str, yes: bool) -> None:
    console = _err()
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
    batch = Batch(
        campaign_id=cid,
        batch_no=0,
        issue=envelope.issue,
        sender=envelope.sender,
        recipients=recipients,
        categories=envelope.categories,
        asm_group_id=envelope.asm_group_id,
        send_at=envelope.send_at,
        batch_id=envelope.batch_id,
        sandbox=envelope.sandbox,
        subject_prefix="[TEST] ",
    )
    transport = build_transport(app, transport_name, now=now)
    try:
        transport.send(batch)
    finally:
        transport.close()
    click.echo(f"test sent to {', '.join(r.email for r in recipients)} via {transport_name}")
    folder = _outbox_dir(app.settings, transport_name, cid)
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
            _recipient_rows(store, segments),
            segment=",".join(segments),
            transport="memory",
            now=datetime.now(UTC),
            batch_size=_options(app.settings, opts).batch_size,
        )
        _err().print(
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
                synced = sync_before_send(app, store)
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
        print_summary(summary, outbox=_outbox_dir(settings, name, campaign))


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
    if as_json:
        click.echo(json.dumps(status.as_json(), indent=2, ensure_ascii=False))
        return
    _print_status(status)


def _print_status(status: CampaignStatus) -> None:
    c = status.campaign
    console = Console(highlight=False, markup=False)
    console.print(f"campaign  {c.id}  [{c.state}]")
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
        table.add_row(c.id, c.state, c.created_at, f"{c.total:,}", f"{accepted:,}", c.subject)
    Console(
        highlight=False,
        width=max(120, os.get_terminal_size().columns if sys.stdout.isatty() else 160),
    ).print(table)
