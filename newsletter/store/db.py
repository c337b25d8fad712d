"""Store plumbing: connections (a SQLite file, or PostgreSQL by URL), named forward migrations,
write transactions, faults.

A store target is a path (SQLite, WAL mode) or a ``postgresql://`` URL; :func:`connect` returns a
connection with ``sqlite3``'s interface either way (PostgreSQL through :mod:`newsletter.store.pg`,
the dialect layer), so every store class holds one set of SQL.

Migrations are named (``audience.0001_initial``) and recorded in ``schema_migrations``; each part
of the store owns its list, and :data:`MIGRATIONS` fixes their order. A database that holds a
migration this version does not know was written by a newer version: we refuse to touch it.

SQLite's errors about the file itself (damaged, read-only, locked, full, unreadable) become one
:class:`~newsletter.errors.StoreFault` line in :func:`fault`, here and nowhere else. A store
that held data leaves a marker beside it (``newsletter.db.marker``); an empty (0-byte) or
missing store file next to a marker is refused, never silently replaced by a new, empty store.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from datetime import UTC, datetime
from pathlib import Path
from typing import cast

from newsletter.errors import StoreError, StoreFault

MARKER_SUFFIX = ".marker"
_MARKER_TEXT = (
    "This file records that {name} beside it holds a newsletter store (subscribers,\n"
    "suppressions, campaigns). If {name} is ever missing or empty, newsletter refuses to\n"
    "start a new, empty store in its place: restore {name} from a backup. To really start\n"
    "over, delete this file too.\n"
)

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
    except sqlite3.Error as err:
        raise fault(path, err, timeout=timeout) from err
    try:
        conn.row_factory = sqlite3.Row
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA foreign_keys=ON")
        conn.execute(f"PRAGMA busy_timeout={int(timeout * 1000)}")
    except sqlite3.Error as err:
        conn.close()
        raise fault(path, err, timeout=timeout) from err
    return conn


def fault(path: Path | str, err: sqlite3.Error, *, timeout: float = 30.0) -> StoreFault:
    """One line for a failure of the store file: which file, what is wrong, what to do."""
    p = Path(path)
    code = (getattr(err, "sqlite_errorcode", 0) or 0) & 0xFF
    if code in (sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB):
        return StoreFault(
            f"{p}: the database is damaged ({err}); nothing was changed. Recover what it holds "
            f'with: sqlite3 {p} ".recover" | sqlite3 {p}.recovered, keep the damaged file, '
            f"and put {p.name}.recovered in its place (or restore a backup)"
        )
    if code == sqlite3.SQLITE_READONLY:
        return StoreFault(
            f"{p}: the database is read-only ({err}): make {p.name} and its folder writable "
            f"for this user (SQLite also writes {p.name}-wal and {p.name}-shm beside it), "
            "or run as the user that owns it"
        )
    if code in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED):
        return StoreFault(
            f"{p}: the database stayed locked for more than {timeout:g} s ({err}): another "
            "process (a newsletter send or serve, or sqlite3) holds it; let it finish or stop "
            "it, then try again"
        )
    if code == sqlite3.SQLITE_FULL:
        return StoreFault(
            f"{p}: the disk is full ({err}); the last change was rolled back. Free some space, "
            "then try again"
        )
    if code == sqlite3.SQLITE_CANTOPEN:
        return StoreFault(
            f"{p}: cannot open the database ({err}): check that {p.parent} exists and that "
            "this user may read and write it"
        )
    if code == sqlite3.SQLITE_IOERR:
        return StoreFault(
            f"{p}: the disk failed while reading or writing the database ({err}); check the "
            "disk, then check the file with: sqlite3 " + f'{p} "PRAGMA integrity_check"'
        )
    return StoreFault(f"{p}: the database failed ({err})")


def marker_for(path: Path) -> Path:
    return path.with_name(path.name + MARKER_SUFFIX)


def check_file(path: Path) -> None:
    """Refuse a store file that lost its data, before SQLite would start a new one in it.

    A 0-byte file is what SQLite makes of a new database, so it cannot tell "new" from
    "truncated"; the marker (written once a store holds a schema) and a leftover write-ahead
    log can. Also refuse a file this user cannot write (SQLite would fail later, less clearly).
    """
    marker = marker_for(path)
    wal = path.with_name(path.name + "-wal")
    if not path.exists():
        if marker.exists():
            raise StoreFault(
                f"{path}: the store is missing, but one was here ({marker.name} says so): "
                f"restore {path.name} from a backup; to start a new, empty store instead, "
                f"delete {marker.name}"
            )
        return
    if path.is_dir():
        raise StoreFault(f"{path}: is a folder, not a store file; point [store] path at a file")
    if path.stat().st_size == 0 and (marker.exists() or _size(wal) > 0):
        raise StoreFault(
            f"{path}: the store file is empty (0 bytes) but held a store: it was truncated or "
            f"overwritten. Restore {path.name} from a backup (keep any {path.name}-wal beside "
            f"it); to start a new, empty store instead, delete {path.name} and {marker.name}"
        )
    if not os.access(path, os.R_OK | os.W_OK):
        raise StoreFault(
            f"{path}: the database is read-only for this user: make {path.name} and its "
            f"folder writable (SQLite also writes {path.name}-wal and {path.name}-shm beside "
            "it), or run as the user that owns it"
        )


def mark(path: Path) -> None:
    """Leave the marker beside a store that holds a schema (best effort: a read-only folder
    just goes without)."""
    marker = marker_for(path)
    if marker.exists():
        return
    with contextlib.suppress(OSError):
        marker.write_text(_MARKER_TEXT.format(name=path.name), encoding="utf-8")


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


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
    except sqlite3.Error as err:
        raise fault(filename(conn), err, timeout=_busy_timeout(conn)) from err


def filename(conn: sqlite3.Connection) -> str:
    """The file of the connection's main database (for messages)."""
    try:
        row = conn.execute("PRAGMA database_list").fetchone()
    except sqlite3.Error:
        return "the store"
    return str(row[2]) if row is not None and row[2] else "the store"


def _busy_timeout(conn: sqlite3.Connection) -> float:
    try:
        row = conn.execute("PRAGMA busy_timeout").fetchone()
    except sqlite3.Error:
        return 30.0
    return float(row[0]) / 1000 if row is not None else 30.0


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
