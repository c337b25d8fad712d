"""The public API: a :class:`Newsletter` holds every guarantee the command line gives.

A script that sends the monthly issue gets the same safety as ``newsletter send``: the campaign
lock, the "already sent" and "unfinished campaign first" rules, the frozen content on resume,
the suppression checks before every batch, hourly pacing across processes, and refusal of unsafe
settings for real sends::

    from newsletter import IssueQuery, Newsletter, SendOptions

    nl = Newsletter.open("newsletter.toml")
    result = nl.send(IssueQuery(since="last-issue"), SendOptions(transport="outbox"))
    print(result.message)
    result.check()  # raises CampaignPaused / CampaignIncomplete when not everyone got it

The command line is a thin shell over this object: it parses flags into :class:`IssueQuery` and
:class:`SendOptions`, calls one method, and prints the result.
"""

from __future__ import annotations

import dataclasses
import os
import sqlite3
import tempfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, tzinfo
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from newsletter.campaign import identity as ident
from newsletter.campaign.dispatcher import Envelope, Personalizer, Sharing, prepare
from newsletter.campaign.dispatcher import ProgressFn as ProgressFn
from newsletter.campaign.dispatcher import Summary as Summary
from newsletter.campaign.lock import CampaignLock, sender_running
from newsletter.campaign.wiring import (
    TEST_RECIPIENT,
    Log,
    build_transport,
    choose_transport,
    envelope_for,
    is_local_api,
    pacing_limits,
    personalizer_for,
    prepared_batch_size,
    run_dispatch,
    unsafe_settings,
)
from newsletter.campaign.wiring import TRANSPORTS as TRANSPORTS
from newsletter.config import Secrets, Settings, load_secrets, load_settings
from newsletter.content import ReadResult, apply_generator_defaults, read_site
from newsletter.errors import (
    CampaignIncomplete,
    CampaignPaused,
    CampaignUnfinished,
    ConfigError,
    InputError,
    LintFailed,
    NewsletterError,
    SecretMissing,
    StoreFault,
)
from newsletter.issue import IssueQuery, normalize_segment
from newsletter.lint import Finding, has_errors, lint_issue
from newsletter.render import load_intro, render_issue
from newsletter.rendered import RenderedIssue
from newsletter.selection import Reason, Selection, matches_pick, select
from newsletter.store import Store, copy_between, db, migrate_store, open_store
from newsletter.store import campaigns as cs
from newsletter.store.audience import REASONS as SUPPRESSION_REASONS
from newsletter.store.audience import AudienceStats, Subscriber, Suppression
from newsletter.store.campaigns import Campaign, CampaignStatus, LedgerRow
from newsletter.store.copy import CopyReport
from newsletter.store.db import fault
from newsletter.subscribers import ImportReport, Notice
from newsletter.transports.base import Transport

if TYPE_CHECKING:
    from newsletter.providers.sendgrid.suppression_sync import SyncReport
    from newsletter.web.app import WebConfig

PLACEHOLDER_TO = "subscriber@example.com"
# ledger states, for callers that read a CampaignStatus
PENDING, SENDING, ACCEPTED, REJECTED, FAILED, UNKNOWN, SKIPPED = cs.BATCH_STATES
LEDGER_STATES = cs.BATCH_STATES


def _quiet(message: str) -> None:
    """The default log: say nothing (the CLI passes one that prints to stderr)."""


@dataclass(frozen=True)
class SendOptions:
    """How to send. ``None`` takes the value from ``[send]`` in newsletter.toml."""

    transport: str | None = None  # auto | outbox | sendgrid
    concurrency: int | None = None
    max_per_second: float | None = None
    max_per_hour: int | None = None
    retry_base: float | None = None  # first retry wait, seconds (doubles each time)
    skip_sync: bool = False  # do not pull SendGrid's suppression lists first
    dry_run: bool = False  # everything but sending: the memory transport, a scratch ledger
    sandbox: bool = False  # SendGrid validates, does not deliver
    send_at: datetime | None = None  # schedule (within 72 hours)
    batch_id: str = ""
    new_campaign: bool = False  # send again on purpose (a correction)
    retry_unknown: bool = False  # resume: also resend recipients whose answer was lost
    retry_rejected: bool = False  # resume: resend recipients the provider refused (after a fix)
    workers: int = 1  # sender processes sharing the campaign (a PostgreSQL store only)

    def __post_init__(self) -> None:
        if not 1 <= self.workers <= 32:
            raise ConfigError("must be between 1 and 32", key="workers")
        if self.concurrency is not None and not 1 <= self.concurrency <= 64:
            raise ConfigError("must be between 1 and 64", key="concurrency")
        for name in ("max_per_second", "max_per_hour", "retry_base"):
            value = getattr(self, name)
            if value is not None and value < 0:
                raise ConfigError("must not be negative", key=name)
        if self.transport is not None and self.transport not in ("auto", "outbox", "sendgrid"):
            raise ConfigError(
                f"unknown transport {self.transport!r}; use auto, outbox or sendgrid",
                key="transport",
            )
        if self.send_at is not None and self.send_at.tzinfo is None:
            raise ConfigError("give a time zone (an aware datetime)", key="send_at")


@dataclass(frozen=True)
class Plan:
    """What is about to be sent; ``confirm`` sees it before anything is written."""

    campaign_id: str
    subject: str
    posts: tuple[str, ...]  # titles, lead first
    recipients: int
    transport: str


@dataclass
class Picked:
    """The posts an issue would hold, why every other post is out, and the issue it follows."""

    read: ReadResult
    selection: Selection
    query: IssueQuery
    now: datetime
    reference: Campaign | None = None  # the last digest `--since last-issue` starts from
    sent_in: dict[str, list[str]] = field(default_factory=dict)  # slug -> campaigns


@dataclass
class SendResult:
    """What a send (or resume) did. ``message`` is the line to show a person."""

    campaign_id: str
    outcome: str  # sent | resumed | already_sent | cancelled | dry_run | test
    message: str
    summary: Summary | None = None
    changed: list[str] = field(default_factory=list)  # posts edited since the campaign started
    findings: list[Finding] = field(default_factory=list)
    outbox: Path | None = None
    notes: list[str] = field(default_factory=list)

    def check(self) -> None:
        """Raise when the send left work: paused (exit 5) or not all accepted (exit 6)."""
        summary = self.summary
        if summary is None:
            return
        if summary.state == cs.PAUSED:
            raise CampaignPaused(summary.note)
        if any(summary.counts.get(s, 0) for s in (cs.REJECTED, cs.FAILED, cs.UNKNOWN)):
            raise CampaignIncomplete(
                summary.note
                or f"not every recipient was accepted; `newsletter status {summary.campaign_id}`"
                " lists the reasons"
            )


@dataclass(frozen=True)
class CampaignView:
    """A campaign as ``status`` shows it, with whether a sender is running it now."""

    status: CampaignStatus
    shown_state: str
    sender_running: bool

    @property
    def interrupted(self) -> bool:
        return self.shown_state != self.status.campaign.state


class Subscribers:
    """``Newsletter.subscribers``: who gets the email (each call opens the store for itself)."""

    def __init__(self, newsletter: Newsletter) -> None:
        self._nl = newsletter

    def import_csv(
        self,
        path: Path | str,
        *,
        tags: Sequence[str] = (),
        dry_run: bool = False,
        encoding: str = "utf-8",
        delimiter: str = ",",
        status: str = "confirmed",
        on_notice: Callable[[Notice], None] | None = None,
        send_confirmations: bool = False,
    ) -> ImportReport:
        """Add or update subscribers from a CSV file; every row not imported (rejected, or
        suppressed) goes to ``on_notice`` with its file:line. ``status="pending"``: a list with
        no recorded consent, not mailed until each reader confirms. ``send_confirmations`` only
        checks that the caller means to ask these readers (``status="pending"``); send them with
        :meth:`send_confirmations` after the import."""
        from newsletter.subscribers import import_subscribers

        if len(delimiter) != 1:
            raise ConfigError("--delimiter must be one character, e.g. ';'")
        if send_confirmations and status != "pending":
            raise ConfigError(
                "--send-confirmations asks readers to confirm: use it with --status pending",
                key="--send-confirmations",
            )
        with self._nl.store() as store:
            return import_subscribers(
                store.audience,
                Path(path),
                now=datetime.now(UTC),
                tags=tags,
                dry_run=dry_run,
                encoding=encoding,
                delimiter=delimiter,
                on_notice=on_notice or (lambda n: None),
                status=status,
            )

    def send_confirmations(self, *, log: Log | None = None) -> tuple[int, int]:
        """Email every pending reader who has not been asked yet a confirmation link; how many
        were (sent, queued). Refuses unsafe settings for real mail."""
        from newsletter.signup.ops import send_confirmations

        nl = self._nl
        return send_confirmations(nl.settings, nl.secrets, log=log or nl.log)

    def get(self, email: str) -> Subscriber | None:
        with self._nl.store() as store:
            return store.audience.get_subscriber(email)

    def count(self, segment: Sequence[str] = ()) -> int:
        """How many would get a send to ``segment`` (suppressed addresses not counted)."""
        with self._nl.store() as store:
            return store.audience.count_recipients(normalize_segment(tuple(segment)))

    def __iter__(self) -> Iterator[Subscriber]:
        with self._nl.store() as store:
            yield from store.audience.iter_subscribers()

    def with_reasons(
        self, tags: Sequence[str] = (), *, active_only: bool = False
    ) -> Iterator[tuple[Subscriber, str]]:
        """Each subscriber (any of ``tags``) with why its address is suppressed ("" if not);
        ``active_only`` leaves suppressed ones out. Streams: the store is open while iterating."""
        with self._nl.store() as store:
            yield from store.audience.iter_subscribers_with_reasons(tags, active_only=active_only)

    def records(
        self, tags: Sequence[str] = (), *, active_only: bool = False
    ) -> Iterator[dict[str, Any]]:
        """:meth:`with_reasons` as plain records (the ``--json`` shape of ``subscribers list``)."""
        from newsletter.subscribers import subscriber_record

        for sub, reason in self.with_reasons(tags, active_only=active_only):
            yield subscriber_record(sub, reason)

    def stats(self) -> AudienceStats:
        """Counts by status, active recipients, suppressions by reason, active ones by tag."""
        with self._nl.store() as store:
            return store.audience.stats()

    def remove(self, email: str) -> bool:
        """Forget a subscriber (their suppressions stay: they are about the address)."""
        with self._nl.store() as store:
            return store.audience.remove_subscriber(email, now=datetime.now(UTC))

    def remove_and_suppress(self, email: str, *, source: str = "api") -> Removal:
        """Forget a subscriber and suppress the address (manual), even when it is no
        subscriber. A bad address is refused before anything changes."""
        address = valid_address(email)
        now = datetime.now(UTC)
        with self._nl.store() as store:
            removed = store.audience.remove_subscriber(email, now=now)
            added = store.audience.suppress(
                address, reason="manual", source=source, now=now, detail="removed"
            )
        return Removal(removed=removed, suppressed=added)

    def export_csv(
        self, to: Path | IO[str], *, tags: Sequence[str] = (), include_suppressed: bool = False
    ) -> int:
        """Write subscribers as CSV in the import format, with status and consent, to a file
        or an open text stream; how many were written. Pending and suppressed ones only with
        ``include_suppressed``."""
        from newsletter.subscribers import export_subscribers

        with self._nl.store() as store:

            def write(out: IO[str]) -> int:
                return export_subscribers(
                    store.audience,
                    out,
                    segments=tags,
                    include_suppressed=include_suppressed,
                    consents=store.signup,
                )

            if not isinstance(to, Path):
                return write(to)
            try:
                with open(to, "w", encoding="utf-8", newline="") as out:
                    return write(out)
            except OSError as err:
                raise InputError(f"cannot write the file ({err.strerror})", path=to) from err


@dataclass(frozen=True)
class Removal:
    """What :meth:`Subscribers.remove_and_suppress` did."""

    removed: bool  # there was a subscriber with this address
    suppressed: bool  # the address was newly suppressed (False: it already was)


def valid_address(email: str) -> str:
    """``email`` checked and normalized (no DNS lookup); a bad one raises InputError."""
    from email_validator import EmailNotValidError, validate_email

    try:
        return validate_email(email.strip(), check_deliverability=False).normalized
    except EmailNotValidError as err:
        raise InputError(f"not a valid email address ({err})", path=email) from err


class Suppressions:
    """``Newsletter.suppressions``: addresses no send ever reaches again."""

    reasons = SUPPRESSION_REASONS

    def __init__(self, newsletter: Newsletter) -> None:
        self._nl = newsletter

    def add(self, email: str, *, reason: str = "manual", detail: str = "") -> bool:
        with self._nl.store() as store:
            return store.audience.suppress(
                email, reason=reason, source="api", now=datetime.now(UTC), detail=detail
            )

    def add_many(
        self, emails: Sequence[str], *, reason: str = "manual", source: str = "api"
    ) -> int:
        """Suppress every address (all checked first: one bad address changes nothing); how
        many were newly suppressed."""
        addresses = [valid_address(e) for e in emails]
        with self._nl.store() as store:
            return store.audience.suppress_many(
                [(a, reason, "") for a in addresses], source=source, now=datetime.now(UTC)
            )

    def remove(self, email: str) -> bool:
        with self._nl.store() as store:
            return store.audience.unsuppress(email, source="api", now=datetime.now(UTC))

    def remove_many(self, emails: Sequence[str], *, source: str = "api") -> list[str]:
        """Lift the suppressions of ``emails``; the ones that were suppressed."""
        now = datetime.now(UTC)
        with self._nl.store() as store:
            return [e for e in emails if store.audience.unsuppress(e, source=source, now=now)]

    def history(self, email: str) -> list[tuple[str, str, str, str]]:
        """``(at, action, reason, source)`` for each suppression and lift of ``email``, oldest
        first."""
        with self._nl.store() as store:
            return store.audience.suppression_history(email)

    def count(self) -> int:
        with self._nl.store() as store:
            return store.audience.count_suppressions()

    def matching(self, reason: str = "") -> Iterator[Suppression]:
        """Suppressed addresses (only ``reason`` when given). Streams: the store is open while
        iterating."""
        with self._nl.store() as store:
            yield from store.audience.iter_suppressions(reason)

    def __contains__(self, email: object) -> bool:
        with self._nl.store() as store:
            return isinstance(email, str) and store.audience.is_suppressed(email)

    def __iter__(self) -> Iterator[Suppression]:
        return self.matching()

    def sync(self, groups: Sequence[int] = (), *, log: Log | None = None) -> SyncReport:
        """Pull SendGrid's unsubscribes, bounces, spam reports and the unsubscribe groups'
        suppressions (``groups`` and ``send.asm_group_id``) into the local list. Never removes
        anything. Needs SENDGRID_API_KEY; waits (rate limits, retries) go to ``log``."""
        from newsletter.providers.sendgrid.suppression_sync import client_for, sync_suppressions

        nl = self._nl
        if not nl.secrets.sendgrid_api_key:
            raise SecretMissing("SENDGRID_API_KEY is not set; export it to sync suppressions")
        say = log or nl.log
        group_ids = list(dict.fromkeys([*groups, nl.settings.send.asm_group_id]))
        with (
            nl.store() as store,
            client_for(nl.settings, nl.secrets, on_wait=lambda w: say(w.describe())) as client,
        ):
            return sync_suppressions(
                store.audience, client, now=datetime.now(UTC), group_ids=group_ids
            )


class Newsletter:
    """One site's newsletter: its settings, secrets and store.

    Open with :meth:`open` (reads newsletter.toml and the environment) or construct with values.
    Every method that changes the store opens it for the call and closes it after.
    """

    def __init__(self, settings: Settings, secrets: Secrets | None = None, *, log: Log = _quiet):
        self.settings = settings
        self.secrets = secrets if secrets is not None else load_secrets(os.environ)
        self.log = log
        self.subscribers = Subscribers(self)
        self.suppressions = Suppressions(self)

    @classmethod
    def open(
        cls,
        config: Path | str | None = None,
        *,
        overrides: dict[str, object] | None = None,
        environ: dict[str, str] | None = None,
        log: Log = _quiet,
    ) -> Newsletter:
        # the site generator's own config (Jekyll, Hugo, ...) fills what was not set
        settings = apply_generator_defaults(
            load_settings(Path(config) if config else None, overrides=overrides, environ=environ)
        )
        secrets = load_secrets(environ if environ is not None else os.environ)
        return cls(settings, secrets, log=log)

    # -- the store -------------------------------------------------------------------------

    @contextmanager
    def store(self) -> Iterator[Store]:
        """The store, opened (and created, migrated) for the block."""
        with open_store(self.settings.store_target) as store:
            yield store

    def migrate_store(self) -> list[str]:
        """Apply the store's missing migrations (``newsletter store migrate``); their names."""
        return migrate_store(self.settings.store_target)

    def copy_store(self, to: str | Path, *, force: bool = False) -> CopyReport:
        """Copy this store into ``to`` (a ``postgresql://`` URL or a SQLite file), verified by
        counts and checksums; a non-empty target is refused unless ``force``."""
        target: str | Path = to if db.is_url(to) else Path(to).expanduser().resolve()
        return copy_between(self.settings.store_target, target, force=force)

    def store_name(self) -> str:
        """The store for a message: its path, or its URL without the password."""
        return db.describe(self.settings.store_target)

    @contextmanager
    def _existing_store(self) -> Iterator[Store | None]:
        """The store if one exists: listing and rendering never create one."""
        if not self.settings.store_exists:
            yield None
            return
        with open_store(self.settings.store_target) as store:
            yield store

    # -- the web endpoints -----------------------------------------------------------------

    def web_config(self, *, insecure_webhook: bool = False, log: Log | None = None) -> WebConfig:
        """What ``newsletter serve`` runs: the unsubscribe page, one-click unsubscribe, the
        SendGrid event webhook (verified with ``unsubscribe.webhook_public_key``) and the
        subscribe form. Refuses a damaged store, a missing or short secret, and unsafe settings
        for real confirmation mail; notes go to ``log``."""
        from newsletter.providers.sendgrid.webhooks import Verifier
        from newsletter.unsubscribe import SECRET_FILE, check_secret_strength, signing_secret
        from newsletter.web.app import WebConfig
        from newsletter.web.signup import signup_for_serve

        say = log or self.log
        settings = self.settings
        with self.store():  # a damaged or vanished store: one line now, not a failed startup
            pass
        kept = settings.db_path.parent / SECRET_FILE
        # a secret generated by an outbox (demo) send is reused; the server never makes a new
        # one, since links signed with a secret nobody sent with would all be refused
        secret = signing_secret(self.secrets, allow_generated=kept.exists(), keep_at=kept)
        if not self.secrets.signing_key:
            say(f"note: NEWSLETTER_SECRET is not set; using the demo secret in {kept}")
        unsub = settings.unsubscribe
        verifier = None
        if unsub.webhook_public_key:
            verifier = Verifier(
                unsub.webhook_public_key, max_age_seconds=unsub.webhook_max_age_seconds
            )
        # (refuses real confirmation mail with unsafe settings, a short secret among them)
        signup = signup_for_serve(settings, self.secrets, secret, log=say)
        if self.secrets.signing_key:  # every unsubscribe token is checked with it: no short one
            check_secret_strength(secret)
        return WebConfig(
            store_path=settings.store_target,
            secret=secret,
            site_name=settings.site.name,
            verifier=verifier,
            insecure_webhook=insecure_webhook,
            signup=signup,
        )

    # -- posts and rendering ---------------------------------------------------------------

    def now(self, value: datetime | None = None) -> datetime:
        return value if value is not None else datetime.now(self.settings.site.tz)

    def read_posts(self) -> ReadResult:
        """Every post's front matter, and every entry of the site's feeds; unreadable posts in
        ``errors``, with file and line. Feeds fetched over HTTP keep their ETag cache in the
        store; a feed that cannot be fetched raises FeedError."""
        feeds = self.settings.site.feeds
        if not any(f.startswith(("http://", "https://")) for f in feeds):
            return read_site(self.settings)
        with self.store() as store:
            return read_site(self.settings, feed_cache=store.feeds)

    def pick(
        self,
        query: IssueQuery,
        *,
        now: datetime | None = None,
        store: Store | None = None,
        read: ReadResult | None = None,
    ) -> Picked:
        """Read the posts and choose the issue's; every other post gets its reason.

        With ``since="last-issue"`` the window starts where the last digest to this audience
        ended, and posts any campaign to this audience carried are left out ("already sent").
        """
        if store is None:
            with self._existing_store() as existing:
                return self._pick(query, self.now(now), existing, read)
        return self._pick(query, self.now(now), store, read)

    def _pick(
        self, query: IssueQuery, now: datetime, store: Store | None, read: ReadResult | None = None
    ) -> Picked:
        settings = self.settings
        criteria = query.criteria(settings.site.tz, now)
        read = read if read is not None else self.read_posts()
        if query.strict and read.errors:
            count = len(read.errors)
            raise ConfigError(
                f"{count} post{'s' if count != 1 else ''} could not be read (listed above); "
                "fix them or run without --strict to skip them"
            )
        segment = ",".join(query.segment)
        cursor = (
            store.campaigns.digest_cursor(segment) if store and query.since_last_issue else None
        )
        sent = store.campaigns.sent_posts(segment) if store and query.since_last_issue else {}
        selection = select(
            read.posts,
            criteria,
            now=now,
            last_issue=cursor[0] if cursor else None,
            already_sent=sent,
        )
        if selection.unmatched:
            names = ", ".join(repr(p) for p in selection.unmatched)
            raise ConfigError(
                f"no post matches {names}; give a slug, file name or path that "
                "`newsletter posts` lists",
                key="--post",
            )
        if criteria.posts:
            # a post picked by name but held back by a rule the user can lift: say which flag
            held = {
                Reason.DRAFT: ("a draft", "--include-drafts"),
                Reason.FUTURE: ("dated in the future", "--include-future"),
            }
            for post, reason in selection.skipped:
                if reason in held and any(matches_pick(post, pick) for pick in criteria.posts):
                    what, flag = held[reason]
                    raise ConfigError(
                        f"the post {post.slug!r} you picked is {what}; add {flag} to include it",
                        key="--post",
                    )
        return Picked(
            read,
            selection,
            query,
            now,
            reference=cursor[1] if cursor else None,
            sent_in=store.campaigns.all_sent_posts() if store else {},
        )

    def reader_values(self, email: str | None) -> tuple[str, str, dict[str, str]]:
        """(to address, to name, token values) to render the issue as one subscriber sees it,
        or generic values (no personal data) when ``email`` is None."""
        from newsletter.personalize import Personal, token_values
        from newsletter.render import generic_values
        from newsletter.unsubscribe import make_token, unsubscribe_url

        settings = self.settings
        if not email:
            return PLACEHOLDER_TO, "", generic_values(settings)
        with self._existing_store() as store:
            if store is None:
                raise ConfigError(
                    f"no subscriber store at {settings.db_path}; import subscribers first, or "
                    "drop --as",
                    key="--as",
                )
            sub = store.audience.get_subscriber(email)
        if sub is None:
            raise ConfigError(
                f"{email} is not a subscriber; `newsletter subscribers` lists them", key="--as"
            )
        secret = self.secrets.signing_key
        base = settings.unsubscribe.base_url
        if secret:
            url = unsubscribe_url(base, make_token(secret, sub.id, sub.email))
        else:
            self.log("note: NEWSLETTER_SECRET is not set, so the unsubscribe link is a placeholder")
            url = base.rstrip("/") + "/u/preview"
        person = Personal(email=sub.email, first_name=sub.first_name, unsubscribe_url=url)
        values = token_values(person, first_name_fallback=settings.email.first_name_fallback)
        name = " ".join(p for p in (sub.first_name, sub.last_name) if p)
        return sub.email, name, values

    def render(
        self, picked: Picked, *, group_by: str | None = None, full: bool = False
    ) -> RenderedIssue:
        """Render the picked posts once (tokens left in for each recipient).

        ``group_by`` ("category" or "") replaces ``email.group_by``; ``full`` refuses an issue
        over ``email.max_html_kb`` instead of cutting it (see :func:`render_issue`).
        """
        query = picked.query
        return render_issue(
            picked.selection.selected,
            self.settings,
            layout=query.effective_layout,
            now=picked.now,
            subject=query.subject,
            intro=load_intro(self.settings, query.intro),
            issue_date=picked.selection.since if query.month else None,
            group_by=group_by,
            full=full,
        )

    # -- sending ---------------------------------------------------------------------------

    def send(
        self,
        query: IssueQuery,
        options: SendOptions = SendOptions(),
        *,
        now: datetime | None = None,
        confirm: Callable[[Plan], bool] | None = None,
        progress: ProgressFn | None = None,
    ) -> SendResult:
        """Send the issue ``query`` describes to every subscriber (of ``query.segment``) once.

        The campaign is what the query means (a digest's window, a blast's posts, the
        audience), not the rendered bytes. Run again, it says "already sent" (listing posts
        edited since), or finishes an interrupted campaign with the content frozen when it
        started. While a digest to an audience is unfinished, no other digest to it starts:
        ``since="last-issue"`` resumes it, anything else raises :class:`CampaignUnfinished`.
        ``options.dry_run`` takes the same path, checks and errors, and sends to a scratch
        ledger through the memory transport.
        """
        now = self.now(now)
        settings = self.settings
        if not query.has_selection:
            raise ConfigError(
                "say which posts to send: --month YYYY-MM (a month's digest), --since "
                "last-issue (everything new since the last issue), or --post SLUG (a blast); "
                "`newsletter posts` lists them"
            )
        name = choose_transport(settings, self.secrets, options.transport)
        if options.sandbox and name != "sendgrid":
            raise ConfigError("--sandbox needs the sendgrid transport", key="--sandbox")
        send_at = _send_at_epoch(options.send_at)
        self._refuse_unsafe(name)
        with self.store() as store:
            picked = self._pick(query, now, store)
            selection = picked.selection
            segment = ",".join(query.segment)
            rehearsal = name != "sendgrid"
            if query.since_last_issue and picked.reference is None:
                unfinished = store.campaigns.unfinished_like(
                    cs.DIGEST, segment, rehearsal=rehearsal
                )
                if not unfinished:
                    raise ConfigError(
                        "no digest has been sent to this audience yet, so --since last-issue "
                        "has no start; send the first one with --month YYYY-MM or --since DATE",
                        key="--since",
                    )
            window_end = selection.until or now
            fresh = datetime.now(UTC).isoformat() if options.new_campaign else ""
            who = ident.identify(
                criteria=query.criteria(settings.site.tz, now),
                window=(selection.since, window_end),
                picked=selection.selected,
                layout=query.effective_layout,
                segment=query.segment,
                rehearsal=rehearsal,
                salt=fresh,
                stem=_stem(query, selection),
            )
            cid = who.campaign_id
            existing = store.campaigns.get(cid)
            if existing is None and who.kind == cs.DIGEST and not options.new_campaign:
                existing = self._unfinished_digest(store, query, who)
            if existing is not None:
                return self._existing(store, existing, picked, name, options, progress)
            if not selection.selected and query.since_last_issue and picked.reference:
                ref = picked.reference
                return SendResult(
                    cid,
                    "nothing_new",
                    f"nothing new since the last issue ({ref.id}, {ref.subject!r}); nothing sent",
                )
            if not selection.selected:
                where = ""
                if picked.reference is not None:
                    where = (
                        f" since the last issue ({picked.reference.id}, window ending "
                        f"{picked.reference.window_end or picked.reference.newest_post_date})"
                    )
                raise ConfigError(
                    f"no posts to send{where}; `newsletter posts` with the same flags says why "
                    "each post is left out"
                )
            if who.kind == cs.DIGEST and not query.since_last_issue and not options.new_campaign:
                self._refuse_overlap(store, segment, selection, rehearsal)
            issue = self.render(picked)
            findings = lint_issue(issue, settings, longest=None)
            if has_errors(findings):
                raise LintFailed("lint found errors; nothing was sent", list(findings))
            envelope = envelope_for(
                settings, issue, sandbox=options.sandbox, send_at=send_at, batch_id=options.batch_id
            )
            count = store.audience.count_recipients(query.segment)
            if count == 0:
                where = f" with tag {', '.join(query.segment)}" if query.segment else ""
                raise ConfigError(
                    f"no subscribers{where} to send to; import some with "
                    "`newsletter subscribers import FILE.csv`"
                )
            plan = Plan(
                cid,
                issue.subject,
                tuple(p.title for p in selection.selected),
                count,
                "memory (dry run)" if options.dry_run else name,
            )
            if confirm is not None and not confirm(plan):
                raise NewsletterError("not confirmed; nothing was sent")
            records = ident.carried(selection.selected, root_of=self._relative_paths(selection))
            if options.dry_run:
                return self._dry_run(store, cid, who, envelope, query, records, findings, options)
            self._check_workers(options)
            with CampaignLock(settings.store_target, cid) as lock:
                if store.campaigns.get(cid) is not None:  # another process won the race
                    raise CampaignUnfinished(
                        f"campaign {cid} was started by another process meanwhile; "
                        f"`newsletter status {cid}` shows it"
                    )
                transport = build_transport(settings, self.secrets, name, now=now)
                try:
                    personalize = personalizer_for(settings, self.secrets, name, cid)
                    per_second, per_hour = pacing_limits(
                        settings, options.max_per_second, options.max_per_hour
                    )
                    notes = self._sync_before_send(store, name, options)
                    if send_at and not envelope.batch_id:
                        envelope = dataclasses.replace(envelope, batch_id=_new_batch(transport))
                    total = prepare(
                        store.campaigns,
                        cid,
                        envelope,
                        store.audience.recipient_query(query.segment),
                        segment=segment,
                        transport=name,
                        now=datetime.now(UTC),
                        batch_size=prepared_batch_size(settings, per_second, per_hour, self.log),
                        kind=who.kind,
                        window=who.window,
                        rehearsal=rehearsal,
                        carried=records,
                    )
                except BaseException:
                    transport.close()
                    raise
                if total == 0:
                    transport.close()
                    raise ConfigError("no subscribers to send to (they were all suppressed)")
                sharing = self._share(lock)
                workers = self._spawn_senders(cid, options, sharing)
                summary = self._dispatch(
                    store, cid, transport, personalize, options, progress, sharing
                )
                summary = self._join_senders(store, cid, workers, summary, notes, sharing)
            message = f"campaign {cid}: {summary.state}"
            notes += self._publish(store, cid, summary)
            if send_at and envelope.batch_id and name == "sendgrid":
                when = datetime.fromtimestamp(send_at, UTC).isoformat(timespec="minutes")
                notes.append(
                    f"scheduled for {when}; to call it off before then: newsletter cancel {cid}"
                )
            return SendResult(
                cid,
                "sent",
                message,
                summary=summary,
                findings=findings,
                outbox=self._outbox(name, cid),
                notes=notes,
            )

    def resume(
        self,
        campaign_id: str,
        options: SendOptions = SendOptions(),
        *,
        progress: ProgressFn | None = None,
    ) -> SendResult:
        """Finish an interrupted or paused campaign with its frozen content.

        Accepted recipients never get a second message; ``unknown`` ones (the answer was lost)
        are resent only with ``options.retry_unknown``.
        """
        with self.store() as store:
            existing = store.campaigns.get(campaign_id)
            if existing is None:
                raise ConfigError(f"no campaign {campaign_id!r}; `newsletter campaigns` lists them")
            if existing.state == cs.PREPARING:
                raise ConfigError(
                    f"campaign {campaign_id} never finished preparing (nothing was sent); run "
                    "the same `newsletter send` command again"
                )
            if existing.state == cs.CANCELLED:
                raise ConfigError(
                    f"campaign {campaign_id} was cancelled; to send it after all, run the same "
                    "`newsletter send` command with --new-campaign"
                )
            name = options.transport or existing.transport
            if name != "memory":
                name = choose_transport(self.settings, self.secrets, name)
            self._refuse_unsafe(name)
            return self._continue(store, existing, name, options, progress, [])

    def _continue(
        self,
        store: Store,
        campaign: Campaign,
        name: str,
        options: SendOptions,
        progress: ProgressFn | None,
        notes: list[str],
        changed: Sequence[str] = (),
    ) -> SendResult:
        """Run a started campaign's remaining batches under its lock (resume and re-runs)."""
        settings = self.settings
        cid = campaign.id
        self._check_workers(options)
        # on PostgreSQL a resume joins the senders already at work (each claims its batches)
        shared = db.is_url(settings.store_target)
        with CampaignLock(settings.store_target, cid, shared=shared) as lock:
            status = store.campaigns.status(cid)
            assert status is not None
            todo = sum(status.counts.get(s, 0) for s in (cs.PENDING, cs.SENDING, cs.FAILED))
            if options.retry_unknown:
                todo += status.counts.get(cs.UNKNOWN, 0)
            if options.retry_rejected:
                todo += status.counts.get(cs.REJECTED, 0)
            if status.campaign.state == cs.DONE and not todo:
                return SendResult(cid, "already_sent", f"campaign {cid} is complete; nothing to do")
            transport = build_transport(settings, self.secrets, name, now=datetime.now(UTC))
            try:
                personalize = personalizer_for(settings, self.secrets, name, cid)
                notes = [*notes, *self._sync_before_send(store, name, options)]
            except BaseException:
                transport.close()
                raise
            if options.retry_rejected:
                n = store.campaigns.requeue_rejected(cid, now=datetime.now(UTC))
                self.log(f"{n:,} rejected recipients will be sent again")
            sharing = self._share(lock)
            workers = self._spawn_senders(cid, options, sharing)
            summary = self._dispatch(store, cid, transport, personalize, options, progress, sharing)
            summary = self._join_senders(store, cid, workers, summary, notes, sharing)
            notes = [*notes, *self._publish(store, cid, summary)]
        return SendResult(
            cid,
            "resumed",
            f"campaign {cid}: {summary.state}",
            summary=summary,
            changed=list(changed),
            outbox=self._outbox(name, cid),
            notes=notes,
        )

    def _existing(
        self,
        store: Store,
        campaign: Campaign,
        picked: Picked,
        name: str,
        options: SendOptions,
        progress: ProgressFn | None,
    ) -> SendResult:
        """The same issue again: report it sent, or resume it with its frozen content."""
        cid = campaign.id
        changed = ident.changed_since(store.campaigns.carried(cid), picked.read.posts)
        edits = ""
        if changed:
            edits = f"; edited since it started: {', '.join(changed)}"
        if campaign.state == cs.CANCELLED:
            return SendResult(
                cid,
                "cancelled",
                f"campaign {cid} was cancelled ({campaign.note}); nothing sent. Use "
                "--new-campaign to send it after all.",
                changed=changed,
            )
        if campaign.state == cs.DONE:
            status = store.campaigns.status(cid)
            assert status is not None
            accepted = status.counts.get(cs.ACCEPTED, 0)
            when = _local(campaign.finished_at or campaign.updated_at, self.settings.site.tz)
            message = (
                f"{self.label(campaign)} (campaign {cid}) was already sent: it went to "
                f"{accepted:,} people on {when}; nothing sent."
            )
            if changed:
                message += (
                    f" Posts edited since: {', '.join(changed)}. To send a correction to "
                    "everyone, run the same command with --new-campaign."
                )
            result = SendResult(cid, "already_sent", message, changed=changed)
            left = sum(status.counts.get(s, 0) for s in (cs.REJECTED, cs.FAILED, cs.UNKNOWN))
            if left:
                result.summary = _summary_of(status)
            return result
        if options.dry_run:
            status = store.campaigns.status(cid)
            assert status is not None
            todo = sum(status.counts.get(s, 0) for s in (cs.PENDING, cs.SENDING, cs.FAILED))
            return SendResult(
                cid,
                "dry_run",
                f"dry run: campaign {cid} is unfinished; the real send would resume it for "
                f"{todo:,} remaining recipients with its frozen content{edits}",
                changed=changed,
            )
        if campaign.state == cs.PREPARING:
            # nothing was sent: preparation starts over from today's posts
            self.log(f"campaign {cid} never finished preparing; starting it over")
            with CampaignLock(self.settings.store_target, cid):
                store.campaigns.forget(cid)
            return self.send(picked.query, options, now=picked.now, progress=progress)
        note = f"resuming campaign {cid} (interrupted earlier) with the content it started with"
        if changed:
            note += f"; edits made since are not in it ({', '.join(changed)})"
        self.log(note)
        return self._continue(
            store, campaign, campaign.transport, options, progress, [note], changed
        )

    def _unfinished_digest(
        self, store: Store, query: IssueQuery, who: ident.Identity
    ) -> Campaign | None:
        """An unfinished digest to the same audience wins over starting another."""
        others = store.campaigns.unfinished_like(cs.DIGEST, who.segment, rehearsal=who.rehearsal)
        if not others:
            return None
        other = others[0]
        if query.since_last_issue:
            return other
        raise CampaignUnfinished(
            f"campaign {other.id} ({other.subject!r}, a digest to "
            f"{who.segment or 'everyone'}) is unfinished; finish it first with "
            f"`newsletter resume {other.id}`, or give it up with `newsletter cancel {other.id}`"
        )

    def _refuse_overlap(
        self, store: Store, segment: str, selection: Selection, rehearsal: bool
    ) -> None:
        """A different window whose posts already went out in a digest: refuse, say why."""
        sent = store.campaigns.sent_posts(segment, kind=cs.DIGEST, rehearsal=rehearsal)
        overlap = [p.slug for p in selection.selected if p.slug in sent]
        if not overlap:
            return
        where = sorted({sent[s] for s in overlap})
        raise CampaignUnfinished(
            f"{len(overlap)} of these posts already went to this audience in "
            f"{', '.join(where)} ({', '.join(overlap[:5])}{', ...' if len(overlap) > 5 else ''});"
            " send only what is new with --since last-issue, or send them again on purpose "
            "with --new-campaign"
        )

    def _dry_run(
        self,
        store: Store,
        cid: str,
        who: ident.Identity,
        envelope: Envelope,
        query: IssueQuery,
        records: list[cs.CarriedPost],
        findings: list[Finding],
        options: SendOptions,
    ) -> SendResult:
        """The whole campaign against a scratch ledger and the memory transport."""
        settings = self.settings
        with (
            tempfile.TemporaryDirectory(prefix="newsletter-dry-") as tmp,
            open_store(Path(tmp) / "dry.db") as scratch,
        ):
            per_second, per_hour = pacing_limits(
                settings, options.max_per_second, options.max_per_hour
            )
            rows = store.audience.iter_recipient_rows(query.segment)
            total = prepare(
                scratch.campaigns,
                cid,
                envelope,
                ((str(sid), email, first) for sid, email, first in rows),
                segment=who.segment,
                transport="memory",
                now=datetime.now(UTC),
                batch_size=prepared_batch_size(settings, per_second, per_hour, self.log),
                kind=who.kind,
                window=who.window,
                rehearsal=True,
                carried=records,
            )
            transport = build_transport(settings, self.secrets, "memory", now=datetime.now(UTC))
            personalize = personalizer_for(settings, self.secrets, "memory", cid)
            summary = self._dispatch(scratch, cid, transport, personalize, options, None)
        return SendResult(
            cid,
            "dry_run",
            f"dry run of campaign {cid}: {total:,} recipients; nothing was sent and the ledger "
            "is unchanged",
            summary=summary,
            findings=findings,
        )

    def test_send(
        self,
        query: IssueQuery,
        addresses: Sequence[str],
        options: SendOptions = SendOptions(),
        *,
        now: datetime | None = None,
    ) -> SendResult:
        """Send the issue to ``addresses`` only, with ``[TEST]`` in the subject; no ledger."""
        from email_validator import EmailNotValidError, validate_email

        now = self.now(now)
        settings = self.settings
        name = choose_transport(settings, self.secrets, options.transport)
        with self.store() as store:
            picked = self._pick(query, now, store)
            if not picked.selection.selected:
                raise ConfigError("no posts to send; `newsletter posts` says why")
            issue = self.render(picked)
            findings = lint_issue(issue, settings, longest=None)
            if has_errors(findings):
                raise LintFailed("lint found errors; nothing was sent", list(findings))
            envelope = envelope_for(
                settings, issue, sandbox=options.sandbox, send_at=0, batch_id=""
            )
            cid = f"test-{ident.fingerprint_text(issue.subject + issue.html)[:10]}"
            personalize = personalizer_for(settings, self.secrets, name, cid)
            recipients = []
            for address in dict.fromkeys(addresses):
                try:
                    email = validate_email(address, check_deliverability=False).normalized
                except EmailNotValidError as err:
                    raise ConfigError(
                        f"{address!r} is not an email address ({err})", key="--test"
                    ) from err
                sub = store.audience.get_subscriber(email)
                row = LedgerRow(
                    str(sub.id) if sub else TEST_RECIPIENT, email, sub.first_name if sub else ""
                )
                recipients.append(personalize(row))
        batch = dataclasses.replace(envelope, subject_prefix="[TEST] ").batch(cid, 0, recipients)
        transport = build_transport(settings, self.secrets, name, now=now)
        try:
            transport.send(batch)
        finally:
            transport.close()
        return SendResult(
            cid,
            "test",
            f"test sent to {', '.join(r.email for r in recipients)} via {name}",
            findings=findings,
            outbox=self._outbox(name, cid),
        )

    def cancel(self, campaign_id: str, *, now: datetime | None = None) -> str:
        """Call off a campaign: a scheduled SendGrid send before its time, or give up an
        unfinished one (its remaining recipients are not sent). Returns what was done."""
        from newsletter.providers.sendgrid.transport import SendGridTransport

        settings = self.settings
        moment = now or datetime.now(UTC)
        with self.store() as store:
            existing = store.campaigns.get(campaign_id)
            if existing is None:
                raise ConfigError(f"no campaign {campaign_id!r}; `newsletter campaigns` lists them")
            envelope = Envelope.from_json(store.campaigns.envelope(campaign_id))
            scheduled = existing.transport == "sendgrid" and envelope.send_at and envelope.batch_id
            if not scheduled:
                if existing.state in (cs.READY, cs.PAUSED, cs.RUNNING, cs.PREPARING):
                    status = store.campaigns.status(campaign_id)
                    assert status is not None
                    left = sum(status.counts.get(s, 0) for s in (cs.PENDING, cs.SENDING, cs.FAILED))
                    note = f"given up: {left:,} remaining recipients were not sent"
                    with CampaignLock(settings.store_target, campaign_id):
                        store.campaigns.set_state(campaign_id, cs.CANCELLED, now=moment, note=note)
                    return f"campaign {campaign_id}: {note}"
                raise ConfigError(
                    f"campaign {campaign_id} is not a scheduled SendGrid send (send --send-at) "
                    "and is not unfinished, so there is nothing to call off; what was sent is "
                    "delivered"
                )
            if envelope.send_at <= moment.timestamp():
                when = datetime.fromtimestamp(envelope.send_at, UTC).isoformat(timespec="minutes")
                raise ConfigError(
                    f"campaign {campaign_id} was scheduled for {when}, which has passed: "
                    "SendGrid has sent it and it can no longer be cancelled"
                )
            transport = build_transport(settings, self.secrets, "sendgrid", now=moment)
            try:
                assert isinstance(transport, SendGridTransport)
                transport.cancel_scheduled(envelope.batch_id)
            finally:
                transport.close()
            note = f"cancelled at SendGrid (batch {envelope.batch_id}) before its send time"
            try:
                with CampaignLock(settings.store_target, campaign_id):
                    store.campaigns.set_state(campaign_id, cs.CANCELLED, now=moment, note=note)
            except NewsletterError:  # a send of it is still running: SendGrid drops what it adds
                return (
                    f"campaign {campaign_id}: cancelled at SendGrid. Its send is still running "
                    "here; what it still sends carries the same batch id and will be dropped "
                    f"too. Run `newsletter cancel {campaign_id}` again once it has stopped to "
                    "record it."
                )
        return f"campaign {campaign_id}: {note}"

    # -- the public archive ----------------------------------------------------------------

    def archive_build(self) -> list[Path]:
        """Write the archive page of every campaign that went out, the index and the feed.

        The pages come from the content each campaign froze when it started, dated by its
        send; rehearsals (outbox) count while nothing was sent through SendGrid.
        """
        from newsletter.archive import write_feed, write_index

        pages = []
        with self.store() as store:
            for campaign in sorted(store.campaigns.sent_issues(), key=lambda c: c.created_at):
                pages.append(self._write_page(store, campaign))
        root = self.settings.path(self.settings.email.archive_dir)
        root.mkdir(parents=True, exist_ok=True)
        write_index(self.settings)
        write_feed(self.settings)
        return pages

    def _publish(self, store: Store, cid: str, summary: Summary) -> list[str]:
        """After a send that finished: its public page (a note naming it), else nothing."""
        campaign = store.campaigns.get(cid)
        if summary.state != cs.DONE or campaign is None or campaign.transport == "memory":
            return []
        page = self._write_page(store, campaign)
        return [f"archive page: {page}"]

    def _write_page(self, store: Store, campaign: Campaign) -> Path:
        from newsletter.archive import write_archive

        envelope = Envelope.from_json(store.campaigns.envelope(campaign.id))
        sent = datetime.fromisoformat(campaign.created_at).astimezone(self.settings.site.tz)
        return write_archive(envelope.issue, self.settings, now=sent, campaign=campaign.id)

    # -- following campaigns ---------------------------------------------------------------

    def status(self, campaign_id: str | None = None) -> CampaignView:
        """A campaign's recipients by state, webhook events and errors (default: the newest)."""
        with self.store() as store:
            if campaign_id is None:
                recent = store.campaigns.all()
                if not recent:
                    raise ConfigError("no campaigns yet; `newsletter send` starts one")
                campaign_id = recent[0].id
            status = store.campaigns.status(campaign_id)
            if status is None:
                raise ConfigError(f"no campaign {campaign_id!r}; `newsletter campaigns` lists them")
            return self._view(store, status)

    def campaigns(self) -> list[CampaignView]:
        """Every campaign, newest first."""
        with self.store() as store:
            statuses = [store.campaigns.status(c.id) for c in store.campaigns.all()]
            return [self._view(store, s) for s in statuses if s is not None]

    def _view(self, store: Store, status: CampaignStatus) -> CampaignView:
        c = status.campaign
        running = c.state in (cs.RUNNING, cs.PREPARING) and sender_running(store.conn, c.id)
        shown = c.state
        if c.state in (cs.RUNNING, cs.PREPARING) and not running:
            shown = (
                "interrupted while preparing (no sender running; run the same newsletter send "
                "again)"
                if c.state == cs.PREPARING
                else f"interrupted (no sender running; run newsletter resume {c.id})"
            )
        return CampaignView(status, shown, running)

    # -- helpers ---------------------------------------------------------------------------

    def _dispatch(
        self,
        store: Store,
        cid: str,
        transport: Transport,
        personalize: Personalizer,
        options: SendOptions,
        progress: ProgressFn | None,
        sharing: Sharing | None = None,
    ) -> Summary:
        """Send a prepared campaign's remaining batches with the options' pacing and retries.

        A dry run's scratch store is not paced and needs no suppression check (the real
        store's suppressed addresses were never written to it).
        """
        per_second, per_hour = pacing_limits(
            self.settings, options.max_per_second, options.max_per_hour
        )
        return run_dispatch(
            self.settings,
            store,
            cid,
            transport,
            personalize,
            retry_unknown=options.retry_unknown,
            concurrency=options.concurrency,
            per_second=per_second if not options.dry_run else 0,
            per_hour=per_hour if not options.dry_run else 0,
            retry_base=options.retry_base,
            check_suppressions=not options.dry_run,
            progress=progress,
            log=self.log,
            sharing=sharing,
        )

    def label(self, campaign: Campaign) -> str:
        """How a person names a campaign: "The October 2026 issue", "The blast 'Title'"."""
        if campaign.kind == cs.BLAST:
            return f"The blast {campaign.subject!r}"
        if campaign.window_start and campaign.window_end:
            tz = self.settings.site.tz
            start = datetime.fromisoformat(campaign.window_start).astimezone(tz)
            end = datetime.fromisoformat(campaign.window_end).astimezone(tz)
            whole_month = (
                start.day == 1
                and start.time() == end.time() == datetime.min.time()
                and end.day == 1
                and (end.year * 12 + end.month) - (start.year * 12 + start.month) == 1
            )
            if whole_month:
                return f"The {start:%B %Y} issue"
            return f"The issue for {start:%Y-%m-%d %H:%M} to {end:%Y-%m-%d %H:%M}"
        return f"The issue {campaign.subject!r}"

    # -- several senders (PostgreSQL) ----------------------------------------------------------

    def _check_workers(self, options: SendOptions) -> None:
        if options.workers > 1 and not db.is_url(self.settings.store_target):
            raise ConfigError(
                f"--workers {options.workers} needs a PostgreSQL store ([store] url or "
                "NEWSLETTER_DATABASE_URL): SQLite lets one process write at a time, so more "
                "sender processes would only wait for each other. Use --concurrency for more "
                "requests in flight from one process",
                key="--workers",
            )

    def _share(self, lock: CampaignLock) -> Sharing | None:
        """On PostgreSQL, let other senders join the prepared campaign (None on SQLite)."""
        if not db.is_url(self.settings.store_target):
            return None
        if not lock.shared:
            lock.share()
        return Sharing(lock.token, lock.live_senders)

    def _spawn_senders(
        self, cid: str, options: SendOptions, sharing: Sharing | None
    ) -> list[BaseProcess]:
        if sharing is None or options.workers <= 1:
            return []
        from newsletter.campaign.workers import spawn_senders

        solo = dataclasses.replace(options, workers=1, skip_sync=True)
        self.log(f"{options.workers - 1} more sender process(es) join campaign {cid}")
        return spawn_senders(
            options.workers - 1, _resume_in_worker, self.settings, self.secrets, cid, solo
        )

    def _join_senders(
        self,
        store: Store,
        cid: str,
        workers: Sequence[BaseProcess],
        summary: Summary,
        notes: list[str],
        sharing: Sharing | None,
    ) -> Summary:
        """Wait for the sender processes; the campaign's summary once every one has finished."""
        if sharing is None or (not workers and summary.state != cs.RUNNING):
            return summary
        from newsletter.campaign.workers import wait_senders

        notes.extend(wait_senders(workers))
        campaign = store.campaigns.get(cid)
        others = sharing.live_senders() - {sharing.token}  # prunes the dead ones' leases
        if campaign is not None and campaign.state == cs.RUNNING and not others:
            # a sender died before closing the campaign: settle what it left
            store.campaigns.recover_orphans(cid, now=datetime.now(UTC))
            status = store.campaigns.status(cid)
            assert status is not None
            todo = status.counts.get(cs.PENDING, 0) + status.counts.get(cs.FAILED, 0)
            state = cs.PAUSED if todo else cs.DONE
            note = f"some recipients are still pending; run `newsletter resume {cid}`"
            store.campaigns.set_state(cid, state, now=datetime.now(UTC), note=note if todo else "")
        status = store.campaigns.status(cid)
        assert status is not None
        final = _summary_of(status)
        final.accepted_now = summary.accepted_now
        final.elapsed = summary.elapsed
        final.requests = summary.requests
        final.retries = summary.retries
        return final

    def _refuse_unsafe(self, name: str) -> None:
        """Real sends refuse placeholder senders, http unsubscribe links and weak secrets."""
        if name != "sendgrid":
            return
        if not self.secrets.sendgrid_api_key:
            build_transport(self.settings, self.secrets, name, now=datetime.now(UTC))  # says why
        problems = unsafe_settings(self.settings, self.secrets)
        if not problems:
            return
        if is_local_api(self.secrets):  # the recording fake or Prism: nothing is delivered
            for problem in problems:
                self.log(f"warning (allowed for a local SENDGRID_API_URL): {problem}")
            return
        raise ConfigError(
            "refusing a real send with unsafe settings: "
            + "; ".join(problems)
            + ". `newsletter doctor` checks every setting a send depends on"
        )

    def _sync_before_send(self, store: Store, name: str, options: SendOptions) -> list[str]:
        """Pull SendGrid's own suppression lists first (when there is a key and it is on)."""
        if name != "sendgrid":
            return []
        from newsletter.providers.sendgrid.suppression_sync import sync_before_send

        line = sync_before_send(
            self.settings,
            self.secrets,
            store.audience,
            skip=options.skip_sync,
            on_wait=lambda wait: self.log(wait.describe()),
        )
        if line:
            self.log(f"suppressions: {line}")
        return []

    def _outbox(self, name: str, cid: str) -> Path | None:
        if name != "outbox":
            return None
        return self.settings.path(self.settings.send.outbox_dir) / cid

    def _relative_paths(self, selection: Selection) -> dict[str, str]:
        root = self.settings.root.resolve()
        out = {}
        for post in selection.selected:
            try:
                out[str(post.path)] = post.path.resolve().relative_to(root).as_posix()
            except ValueError:
                out[str(post.path)] = post.path.name
        return out


def _local(iso: str, tz: tzinfo) -> str:
    """A stored UTC time as the site shows times: ``2026-11-01 09:00 PDT``."""
    try:
        return datetime.fromisoformat(iso).astimezone(tz).strftime("%Y-%m-%d %H:%M %Z")
    except ValueError:
        return iso


def _stem(query: IssueQuery, selection: Selection) -> str:
    if query.posts:
        return ""
    if query.month:
        year, _, mon = query.month.strip().partition("-")
        return f"{int(year):04d}-{int(mon):02d}"
    return ""


def _summary_of(status: CampaignStatus) -> Summary:
    c = status.campaign
    return Summary(
        campaign_id=c.id,
        state=c.state,
        counts=status.counts,
        total=c.total,
        note=c.note,
        errors=status.errors,
    )


def _send_at_epoch(when: datetime | None) -> int:
    if when is None:
        return 0
    delta = when.timestamp() - datetime.now(UTC).timestamp()
    if delta < 0 or delta > 72 * 3600:
        raise ConfigError("must be in the next 72 hours (SendGrid's limit)", key="--send-at")
    return int(when.timestamp())


def _new_batch(transport: object) -> str:
    """A SendGrid batch id for a scheduled campaign (``newsletter cancel`` needs one)."""
    from newsletter.providers.sendgrid.transport import SendGridTransport

    if not isinstance(transport, SendGridTransport):
        return ""  # the outbox and dry runs have nothing to cancel
    return transport.create_batch()


def store_fault(path: Path | str, err: sqlite3.Error) -> StoreFault:
    """An SQLite error that escaped a command, as the one line that names the store file and
    says what to do (for the CLI's last resort; the store translates what it can itself)."""
    return fault(path, err)


def _resume_in_worker(
    settings: Settings, secrets: Secrets, campaign_id: str, options: SendOptions
) -> None:
    """What each extra process of ``send --workers N`` runs: a plain resume of the shared
    campaign (:mod:`newsletter.campaign.workers` starts it with ``spawn``)."""
    import sys

    try:
        Newsletter(settings, secrets).resume(campaign_id, options)
    except NewsletterError as err:
        print(f"error: {err.format()}", file=sys.stderr)
        sys.exit(err.exit_code)
