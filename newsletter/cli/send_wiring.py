"""Wiring for the send commands: transports, secrets, personalization, progress, summaries.

The composition root of dispatch: the only code that turns settings and environment secrets
into a transport, a :class:`~newsletter.dispatch.Personalizer` and a running dispatcher.

Exit codes: 0 sent (or already sent), 4 another process is sending this campaign, 5 paused
(progress saved; ``resume`` continues), 6 finished but some recipients were rejected, failed
or are unknown (``status`` says which and why).
"""

from __future__ import annotations

import gc
import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import FrameType
from typing import Any

import click
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TaskProgressColumn,
    TextColumn,
    TimeRemainingColumn,
)
from rich.table import Table
from rich.text import Text

from newsletter.cli import App
from newsletter.config import Settings
from newsletter.dispatch import (
    Dispatcher,
    Envelope,
    Options,
    Personalizer,
    Summary,
)
from newsletter.errors import ConfigError, NewsletterError, SecretMissing
from newsletter.pacing import Backoff, Pacer, Wait, max_batch
from newsletter.store import Store
from newsletter.store import campaigns as cs
from newsletter.transports.base import Sender, Transport
from newsletter.unsubscribe import (
    SECRET_FILE,
    UnsubscribeLinks,
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


def stderr_console() -> Console:
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
        from newsletter.providers.sendgrid.transport import SendGridTransport

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
    links = UnsubscribeLinks(secret, base, settings.unsubscribe.mailto)
    make_url = links.url
    test_url = unsubscribe_url(base, "test-send")

    def url(recipient_id: str, email: str) -> str:
        if recipient_id == TEST_RECIPIENT:  # a --test address that is not a subscriber
            return test_url
        return make_url(int(recipient_id), email)

    return Personalizer(campaign_id, url, links.headers, settings.email.first_name_fallback)


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


def dispatch_options(settings: Settings, overrides: dict[str, Any]) -> Options:
    s = settings.send
    return Options(
        concurrency=overrides.get("concurrency") or s.concurrency,
        max_retries=s.max_retries,
        max_consecutive_failures=s.max_consecutive_failures,
        batch_size=max(1, min(1000, s.batch_size)),
    )


def pacing_limits(settings: Settings, overrides: dict[str, Any]) -> tuple[float, int]:
    """(recipients per second, per hour) from the flags, else the config; 0 = no limit."""
    per_second = overrides.get("max_per_second") or settings.send.max_per_second
    per_hour = overrides.get("max_per_hour") or settings.send.max_per_hour
    return float(per_second), int(per_hour)


def prepared_batch_size(settings: Settings, overrides: dict[str, Any]) -> int:
    """The batch size to prepare with: capped so one request never exceeds a rate limit."""
    size = dispatch_options(settings, overrides).batch_size
    per_second, per_hour = pacing_limits(settings, overrides)
    capped = max_batch(per_second, per_hour, size)
    if capped < size:
        why = f"{per_hour:,} per hour" if per_hour == capped else f"{per_second:g} per second"
        stderr_console().print(
            f"batches of {capped:,} recipients (not {size:,}): one request must not exceed "
            f"the limit of {why}"
        )
    return capped


def _progress_bar(
    enabled: bool, waiting: Callable[[], Wait | None] = lambda: None
) -> tuple[Progress | None, Callable[[int, int], None] | None]:
    if not enabled:
        return None, None
    progress = Progress(
        TextColumn("sending"),
        BarColumn(),
        MofNCompleteColumn(),
        TaskProgressColumn(),
        TextColumn("{task.fields[rate]} recipients/s"),
        TimeRemainingColumn(),
        _WaitColumn(waiting),
        console=stderr_console(),
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


class _WaitColumn(ProgressColumn):
    """What the send waits for and until when, while it waits (redrawn as time passes)."""

    def __init__(self, waiting: Callable[[], Wait | None]) -> None:
        super().__init__()
        self.waiting = waiting

    def render(self, task: Task) -> Text:
        wait = self.waiting()
        if wait is None or wait.until <= datetime.now(UTC):
            return Text("")
        return Text(f"waiting for {wait.reason} until {wait.until:%H:%M:%S} UTC", style="yellow")


# waits at least this long are also printed as a line of their own (logs, --no-progress)
_ANNOUNCE_WAIT_SECONDS = 5.0


def _announce_wait(wait: Wait) -> None:
    if wait.seconds >= _ANNOUNCE_WAIT_SECONDS or wait.asked is not None:
        stderr_console().print(wait.describe(), highlight=False)


def seed_hourly_window(pacer: Pacer, store: Store, campaign_id: str, *, now: datetime) -> None:
    """Give the pacer the last hour's requests through this campaign's transport.

    Without it a new process (a resume, the next campaign) would start its hourly count at zero
    and could send a whole hour's allowance again.
    """
    campaign = store.campaigns.get(campaign_id)
    if not pacer.per_hour or campaign is None:
        return
    sends = store.campaigns.recent_sends(campaign.transport, since=now - timedelta(hours=1))
    pacer.already_sent(((now - at).total_seconds(), n) for at, n in sends)


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
    per_second, per_hour = pacing_limits(settings, overrides)
    pacer = Pacer(per_second=per_second, per_hour=per_hour)
    seed_hourly_window(pacer, store, campaign_id, now=datetime.now(UTC))
    base = overrides.get("retry_base")
    audience = store.audience
    dispatcher = Dispatcher(
        store.campaigns,
        transport,
        envelope,
        personalize,
        options=dispatch_options(settings, overrides),
        pacer=pacer,
        backoff=Backoff(
            base=1.0 if base is None else base, max_wait=settings.send.max_wait_seconds
        ),
        now=lambda: datetime.now(UTC),
        suppressed=audience.suppressed_among if check_suppressions else None,
        on_progress=None,
    )
    progress, update = _progress_bar(show_progress, lambda: dispatcher.waiting)
    dispatcher.on_progress = update
    dispatcher.on_wait = _announce_wait
    # Everything alive now (modules, the rendered issue, settings) outlives the send. Sending
    # makes a few short-lived objects per recipient, which start collections that would
    # otherwise walk all of those again and again (about 10% of a send's CPU).
    gc.freeze()
    try:
        with _ctrl_c_pauses(dispatcher.stop):
            if progress is not None:
                with progress:
                    return dispatcher.run(campaign_id, retry_unknown=retry_unknown)
            return dispatcher.run(campaign_id, retry_unknown=retry_unknown)
    finally:
        gc.unfreeze()  # collectable again (matters when the caller goes on, as tests do)
        transport.close()


@contextmanager
def _ctrl_c_pauses(stop: threading.Event) -> Iterator[None]:
    """First Ctrl-C: finish the requests in flight, then pause. Second: stop at once."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: FrameType | None) -> None:
        if stop.is_set():
            raise KeyboardInterrupt
        stop.set()
        stderr_console().print("stopping after the requests in flight (Ctrl-C again to quit now)")

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def print_summary(summary: Summary, *, outbox: Path | None = None) -> None:
    console = stderr_console()
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


def recipient_rows(store: Store, segments: tuple[str, ...]) -> Iterator[tuple[str, str, str]]:
    for sid, email, first_name in store.audience.iter_recipient_rows(segments):
        yield str(sid), email, first_name


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
            click.option(
                "--skip-sync",
                is_flag=True,
                help="Do not pull SendGrid's suppression lists first (the local list still "
                "applies).",
            ),
        ]
    ):
        f = option(f)
    return f


def outbox_folder(settings: Settings, transport_name: str, cid: str) -> Path | None:
    if transport_name != "outbox":
        return None
    return settings.path(settings.send.outbox_dir) / cid
