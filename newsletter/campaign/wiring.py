"""Turning settings and secrets into the parts of a send: transport, personalizer, envelope,
pacing, and the run of the dispatcher with signals that pause instead of killing.

Used by :class:`newsletter.Newsletter` only; scripts and the CLI go through that object.
"""

from __future__ import annotations

import gc
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import FrameType
from typing import Any
from urllib.parse import urlsplit

from newsletter.campaign.dispatcher import (
    Dispatcher,
    Envelope,
    Options,
    Personalizer,
    ProgressFn,
    Sharing,
    Summary,
)
from newsletter.config import Secrets, Settings
from newsletter.errors import ConfigError, SecretMissing
from newsletter.rendered import RenderedIssue
from newsletter.store import Store
from newsletter.transports.base import Sender, Transport
from newsletter.transports.pacing import Backoff, Pacer, Wait, max_batch
from newsletter.unsubscribe import (
    SECRET_FILE,
    UnsubscribeLinks,
    signing_secret,
    unsubscribe_url,
)

TRANSPORTS = ("auto", "outbox", "sendgrid")
TEST_RECIPIENT = "0"
Log = Callable[[str], None]


def secret_path(settings: Settings) -> Path:
    """Where a generated signing secret is kept for outbox/demo sends (never for SendGrid).

    The same file ``newsletter serve`` reads, so the demo's unsubscribe links work there.
    """
    return settings.db_path.parent / SECRET_FILE


def choose_transport(settings: Settings, secrets: Secrets, requested: str | None) -> str:
    name = requested or settings.send.transport
    if name not in (*TRANSPORTS, "memory"):
        raise ConfigError(f"unknown transport {name!r}; use {', '.join(TRANSPORTS)}")
    if name == "auto":
        name = "sendgrid" if secrets.sendgrid_api_key else "outbox"
    return name


def is_local_api(secrets: Secrets) -> bool:
    """SENDGRID_API_URL points at this machine (the recording fake, Prism): nothing is delivered."""
    host = urlsplit(secrets.sendgrid_api_url).hostname or ""
    return host in ("localhost", "::1") or host.startswith("127.")


def unsafe_settings(settings: Settings, secrets: Secrets) -> list[str]:
    """What makes a real send unsafe, one line each with the setting and what to do.

    The local checks of ``newsletter doctor`` that fail for a SendGrid send (a placeholder or
    missing sender, unsubscribe links that are not public https, a NEWSLETTER_SECRET under 32
    bytes, no postal address): one place for those rules.
    """
    from newsletter.doctor import failures, local_checks

    checks = failures(local_checks(settings, secrets, transport="sendgrid"))
    return [f"{c.setting or c.name}: {c.message} ({c.fix})" for c in checks]


def build_transport(settings: Settings, secrets: Secrets, name: str, *, now: datetime) -> Transport:
    if name == "sendgrid":
        from newsletter.providers.sendgrid.transport import SendGridTransport

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


def personalizer_for(
    settings: Settings, secrets: Secrets, transport: str, campaign_id: str
) -> Personalizer:
    secret = signing_secret(
        secrets, allow_generated=transport != "sendgrid", keep_at=secret_path(settings)
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
    settings: Settings, issue: RenderedIssue, *, sandbox: bool, send_at: int, batch_id: str
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


def pacing_limits(
    settings: Settings, per_second: float | None, per_hour: int | None
) -> tuple[float, int]:
    """(recipients per second, per hour): the options, else the settings; 0 = no limit."""
    s = settings.send
    return float(per_second or s.max_per_second), int(per_hour or s.max_per_hour)


def prepared_batch_size(settings: Settings, per_second: float, per_hour: int, log: Log) -> int:
    """The batch size to prepare with: capped so one request never exceeds a rate limit."""
    size = settings.send.batch_size
    capped = max_batch(per_second, per_hour, size)
    if capped < size:
        why = f"{per_hour:,} per hour" if per_hour == capped else f"{per_second:g} per second"
        log(
            f"batches of {capped:,} recipients (not {size:,}): one request must not exceed "
            f"the limit of {why}"
        )
    return capped


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
    settings: Settings,
    store: Store,
    campaign_id: str,
    transport: Transport,
    personalize: Personalizer,
    *,
    retry_unknown: bool,
    concurrency: int | None,
    per_second: float,
    per_hour: int,
    retry_base: float | None,
    check_suppressions: bool,
    progress: ProgressFn | None,
    log: Log,
    sharing: Sharing | None = None,
) -> Summary:
    """Send a prepared campaign's remaining batches from its frozen envelope.

    With ``sharing`` (a PostgreSQL store), this process is one of several senders: it claims
    batches one at a time instead of taking all pending ones.

    SIGINT, SIGTERM and SIGHUP (Ctrl-C, ``systemctl stop``, ``docker stop``, a cancelled CI
    job) all pause: no new batch is taken, the requests in flight are answered and recorded,
    and the campaign is left ``paused`` with nothing ``unknown``.
    """
    s = settings.send
    envelope = Envelope.from_json(store.campaigns.envelope(campaign_id))
    pacer = Pacer(per_second=per_second, per_hour=per_hour)
    seed_hourly_window(pacer, store, campaign_id, now=datetime.now(UTC))
    dispatcher = Dispatcher(
        store.campaigns,
        transport,
        envelope,
        personalize,
        options=Options(
            concurrency=concurrency or s.concurrency,
            max_retries=s.max_retries,
            max_consecutive_failures=s.max_consecutive_failures,
            batch_size=s.batch_size,
        ),
        pacer=pacer,
        backoff=Backoff(
            base=1.0 if retry_base is None else retry_base, max_wait=s.max_wait_seconds
        ),
        now=lambda: datetime.now(UTC),
        suppressed=store.audience.suppressed_among if check_suppressions else None,
        on_progress=progress,
        sharing=sharing,
    )
    dispatcher.on_wait = lambda wait: announce_wait(wait, log)
    # Everything alive now (modules, the rendered issue, settings) outlives the send. Sending
    # makes a few short-lived objects per recipient, which start collections that would
    # otherwise walk all of those again and again (about 10% of a send's CPU).
    gc.freeze()
    # On PostgreSQL every store call is a network round trip: the main thread gives up the GIL
    # to wait for the answer, then waits up to the switch interval (5 ms) to get it back from
    # the request threads. Several calls per batch made that most of a send's time; a shorter
    # interval while sending hands the GIL back sooner.
    interval = sys.getswitchinterval()
    if sharing is not None:
        sys.setswitchinterval(0.0005)
    try:
        with signals_pause(dispatcher, log):
            return dispatcher.run(campaign_id, retry_unknown=retry_unknown)
    finally:
        sys.setswitchinterval(interval)
        gc.unfreeze()  # collectable again (matters when the caller goes on, as tests do)
        transport.close()


# waits at least this long are logged (a 429's wait always is: SendGrid asked for it)
ANNOUNCE_WAIT_SECONDS = 5.0


def announce_wait(wait: Wait, log: Log) -> None:
    """Say what the send waits for and until when (``waiting for ... until 14:05:12 UTC``)."""
    if wait.seconds >= ANNOUNCE_WAIT_SECONDS or wait.asked is not None:
        log(wait.describe())


PAUSING_SIGNALS = {
    signal.SIGINT: "Ctrl-C",
    signal.SIGTERM: "SIGTERM",
    signal.SIGHUP: "SIGHUP",
}


@contextmanager
def signals_pause(dispatcher: Dispatcher, log: Log) -> Iterator[None]:
    """First signal: finish the requests in flight, then pause. A second: stop at once."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: FrameType | None) -> None:
        if dispatcher.stop.is_set():
            # the second signal: die of it at once, as if it had never been caught. Batches in
            # flight stay `sending` in the ledger and are `unknown` on the next run.
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)
            return
        dispatcher.stop_reason = PAUSING_SIGNALS.get(signal.Signals(signum), "a signal")
        dispatcher.stop.set()
        log(
            f"{dispatcher.stop_reason}: stopping after the requests in flight "
            "(send it again to quit now)"
        )

    previous: dict[signal.Signals, Any] = {}
    for sig in PAUSING_SIGNALS:
        previous[sig] = signal.signal(sig, handler)
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
