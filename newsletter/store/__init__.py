"""The store: one SQLite file behind two small interfaces.

- ``store.audience`` (:mod:`newsletter.store.audience`): subscribers, tags, suppressions.
- ``store.campaigns`` (:mod:`newsletter.store.campaigns`): campaigns, batches, the ledger.

The dispatcher and the web app talk to these two objects only, never to SQL, so a server
database can replace SQLite by providing the same two interfaces.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from newsletter.store import audience, campaigns, db, feeds

MIGRATIONS: list[db.Migration] = [*audience.MIGRATIONS, *campaigns.MIGRATIONS, *feeds.MIGRATIONS]


class Store:
    def __init__(self, conn: sqlite3.Connection, path: Path) -> None:
        self.conn = conn
        self.path = path
        self.audience = audience.AudienceStore(conn)
        self.campaigns = campaigns.CampaignStore(conn)
        self.feeds = feeds.FeedCacheStore(conn)

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_store(path: Path | str) -> Store:
    """Open (creating and migrating as needed) the store at ``path``."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    conn = db.connect(p)
    db.migrate(conn, MIGRATIONS)
    return Store(conn, p)
