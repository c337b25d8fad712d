"""Sign-ups from the site: pending subscribers, consent records, rate limits, the mail queue.

Everything a sign-up changes happens in one write transaction (:meth:`SignupStore.record`):
the rate-limit counters, the pending subscriber, its consent record and the confirmation email
in the queue. So two processes serving the form share one set of limits, and a crash never
leaves a pending reader without their email or an email without its consent record.

What each address gets when it signs up (the caller answers all of them the same way):

================================  ========================================================
the address is                    what happens
================================  ========================================================
new                               a pending subscriber, a consent record, one email queued
pending, mailed under an hour ago nothing (at most one confirmation email per hour)
pending, mailed earlier           names and tags updated, a consent record, one email queued
confirmed and not suppressed      nothing (already subscribed)
unsubscribed by its own click     as new/pending: it comes back only by confirming again
(one-click or unsubscribe page)
suppressed any other way          nothing, ever (bounced, spam report, SendGrid's lists, the
                                  owner's suppression): the form never mails it
================================  ========================================================
"""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from newsletter.store.db import write
from newsletter.store.keys import email_key

# Suppressions a reader made themselves from a link in our mail: confirming a new sign-up lifts
# them. Any other suppression (a bounce, a spam report, SendGrid's own lists, the owner's) stays.
SELF_SERVICE_SOURCES = ("one-click", "unsubscribe-page")

# record() answers
QUEUED = "queued"  # a confirmation email was queued
THROTTLED = "throttled"  # pending, and mailed less than an hour ago: nothing changed
ALREADY = "already"  # confirmed and not suppressed: nothing changed
REFUSED = "refused"  # suppressed (not by the reader's own unsubscribe): nothing changed
RATE_LIMITED = "rate_limited"  # over a client or global limit: nothing but the counters changed


def _iso(when: datetime) -> str:
    return when.isoformat(timespec="seconds")


@dataclass(frozen=True)
class Limit:
    """At most ``max_hits`` in each ``window_seconds`` window for ``bucket`` (0: no limit)."""

    bucket: str
    window_seconds: int
    max_hits: int


@dataclass(frozen=True)
class SignupRecord:
    """One sign-up, already checked and cleaned by :mod:`newsletter.signup`."""

    email: str
    first_name: str = ""
    last_name: str = ""
    tags: tuple[str, ...] = ()
    source: str = "form"  # which form (or "import:FILE")
    page: str = ""  # the page the form was on
    client_hash: str = ""  # keyed hash of the client address, never the address


@dataclass(frozen=True)
class Consent:
    action: str  # "requested" | "confirmed" | "imported"
    at: str
    source: str
    page: str
    client_hash: str
    tags: str


@dataclass(frozen=True)
class QueuedEmail:
    id: int
    subscriber_id: int
    email: str
    expires_at: str
    attempts: int


@dataclass(frozen=True)
class PendingInfo:
    subscriber_id: int
    email: str
    status: str  # "pending" | "confirmed"
    suppression: tuple[str, str] | None  # (reason, source) when suppressed


class SignupStore:
    """The sign-up side of the audience tables; no SQL leaves this class."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    # -- rate limits ---------------------------------------------------------------------------

    def _hit(self, limit: Limit, now_ts: int) -> int:
        start = now_ts - now_ts % limit.window_seconds
        row = self.conn.execute(
            "INSERT INTO rate_limits(bucket, window_start, expires_at, hits) VALUES (?, ?, ?, 1)"
            " ON CONFLICT(bucket, window_start) DO UPDATE SET hits = rate_limits.hits + 1"
            " RETURNING hits",
            (limit.bucket, start, start + limit.window_seconds),
        ).fetchone()
        hits = int(row[0])
        if hits == 1:  # a new window: drop the ones that ended (cheap, indexed)
            self.conn.execute("DELETE FROM rate_limits WHERE expires_at <= ?", (now_ts,))
        return hits

    def hits(self, bucket: str, *, now: datetime, window_seconds: int) -> int:
        """Hits counted so far in the current window of ``bucket`` (for tests and stats)."""
        ts = int(now.timestamp())
        row = self.conn.execute(
            "SELECT hits FROM rate_limits WHERE bucket = ? AND window_start = ?",
            (bucket, ts - ts % window_seconds),
        ).fetchone()
        return 0 if row is None else int(row[0])

    # -- sign-up -------------------------------------------------------------------------------

    def record(
        self,
        rec: SignupRecord,
        *,
        now: datetime,
        limits: Sequence[Limit],
        resend_after: timedelta,
        expires_after: timedelta,
    ) -> str:
        """Apply one sign-up (see the table in the module docstring); returns what happened."""
        key = email_key(rec.email)
        stamp = _iso(now)
        with write(self.conn):
            now_ts = int(now.timestamp())
            over = False
            for limit in limits:  # count every limit, even after one is over
                over |= self._hit(limit, now_ts) > limit.max_hits > 0
            if over:
                return RATE_LIMITED
            sup = self.conn.execute(
                "SELECT reason, source FROM suppressions WHERE email_key = ?", (key,)
            ).fetchone()
            sub = self.conn.execute(
                "SELECT id, status, confirmation_sent_at FROM subscribers WHERE email_key = ?",
                (key,),
            ).fetchone()
            if sup is not None:
                if sup[0] != "unsubscribed" or sup[1] not in SELF_SERVICE_SOURCES:
                    return REFUSED
            elif sub is not None and sub[1] == "confirmed":
                return ALREADY
            if sub is not None and sub[2] is not None:
                sent = datetime.fromisoformat(sub[2])
                if now - sent < resend_after:
                    return THROTTLED
            if sub is None:
                sid = self.conn.execute(
                    "INSERT INTO subscribers(email, email_key, first_name, last_name,"
                    " created_at, updated_at, status, confirmation_sent_at)"
                    " VALUES (?, ?, ?, ?, ?, ?, 'pending', ?) RETURNING id",
                    (rec.email, key, rec.first_name, rec.last_name, stamp, stamp, stamp),
                ).fetchone()[0]
            else:
                sid = sub[0]
                self.conn.execute(
                    "UPDATE subscribers SET first_name = coalesce(nullif(?, ''), first_name),"
                    " last_name = coalesce(nullif(?, ''), last_name), updated_at = ?,"
                    " confirmation_sent_at = ? WHERE id = ?",
                    (rec.first_name, rec.last_name, stamp, stamp, sid),
                )
            self.conn.executemany(
                "INSERT OR IGNORE INTO subscriber_tags(subscriber_id, tag) VALUES (?, ?)",
                [(sid, t) for t in rec.tags],
            )
            self._consent(key, "requested", rec, stamp)
            self._queue(sid, rec.email, now, expires_after)
        return QUEUED

    def _consent(self, key: str, action: str, rec: SignupRecord, stamp: str) -> None:
        self.conn.execute(
            "INSERT INTO consents(email_key, action, at, source, page, client_hash, tags)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            (key, action, stamp, rec.source, rec.page, rec.client_hash, ";".join(rec.tags)),
        )

    def _queue(self, sid: int, email: str, now: datetime, expires_after: timedelta) -> None:
        self.conn.execute(
            "INSERT INTO confirmation_queue(subscriber_id, email, queued_at, expires_at)"
            " VALUES (?, ?, ?, ?)",
            (sid, email, _iso(now), _iso(now + expires_after)),
        )

    def queue_unmailed(self, *, now: datetime, expires_after: timedelta, source: str = "") -> int:
        """Queue a confirmation email for every pending subscriber never sent one (an import
        with ``--status pending --send-confirmations``); returns how many."""
        stamp = _iso(now)
        with write(self.conn):
            rows = self.conn.execute(
                "UPDATE subscribers SET confirmation_sent_at = ? WHERE status = 'pending'"
                " AND confirmation_sent_at IS NULL AND NOT EXISTS (SELECT 1 FROM suppressions"
                " x WHERE x.email_key = subscribers.email_key) RETURNING id, email",
                (stamp,),
            ).fetchall()
            for sid, email in sorted(rows, key=lambda r: int(r[0])):
                self._queue(sid, email, now, expires_after)
        return len(rows)

    # -- confirmation --------------------------------------------------------------------------

    def pending_info(self, subscriber_id: int) -> PendingInfo | None:
        row = self.conn.execute(
            "SELECT s.id, s.email, s.status, x.reason, x.source FROM subscribers s"
            " LEFT JOIN suppressions x ON x.email_key = s.email_key WHERE s.id = ?",
            (subscriber_id,),
        ).fetchone()
        if row is None:
            return None
        sup = None if row[3] is None else (str(row[3]), str(row[4]))
        return PendingInfo(int(row[0]), str(row[1]), str(row[2]), sup)

    def confirm(
        self, subscriber_id: int, email: str, *, now: datetime, source: str, client_hash: str
    ) -> bool:
        """Confirm a subscriber (if it still has this address): it becomes a recipient. An
        unsubscribe the reader made themselves is lifted; any other suppression stays.
        Returns False when there is no such subscriber (purged, removed)."""
        key = email_key(email)
        stamp = _iso(now)
        with write(self.conn):
            row = self.conn.execute(
                "SELECT status FROM subscribers WHERE id = ? AND email_key = ?",
                (subscriber_id, key),
            ).fetchone()
            if row is None:
                return False
            sup = self.conn.execute(
                "SELECT reason, source FROM suppressions WHERE email_key = ?", (key,)
            ).fetchone()
            was_pending = row[0] == "pending"
            comeback = (
                sup is not None and sup[0] == "unsubscribed" and sup[1] in SELF_SERVICE_SOURCES
            )
            if not was_pending and not comeback:
                return True  # confirmed before: a second click changes nothing
            self.conn.execute(
                "UPDATE subscribers SET status = 'confirmed', confirmed_at = ?,"
                " subscribed_at = CASE WHEN status = 'pending' THEN ? ELSE subscribed_at END,"
                " updated_at = ? WHERE id = ?",
                (stamp, stamp, stamp, subscriber_id),
            )
            if comeback:
                self.conn.execute("DELETE FROM suppressions WHERE email_key = ?", (key,))
                self.conn.execute(
                    "INSERT INTO suppression_log(email_key, action, reason, source, at)"
                    " VALUES (?, 'unsuppress', 'unsubscribed', 'signup-confirmed', ?)",
                    (key, stamp),
                )
            self._consent(
                key, "confirmed", SignupRecord(email, source=source, client_hash=client_hash), stamp
            )
            self.conn.execute(
                "DELETE FROM confirmation_queue WHERE subscriber_id = ?", (subscriber_id,)
            )
        return True

    def count_expired_pending(self, *, now: datetime, older_than: timedelta) -> int:
        row = self.conn.execute(
            "SELECT count(*) FROM subscribers WHERE status = 'pending'"
            " AND coalesce(confirmation_sent_at, created_at) < ?",
            (_iso(now - older_than),),
        ).fetchone()
        return int(row[0])

    def purge_pending(self, *, now: datetime, older_than: timedelta) -> int:
        """Delete pending subscribers whose last confirmation email is older than
        ``older_than`` (their link has expired), with their queued mail and the consent
        records of a request never confirmed. Returns how many."""
        cutoff = _iso(now - older_than)
        with write(self.conn):
            keys = [
                r[0]
                for r in self.conn.execute(
                    "DELETE FROM subscribers WHERE status = 'pending'"
                    " AND coalesce(confirmation_sent_at, created_at) < ? RETURNING email_key",
                    (cutoff,),
                ).fetchall()
            ]
            self.conn.execute(
                "DELETE FROM confirmation_queue WHERE subscriber_id NOT IN"
                " (SELECT id FROM subscribers)"
            )
            for start in range(0, len(keys), 500):
                chunk = keys[start : start + 500]
                marks = ",".join("?" * len(chunk))
                self.conn.execute(
                    f"DELETE FROM consents WHERE email_key IN ({marks}) AND email_key NOT IN"
                    " (SELECT email_key FROM subscribers)",
                    chunk,
                )
        return len(keys)

    def consents(self, email: str) -> list[Consent]:
        """Every consent record of an address, oldest first."""
        rows = self.conn.execute(
            "SELECT action, at, source, page, client_hash, tags FROM consents"
            " WHERE email_key = ? ORDER BY id",
            (email_key(email),),
        ).fetchall()
        return [Consent(*r) for r in rows]

    def latest_consents(self, emails: Sequence[str]) -> Mapping[str, Mapping[str, Consent]]:
        """For each address (by :func:`email_key`): its latest consent record per action."""
        keys = list(dict.fromkeys(email_key(e) for e in emails))
        out: dict[str, dict[str, Consent]] = {}
        for start in range(0, len(keys), 30_000):
            chunk = keys[start : start + 30_000]
            marks = ",".join("?" * len(chunk))
            for row in self.conn.execute(
                "SELECT email_key, action, at, source, page, client_hash, tags FROM consents"
                f" WHERE email_key IN ({marks}) ORDER BY id",
                chunk,
            ):
                out.setdefault(row[0], {})[row[1]] = Consent(*row[1:])
        return out

    # -- the confirmation mail queue -----------------------------------------------------------

    def claim(
        self, *, now: datetime, limit: int = 100, lease_seconds: int = 120
    ) -> list[QueuedEmail]:
        """Take up to ``limit`` queued emails for ``lease_seconds`` (another process serving the
        form skips them meanwhile; a crashed one's lease runs out and they are sent again)."""
        ts = int(now.timestamp())
        with write(self.conn):
            rows = self.conn.execute(
                "UPDATE confirmation_queue SET claimed_until = ? WHERE id IN"
                " (SELECT id FROM confirmation_queue WHERE claimed_until <= ? AND not_before <= ?"
                " ORDER BY id LIMIT ?) RETURNING id, subscriber_id, email, expires_at, attempts",
                (ts + lease_seconds, ts, ts, limit),
            ).fetchall()
        return [QueuedEmail(*r) for r in sorted(rows, key=lambda r: int(r[0]))]

    def settle(self, done: Sequence[int], later: Mapping[int, datetime] | None = None) -> None:
        """One answer's rows in one transaction: ``done`` (sent, or given up on) off the queue,
        ``later`` (id -> not before) back on it with one more attempt counted."""
        if not done and not later:
            return
        with write(self.conn):
            if done:
                self.conn.executemany(
                    "DELETE FROM confirmation_queue WHERE id = ?", [(i,) for i in done]
                )
            if later:
                self.conn.executemany(
                    "UPDATE confirmation_queue SET attempts = attempts + 1, not_before = ?,"
                    " claimed_until = 0 WHERE id = ?",
                    [(int(when.timestamp()), i) for i, when in later.items()],
                )

    def not_to_mail(self, emails: Sequence[str]) -> set[str]:
        """The :func:`email_key` of each address the form must not mail now: suppressed, unless
        by the reader's own unsubscribe (they may come back by confirming)."""
        keys = list(dict.fromkeys(email_key(e) for e in emails))
        if not keys:
            return set()
        marks = ",".join("?" * len(keys))
        rows = self.conn.execute(
            f"SELECT email_key, reason, source FROM suppressions WHERE email_key IN ({marks})",
            keys,
        ).fetchall()
        return {r[0] for r in rows if r[1] != "unsubscribed" or r[2] not in SELF_SERVICE_SOURCES}

    def queued(self) -> int:
        return int(self.conn.execute("SELECT count(*) FROM confirmation_queue").fetchone()[0])
