"""Store plumbing: connections (a SQLite file, or PostgreSQL by URL), named forward migrations,
write transactions.

A store target is a path (SQLite, WAL mode) or a ``postgresql://`` URL; :func:`connect` returns a
connection with ``sqlite3``'s interface either way (PostgreSQL through :mod:`newsletter.store.pg`,
the dialect layer), so every store class holds one set of SQL.

Migrations are named (``audience.0001_initial``) and recorded in ``schema_migrations``; each part
of the store owns its list, and :data:`MIGRATIONS` fixes their order. A database that holds a
migration this version does not know was written by a newer version: we refuse to touch it.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from datetime import UTC, datetime
from pathlib import Path
from typing import cast

from newsletter.errors import StoreError

Migration = tuple[str, str]  # (name, SQL script)
Target = Path | str  # a SQLite file, or a postgresql:// URL


class IntegrityError(StoreError):
    """A constraint refused a write on PostgreSQL (SQLite raises ``sqlite3.IntegrityError``)."""

    def __init__(self, message: str, *, unique: bool) -> None:
        super().__init__(message)
        self.unique = unique


def is_postgres(conn: object) -> bool:
    return getattr(conn, "dialect", "sqlite") == "postgresql"


def is_url(target: object) -> bool:
    """Whether a store target is a PostgreSQL URL (rather than a SQLite path)."""
    return isinstance(target, str) and target.startswith(("postgresql://", "postgres://"))


def describe(target: Target) -> str:
    """The target for a message: a path, or a URL without its password."""
    from newsletter.store import pg

    return pg.redact(str(target)) if pg.is_url(target) else str(target)


def connect(target: Target, *, timeout: float = 30.0) -> sqlite3.Connection:
    """Open the store's database: PostgreSQL for a URL, else the SQLite file at ``target``.

    A PostgreSQL connection is typed as ``sqlite3.Connection`` because it offers the same
    methods (see :class:`newsletter.store.pg.PgConnection`).
    """
    from newsletter.store import pg

    if pg.is_url(target):
        return cast(sqlite3.Connection, pg.connect(str(target), timeout=timeout))
    return connect_sqlite(target, timeout=timeout)


def connect_sqlite(path: Path | str, *, timeout: float = 30.0) -> sqlite3.Connection:
    """Open the database in WAL mode with a busy timeout; autocommit (we BEGIN ourselves).

    A symlink is followed to the real file first, so the WAL and shared-memory files sit beside
    it whichever name was used. A file with several hard links is refused (see below).
    """
    path = Path(path).resolve()
    single_name(path)
    try:
        conn = sqlite3.connect(
            str(path), timeout=timeout, isolation_level=None, check_same_thread=False
        )
        conn.row_factory = sqlite3.Row
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA foreign_keys=ON")
        conn.execute(f"PRAGMA busy_timeout={int(timeout * 1000)}")
    except sqlite3.DatabaseError as err:
        raise StoreError(f"{path}: cannot open the database ({err})") from err
    return conn


def single_name(path: Path) -> None:
    """Refuse a database file that has more than one name (hard links).

    SQLite keeps a database's write-ahead log and shared memory in files named after the path
    it was opened by. Two names for one file mean two logs: writes through one are invisible
    through the other, two senders each think they hold the campaign, and checkpoints corrupt
    the file ("database disk image is malformed").
    """
    try:
        links = path.stat().st_nlink
    except OSError:
        return  # not there yet (a new store), or unreadable: sqlite3 says why
    if links > 1:
        raise StoreError(
            f"{path}: this database file has {links} names (hard links). SQLite keeps its "
            "write-ahead log beside each name, so two names for one store lose writes and "
            "corrupt it. Keep one name (remove the other links; `find / -samefile "
            f"{path}` lists them) and use a symlink where a second path is needed"
        )


def begin(conn: sqlite3.Connection, *, immediate: bool = True) -> None:
    """Start a transaction; a write lock held too long by another process is a StoreError."""
    try:
        conn.execute("BEGIN IMMEDIATE" if immediate else "BEGIN")
    except sqlite3.OperationalError as err:
        raise StoreError(
            f"the database is busy ({err}): another newsletter process has been writing to it "
            "for too long; try again"
        ) from err


@contextmanager
def write(
    conn: sqlite3.Connection, *, lock: bool = True, pipeline: bool = False
) -> Iterator[sqlite3.Connection]:
    """A write transaction that takes the write lock at once (BEGIN IMMEDIATE).

    ``lock=False`` (PostgreSQL only) skips the store-wide write lock: for transactions whose
    row locks are enough (claiming a batch with ``FOR UPDATE SKIP LOCKED``). SQLite always
    locks. ``pipeline=True`` (PostgreSQL only; for transactions that read nothing back) sends
    the whole transaction in one round trip instead of one per statement.
    """
    if pipeline and is_postgres(conn):
        with _pipelined(conn, lock=lock):
            yield conn
        return
    begin(conn, immediate=lock or not is_postgres(conn))
    try:
        yield conn
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    else:
        conn.execute("COMMIT")


@contextmanager
def _pipelined(conn: sqlite3.Connection, *, lock: bool) -> Iterator[None]:
    pipeline = conn.pipeline  # type: ignore[attr-defined]  # PgConnection
    try:
        with pipeline():
            begin(conn, immediate=lock)
            yield
            conn.execute("COMMIT")
    except BaseException:
        with suppress(StoreError):
            conn.execute("ROLLBACK")  # a failed statement left the transaction aborted
        raise


def _applied(conn: sqlite3.Connection, migrations: Sequence[Migration]) -> set[str]:
    conn.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations ("
        " name TEXT PRIMARY KEY, applied_at TEXT NOT NULL)"
    )
    done = {r[0] for r in conn.execute("SELECT name FROM schema_migrations")}
    known = {name for name, _ in migrations}
    unknown = sorted(done - known)
    if unknown:
        raise StoreError(
            f"the database has migrations this version does not know ({', '.join(unknown)}); "
            "it was written by a newer version of newsletter: upgrade the tool"
        )
    return done


def pending(conn: sqlite3.Connection, migrations: Sequence[Migration]) -> list[str]:
    """The names of the migrations not yet applied (a newer database is a StoreError)."""
    with write(conn):
        done = _applied(conn, migrations)
    return [name for name, _ in migrations if name not in done]


def migrate(
    conn: sqlite3.Connection,
    migrations: Sequence[Migration],
    overrides: Mapping[str, str] | None = None,
) -> list[str]:
    """Apply every migration not yet applied, in order; return the names applied.

    ``overrides`` holds PostgreSQL's script for the few migrations whose SQL must differ
    (SQLite table rebuilds, ``json_each``); every other script is translated by
    :func:`newsletter.store.pg.translate_ddl`.
    """
    applied_now: list[str] = []
    postgres = is_postgres(conn)
    with write(conn):
        done = _applied(conn, migrations)
        for name, script in migrations:
            if name in done:
                continue
            if postgres:
                from newsletter.store import pg

                script = pg.translate_ddl((overrides or {}).get(name, script))
            for statement in _statements(script):
                conn.execute(statement)
            conn.execute(
                "INSERT INTO schema_migrations(name, applied_at) VALUES (?, ?)",
                (name, datetime.now(UTC).isoformat(timespec="seconds")),
            )
            applied_now.append(name)
    return applied_now


def _statements(script: str) -> list[str]:
    out: list[str] = []
    buf = ""
    for line in script.splitlines(keepends=True):
        buf += line
        if sqlite3.complete_statement(buf):
            if buf.strip():
                out.append(buf.strip())
            buf = ""
    if buf.strip():
        out.append(buf.strip())
    return out
