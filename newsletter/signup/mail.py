"""The confirmation email: rendered once per process, sent from a queue by any transport.

A sign-up writes a row in the store's confirmation queue in the same transaction as the pending
subscriber (:mod:`newsletter.store.signup`); :func:`send_queued` takes rows off it and hands each
email to the configured transport (the outbox in the demo, SendGrid for real), the same
transports and MIME builder a campaign uses. So a slow or failing provider never slows the form
down, a crash loses no email, and a provider that says "try later" gets the email later.
:func:`mail_process_main` runs :func:`send_queued` in a child process of ``newsletter serve``
(:class:`ConfirmationWorker`, a thread, is for tests and embedding).
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from newsletter.config import Secrets, Settings
from newsletter.emailcompile import compile_mjml, inline_css
from newsletter.errors import (
    ConfigError,
    DeliveryUnknown,
    NewsletterError,
    ProviderRejected,
    RateLimited,
    TransportError,
)
from newsletter.rendered import RenderedIssue
from newsletter.signup.tokens import make_confirm_token
from newsletter.store import Store
from newsletter.store.signup import QueuedEmail
from newsletter.transports.base import (
    Batch,
    BatchResult,
    Recipient,
    Sender,
    Status,
    Transport,
)

log = logging.getLogger("newsletter.signup")

CAMPAIGN = "signup-confirmations"  # the outbox folder; never a campaign id of a send
CATEGORY = "signup-confirmation"
_LINK = "https://confirm.invalid/LINK"  # stands for the reader's link until it is filled in
MAX_ATTEMPTS = 8


@dataclass(frozen=True)
class ConfirmationEmail:
    """The email, rendered with a stand-in for the link; :meth:`for_link` fills it in."""

    subject: str
    html: str
    text: str

    @classmethod
    def render(cls, settings: Settings) -> ConfirmationEmail:
        from newsletter.templating import environment, render_template

        env = environment(settings.path(settings.email.templates))
        context = {
            "site": {
                "name": settings.site.name,
                "url": settings.site.url,
                "logo_url": settings.site.logo_url,
                "language": settings.site.language,
            },
            "theme": settings.theme,
            "confirm_url": _LINK,
            "days": settings.signup.confirm_days,
            "postal_address": settings.email.postal_address,
        }
        names = ["signup/confirm_email.mjml.j2"]
        mjml_src = render_template(env, names[0], context)
        html = inline_css(compile_mjml(mjml_src, env, lambda: names), settings.email.inliner)
        text = render_template(env, "signup/confirm_email.txt.j2", context)
        return cls(f"Confirm your subscription to {settings.site.name}", html, text)

    def for_link(self, url: str) -> RenderedIssue:
        return RenderedIssue(
            subject=self.subject,
            preheader="",
            html=self.html.replace(_LINK, url),
            text=self.text.replace(_LINK, url),
            layout="signup-confirmation",
        )


@dataclass(frozen=True)
class Mailer:
    """What :func:`send_queued` needs besides the store."""

    transport: Transport
    email: ConfirmationEmail
    sender: Sender
    secret: str = field(repr=False)
    base_url: str  # public URL of `newsletter serve`


@dataclass
class SendReport:
    """What one :func:`send_queued` call did with the rows it took off the queue."""

    sent: int = 0  # accepted by the transport
    dropped: int = 0  # suppressed since signing up: not mailed
    later: int = 0  # 429/5xx: back on the queue for a later try
    failed: int = 0  # refused, answer lost, or out of tries: off the queue, logged

    @property
    def taken(self) -> int:
        return self.sent + self.dropped + self.later + self.failed


def _batch(mailer: Mailer, row: QueuedEmail) -> Batch:
    from newsletter.signup import confirm_url

    expires = datetime.fromisoformat(row.expires_at)
    token = make_confirm_token(mailer.secret, row.subscriber_id, row.email, expires=expires)
    return Batch(
        campaign_id=CAMPAIGN,
        batch_no=row.id,
        issue=mailer.email.for_link(confirm_url(mailer.base_url, token)),
        sender=mailer.sender,
        recipients=[Recipient(row.email, "", {}, {}, {"recipient_id": f"confirm-{row.id}"})],
        categories=(CATEGORY,),
    )


def _send_one(mailer: Mailer, row: QueuedEmail) -> BatchResult | TransportError:
    try:
        return mailer.transport.send(_batch(mailer, row))
    except TransportError as err:
        return err


def send_queued(
    store: Store,
    mailer: Mailer,
    *,
    now: Callable[[], datetime],
    limit: int = 20,
    concurrency: int = 1,
) -> SendReport:
    """Send what is due in the queue (up to ``limit`` emails, ``concurrency`` requests at a
    time: one request per email, so with SendGrid the round trips overlap); ``taken`` is 0
    when nothing was due.

    An address suppressed since it signed up is dropped, not mailed (unless it was the reader's
    own unsubscribe: they come back by confirming). A provider that says "later" (429, 5xx)
    gets the email later; one that refuses it, or whose answer was lost (the email may have
    gone out), takes it off the queue. Rows sent are taken off the queue together, in one
    transaction per call, so the mail process seldom holds the store's write lock that the
    form needs; a crash in the middle may send up to ``limit`` emails again.
    """
    report = SendReport()
    rows = store.signup.claim(now=now(), limit=limit)
    if not rows:
        return report
    blocked = store.signup.not_to_mail([r.email for r in rows])
    finished = [r.id for r in rows if r.email.strip().lower() in blocked]
    report.dropped = len(finished)
    todo = [r for r in rows if r.email.strip().lower() not in blocked]
    later: dict[int, float] = {}
    try:
        if concurrency > 1 and len(todo) > 1:
            from concurrent.futures import ThreadPoolExecutor

            with ThreadPoolExecutor(min(concurrency, len(todo))) as pool:
                results = list(pool.map(lambda r: _send_one(mailer, r), todo))
        else:
            results = [_send_one(mailer, r) for r in todo]
        for row, result in zip(todo, results, strict=True):
            if isinstance(result, TransportError):
                final = isinstance(result, ProviderRejected | DeliveryUnknown)
                if final or row.attempts + 1 >= MAX_ATTEMPTS:
                    log.warning("confirmation email %s not sent: %s", row.id, result.format())
                    finished.append(row.id)
                    report.failed += 1
                    continue
                retry = result.retry_after if isinstance(result, RateLimited) else None
                later[row.id] = max(retry or 0, 2.0**row.attempts * 5)
                report.later += 1
                log.warning(
                    "confirmation email %s: %s; trying again in %.0f s",
                    row.id,
                    result.format(),
                    later[row.id],
                )
                continue
            finished.append(row.id)
            outcome = result.outcomes[0] if result.outcomes else None
            if outcome is None or outcome.status is not Status.ACCEPTED:
                log.warning("confirmation email %s not accepted: %s", row.id, outcome)
                report.failed += 1
            else:
                report.sent += 1
    finally:
        store.signup.done(finished)
        for rid, wait in later.items():
            store.signup.retry_later([rid], not_before=now() + timedelta(seconds=wait))
    return report


def refuse_unsafe(settings: Settings, secrets: Secrets) -> list[str]:
    """Real confirmation emails (SendGrid) refuse what real sends refuse: a placeholder sender,
    an http link, a weak NEWSLETTER_SECRET (:func:`~newsletter.campaign.wiring.unsafe_settings`).
    Against a local SENDGRID_API_URL (the recording fake, Prism) they are returned as warnings."""
    from newsletter.campaign.wiring import is_local_api, unsafe_settings

    problems = unsafe_settings(settings, secrets)
    if not problems or is_local_api(secrets):
        return [f"{p} (allowed for a local SENDGRID_API_URL)" for p in problems]
    raise ConfigError(
        "confirmation emails would go out through SendGrid with unsafe settings: "
        + "; ".join(problems)
    )


@dataclass(frozen=True)
class MailProcess:
    """What a separate mail process needs (picklable): ``newsletter serve`` sends confirmation
    emails from a child process, so building and writing them (several milliseconds of CPU
    each with the outbox) never holds the web process's GIL (measured in bench/bench_signup.py:
    a mail thread in the web process raised the form's p99 at 200 sign-ups/s)."""

    settings: Settings
    secret: str = field(repr=False)
    transport: str  # "outbox" | "sendgrid"
    poll_seconds: float = 1.0


def build_transport(spec: MailProcess) -> Transport:
    """The transport a mail process sends with; SendGrid's key comes from its environment. The
    outbox dates each message when it is written (a campaign's outbox uses the send's time)."""
    settings = spec.settings
    if spec.transport == "sendgrid":
        from newsletter.campaign import wiring
        from newsletter.config import load_secrets

        secrets = load_secrets(os.environ)
        return wiring.build_transport(settings, secrets, "sendgrid", now=datetime.now(UTC))
    from newsletter.transports.outbox import OutboxTransport

    return OutboxTransport(settings.path(settings.send.outbox_dir))


def mail_process_main(spec: MailProcess, wake: Any, stop: Any) -> None:
    """The mail process: send what is queued whenever ``wake`` is set (and every
    ``poll_seconds``), until ``stop`` is set. ``wake`` and ``stop`` are multiprocessing Events."""
    from newsletter.signup import Policy
    from newsletter.store import open_store

    with contextlib.suppress(AttributeError, OSError):
        os.nice(10)  # background work: the form's answers come first when the CPU is short
    settings = spec.settings
    e = settings.email
    mailer = Mailer(
        transport=build_transport(spec),
        email=ConfirmationEmail.render(settings),
        sender=Sender(e.from_email, e.from_name, e.reply_to),
        secret=spec.secret,
        base_url=Policy.from_settings(settings).base_url,
    )

    def now() -> datetime:
        return datetime.now(UTC)

    try:
        with open_store(settings.store_target) as store:
            while not stop.is_set():
                wake.wait(spec.poll_seconds)
                wake.clear()
                try:
                    while (
                        send_queued(
                            store, mailer, now=now, concurrency=settings.send.concurrency
                        ).taken
                        and not stop.is_set()
                    ):
                        pass
                except NewsletterError as err:
                    log.error("confirmation emails not sent this round: %s", err.format())
    except KeyboardInterrupt:  # Ctrl-C reaches the whole process group
        pass
    finally:
        mailer.transport.close()


class ConfirmationWorker:
    """A thread that sends queued confirmation emails: woken by :meth:`wake` after a sign-up,
    and every ``poll_seconds`` anyway (retries, and rows another process left)."""

    def __init__(
        self,
        store_path: Path | str,
        mailer: Mailer,
        *,
        now: Callable[[], datetime],
        poll_seconds: float = 5.0,
    ) -> None:
        self.store_path = store_path
        self.mailer = mailer
        self.now = now
        self.poll_seconds = poll_seconds
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="signup-mail", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def wake(self) -> None:
        self._wake.set()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout)
        self.mailer.transport.close()

    def _run(self) -> None:
        from newsletter.store import open_store

        with open_store(self.store_path) as store:
            while not self._stop.is_set():
                self._wake.wait(self.poll_seconds)
                self._wake.clear()
                try:
                    while (
                        send_queued(store, self.mailer, now=self.now).taken
                        and not self._stop.is_set()
                    ):
                        pass
                except NewsletterError as err:  # e.g. the store stayed locked: try next round
                    log.error("confirmation emails not sent this round: %s", err.format())
                except Exception:  # the thread's root: a bug must not stop every later email
                    log.exception("confirmation emails not sent this round")
