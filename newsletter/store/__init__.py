"""The store: one SQLite file, or one PostgreSQL database, behind small interfaces.

- ``store.audience`` (:mod:`newsletter.store.audience`): subscribers, tags, suppressions.
- ``store.campaigns`` (:mod:`newsletter.store.campaigns`): campaigns, batches, the ledger.
- ``store.signup`` (:mod:`newsletter.store.signup`): sign-ups, consent, rate limits, mail queue.

The dispatcher and the web app talk to these objects only, never to SQL. The same classes run
on PostgreSQL (a ``postgresql://`` URL as the target) through the dialect layer in
:mod:`newsletter.store.pg`; the migrations are the same named list for both.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, cast

from newsletter.errors import StoreError
from newsletter.store import audience, campaigns, copy, db, feeds, signup

if TYPE_CHECKING:
    from newsletter.store import pg

MIGRATIONS: list[db.Migration] = [*audience.MIGRATIONS, *campaigns.MIGRATIONS, *feeds.MIGRATIONS]
PG_MIGRATIONS: dict[str, str] = {**campaigns.PG_MIGRATIONS}


class Store:
    def __init__(self, conn: sqlite3.Connection, path: db.Target) -> None:
        self.conn = conn
        self.path = path  # a Path, or a postgresql:// URL (see db.describe for messages)
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


def open_store(target: db.Target, *, timeout: float = 30.0) -> Store:
    """Open the store at ``target``: a SQLite file (created and migrated as needed) or a
    ``postgresql://`` URL.

    A damaged, read-only, emptied or vanished SQLite store is a
    :class:`~newsletter.errors.StoreFault` that says what to do; a new store is only made where
    none was before. A PostgreSQL store is shared by several hosts, so start-up only checks its
    migrations: an empty database is set up, but one that lacks some migrations is refused
    until ``newsletter store migrate`` runs them (an upgrade is a step an operator takes once,
    not something every sender does while others run).
    """
    if db.is_url(target):
        conn = db.connect(target, timeout=timeout)
        try:
            missing = db.pending(conn, MIGRATIONS)
            if len(missing) == len(MIGRATIONS):
                db.migrate(conn, MIGRATIONS, PG_MIGRATIONS)
            elif missing:
                raise StoreError(
                    f"the store at {db.describe(target)} needs {len(missing)} migration(s) "
                    f"({', '.join(missing)}); run `newsletter store migrate` once, then retry"
                )
        except BaseException:
            conn.close()
            raise
        return Store(conn, target)
    p = Path(target)
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


@dataclass(frozen=True)
class StoreHealth:
    """What :func:`inspect_store` found (``newsletter doctor``)."""

    where: str  # a path, or the URL without its password
    postgres: bool
    exists: bool  # False: no SQLite file yet, or an empty PostgreSQL database
    pending: tuple[str, ...] = ()  # migrations to apply
    recipients: int = -1  # people a send to everyone would go to (-1: not counted)


def inspect_store(target: db.Target) -> StoreHealth:
    """Look at the store without changing it: reachable, set up, migrations, audience size.

    Raises what :func:`open_store` would (a :class:`~newsletter.errors.StoreError` naming the
    store and the cause) for a store that cannot be used; a store that is merely not there
    yet, or behind on migrations, is described instead.
    """
    postgres = db.is_url(target)
    where = db.describe(target)
    if not postgres:
        p = Path(target)
        db.check_file(p)
        if not p.exists():
            return StoreHealth(where, postgres, exists=False)
    conn = db.connect(target)
    try:
        missing = tuple(db.pending(conn, MIGRATIONS))
        if len(missing) == len(MIGRATIONS):
            return StoreHealth(where, postgres, exists=False, pending=missing)
        if missing:
            return StoreHealth(where, postgres, exists=True, pending=missing)
        recipients = audience.AudienceStore(conn).count_recipients()
        return StoreHealth(where, postgres, exists=True, recipients=recipients)
    finally:
        conn.close()


def migrate_store(target: db.Target) -> list[str]:
    """Apply the migrations ``target`` lacks; returns their names (``newsletter store migrate``)."""
    if not db.is_url(target):
        Path(target).parent.mkdir(parents=True, exist_ok=True)
    conn = db.connect(target)
    try:
        return db.migrate(conn, MIGRATIONS, PG_MIGRATIONS)
    finally:
        conn.close()


def copy_between(source: db.Target, target: db.Target, *, force: bool = False) -> copy.CopyReport:
    """Copy the whole store at ``source`` into ``target`` (``newsletter store copy``).

    The target is created and migrated as needed (a PostgreSQL database must exist); a
    non-empty target is refused unless ``force``. See :mod:`newsletter.store.copy`.
    """
    if str(source) == str(target):
        raise StoreError("the source and the target of the copy are the same store")
    if not db.is_url(target):
        Path(target).parent.mkdir(parents=True, exist_ok=True)
    with open_store(source) as src, open_store(target) as dst:
        return copy.copy_store(
            src.conn,
            dst.conn,
            source_name=db.describe(source),
            target_name=db.describe(target),
            force=force,
        )


class StorePool:
    """Stores for a server's worker threads (``newsletter serve``).

    SQLite: one connection, used by one thread at a time (SQLite writes one at a time anyway).
    PostgreSQL: a psycopg-pool of connections, so requests run side by side; a connection the
    server dropped is replaced on its next use.
    """

    def __init__(self, target: db.Target, *, size: int = 4) -> None:
        import threading

        self.target = target
        open_store(target).close()  # create / migrate (SQLite) or check (PostgreSQL) once
        self._lock = threading.Lock()
        self._single: Store | None = None
        self._pool: pg.Pool | None = None
        if db.is_url(target):
            from newsletter.store import pg

            self._pool = pg.Pool(str(target), size=size)
        else:
            self._single = open_store(target)

    @contextmanager
    def store(self) -> Iterator[Store]:
        if self._pool is not None:
            with self._pool.connection() as conn:
                yield Store(cast(sqlite3.Connection, conn), self.target)
            return
        assert self._single is not None
        with self._lock:
            yield self._single

    def close(self) -> None:
        if self._pool is not None:
            self._pool.close()
        if self._single is not None:
            self._single.close()
