"""Campaigns, their batches and the per-recipient ledger (issue #5).

A campaign's recipients are written to the ledger as ``pending`` in batches of fixed membership
before any request is made. A batch then moves ``pending -> sending -> accepted | rejected |
failed | unknown``; every move is one committed transaction, and ``accepted`` is written only
after the provider said so. ``sending`` found when a send starts means the batch was in flight
when a previous process died: its fate is ``unknown``.

The store also records webhook events (it is the ``EventSink`` of
:mod:`newsletter.providers.sendgrid.webhooks`) and answers "when was the newest post of the last
issue" for ``since last-issue``.
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple

from newsletter.errors import StoreError
from newsletter.store.audience import RecipientQuery
from newsletter.store.db import IntegrityError, Migration, is_postgres, write

MIGRATIONS: list[Migration] = [
    (
        "campaigns.0001_initial",
        """
        CREATE TABLE campaigns (
            id TEXT PRIMARY KEY,
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL,
            finished_at TEXT NOT NULL DEFAULT '',
            state TEXT NOT NULL DEFAULT 'preparing',
            subject TEXT NOT NULL DEFAULT '',
            layout TEXT NOT NULL DEFAULT '',
            segment TEXT NOT NULL DEFAULT '',
            transport TEXT NOT NULL DEFAULT '',
            content_hash TEXT NOT NULL DEFAULT '',
            newest_post_date TEXT NOT NULL DEFAULT '',
            posts TEXT NOT NULL DEFAULT '[]',
            total INTEGER NOT NULL DEFAULT 0,
            batch_size INTEGER NOT NULL DEFAULT 1000,
            note TEXT NOT NULL DEFAULT '',
            owner_pid INTEGER NOT NULL DEFAULT 0,
            envelope TEXT NOT NULL DEFAULT '{}'
        );
        CREATE TABLE campaign_batches (
            campaign_id TEXT NOT NULL REFERENCES campaigns(id) ON DELETE CASCADE,
            batch_no INTEGER NOT NULL,
            size INTEGER NOT NULL,
            state TEXT NOT NULL DEFAULT 'pending',
            attempts INTEGER NOT NULL DEFAULT 0,
            error TEXT NOT NULL DEFAULT '',
            provider_message_id TEXT NOT NULL DEFAULT '',
            updated_at TEXT NOT NULL DEFAULT '',
            PRIMARY KEY (campaign_id, batch_no)
        );
        CREATE TABLE campaign_ledger (
            campaign_id TEXT NOT NULL REFERENCES campaigns(id) ON DELETE CASCADE,
            recipient_id TEXT NOT NULL,
            batch_no INTEGER NOT NULL,
            email TEXT NOT NULL,
            first_name TEXT NOT NULL DEFAULT '',
            state TEXT NOT NULL DEFAULT 'pending',
            reason TEXT NOT NULL DEFAULT '',
            last_event TEXT NOT NULL DEFAULT '',
            last_event_at TEXT NOT NULL DEFAULT '',
            PRIMARY KEY (campaign_id, recipient_id)
        );
        CREATE INDEX campaign_ledger_batch ON campaign_ledger(campaign_id, batch_no);
        CREATE TABLE campaign_events (
            event_id TEXT PRIMARY KEY,
            campaign_id TEXT NOT NULL,
            recipient_id TEXT NOT NULL,
            event TEXT NOT NULL,
            at TEXT NOT NULL
        );
        CREATE INDEX campaign_events_campaign ON campaign_events(campaign_id, event);
        """,
    ),
    (
        # Subscriber ids are integers: stored as text they went into the ledger's key out of
        # order ("10" < "9"), which made filling a million-recipient ledger 40% slower. The
        # copy relies on the column's INTEGER affinity: "12" is stored as 12.
        "campaigns.0002_integer_recipient_ids",
        """
        CREATE TABLE campaign_ledger_new (
            campaign_id TEXT NOT NULL REFERENCES campaigns(id) ON DELETE CASCADE,
            recipient_id INTEGER NOT NULL,
            batch_no INTEGER NOT NULL,
            email TEXT NOT NULL,
            first_name TEXT NOT NULL DEFAULT '',
            state TEXT NOT NULL DEFAULT 'pending',
            reason TEXT NOT NULL DEFAULT '',
            last_event TEXT NOT NULL DEFAULT '',
            last_event_at TEXT NOT NULL DEFAULT '',
            PRIMARY KEY (campaign_id, recipient_id)
        );
        INSERT INTO campaign_ledger_new(campaign_id, recipient_id, batch_no, email, first_name,
            state, reason, last_event, last_event_at)
            SELECT campaign_id, recipient_id, batch_no, email, first_name, state, reason,
            last_event, last_event_at FROM campaign_ledger ORDER BY rowid;
        DROP TABLE campaign_ledger;
        ALTER TABLE campaign_ledger_new RENAME TO campaign_ledger;
        CREATE INDEX campaign_ledger_batch ON campaign_ledger(campaign_id, batch_no);
        """,
    ),
    (
        # A campaign's identity is what the operator meant (issue #9): a digest's window or a
        # blast's posts, and the audience. The posts it carried are rows of their own, so
        # `--since last-issue` can leave out what any campaign already sent, and `send` can say
        # which posts changed after they went out. Older campaigns keep their ids (they can
        # still be resumed); their kind comes from the layout, their posts from the JSON list.
        "campaigns.0003_identity_and_posts",
        """
        ALTER TABLE campaigns ADD COLUMN kind TEXT NOT NULL DEFAULT '';
        ALTER TABLE campaigns ADD COLUMN window_start TEXT NOT NULL DEFAULT '';
        ALTER TABLE campaigns ADD COLUMN window_end TEXT NOT NULL DEFAULT '';
        ALTER TABLE campaigns ADD COLUMN rehearsal INTEGER NOT NULL DEFAULT 0;
        UPDATE campaigns SET kind = CASE WHEN layout = 'post' THEN 'blast' ELSE 'digest' END;
        UPDATE campaigns SET rehearsal = 1 WHERE transport != 'sendgrid';
        CREATE TABLE campaign_posts (
            campaign_id TEXT NOT NULL REFERENCES campaigns(id) ON DELETE CASCADE,
            position INTEGER NOT NULL,
            path TEXT NOT NULL,
            slug TEXT NOT NULL DEFAULT '',
            date TEXT NOT NULL DEFAULT '',
            content_hash TEXT NOT NULL DEFAULT '',
            PRIMARY KEY (campaign_id, position)
        );
        CREATE INDEX campaign_posts_slug ON campaign_posts(slug);
        INSERT INTO campaign_posts(campaign_id, position, path)
            SELECT c.id, j.key, j.value FROM campaigns c, json_each(c.posts) j;
        """,
    ),
    (
        # The send lease (newsletter.campaign.lock) lives in the store, not beside its path:
        # a symlinked or hard-linked store reaches the same row.
        "campaigns.0004_leases",
        """
        CREATE TABLE campaign_leases (
            campaign_id TEXT PRIMARY KEY,
            token TEXT NOT NULL,
            host TEXT NOT NULL,
            pid INTEGER NOT NULL,
            started TEXT NOT NULL DEFAULT '',
            heartbeat REAL NOT NULL
        );
        """,
    ),
]

MIGRATIONS.append(
    (
        # Several senders, one campaign (PostgreSQL): a lease per sender process, shared once
        # the campaign is prepared, and each batch in flight names the lease that claimed it.
        "campaigns.0005_senders",
        """
        CREATE TABLE campaign_leases_new (
            campaign_id TEXT NOT NULL,
            token TEXT NOT NULL,
            host TEXT NOT NULL,
            pid INTEGER NOT NULL,
            started TEXT NOT NULL DEFAULT '',
            heartbeat REAL NOT NULL,
            shared INTEGER NOT NULL DEFAULT 0,
            PRIMARY KEY (campaign_id, token)
        );
        INSERT INTO campaign_leases_new(campaign_id, token, host, pid, started, heartbeat)
            SELECT campaign_id, token, host, pid, started, heartbeat FROM campaign_leases;
        DROP TABLE campaign_leases;
        ALTER TABLE campaign_leases_new RENAME TO campaign_leases;
        ALTER TABLE campaign_batches ADD COLUMN claimed_by TEXT NOT NULL DEFAULT '';
        CREATE INDEX campaign_batches_state ON campaign_batches(campaign_id, state, batch_no);
        """,
    )
)
MIGRATIONS.append(
    # PostgreSQL only (SQLite's script is empty): the ledger is written once per recipient and
    # updated once per recipient when its batch is answered. Half-empty pages let that update
    # stay on the row's own page (a HOT update: no new index entries), five times faster per
    # batch; the table takes twice the space. The foreign key to `campaigns` goes: its check is
    # a row lock on the campaign for every recipient written (half the time of writing a
    # million-recipient ledger), while the store writes ledger rows only for a campaign it
    # has just begun (`add_recipients` checks) and deletes them itself.
    ("campaigns.0006_ledger_for_bulk_updates", "")
)

# PostgreSQL's script where SQLite's cannot be translated (see newsletter.store.pg): a table
# rebuild that relies on SQLite's type affinity and rowid, and json_each.
PG_MIGRATIONS: dict[str, str] = {
    "campaigns.0002_integer_recipient_ids": """
        ALTER TABLE campaign_ledger ALTER COLUMN recipient_id TYPE INTEGER
            USING recipient_id::integer;
        """,
    "campaigns.0003_identity_and_posts": MIGRATIONS[2][1].replace(
        "SELECT c.id, j.key, j.value FROM campaigns c, json_each(c.posts) j;",
        "SELECT c.id, j.n - 1, j.value FROM campaigns c,"
        " jsonb_array_elements_text(c.posts::jsonb) WITH ORDINALITY AS j(value, n);",
    ),
    "campaigns.0006_ledger_for_bulk_updates": """
        ALTER TABLE campaign_ledger SET (fillfactor = 50);
        ALTER TABLE campaign_ledger DROP CONSTRAINT IF EXISTS campaign_ledger_campaign_id_fkey;
        """,
}

# batch (and ledger) states
PENDING = "pending"
SENDING = "sending"
ACCEPTED = "accepted"
REJECTED = "rejected"
FAILED = "failed"
UNKNOWN = "unknown"
SKIPPED = "skipped"  # suppressed between preparation and sending
BATCH_STATES = (PENDING, SENDING, ACCEPTED, REJECTED, FAILED, UNKNOWN, SKIPPED)
# webhook events that settle an `unknown` recipient, and the state they settle it in
RECONCILING_EVENTS = {
    "processed": ACCEPTED,
    "delivered": ACCEPTED,
    "deferred": ACCEPTED,
    "bounce": ACCEPTED,
    "open": ACCEPTED,
    "click": ACCEPTED,
    "spamreport": ACCEPTED,
    "unsubscribe": ACCEPTED,
    "group_unsubscribe": ACCEPTED,
    "dropped": REJECTED,
}
RECONCILED = "reconciled by a"  # reason prefix of a recipient an event settled

# campaign states
PREPARING = "preparing"
READY = "ready"
RUNNING = "sending"
PAUSED = "paused"
DONE = "done"
CANCELLED = "cancelled"  # a scheduled send called off at the provider (`newsletter cancel`)
UNFINISHED = (PREPARING, READY, RUNNING, PAUSED)
STARTED = (READY, RUNNING, PAUSED, DONE)  # recipients written: the issue counts as sent

DIGEST = "digest"
BLAST = "blast"


def _iso(when: datetime) -> str:
    return when.astimezone(UTC).isoformat(timespec="seconds")


@dataclass(frozen=True)
class Campaign:
    id: str
    created_at: str
    updated_at: str
    finished_at: str
    state: str
    subject: str
    layout: str
    segment: str
    transport: str
    content_hash: str
    newest_post_date: str
    posts: tuple[str, ...]
    total: int
    batch_size: int
    note: str
    kind: str = DIGEST
    window_start: str = ""
    window_end: str = ""
    rehearsal: bool = False

    @property
    def unfinished(self) -> bool:
        return self.state in UNFINISHED


@dataclass(frozen=True)
class CarriedPost:
    """A post as a campaign carried it: enough to tell later whether it was edited."""

    path: str
    slug: str
    date: str
    content_hash: str


class LedgerRow(NamedTuple):
    """One recipient of a batch (a tuple: a million of them are read per campaign)."""

    recipient_id: str
    email: str
    first_name: str


@dataclass(frozen=True)
class BatchInfo:
    batch_no: int
    size: int
    state: str
    attempts: int
    error: str


@dataclass
class CampaignStatus:
    campaign: Campaign
    counts: dict[str, int] = field(default_factory=dict)  # ledger state -> recipients
    events: dict[str, int] = field(default_factory=dict)  # webhook event -> recipients
    errors: list[tuple[str, str, int]] = field(default_factory=list)  # (state, reason, recipients)
    reconciled: int = 0  # unknown recipients a webhook event settled
    rejected: list[tuple[str, str]] = field(default_factory=list)  # (email, why), first 100

    def as_json(self) -> dict[str, Any]:
        c = self.campaign
        return {
            "id": c.id,
            "state": c.state,
            "subject": c.subject,
            "layout": c.layout,
            "segment": c.segment,
            "transport": c.transport,
            "posts": list(c.posts),
            "total": c.total,
            "created_at": c.created_at,
            "updated_at": c.updated_at,
            "finished_at": c.finished_at,
            "note": c.note,
            "counts": {s: self.counts.get(s, 0) for s in BATCH_STATES},
            "events": dict(self.events),
            "errors": [{"state": s, "reason": r, "recipients": n} for s, r, n in self.errors],
            "reconciled": self.reconciled,
            "rejected": [{"email": e, "reason": r} for e, r in self.rejected],
        }


class CampaignStore:
    """SQL for campaigns and the ledger; the dispatcher talks to this and never to SQL."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        # the ledger's own order within a batch: SQLite's rowid is the order rows were written
        # in; PostgreSQL has none, and ledgers are written in recipient id order
        self._insertion_order = "recipient_id" if is_postgres(conn) else "rowid"

    # -- campaigns -------------------------------------------------------------------------

    def get(self, campaign_id: str) -> Campaign | None:
        row = self.conn.execute("SELECT * FROM campaigns WHERE id = ?", (campaign_id,)).fetchone()
        return _campaign(row) if row else None

    def all(self) -> list[Campaign]:
        rows = self.conn.execute("SELECT * FROM campaigns ORDER BY created_at DESC, id")
        return [_campaign(r) for r in rows]

    def begin(
        self,
        campaign_id: str,
        *,
        now: datetime,
        subject: str,
        layout: str,
        segment: str,
        transport: str,
        content_hash: str,
        newest_post_date: str,
        posts: Sequence[str],
        batch_size: int,
        envelope: str = "{}",
        kind: str = DIGEST,
        window: tuple[str, str] = ("", ""),
        rehearsal: bool = False,
        carried: Sequence[CarriedPost] = (),
    ) -> None:
        """Create the campaign in state ``preparing`` (or restart an unfinished preparation).

        ``carried`` are the posts the frozen issue holds; without it, ``posts`` (paths) are
        recorded alone.
        """
        carried = list(carried) or [CarriedPost(p, "", "", "") for p in posts]
        with write(self.conn) as c:
            c.execute("DELETE FROM campaign_ledger WHERE campaign_id = ?", (campaign_id,))
            c.execute("DELETE FROM campaign_batches WHERE campaign_id = ?", (campaign_id,))
            c.execute("DELETE FROM campaigns WHERE id = ?", (campaign_id,))
            c.execute(
                "INSERT INTO campaigns(id, created_at, updated_at, state, subject, layout,"
                " segment, transport, content_hash, newest_post_date, posts, batch_size,"
                " owner_pid, envelope, kind, window_start, window_end, rehearsal)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    campaign_id,
                    _iso(now),
                    _iso(now),
                    PREPARING,
                    subject,
                    layout,
                    segment,
                    transport,
                    content_hash,
                    newest_post_date,
                    json.dumps(list(posts)),
                    batch_size,
                    os.getpid(),
                    envelope,
                    kind,
                    window[0],
                    window[1],
                    int(rehearsal),
                ),
            )
            c.execute("DELETE FROM campaign_posts WHERE campaign_id = ?", (campaign_id,))
            c.executemany(
                "INSERT INTO campaign_posts(campaign_id, position, path, slug, date, content_hash)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                [
                    (campaign_id, i, p.path, p.slug, p.date, p.content_hash)
                    for i, p in enumerate(carried)
                ],
            )

    def envelope(self, campaign_id: str) -> str:
        """The JSON the dispatcher stored at preparation: the rendered issue and its envelope."""
        row = self.conn.execute(
            "SELECT envelope FROM campaigns WHERE id = ?", (campaign_id,)
        ).fetchone()
        return str(row[0]) if row else "{}"

    def add_recipients(
        self, campaign_id: str, rows: Iterable[tuple[str, str, str]], *, batch_size: int
    ) -> int:
        """Write ``(recipient_id, email, first_name)`` rows as pending, in fixed batches.

        Streams: commits every 50 batches so a million recipients never sit in memory. The
        campaign stays ``preparing`` until :meth:`ready`, so a crash here restarts preparation.
        """
        self._check_preparing(campaign_id)
        total = 0
        chunk: list[tuple[str, str, int, str, str]] = []
        sizes: dict[int, int] = {}
        flush_every = batch_size * 50

        def flush() -> None:
            with write(self.conn) as c:
                c.executemany(
                    "INSERT INTO campaign_ledger(campaign_id, recipient_id, batch_no, email,"
                    " first_name) VALUES (?, ?, ?, ?, ?)",
                    chunk,
                )
                c.executemany(
                    "INSERT INTO campaign_batches(campaign_id, batch_no, size) VALUES (?, ?, ?)"
                    " ON CONFLICT(campaign_id, batch_no) DO UPDATE SET size = excluded.size",
                    [(campaign_id, b, n) for b, n in sizes.items()],
                )
            chunk.clear()

        try:
            for rid, email, first_name in rows:
                batch_no = total // batch_size
                chunk.append((campaign_id, rid, batch_no, email, first_name))
                total += 1
                sizes[batch_no] = total - batch_no * batch_size
                if len(chunk) >= flush_every:
                    flush()
                    sizes = {batch_no: sizes[batch_no]}
            if chunk or sizes:
                flush()
        except (sqlite3.IntegrityError, IntegrityError) as err:
            # not a duplicate: e.g. no such campaign (begin() was not called)
            if "UNIQUE" not in str(err) and not getattr(err, "unique", False):
                raise StoreError(f"campaign {campaign_id}: cannot add recipients ({err})") from err
            raise StoreError(
                f"campaign {campaign_id}: the same recipient twice in one campaign ({err}); "
                "the audience must list each subscriber once"
            ) from err
        return total

    def add_audience(
        self,
        campaign_id: str,
        query: RecipientQuery,
        *,
        batch_size: int,
        chunk: int | None = 50_000,
    ) -> int:
        """:meth:`add_recipients` for the store's own subscribers, copied inside the database.

        The same rows in the same order and batches, without a Python object per recipient:
        for a million people this is under half the time. On SQLite it commits every ``chunk``
        rows, so the single write lock is given back now and then; PostgreSQL has no such lock,
        and one statement spares the queries that find each chunk's end.
        """
        self._check_preparing(campaign_id)
        if is_postgres(self.conn):
            chunk = None
        source = f"FROM subscribers s WHERE s.id > ?{query.where}"
        total = 0
        last = 0
        while True:
            # the id that closes this chunk (None: the rest fits in it)
            row = None
            if chunk is not None:
                row = self.conn.execute(
                    f"SELECT s.id {source} ORDER BY s.id LIMIT 1 OFFSET ?",
                    (last, *query.params, chunk - 1),
                ).fetchone()
            upto: tuple[int, ...] = () if row is None else (int(row[0]),)
            with write(self.conn) as c:
                n = c.execute(
                    "INSERT INTO campaign_ledger(campaign_id, recipient_id, batch_no, email,"
                    " first_name) SELECT ?, s.id,"
                    " (? + row_number() OVER (ORDER BY s.id) - 1) / ?, s.email, s.first_name"
                    f" {source}{' AND s.id <= ?' if upto else ''} ORDER BY s.id",
                    (campaign_id, total, batch_size, last, *query.params, *upto),
                ).rowcount
                end = total + n
                c.executemany(
                    "INSERT INTO campaign_batches(campaign_id, batch_no, size) VALUES (?, ?, ?)"
                    " ON CONFLICT(campaign_id, batch_no) DO UPDATE SET size = excluded.size",
                    [
                        (campaign_id, b, min(batch_size, end - b * batch_size))
                        for b in range(total // batch_size, (end + batch_size - 1) // batch_size)
                    ],
                )
            total = end
            if not upto:
                return total
            last = upto[0]

    def _check_preparing(self, campaign_id: str) -> None:
        """Recipients are written only into a campaign :meth:`begin` created and that is still
        being prepared (on PostgreSQL no foreign key checks each row: see campaigns.0006)."""
        row = self.conn.execute(
            "SELECT state FROM campaigns WHERE id = ?", (campaign_id,)
        ).fetchone()
        if row is None or row[0] != PREPARING:
            what = "does not exist" if row is None else f"is {row[0]}, not being prepared"
            raise StoreError(
                f"campaign {campaign_id} {what}: recipients are added only between begin() "
                "and ready()"
            )

    def ready(self, campaign_id: str, *, now: datetime) -> int:
        """Preparation finished: every recipient is in the ledger. Returns the total."""
        with write(self.conn) as c:
            total = c.execute(
                "SELECT count(*) FROM campaign_ledger WHERE campaign_id = ?", (campaign_id,)
            ).fetchone()[0]
            c.execute(
                "UPDATE campaigns SET state = ?, total = ?, updated_at = ? WHERE id = ?",
                (READY, total, _iso(now), campaign_id),
            )
        return int(total)

    def set_state(self, campaign_id: str, state: str, *, now: datetime, note: str = "") -> None:
        finished = _iso(now) if state == DONE else ""
        with write(self.conn) as c:
            c.execute(
                "UPDATE campaigns SET state = ?, updated_at = ?, note = ?, owner_pid = ?,"
                " finished_at = CASE WHEN ? != '' THEN ? ELSE finished_at END WHERE id = ?",
                (state, _iso(now), note, os.getpid(), finished, finished, campaign_id),
            )

    # -- batches ---------------------------------------------------------------------------

    def recover_in_flight(self, campaign_id: str, *, now: datetime) -> int:
        """Batches left ``sending`` by a dead process become ``unknown``. Returns how many."""
        note = "in flight when a previous send stopped; may or may not have been accepted"
        with write(self.conn) as c:
            c.execute(
                "UPDATE campaign_ledger SET state = ?, reason = ?"
                " WHERE campaign_id = ? AND state IN (?, ?) AND batch_no IN ("
                "  SELECT batch_no FROM campaign_batches WHERE campaign_id = ? AND state = ?)",
                (UNKNOWN, note, campaign_id, PENDING, SENDING, campaign_id, SENDING),
            )
            n = c.execute(
                "UPDATE campaign_batches SET state = ?, error = ?, updated_at = ?"
                " WHERE campaign_id = ? AND state = ?",
                (UNKNOWN, note, _iso(now), campaign_id, SENDING),
            ).rowcount
        return int(n)

    def claim(
        self, campaign_id: str, token: str, *, now: datetime, batch_no: int | None = None
    ) -> int | None:
        """Take the next pending batch (or batch ``batch_no``, if still pending) for the sender
        whose lease is ``token``: it becomes ``sending``, claimed by that lease. None when
        nothing is left to take.

        On PostgreSQL the row is picked with ``FOR UPDATE SKIP LOCKED`` in a transaction of
        its own (no store-wide write lock), so senders on several hosts claim side by side and
        never the same batch; on SQLite the store's write lock does the same, one at a time.
        """
        pg = is_postgres(self.conn)
        only = " AND batch_no = ?" if batch_no is not None else ""
        sql = (
            "UPDATE campaign_batches SET state = ?, claimed_by = ?, updated_at = ?"
            " WHERE campaign_id = ? AND batch_no = (SELECT batch_no FROM campaign_batches"
            f" WHERE campaign_id = ? AND state = ?{only} ORDER BY batch_no LIMIT 1"
            + (" FOR UPDATE SKIP LOCKED)" if pg else ")")
            + " RETURNING batch_no"
        )
        args: tuple[object, ...] = (SENDING, token, _iso(now), campaign_id, campaign_id, PENDING)
        if batch_no is not None:
            args += (batch_no,)
        with write(self.conn, lock=not pg) as c:
            row = c.execute(sql, args).fetchone()
        return None if row is None else int(row[0])

    def unclaim(self, campaign_id: str, token: str, batch_nos: Sequence[int]) -> None:
        """Give back batches this sender claimed but never sent (it is stopping)."""
        with write(self.conn) as c:
            c.executemany(
                "UPDATE campaign_batches SET state = ?, claimed_by = ''"
                " WHERE campaign_id = ? AND batch_no = ? AND state = ? AND claimed_by = ?",
                [(PENDING, campaign_id, b, SENDING, token) for b in batch_nos],
            )

    def recover_orphans(self, campaign_id: str, *, now: datetime) -> int:
        """Batches in flight for a sender whose lease is gone (it died) become ``unknown``.

        Call after the dead senders' leases were deleted
        (:func:`newsletter.campaign.lock.prune`). Returns how many.
        """
        note = "in flight when its sender stopped; may or may not have been accepted"
        orphan = (
            "SELECT batch_no FROM campaign_batches WHERE campaign_id = ? AND state = ?"
            " AND claimed_by NOT IN (SELECT token FROM campaign_leases WHERE campaign_id = ?)"
        )
        with write(self.conn) as c:
            c.execute(
                "UPDATE campaign_ledger SET state = ?, reason = ?"
                f" WHERE campaign_id = ? AND state IN (?, ?) AND batch_no IN ({orphan})",
                (UNKNOWN, note, campaign_id, PENDING, SENDING, campaign_id, SENDING, campaign_id),
            )
            n = c.execute(
                "UPDATE campaign_batches SET state = ?, error = ?, updated_at = ?"
                f" WHERE campaign_id = ? AND batch_no IN ({orphan})",
                (UNKNOWN, note, _iso(now), campaign_id, campaign_id, SENDING, campaign_id),
            ).rowcount
        return int(n)

    def requeue(self, campaign_id: str, states: Sequence[str], *, now: datetime) -> int:
        """Put batches in ``states`` (e.g. unknown, failed) back to ``pending``."""
        marks = ",".join("?" * len(states))
        with write(self.conn) as c:
            n = c.execute(
                f"UPDATE campaign_batches SET state = ?, error = '', updated_at = ?"
                f" WHERE campaign_id = ? AND state IN ({marks})",
                (PENDING, _iso(now), campaign_id, *states),
            ).rowcount
            if n:  # else no recipient is in those states either: spare a pass over the ledger
                c.execute(
                    f"UPDATE campaign_ledger SET state = ?, reason = ''"
                    f" WHERE campaign_id = ? AND state IN ({marks})",
                    (PENDING, campaign_id, *states),
                )
        return int(n)

    def recent_sends(self, transport: str, *, since: datetime) -> list[tuple[datetime, int]]:
        """``(when, recipients)`` of the requests made through ``transport`` since ``since``.

        Every campaign counts (a provider's hourly limit is for the whole account). A batch
        counts at its last update, which is at or just after its request.
        """
        rows = self.conn.execute(
            "SELECT b.updated_at, b.size FROM campaign_batches b"
            " JOIN campaigns c ON c.id = b.campaign_id"
            " WHERE c.transport = ? AND b.attempts > 0 AND b.updated_at >= ?"
            " AND b.state IN (?, ?, ?, ?)",
            (transport, _iso(since), SENDING, ACCEPTED, REJECTED, UNKNOWN),
        ).fetchall()
        return [(datetime.fromisoformat(at), int(n)) for at, n in rows]

    def batches(self, campaign_id: str, state: str | None = None) -> list[BatchInfo]:
        sql = "SELECT batch_no, size, state, attempts, error FROM campaign_batches"
        sql += " WHERE campaign_id = ?" + (" AND state = ?" if state else "") + " ORDER BY batch_no"
        args: tuple[str, ...] = (campaign_id, state) if state else (campaign_id,)
        return [BatchInfo(*r) for r in self.conn.execute(sql, args)]

    def batch_rows(self, campaign_id: str, batch_no: int) -> list[LedgerRow]:
        """The batch's recipients still to send (pending), in a stable order."""
        cur = self.conn.cursor()
        cur.row_factory = None  # plain tuples: much cheaper than sqlite3.Row
        cur.execute(
            "SELECT CAST(recipient_id AS TEXT), email, first_name FROM campaign_ledger"
            " WHERE campaign_id = ? AND batch_no = ? AND state IN (?, ?) ORDER BY "
            + self._insertion_order,
            (campaign_id, batch_no, PENDING, SENDING),
        )
        return list(map(LedgerRow._make, cur.fetchall()))

    def skip(self, campaign_id: str, recipient_ids: Sequence[str], reason: str) -> None:
        """Recipients that must not be sent any more (suppressed since preparation)."""
        with write(self.conn, pipeline=True) as c:
            c.executemany(
                "UPDATE campaign_ledger SET state = ?, reason = ?"
                " WHERE campaign_id = ? AND recipient_id = ?",
                [(SKIPPED, reason, campaign_id, rid) for rid in recipient_ids],
            )

    def mark(
        self,
        campaign_id: str,
        batch_no: int,
        state: str,
        *,
        now: datetime,
        error: str = "",
        count_attempt: bool = False,
        message_id: str = "",
        rejected: Sequence[tuple[str, str]] = (),
    ) -> None:
        """Move one batch (and its not-skipped recipients) to ``state`` in one transaction.

        ``rejected`` lists ``(email, reason)`` of recipients the provider refused individually
        inside an otherwise accepted batch.

        On PostgreSQL this takes row locks only, not the store-wide write lock: the batch is
        this sender's (it claimed it), its ledger rows are the batch's, and the one row senders
        share (the campaign's ``updated_at``) is written last, so two senders marking at once
        wait on each other for that row, never in a cycle. With the store-wide lock every
        sender's marks queued behind each other's.
        """
        with write(self.conn, lock=False, pipeline=True) as c:
            c.execute(
                "UPDATE campaign_batches SET state = ?, error = ?, updated_at = ?,"
                " provider_message_id = CASE WHEN ? != '' THEN ? ELSE provider_message_id END,"
                " attempts = attempts + ? WHERE campaign_id = ? AND batch_no = ?",
                (
                    state,
                    error,
                    _iso(now),
                    message_id,
                    message_id,
                    int(count_attempt),
                    campaign_id,
                    batch_no,
                ),
            )
            if state != SENDING:  # in-flight recipients stay pending; the batch row says sending
                # only the recipients this request was for: those settled before (accepted on
                # an earlier try, skipped, rejected) keep their state
                c.execute(
                    "UPDATE campaign_ledger SET state = ?, reason = ?"
                    " WHERE campaign_id = ? AND batch_no = ? AND state = ?",
                    (state, error, campaign_id, batch_no, PENDING),
                )
            if rejected:
                c.executemany(
                    "UPDATE campaign_ledger SET state = ?, reason = ?"
                    " WHERE campaign_id = ? AND batch_no = ? AND email = ?",
                    [(REJECTED, why, campaign_id, batch_no, email) for email, why in rejected],
                )
            c.execute("UPDATE campaigns SET updated_at = ? WHERE id = ?", (_iso(now), campaign_id))

    # -- reporting -------------------------------------------------------------------------

    def status(self, campaign_id: str) -> CampaignStatus | None:
        campaign = self.get(campaign_id)
        if campaign is None:
            return None
        # one pass over the ledger, by batch: recipients of a batch in flight are still
        # `pending` in the ledger, and are shown `sending`
        batch_state = dict(
            self.conn.execute(
                "SELECT batch_no, state FROM campaign_batches WHERE campaign_id = ?",
                (campaign_id,),
            ).fetchall()
        )
        counts: dict[str, int] = {}
        by_reason: dict[tuple[str, str], int] = {}
        reconciled = 0
        for batch_no, state, reason, n in self.conn.execute(
            "SELECT batch_no, state, reason, count(*) FROM campaign_ledger"
            " WHERE campaign_id = ? GROUP BY batch_no, state, reason",
            (campaign_id,),
        ):
            if state == PENDING and batch_state.get(batch_no) == SENDING:
                state = SENDING
            counts[state] = counts.get(state, 0) + n
            if reason.startswith(RECONCILED):
                reconciled += n
            elif reason:
                by_reason[(state, reason)] = by_reason.get((state, reason), 0) + n
        events = {
            r[0]: int(r[1])
            for r in self.conn.execute(
                "SELECT event, count(DISTINCT recipient_id) FROM campaign_events"
                " WHERE campaign_id = ? GROUP BY event ORDER BY event",
                (campaign_id,),
            )
        }
        errors = sorted(
            ((state, reason, n) for (state, reason), n in by_reason.items()),
            key=lambda e: (-e[2], e[0], e[1]),
        )
        rejected: list[tuple[str, str]] = []
        if counts.get(REJECTED):
            rejected = [
                (str(e), str(r))
                for e, r in self.conn.execute(
                    "SELECT email, reason FROM campaign_ledger WHERE campaign_id = ? AND state = ?"
                    " ORDER BY batch_no, " + self._insertion_order + " LIMIT 100",
                    (campaign_id, REJECTED),
                )
            ]
        return CampaignStatus(campaign, counts, events, errors, reconciled, rejected)

    # -- webhooks (EventSink) and "since last-issue" ----------------------------------------

    def record_event(
        self, campaign_id: str, recipient_id: int | str, event: str, at: datetime, event_id: str
    ) -> bool:
        """Record one webhook event once (by ``event_id``); False if it was seen before."""
        with write(self.conn) as c:
            new = c.execute(
                "INSERT OR IGNORE INTO campaign_events(event_id, campaign_id, recipient_id, event,"
                " at) VALUES (?, ?, ?, ?, ?)",
                (event_id, campaign_id, str(recipient_id), event, _iso(at)),
            ).rowcount
            if new:
                c.execute(
                    "UPDATE campaign_ledger SET last_event = ?, last_event_at = ?"
                    " WHERE campaign_id = ? AND recipient_id = ? AND last_event_at <= ?",
                    (event, _iso(at), campaign_id, str(recipient_id), _iso(at)),
                )
                settled = RECONCILING_EVENTS.get(event)
                if settled is not None:
                    self._reconcile(c, campaign_id, recipient_id, event, settled, at)
        return bool(new)

    @staticmethod
    def _reconcile(
        c: sqlite3.Connection,
        campaign_id: str,
        recipient_id: int | str,
        event: str,
        state: str,
        at: datetime,
    ) -> None:
        """An event about an ``unknown`` recipient says what became of the lost answer.

        SendGrid only reports on messages it accepted: ``processed``, ``delivered``,
        ``deferred``, ``bounce`` (and opens, clicks) mean the request went through, so the
        recipient is ``accepted``; ``dropped`` means SendGrid accepted the request but will not
        deliver to this address, so it is ``rejected`` (resending would be dropped again). The
        batch leaves ``unknown`` once none of its recipients is.
        """
        row = c.execute(
            "SELECT batch_no FROM campaign_ledger WHERE campaign_id = ? AND recipient_id = ?"
            " AND state = ?",
            (campaign_id, str(recipient_id), UNKNOWN),
        ).fetchone()
        if row is None:
            return
        reason = f"{RECONCILED} {event} event"
        c.execute(
            "UPDATE campaign_ledger SET state = ?, reason = ?"
            " WHERE campaign_id = ? AND recipient_id = ?",
            (state, reason, campaign_id, str(recipient_id)),
        )
        c.execute(
            "UPDATE campaign_batches SET state = ?, error = ? WHERE campaign_id = ?"
            " AND batch_no = ? AND state = ? AND NOT EXISTS (SELECT 1 FROM campaign_ledger l"
            " WHERE l.campaign_id = ? AND l.batch_no = ? AND l.state = ?)",
            (ACCEPTED, "", campaign_id, row[0], UNKNOWN, campaign_id, row[0], UNKNOWN),
        )

    def requeue_rejected(self, campaign_id: str, *, now: datetime) -> int:
        """Rejected recipients (a bad address fixed since, a 400 now understood) become
        ``pending`` again, in their batches; returns how many. Accepted ones stay accepted."""
        with write(self.conn) as c:
            n = c.execute(
                "UPDATE campaign_ledger SET state = ?, reason = ''"
                " WHERE campaign_id = ? AND state = ?",
                (PENDING, campaign_id, REJECTED),
            ).rowcount
            c.execute(
                "UPDATE campaign_batches SET state = ?, error = '', updated_at = ?"
                " WHERE campaign_id = ? AND batch_no IN (SELECT DISTINCT batch_no FROM"
                " campaign_ledger WHERE campaign_id = ? AND state = ?)",
                (PENDING, _iso(now), campaign_id, campaign_id, PENDING),
            )
        return int(n)

    def carried(self, campaign_id: str) -> list[CarriedPost]:
        """The posts a campaign carried, lead first."""
        rows = self.conn.execute(
            "SELECT path, slug, date, content_hash FROM campaign_posts WHERE campaign_id = ?"
            " ORDER BY position",
            (campaign_id,),
        )
        return [CarriedPost(*r) for r in rows]

    def _real_or_rehearsal(self) -> int:
        """Which campaigns count as sent: real ones, or rehearsals while nothing real exists.

        Outbox sends are rehearsals: they stand in for the last issue only until a send goes
        through a real provider (so the demo works with no API key, and a rehearsal never makes
        the real issue look sent).
        """
        real = self.conn.execute(
            "SELECT 1 FROM campaigns WHERE rehearsal = 0 AND state IN (?, ?, ?, ?) LIMIT 1",
            STARTED,
        ).fetchone()
        return 0 if real else 1

    def sent_posts(
        self, segment: str, *, kind: str = "", rehearsal: bool | None = None
    ) -> dict[str, str]:
        """slug -> the newest started campaign to ``segment`` (of ``kind``, if given) that
        carried the post. ``rehearsal`` None: real campaigns, or rehearsals while nothing real
        was sent; True/False: only those."""
        which = self._real_or_rehearsal() if rehearsal is None else int(rehearsal)
        rows = self.conn.execute(
            "SELECT p.slug, c.id FROM campaign_posts p JOIN campaigns c ON c.id = p.campaign_id"
            " WHERE c.segment = ? AND c.rehearsal = ? AND c.state IN (?, ?, ?, ?)"
            " AND (? = '' OR c.kind = ?) AND p.slug != '' ORDER BY c.created_at, c.id",
            (segment, which, *STARTED, kind, kind),
        )
        return dict(rows.fetchall())

    def forget(self, campaign_id: str) -> None:
        """Delete a campaign that never finished preparing (nothing of it was sent)."""
        with write(self.conn) as c:
            state = c.execute("SELECT state FROM campaigns WHERE id = ?", (campaign_id,)).fetchone()
            if state is None or state[0] != PREPARING:
                raise StoreError(f"campaign {campaign_id} has recipients written; not deleted")
            c.execute("DELETE FROM campaign_ledger WHERE campaign_id = ?", (campaign_id,))
            c.execute("DELETE FROM campaign_batches WHERE campaign_id = ?", (campaign_id,))
            c.execute("DELETE FROM campaign_posts WHERE campaign_id = ?", (campaign_id,))
            c.execute("DELETE FROM campaigns WHERE id = ?", (campaign_id,))

    def all_sent_posts(self) -> dict[str, list[str]]:
        """slug -> every started campaign (any audience) that carried it, oldest first."""
        out: dict[str, list[str]] = {}
        for slug, cid in self.conn.execute(
            "SELECT p.slug, c.id FROM campaign_posts p JOIN campaigns c ON c.id = p.campaign_id"
            " WHERE c.state IN (?, ?, ?, ?) AND p.slug != '' ORDER BY c.created_at, c.id",
            STARTED,
        ):
            out.setdefault(slug, []).append(cid)
        return out

    def sent_issues(self) -> list[Campaign]:
        """Campaigns that went out (to anyone): real ones, or rehearsals while none is real."""
        rows = self.conn.execute(
            "SELECT * FROM campaigns WHERE rehearsal = ? AND state IN (?, ?, ?, ?)"
            " AND transport != 'memory' ORDER BY created_at, id",
            (self._real_or_rehearsal(), *STARTED),
        )
        return [_campaign(r) for r in rows]

    def last_digest(self, segment: str) -> Campaign | None:
        """The newest digest to ``segment`` that started sending (blasts never count)."""
        row = self.conn.execute(
            "SELECT * FROM campaigns WHERE kind = ? AND segment = ? AND rehearsal = ?"
            " AND state IN (?, ?, ?, ?)"
            " ORDER BY CASE WHEN window_end != '' THEN window_end ELSE newest_post_date END DESC,"
            " created_at DESC LIMIT 1",
            (DIGEST, segment, self._real_or_rehearsal(), *STARTED),
        ).fetchone()
        return _campaign(row) if row else None

    def unfinished_like(self, kind: str, segment: str, *, rehearsal: bool) -> list[Campaign]:
        """Unfinished campaigns of this kind to this audience (newest first)."""
        rows = self.conn.execute(
            "SELECT * FROM campaigns WHERE kind = ? AND segment = ? AND rehearsal = ?"
            " AND state IN (?, ?, ?, ?) ORDER BY created_at DESC, id",
            (kind, segment, int(rehearsal), *UNFINISHED),
        )
        return [_campaign(r) for r in rows]

    def digest_cursor(self, segment: str) -> tuple[datetime, Campaign] | None:
        """Where ``--since last-issue`` starts for ``segment``, and the issue it refers to.

        The end of the last digest's window; for a campaign made before windows were recorded,
        just after its newest post.
        """
        last = self.last_digest(segment)
        if last is None:
            return None
        if last.window_end:
            at = datetime.fromisoformat(last.window_end)
        elif last.newest_post_date:
            at = datetime.fromisoformat(last.newest_post_date) + timedelta(microseconds=1)
        else:
            return None
        return (at if at.tzinfo else at.replace(tzinfo=UTC)), last


def _campaign(row: sqlite3.Row) -> Campaign:
    return Campaign(
        id=row["id"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        finished_at=row["finished_at"],
        state=row["state"],
        subject=row["subject"],
        layout=row["layout"],
        segment=row["segment"],
        transport=row["transport"],
        content_hash=row["content_hash"],
        newest_post_date=row["newest_post_date"],
        posts=tuple(json.loads(row["posts"])),
        total=row["total"],
        batch_size=row["batch_size"],
        note=row["note"],
        kind=row["kind"],
        window_start=row["window_start"],
        window_end=row["window_end"],
        rehearsal=bool(row["rehearsal"]),
    )
