"""Bulk import of subscribers into the audience tables, one chunk per write transaction."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from newsletter.store.db import begin


def _iso(now: datetime) -> str:
    return now.isoformat(timespec="seconds")


@dataclass
class NewSubscriber:
    """One valid row of an import, already normalised (``key`` is :func:`email_key`)."""

    line: int
    email: str
    key: str
    first_name: str = ""
    last_name: str = ""
    tags: tuple[str, ...] = ()
    fields: dict[str, str] = field(default_factory=dict)
    subscribed_at: str | None = None

    def absorb(self, later: NewSubscriber) -> None:
        """Merge a later row for the same address: non-empty values win, tags add up."""
        self.first_name = later.first_name or self.first_name
        self.last_name = later.last_name or self.last_name
        self.tags = _union(self.tags, later.tags)
        self.fields.update({k: v for k, v in later.fields.items() if v})
        self.subscribed_at = self.subscribed_at or later.subscribed_at


def _union(a: Sequence[str], b: Sequence[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys([*a, *b]))


@dataclass
class ChunkCounts:
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    suppressed: int = 0
    duplicates: int = 0
    suppressed_lines: list[tuple[int, str]] = field(default_factory=list)


class ImportSession:
    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def apply(
        self,
        rows: Sequence[NewSubscriber],
        *,
        now: datetime,
        dry_run: bool,
        status: str = "confirmed",
        consent_source: str = "",
    ) -> ChunkCounts:
        """Add or merge one chunk of rows in one transaction (no writes when ``dry_run``).

        An existing subscriber keeps values the row leaves empty; tags and custom fields are
        added, never removed. A suppressed address is never (re-)subscribed. New subscribers get
        ``status`` ("pending": not mailed until they confirm; then a consent record "imported"
        from ``consent_source`` is kept); an existing subscriber keeps theirs.
        """
        if status not in ("confirmed", "pending"):
            raise ValueError(f"unknown subscriber status {status!r}")
        counts = ChunkCounts()
        merged: dict[str, NewSubscriber] = {}
        for row in rows:
            if row.key in merged:
                merged[row.key].absorb(row)
                counts.duplicates += 1
            else:
                merged[row.key] = row
        if not merged:
            return counts
        begin(self.conn, immediate=not dry_run)
        try:
            self._apply(
                merged, counts, now=now, dry_run=dry_run, status=status, source=consent_source
            )
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        self.conn.execute("COMMIT")
        return counts

    def _in(self, sql: str, keys: Sequence[object]) -> list[sqlite3.Row]:
        marks = ",".join("?" * len(keys))
        return self.conn.execute(sql.replace("(?*)", f"({marks})"), list(keys)).fetchall()

    def _apply(
        self,
        merged: dict[str, NewSubscriber],
        counts: ChunkCounts,
        *,
        now: datetime,
        dry_run: bool,
        status: str,
        source: str,
    ) -> None:
        keys = list(merged)
        seen = {r[0] for r in self._in("SELECT k FROM temp.import_seen WHERE k IN (?*)", keys)}
        counts.duplicates += len(seen)
        self.conn.executemany(
            "INSERT OR IGNORE INTO temp.import_seen(k) VALUES (?)", [(k,) for k in keys]
        )
        for hit in self._in("SELECT email_key FROM suppressions WHERE email_key IN (?*)", keys):
            row = merged.pop(hit[0])
            if hit[0] not in seen:
                counts.suppressed += 1
                counts.suppressed_lines.append((row.line, row.email))
        if not merged:
            return
        existing = {
            r[1]: r
            for r in self._in(
                "SELECT id, email_key, first_name, last_name, fields, subscribed_at, status"
                " FROM subscribers WHERE email_key IN (?*)",
                list(merged),
            )
        }
        old_tags: dict[int, set[str]] = {}
        if existing:
            for sid, tag in self._in(
                "SELECT subscriber_id, tag FROM subscriber_tags WHERE subscriber_id IN (?*)",
                [r[0] for r in existing.values()],
            ):
                old_tags.setdefault(sid, set()).add(tag)
        stamp = _iso(now)
        pending = status == "pending"
        inserts: list[tuple[object, ...]] = []
        updates: list[tuple[object, ...]] = []
        tag_rows: list[tuple[object, ...]] = []
        new_keys: list[str] = []
        upgraded: list[str] = []
        for key, row in merged.items():
            dup = key in seen
            old = existing.get(key)
            if old is None:
                inserts.append(
                    (row.email, key, row.first_name, row.last_name,
                     json.dumps(row.fields, ensure_ascii=False, sort_keys=True),
                     None if pending else row.subscribed_at or stamp, stamp, stamp, status)
                )  # fmt: skip
                new_keys.append(key)
                counts.added += not dup
                continue
            sid = old[0]
            fields = json.loads(old[4])
            new_fields = {**fields, **{k: v for k, v in row.fields.items() if v}}
            # an owner's (confirmed) import confirms a reader still pending from the form
            new_status = "confirmed" if "confirmed" in (old[6], status) else "pending"
            if new_status != old[6]:
                upgraded.append(key)
            values = (
                row.first_name or old[2],
                row.last_name or old[3],
                json.dumps(new_fields, ensure_ascii=False, sort_keys=True),
                old[5] or (None if new_status == "pending" else row.subscribed_at or stamp),
                new_status,
            )
            missing_tags = [t for t in row.tags if t not in old_tags.get(sid, set())]
            changed = values != (old[2], old[3], json.dumps(fields, ensure_ascii=False,
                                 sort_keys=True), old[5], old[6])  # fmt: skip
            if changed:
                updates.append((*values, stamp, sid))
            tag_rows.extend((sid, t) for t in missing_tags)
            if not dup:
                if changed or missing_tags:
                    counts.updated += 1
                else:
                    counts.unchanged += 1
        if dry_run:
            return
        self.conn.executemany(
            "INSERT INTO subscribers(email, email_key, first_name, last_name, fields,"
            " subscribed_at, created_at, updated_at, status) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            inserts,
        )
        consented = [*(new_keys if pending else ()), *upgraded]
        if consented:
            self.conn.executemany(
                "INSERT INTO consents(email_key, action, at, source) VALUES (?, 'imported', ?, ?)",
                [(k, stamp, source) for k in consented],
            )
        if new_keys:
            for sid, key in self._in(
                "SELECT id, email_key FROM subscribers WHERE email_key IN (?*)", new_keys
            ):
                tag_rows.extend((sid, t) for t in merged[key].tags)
        self.conn.executemany(
            "UPDATE subscribers SET first_name = ?, last_name = ?, fields = ?, subscribed_at = ?,"
            " status = ?, updated_at = ? WHERE id = ?",
            updates,
        )
        self.conn.executemany(
            "INSERT OR IGNORE INTO subscriber_tags(subscriber_id, tag) VALUES (?, ?)", tag_rows
        )
