"""Subscribers, their tags, suppressions and raw webhook events (issue #4).

Addresses are keyed by ``email_key``: the whole address lower-cased. SendGrid treats addresses
case-insensitively (local part included), so ``Ann@x.org`` and ``ann@X.org`` are one person here
too; the address is stored as it was first given (domain lower-cased), and mail goes to that.

A suppression is keyed by address, not by subscriber, because SendGrid's lists hold addresses we
may never have imported. ``suppression_log`` keeps every suppress/unsuppress with time and source.
Subscriber ids use AUTOINCREMENT so an id is never reused: unsubscribe tokens carry the id.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime

from newsletter.store import bulk
from newsletter.store.db import Migration, is_postgres, write
from newsletter.store.keys import email_key

MIGRATIONS: list[Migration] = [
    (
        "audience.0001_initial",
        """
        CREATE TABLE subscribers (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            email TEXT NOT NULL,
            email_key TEXT NOT NULL UNIQUE,
            first_name TEXT NOT NULL DEFAULT '',
            last_name TEXT NOT NULL DEFAULT '',
            fields TEXT NOT NULL DEFAULT '{}',
            subscribed_at TEXT,
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL
        );
        CREATE TABLE subscriber_tags (
            subscriber_id INTEGER NOT NULL REFERENCES subscribers(id) ON DELETE CASCADE,
            tag TEXT NOT NULL,
            PRIMARY KEY (subscriber_id, tag)
        ) WITHOUT ROWID;
        CREATE INDEX subscriber_tags_by_tag ON subscriber_tags(tag, subscriber_id);
        CREATE TABLE suppressions (
            email_key TEXT PRIMARY KEY,
            email TEXT NOT NULL,
            reason TEXT NOT NULL,
            source TEXT NOT NULL,
            detail TEXT NOT NULL DEFAULT '',
            created_at TEXT NOT NULL
        );
        CREATE TABLE suppression_log (
            id INTEGER PRIMARY KEY,
            email_key TEXT NOT NULL,
            action TEXT NOT NULL,
            reason TEXT NOT NULL DEFAULT '',
            source TEXT NOT NULL,
            detail TEXT NOT NULL DEFAULT '',
            at TEXT NOT NULL
        );
        CREATE INDEX suppression_log_by_key ON suppression_log(email_key, id);
        CREATE TABLE webhook_events (
            event_id TEXT PRIMARY KEY,
            event TEXT NOT NULL,
            email_key TEXT NOT NULL DEFAULT '',
            campaign_id TEXT NOT NULL DEFAULT '',
            recipient_id TEXT NOT NULL DEFAULT '',
            at TEXT NOT NULL,
            received_at TEXT NOT NULL,
            raw TEXT NOT NULL
        );
        CREATE INDEX webhook_events_by_campaign ON webhook_events(campaign_id, recipient_id);
        """,
    ),
    (
        # A removed subscriber leaves a tombstone (id -> address), so unsubscribe links in mail
        # already sent to them still name the address they were sent to, even after the address
        # is imported again under a new id.
        "audience.0002_removed_subscribers",
        """
        CREATE TABLE removed_subscribers (
            id INTEGER PRIMARY KEY,
            email TEXT NOT NULL,
            email_key TEXT NOT NULL,
            removed_at TEXT NOT NULL
        );
        """,
    ),
    (
        # Double opt-in (issue #14). Everyone already on the list was imported by the list's
        # owner and stays a recipient: the column defaults to 'confirmed'. A reader who signs up
        # on the site is 'pending' until they follow the link in the confirmation email, and a
        # pending subscriber is never a recipient (see AudienceStore._where). Unsubscribed and
        # suppressed stay what they were: a row in ``suppressions``, whatever the status.
        "audience.0003_signup",
        """
        ALTER TABLE subscribers ADD COLUMN status TEXT NOT NULL DEFAULT 'confirmed'
            CHECK (status IN ('pending', 'confirmed'));
        ALTER TABLE subscribers ADD COLUMN confirmed_at TEXT;
        ALTER TABLE subscribers ADD COLUMN confirmation_sent_at TEXT;
        CREATE INDEX subscribers_pending ON subscribers(id) WHERE status = 'pending';
        -- What a person agreed to, when, where: one row per request and per confirmation.
        -- client_hash is a keyed hash (HMAC with NEWSLETTER_SECRET) of the client address,
        -- never the address itself.
        CREATE TABLE consents (
            id INTEGER PRIMARY KEY,
            email_key TEXT NOT NULL,
            action TEXT NOT NULL,
            at TEXT NOT NULL,
            source TEXT NOT NULL,
            page TEXT NOT NULL DEFAULT '',
            client_hash TEXT NOT NULL DEFAULT '',
            tags TEXT NOT NULL DEFAULT ''
        );
        CREATE INDEX consents_by_key ON consents(email_key, id);
        -- Fixed-window counters shared by every process that serves the form.
        CREATE TABLE rate_limits (
            bucket TEXT NOT NULL,
            window_start INTEGER NOT NULL,
            expires_at INTEGER NOT NULL,
            hits INTEGER NOT NULL,
            PRIMARY KEY (bucket, window_start)
        ) WITHOUT ROWID;
        CREATE INDEX rate_limits_by_expiry ON rate_limits(expires_at);
        -- Confirmation emails to send: written in the signup's transaction, sent by a worker,
        -- deleted once the transport took them (a crash between the two sends it on restart).
        CREATE TABLE confirmation_queue (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            subscriber_id INTEGER NOT NULL,
            email TEXT NOT NULL,
            queued_at TEXT NOT NULL,
            expires_at TEXT NOT NULL,
            attempts INTEGER NOT NULL DEFAULT 0,
            not_before INTEGER NOT NULL DEFAULT 0,
            claimed_until INTEGER NOT NULL DEFAULT 0
        );
        """,
    ),
]

# Why an address must not be mailed. "unsubscribed" is the only reason a person can undo
# themselves (the resubscribe button); the others need `newsletter suppressions remove`.
REASONS = ("unsubscribed", "bounced", "spam_report", "group_unsubscribed", "invalid", "manual")

PAGE = 1000


def _iso(now: datetime) -> str:
    return now.isoformat(timespec="seconds")


@dataclass(frozen=True)
class RecipientQuery:
    """Who a send goes to, as SQL over ``subscribers s``, so a campaign's ledger can be filled
    inside SQLite (:meth:`~newsletter.store.campaigns.CampaignStore.add_audience`).

    ``where`` holds the clauses that follow ``WHERE s.id > ?``; ``params`` are theirs.
    """

    where: str
    params: tuple[str, ...]


@dataclass(frozen=True)
class Subscriber:
    id: int
    email: str
    first_name: str = ""
    last_name: str = ""
    tags: tuple[str, ...] = ()
    fields: Mapping[str, str] = field(default_factory=dict)
    subscribed_at: str | None = None
    status: str = "confirmed"  # or "pending" (signed up, not yet confirmed: never mailed)


@dataclass(frozen=True)
class Suppression:
    email: str
    reason: str
    source: str
    created_at: str
    detail: str = ""


@dataclass(frozen=True)
class AudienceStats:
    subscribers: int
    active: int  # subscribers not suppressed
    suppressed_subscribers: int
    suppressions_by_reason: Mapping[str, int]
    tags: Mapping[str, int]  # tag -> active subscribers with it
    pending: int = 0  # signed up, not confirmed yet (never mailed)
    confirmed: int = 0  # confirmed or imported, suppressed or not
    unsubscribed: int = 0  # subscribers whose address is suppressed as "unsubscribed"


@dataclass(frozen=True)
class WebhookEventRow:
    event_id: str
    event: str
    email: str
    campaign_id: str
    recipient_id: str
    at: str
    raw: str


_SUB_COLS = "s.id, s.email, s.first_name, s.last_name, s.fields, s.subscribed_at, s.status"


class AudienceStore:
    """Subscribers and suppressions behind plain methods; no SQL leaves this class."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    # -- reading subscribers -------------------------------------------------------------------

    def _build(self, rows: Sequence[sqlite3.Row]) -> list[Subscriber]:
        if not rows:
            return []
        ids = [r[0] for r in rows]
        tags: dict[int, list[str]] = {}
        marks = ",".join("?" * len(ids))
        for sid, tag in self.conn.execute(
            f"SELECT subscriber_id, tag FROM subscriber_tags WHERE subscriber_id IN ({marks})"
            " ORDER BY subscriber_id, tag",
            ids,
        ):
            tags.setdefault(sid, []).append(tag)
        return [
            Subscriber(
                id=r[0],
                email=r[1],
                first_name=r[2],
                last_name=r[3],
                tags=tuple(tags.get(r[0], ())),
                fields=json.loads(r[4]),
                subscribed_at=r[5],
                status=r[6],
            )
            for r in rows
        ]

    def get_subscriber(self, email: str) -> Subscriber | None:
        rows = self.conn.execute(
            f"SELECT {_SUB_COLS} FROM subscribers s WHERE s.email_key = ?", (email_key(email),)
        ).fetchall()
        built = self._build(rows)
        return built[0] if built else None

    def get_subscriber_by_id(self, subscriber_id: int) -> Subscriber | None:
        rows = self.conn.execute(
            f"SELECT {_SUB_COLS} FROM subscribers s WHERE s.id = ?", (subscriber_id,)
        ).fetchall()
        built = self._build(rows)
        return built[0] if built else None

    def _where(self, segments: Sequence[str], *, active_only: bool) -> tuple[str, list[str]]:
        clauses: list[str] = []
        params: list[str] = []
        if segments:
            marks = ",".join("?" * len(segments))
            # tags compare without case everywhere: --segment Core is the tag 'core'
            clauses.append(
                "EXISTS (SELECT 1 FROM subscriber_tags t WHERE t.subscriber_id = s.id"
                f" AND lower(t.tag) IN ({marks}))"
            )
            params.extend(t.casefold() for t in segments)
        if active_only:
            clauses.append("s.status = 'confirmed'")
            clauses.append(
                "NOT EXISTS (SELECT 1 FROM suppressions x WHERE x.email_key = s.email_key)"
            )
        return "".join(f" AND {c}" for c in clauses), params

    def iter_subscribers(
        self, segments: Sequence[str] = (), *, active_only: bool = False, page: int = PAGE
    ) -> Iterator[Subscriber]:
        """Every subscriber (any-of ``segments`` when given), ordered by id, in keyset pages."""
        where, params = self._where(tuple(segments), active_only=active_only)
        last = 0
        while True:
            rows = self.conn.execute(
                f"SELECT {_SUB_COLS} FROM subscribers s WHERE s.id > ?{where}"
                " ORDER BY s.id LIMIT ?",
                [last, *params, page],
            ).fetchall()
            if not rows:
                return
            yield from self._build(rows)
            last = rows[-1][0]

    def iter_recipients(self, segments: Sequence[str] = ()) -> Iterator[Subscriber]:
        """Active (confirmed, not suppressed) subscribers, any-of ``segments``, ordered by id.

        Each address appears once (``email_key`` is unique); memory holds one page at a time.
        """
        return self.iter_subscribers(segments, active_only=True)

    def iter_recipient_rows(
        self, segments: Sequence[str] = (), *, page: int = 5 * PAGE
    ) -> Iterator[tuple[int, str, str]]:
        """``(id, email, first_name)`` of the same people as :meth:`iter_recipients`.

        What a campaign's ledger needs and no more (no tags, no custom fields), for sends to a
        million people: the same order, the same keyset pages, no objects per row.
        """
        query = self.recipient_query(segments)
        where, params = query.where, query.params
        sql = (
            f"SELECT s.id, s.email, s.first_name FROM subscribers s WHERE s.id > ?{where}"
            " ORDER BY s.id LIMIT ?"
        )
        last = 0
        while True:
            rows = self.conn.execute(sql, [last, *params, page]).fetchall()
            if not rows:
                return
            for row in rows:
                yield row[0], row[1], row[2]
            last = rows[-1][0]

    def recipient_query(self, segments: Sequence[str] = ()) -> RecipientQuery:
        """The people of :meth:`iter_recipients`, as SQL (see :class:`RecipientQuery`)."""
        where, params = self._where(tuple(segments), active_only=True)
        return RecipientQuery(where, tuple(params))

    def custom_field_names(self) -> list[str]:
        each = "jsonb_object_keys(s.fields::jsonb) AS j(key)"  # PostgreSQL
        if not is_postgres(self.conn):
            each = "json_each(s.fields) j"
        rows = self.conn.execute(
            f"SELECT DISTINCT j.key FROM subscribers s, {each} ORDER BY j.key"
        ).fetchall()
        return [r[0] for r in rows]

    def count_recipients(self, segments: Sequence[str] = ()) -> int:
        """How many :meth:`iter_recipients` yields.

        Counted as subscribers minus pending ones minus suppressed confirmed ones (one
        statement, one snapshot): the suppression list and the pending ones (a partial index)
        are short next to the audience, and probing each subscriber took a second for a million.
        """
        where, params = self._where(tuple(segments), active_only=False)
        row = self.conn.execute(
            f"SELECT (SELECT count(*) FROM subscribers s WHERE TRUE{where})"
            f" - (SELECT count(*) FROM subscribers s WHERE s.status = 'pending'{where})"
            " - (SELECT count(*) FROM suppressions x JOIN subscribers s"
            f" ON s.email_key = x.email_key WHERE s.status = 'confirmed'{where})",
            [*params, *params, *params],
        ).fetchone()
        return int(row[0])

    def stats(self) -> AudienceStats:
        total = self.conn.execute("SELECT count(*) FROM subscribers").fetchone()[0]
        active = self.count_recipients()
        by_reason = dict(
            self.conn.execute(
                "SELECT reason, count(*) FROM suppressions GROUP BY reason ORDER BY reason"
            ).fetchall()
        )
        tags = dict(
            self.conn.execute(
                "SELECT t.tag, count(*) FROM subscriber_tags t JOIN subscribers s"
                " ON s.id = t.subscriber_id WHERE s.status = 'confirmed' AND NOT EXISTS"
                " (SELECT 1 FROM suppressions x WHERE x.email_key = s.email_key)"
                " GROUP BY t.tag ORDER BY t.tag"
            ).fetchall()
        )
        pending, suppressed, unsubscribed = self.conn.execute(
            "SELECT (SELECT count(*) FROM subscribers WHERE status = 'pending'),"
            " (SELECT count(*) FROM suppressions x JOIN subscribers s"
            " ON s.email_key = x.email_key),"
            " (SELECT count(*) FROM suppressions x JOIN subscribers s"
            " ON s.email_key = x.email_key WHERE x.reason = 'unsubscribed')"
        ).fetchone()
        return AudienceStats(
            subscribers=int(total),
            active=active,
            suppressed_subscribers=int(suppressed),
            suppressions_by_reason=by_reason,
            tags=tags,
            pending=int(pending),
            confirmed=int(total) - int(pending),
            unsubscribed=int(unsubscribed),
        )

    # -- writing subscribers -------------------------------------------------------------------

    @contextmanager
    def import_session(self) -> Iterator[bulk.ImportSession]:
        """A bulk import: chunks are applied one write transaction each (others can write
        between them), and a temporary table remembers the addresses seen so far, so duplicates
        across chunks are found without holding a million addresses in memory."""
        self.conn.execute("CREATE TEMP TABLE IF NOT EXISTS import_seen(k TEXT PRIMARY KEY)")
        self.conn.execute("DELETE FROM temp.import_seen")
        try:
            yield bulk.ImportSession(self.conn)
        finally:
            self.conn.execute("DROP TABLE IF EXISTS temp.import_seen")

    def remove_subscriber(self, email: str, *, now: datetime) -> bool:
        """Delete a subscriber and their tags. Suppressions stay (they are about the address).

        The id is kept with the address as a tombstone (see :meth:`address_for_id`): links in
        mail already sent must still unsubscribe that address.
        """
        key = email_key(email)
        with write(self.conn):
            self.conn.execute(
                "INSERT OR IGNORE INTO removed_subscribers(id, email, email_key, removed_at)"
                " SELECT id, email, email_key, ? FROM subscribers WHERE email_key = ?",
                (_iso(now), key),
            )
            cur = self.conn.execute("DELETE FROM subscribers WHERE email_key = ?", (key,))
        return cur.rowcount > 0

    def address_for_id(self, subscriber_id: int) -> str | None:
        """The address a subscriber id was given to: a current subscriber's, or a removed one's
        (ids are never reused, so the answer never changes once given). None if unknown."""
        row = self.conn.execute(
            "SELECT email FROM subscribers WHERE id = ?"
            " UNION ALL SELECT email FROM removed_subscribers WHERE id = ?",
            (subscriber_id, subscriber_id),
        ).fetchone()
        return None if row is None else str(row[0])

    # -- suppressions --------------------------------------------------------------------------

    def is_suppressed(self, email: str) -> bool:
        row = self.conn.execute(
            "SELECT 1 FROM suppressions WHERE email_key = ?", (email_key(email),)
        ).fetchone()
        return row is not None

    def get_suppression(self, email: str) -> Suppression | None:
        row = self.conn.execute(
            "SELECT email, reason, source, created_at, detail FROM suppressions"
            " WHERE email_key = ?",
            (email_key(email),),
        ).fetchone()
        return None if row is None else Suppression(*row)

    def suppress(
        self, email: str, *, reason: str, source: str, now: datetime, detail: str = ""
    ) -> bool:
        """Suppress an address. Returns False (and changes nothing) if it already was."""
        with write(self.conn):
            return self._suppress_in_tx(email, reason, source, now, detail)

    def _suppress_in_tx(
        self, email: str, reason: str, source: str, now: datetime, detail: str
    ) -> bool:
        if reason not in REASONS:
            raise ValueError(f"unknown suppression reason {reason!r}")
        key = email_key(email)
        cur = self.conn.execute(
            "INSERT INTO suppressions(email_key, email, reason, source, detail, created_at)"
            " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(email_key) DO NOTHING",
            (key, email.strip(), reason, source, detail, _iso(now)),
        )
        if cur.rowcount == 0:
            return False
        self.conn.execute(
            "INSERT INTO suppression_log(email_key, action, reason, source, detail, at)"
            " VALUES (?, 'suppress', ?, ?, ?, ?)",
            (key, reason, source, detail, _iso(now)),
        )
        return True

    def suppress_many(
        self, items: Sequence[tuple[str, str, str]], *, source: str, now: datetime
    ) -> int:
        """Suppress ``(email, reason, detail)`` items in one transaction; return the count new."""
        added = 0
        with write(self.conn):
            for email, reason, detail in items:
                added += self._suppress_in_tx(email, reason, source, now, detail)
        return added

    def unsuppress(
        self,
        email: str,
        *,
        source: str,
        now: datetime,
        only_reasons: Sequence[str] = (),
        only_sources: Sequence[str] = (),
    ) -> bool:
        """Lift a suppression. With ``only_reasons`` / ``only_sources``, only if it was
        suppressed for one of those reasons / by one of those sources."""
        key = email_key(email)
        with write(self.conn):
            row = self.conn.execute(
                "SELECT reason, source FROM suppressions WHERE email_key = ?", (key,)
            ).fetchone()
            if row is None or (only_reasons and row[0] not in only_reasons):
                return False
            if only_sources and row[1] not in only_sources:
                return False
            self.conn.execute("DELETE FROM suppressions WHERE email_key = ?", (key,))
            self.conn.execute(
                "INSERT INTO suppression_log(email_key, action, reason, source, at)"
                " VALUES (?, 'unsuppress', ?, ?, ?)",
                (key, row[0], source, _iso(now)),
            )
        return True

    def iter_suppressions(self, reason: str = "") -> Iterator[Suppression]:
        last = ""
        while True:
            rows = self.conn.execute(
                "SELECT email_key, email, reason, source, created_at, detail FROM suppressions"
                " WHERE email_key > ? AND (? = '' OR reason = ?) ORDER BY email_key LIMIT ?",
                (last, reason, reason, PAGE),
            ).fetchall()
            if not rows:
                return
            for r in rows:
                yield Suppression(r[1], r[2], r[3], r[4], r[5])
            last = rows[-1][0]

    def count_suppressions(self) -> int:
        return int(self.conn.execute("SELECT count(*) FROM suppressions").fetchone()[0])

    def suppression_history(self, email: str) -> list[tuple[str, str, str, str]]:
        """``(at, action, reason, source)`` for an address, oldest first."""
        rows = self.conn.execute(
            "SELECT at, action, reason, source FROM suppression_log WHERE email_key = ?"
            " ORDER BY id",
            (email_key(email),),
        ).fetchall()
        return [(r[0], r[1], r[2], r[3]) for r in rows]

    # -- webhook events ------------------------------------------------------------------------

    def has_webhook_event(self, event_id: str) -> bool:
        row = self.conn.execute(
            "SELECT 1 FROM webhook_events WHERE event_id = ?", (event_id,)
        ).fetchone()
        return row is not None

    def record_webhook_event(self, row: WebhookEventRow, *, received: datetime) -> bool:
        """Keep a raw event once. False when its id was seen before (SendGrid retries)."""
        with write(self.conn):
            cur = self.conn.execute(
                "INSERT INTO webhook_events(event_id, event, email_key, campaign_id,"
                " recipient_id, at, received_at, raw) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT(event_id) DO NOTHING",
                (
                    row.event_id,
                    row.event,
                    email_key(row.email),
                    row.campaign_id,
                    row.recipient_id,
                    row.at,
                    _iso(received),
                    row.raw,
                ),
            )
        return cur.rowcount > 0

    def webhook_event_counts(self, campaign_id: str = "") -> dict[str, int]:
        rows = self.conn.execute(
            "SELECT event, count(*) FROM webhook_events WHERE ? = '' OR campaign_id = ?"
            " GROUP BY event ORDER BY event",
            (campaign_id, campaign_id),
        ).fetchall()
        return {r[0]: int(r[1]) for r in rows}

    def iter_subscribers_with_reasons(
        self, segments: Sequence[str] = (), *, active_only: bool = False, page: int = PAGE
    ) -> Iterator[tuple[Subscriber, str]]:
        """:meth:`iter_subscribers`, each with why it is suppressed ("" when it is not).

        One suppression query per page, not one per subscriber (listing a million).
        """
        chunk: list[Subscriber] = []
        for sub in self.iter_subscribers(segments, active_only=active_only, page=page):
            chunk.append(sub)
            if len(chunk) >= page:
                yield from self._with_reasons(chunk)
                chunk = []
        yield from self._with_reasons(chunk)

    def _with_reasons(self, subs: Sequence[Subscriber]) -> Iterator[tuple[Subscriber, str]]:
        if not subs:
            return
        keys = [email_key(s.email) for s in subs]
        marks = ",".join("?" * len(keys))
        reasons = dict(
            self.conn.execute(
                f"SELECT email_key, reason FROM suppressions WHERE email_key IN ({marks})", keys
            ).fetchall()
        )
        for sub, key in zip(subs, keys, strict=True):
            yield sub, reasons.get(key, "")

    def suppressed_among(self, emails: Sequence[str]) -> set[str]:
        """The :func:`email_key` of each of ``emails`` that is suppressed, in one query.

        The dispatcher calls this once per batch (at most 1000 addresses, well under SQLite's
        32766 bound parameters), just before the batch's request.
        """
        keys = list(dict.fromkeys(email_key(e) for e in emails))
        if is_postgres(self.conn):
            # one array parameter: the statement text stays the same whatever the batch size,
            # so the driver converts it once and the server plans it once (an IN list of 1000
            # placeholders cost 3 ms of parsing per batch)
            rows = self.conn.execute(
                "SELECT email_key FROM suppressions WHERE email_key = ANY(?)", (keys,)
            ).fetchall()
            return {r[0] for r in rows}
        found: set[str] = set()
        for start in range(0, len(keys), 30_000):
            chunk = keys[start : start + 30_000]
            marks = ",".join("?" * len(chunk))
            rows = self.conn.execute(
                f"SELECT email_key FROM suppressions WHERE email_key IN ({marks})", chunk
            ).fetchall()
            found.update(r[0] for r in rows)
        return found
