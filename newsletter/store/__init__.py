"""The store: one SQLite file behind two small interfaces.

- ``store.audience`` (:mod:`newsletter.store.audience`): subscribers, tags, suppressions.
- ``store.campaigns`` (:mod:`newsletter.store.campaigns`): campaigns, batches, the ledger.
- ``store.signup`` (:mod:`newsletter.store.signup`): sign-ups, consent, rate limits, mail queue.

The dispatcher and the web app talk to these two objects only, never to SQL, so a server
database can replace SQLite by providing the same two interfaces.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from newsletter.errors import StoreError
from newsletter.store import audience, campaigns, db, feeds, signup

MIGRATIONS: list[db.Migration] = [*audience.MIGRATIONS, *campaigns.MIGRATIONS, *feeds.MIGRATIONS]


class Store:
    def __init__(self, conn: sqlite3.Connection, path: Path) -> None:
        self.conn = conn
        self.path = path
        self.audience = audience.AudienceStore(conn)
        self.campaigns = campaigns.CampaignStore(conn)
        self.signup = signup.SignupStore(conn)
        self.feeds = feeds.FeedCacheStore(conn)

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_store(path: Path | str, *, timeout: float = 30.0) -> Store:
    """Open (creating and migrating as needed) the store at ``path``.

    A damaged, read-only, emptied or vanished store is a :class:`~newsletter.errors.StoreFault`
    that says what to do; a new store is only made where none was before.
    """
    p = Path(path)
    db.check_file(p)
    try:
        p.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise StoreError(f"{p}: cannot create the folder for the store ({err.strerror})") from err
    conn = db.connect(p, timeout=timeout)
    try:
        db.migrate(conn, MIGRATIONS)
    except sqlite3.Error as err:
        conn.close()
        raise db.fault(p, err, timeout=timeout) from err
    except BaseException:
        conn.close()
        raise
    db.mark(p)
    return Store(conn, p)
