"""The feed cache: the last body of each feed with its ``ETag`` and ``Last-Modified``, so the
next fetch can ask "has it changed?" and a 304 Not Modified costs no download."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

from newsletter.store.db import Migration, write

MIGRATIONS: list[Migration] = [
    (
        "feeds.0001_cache",
        """
        CREATE TABLE feed_cache (
            url TEXT PRIMARY KEY,
            etag TEXT NOT NULL DEFAULT '',
            last_modified TEXT NOT NULL DEFAULT '',
            body BLOB NOT NULL,
            fetched_at TEXT NOT NULL
        );
        """,
    ),
]


@dataclass(frozen=True)
class CachedFeed:
    url: str
    etag: str
    last_modified: str
    body: bytes
    fetched_at: str  # ISO 8601, UTC


class FeedCacheStore:
    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def get(self, url: str) -> CachedFeed | None:
        row = self.conn.execute(
            "SELECT url, etag, last_modified, body, fetched_at FROM feed_cache WHERE url = ?",
            (url,),
        ).fetchone()
        if row is None:
            return None
        return CachedFeed(row[0], row[1], row[2], bytes(row[3]), row[4])

    def put(self, feed: CachedFeed) -> None:
        with write(self.conn):
            self.conn.execute(
                "INSERT INTO feed_cache (url, etag, last_modified, body, fetched_at) "
                "VALUES (?, ?, ?, ?, ?) ON CONFLICT(url) DO UPDATE SET etag = excluded.etag, "
                "last_modified = excluded.last_modified, body = excluded.body, "
                "fetched_at = excluded.fetched_at",
                (feed.url, feed.etag, feed.last_modified, feed.body, feed.fetched_at),
            )
