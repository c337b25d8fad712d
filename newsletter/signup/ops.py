"""Sign-up operations on a whole site (settings in, a result out), for the CLI and scripts:
which transport confirmation emails leave by, sending them now, purging expired sign-ups, and
the mail process ``newsletter serve`` starts (its web part is
:func:`newsletter.web.signup.signup_for_serve`)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from newsletter.config import Secrets, Settings
from newsletter.signup import Policy, purge_pending, queue_confirmations
from newsletter.signup.mail import (
    ConfirmationEmail,
    Mailer,
    refuse_unsafe,
    send_queued,
)
from newsletter.store import open_store
from newsletter.transports.base import Sender, Transport

Log = Callable[[str], None]


def _now() -> datetime:
    return datetime.now(UTC)


def mail_transport(
    settings: Settings, secrets: Secrets, requested: str | None = None, *, log: Log
) -> Transport:
    """The transport confirmation emails leave by: ``send.transport`` (auto: SendGrid when
    SENDGRID_API_KEY is set, else the outbox). Real mail is refused with unsafe settings."""
    from newsletter.campaign.wiring import build_transport, choose_transport
    from newsletter.transports.outbox import OutboxTransport

    name = choose_transport(settings, secrets, requested)
    if name == "sendgrid":
        for warning in refuse_unsafe(settings, secrets):
            log(f"warning: {warning}")
        return build_transport(settings, secrets, name, now=_now())
    return OutboxTransport(settings.path(settings.send.outbox_dir))


def send_confirmations(
    settings: Settings,
    secrets: Secrets,
    *,
    transport: str | None = None,
    queue_unmailed: bool = True,
    log: Log,
) -> tuple[int, int]:
    """Queue a confirmation email for every pending subscriber never sent one (with
    ``queue_unmailed``), then send everything due now; returns (sent, queued)."""
    from newsletter.unsubscribe import SECRET_FILE, signing_secret

    policy = Policy.from_settings(settings)
    sender = mail_transport(settings, secrets, transport, log=log)
    secret = signing_secret(
        secrets,
        allow_generated=sender.name != "sendgrid",
        keep_at=settings.db_path.parent / SECRET_FILE,
    )
    e = settings.email
    mailer = Mailer(
        sender,
        ConfirmationEmail.render(settings),
        Sender(e.from_email, e.from_name, e.reply_to),
        secret,
        policy.base_url,
    )
    sent = queued = 0
    try:
        with open_store(settings.store_target) as store:
            if queue_unmailed:
                queued = queue_confirmations(store, policy=policy, now=_now())
            while True:
                report = send_queued(store, mailer, now=_now, concurrency=settings.send.concurrency)
                if not report.taken:
                    break
                sent += report.sent
    finally:
        sender.close()
    return sent, queued


def purge_expired(settings: Settings, *, now: datetime, dry_run: bool = False) -> int:
    """Delete (or with ``dry_run`` count) pending subscribers whose link has expired."""
    policy = Policy.from_settings(settings)
    with open_store(settings.store_target) as store:
        if dry_run:
            return store.signup.count_expired_pending(now=now, older_than=policy.confirm_for)
        return purge_pending(store, policy=policy, now=now)
