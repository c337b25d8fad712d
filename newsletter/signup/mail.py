"""The confirmation email: rendered once per process, sent from a queue by any transport.

A sign-up writes a row in the store's confirmation queue in the same transaction as the pending
subscriber (:mod:`newsletter.store.signup`); :func:`send_queued` takes rows off it and hands
them to the configured transport in batches (the outbox in the demo, SendGrid for real: one
request for up to :data:`BATCH_SIZE` readers, each with their own link), the same transports,
MIME builder and per-recipient values a campaign uses. So a slow or failing provider never slows
the form down, a crash loses no email, a provider that says "try later" gets the email later,
and a burst of sign-ups costs a few requests, not one per reader.
:func:`mail_process_main` runs :func:`send_queued` in a child process of ``newsletter serve``
(:class:`ConfirmationWorker`, a thread, is for tests and embedding).
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cached_property
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
    RenderError,
    TransportError,
)
from newsletter.personalize import CONFIRM_URL, values_for
from newsletter.rendered import RenderedIssue
from newsletter.signup.tokens import make_confirm_token
from newsletter.store import Store
from newsletter.store.keys import email_key
from newsletter.store.signup import QueuedEmail
from newsletter.transports.base import (
    Batch,
    BatchResult,
    Recipient,
    Sender,
    Status,
    Transport,
)
from newsletter.transports.isolating import send_isolating

log = logging.getLogger("newsletter.signup")

CAMPAIGN = "signup-confirmations"  # the outbox folder; never a campaign id of a send
CATEGORY = "signup-confirmation"
MAX_ATTEMPTS = 8
# readers per request. SendGrid takes 1000 personalizations; 100 keeps what one refused or lost
# request can cost small (a lost answer takes its whole batch off the queue) while a burst of
# sign-ups still goes out in a handful of requests (measured in bench/bench_signup.py).
BATCH_SIZE = 100


@dataclass(frozen=True)
class ConfirmationEmail:
    """The email, rendered once with the ``%%CONFIRM_URL%%`` token where each reader's link
    goes; a transport fills it in per reader like a campaign's unsubscribe link
    (:mod:`newsletter.personalize`): SendGrid by ``substitutions``, the outbox by itself."""

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
            "confirm_url": CONFIRM_URL,
            "days": settings.signup.confirm_days,
            "postal_address": settings.email.postal_address,
        }
        names = ["signup/confirm_email.mjml.j2"]
        mjml_src = render_template(env, names[0], context)
        html = inline_css(compile_mjml(mjml_src, env, lambda: names), settings.email.inliner)
        text = render_template(env, "signup/confirm_email.txt.j2", context)
        for name, part in ((names[0], html), ("signup/confirm_email.txt.j2", text)):
            if CONFIRM_URL not in part:  # an email without its link is no use to the reader
                raise RenderError(
                    "the confirmation email has no link: put {{ confirm_url }} in it",
                    template=name,
                )
        return cls(f"Confirm your subscription to {settings.site.name}", html, text)

    @cached_property
    def issue(self) -> RenderedIssue:
        """The email as a transport sends it (its parts split at the token once)."""
        return RenderedIssue(
            subject=self.subject,
            preheader="",
            html=self.html,
            text=self.text,
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
    superseded: int = 0  # an older row of an address queued again: only the newest is mailed
    later: int = 0  # 429/5xx: back on the queue for a later try
    failed: int = 0  # refused, answer lost, or out of tries: off the queue, logged
    batches: int = 0  # handed to the transport (one request each, unless a refusal is split)

    @property
    def taken(self) -> int:
        return self.sent + self.dropped + self.superseded + self.later + self.failed


def _recipient(mailer: Mailer, row: QueuedEmail) -> Recipient:
    from newsletter.signup import confirm_url

    expires = datetime.fromisoformat(row.expires_at)
    token = make_confirm_token(mailer.secret, row.subscriber_id, row.email, expires=expires)
    url = confirm_url(mailer.base_url, token)
    # the form's first name is never mailed back (docs/signup.md): "" and the fallback
    values = values_for(row.email, "", "", confirm_url=url)
    return Recipient(row.email, "", values, {}, {"recipient_id": f"confirm-{row.id}"})


def _batch(mailer: Mailer, rows: Sequence[QueuedEmail]) -> Batch:
    return Batch(
        campaign_id=CAMPAIGN,
        batch_no=rows[0].id,  # unique: rows are claimed once, ids never reused
        issue=mailer.email.issue,
        sender=mailer.sender,
        recipients=[_recipient(mailer, r) for r in rows],
        categories=(CATEGORY,),
    )


def _send(mailer: Mailer, rows: Sequence[QueuedEmail]) -> BatchResult | TransportError:
    """One request for ``rows``; a refusal about some recipients is narrowed down to them."""
    try:
        return send_isolating(mailer.transport, _batch(mailer, rows))
    except TransportError as err:
        return err


def _settle(
    store: Store,
    rows: Sequence[QueuedEmail],
    answer: BatchResult | TransportError,
    report: SendReport,
    now: datetime,
) -> None:
    """Record one batch's answer: every row off the queue or back on it, in one transaction."""
    done: list[int] = []
    later: dict[int, datetime] = {}
    if isinstance(answer, BatchResult):
        outcomes = {o.email: o for o in answer.outcomes}
        for row in rows:
            done.append(row.id)
            outcome = outcomes.get(row.email)
            if outcome is not None and outcome.status is Status.ACCEPTED:
                report.sent += 1
            else:
                why = outcome.reason if outcome is not None and outcome.reason else outcome
                log.warning("confirmation email %s not accepted: %s", row.id, why)
                report.failed += 1
        store.signup.settle(done)
        return
    credentials = isinstance(answer, ProviderRejected) and answer.status in (401, 403)
    final = isinstance(answer, ProviderRejected | DeliveryUnknown) and not credentials
    retry = answer.retry_after if isinstance(answer, RateLimited) else None
    for row in rows:
        if final or row.attempts + 1 >= MAX_ATTEMPTS:
            done.append(row.id)
            report.failed += 1
        else:
            later[row.id] = now + timedelta(seconds=max(retry or 0, 2.0**row.attempts * 5))
            report.later += 1
    ids = f"{rows[0].id}..{rows[-1].id}" if len(rows) > 1 else str(rows[0].id)
    if done:
        if isinstance(answer, DeliveryUnknown):
            what = "off the queue, not sent again (they may have gone out)"
        elif final:
            what = "refused, off the queue"
        else:
            what = f"given up after {MAX_ATTEMPTS} tries"
        log.warning("%d confirmation email(s) (%s) %s: %s", len(done), ids, what, answer.format())
    if later:
        wait = min(later.values()) - now
        log.warning(
            "%d confirmation email(s) (%s): %s; trying again in %.0f s or more",
            len(later),
            ids,
            answer.format(),
            wait.total_seconds(),
        )
    store.signup.settle(done, later)


def send_queued(
    store: Store,
    mailer: Mailer,
    *,
    now: Callable[[], datetime],
    limit: int | None = None,
    batch_size: int = BATCH_SIZE,
    concurrency: int = 1,
) -> SendReport:
    """Send what is due in the queue: up to ``limit`` emails, ``batch_size`` readers per
    request (SendGrid: one personalization each, with their own link), ``concurrency``
    requests at a time; ``taken`` is 0 when nothing was due. By default ``limit`` is one
    round: ``batch_size * concurrency``, so every batch a call claims is in flight at once and
    answered (or timed out) well within the claim's 120-second lease.

    An address suppressed since it signed up is dropped, not mailed (unless it was the reader's
    own unsubscribe: they come back by confirming); an address queued twice gets the newest
    email only. Each answer settles its batch in one transaction, as it arrives: a 202 takes
    every row off the queue; a 429 or 5xx (or a refused API key) puts every row back with its
    backoff; a refusal about some recipients (400 naming a personalization, 413) is split by
    :func:`~newsletter.transports.isolating.send_isolating` down to the refused readers, who
    alone come off the queue unsent; any other refusal, or a lost answer (the emails may have
    gone out), takes the batch off the queue, logged. A crash resends at most the batches
    whose answers were not yet recorded (when the claim's lease runs out).
    """
    if not 1 <= batch_size <= 1000:
        raise ValueError(f"batch_size {batch_size} must be between 1 and 1000")
    report = SendReport()
    rows = store.signup.claim(now=now(), limit=limit or batch_size * max(1, concurrency))
    if not rows:
        return report
    blocked = store.signup.not_to_mail([r.email for r in rows])
    newest: dict[str, QueuedEmail] = {}
    for r in rows:  # claim() returns them by id: a later row of an address wins
        newest[email_key(r.email)] = r
    todo = [r for k, r in newest.items() if k not in blocked]
    skipped = [r.id for r in rows if email_key(r.email) in blocked]
    report.dropped = len(skipped)
    report.superseded = len(rows) - len(todo) - len(skipped)
    kept = {r.id for r in todo}
    store.signup.settle([r.id for r in rows if r.id not in kept])
    todo.sort(key=lambda r: r.id)
    batches = [todo[i : i + batch_size] for i in range(0, len(todo), batch_size)]
    report.batches = len(batches)
    if concurrency > 1 and len(batches) > 1:
        from concurrent.futures import ThreadPoolExecutor, as_completed

        with ThreadPoolExecutor(min(concurrency, len(batches))) as pool:
            futures = {pool.submit(_send, mailer, b): b for b in batches}
            for fut in as_completed(futures):  # this thread alone writes to the store
                _settle(store, futures[fut], fut.result(), report, now())
    else:
        for b in batches:
            _settle(store, b, _send(mailer, b), report, now())
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
