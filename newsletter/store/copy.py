"""``newsletter store copy``: move a whole store between SQLite and PostgreSQL, verified.

Every table of the schema is copied (subscribers, tags, tombstones, suppressions and their log,
webhook events, consent records, campaigns, their posts, batches and ledgers, the feed cache),
except the send leases (they belong to running processes). The copy is one transaction on the
target: all of it or nothing. Afterwards each table is counted and checksummed on both sides
(an order-independent sum of a hash of every row), and the id counters are carried over, so an
id given out before the copy is never given out again after it (unsubscribe tokens carry ids).
"""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from newsletter.errors import StoreError
from newsletter.store import db

SKIP = {"schema_migrations", "campaign_leases", "sqlite_sequence"}
# parents before children (foreign keys); any other table follows in name order
FIRST = ("subscribers", "campaigns")
CHUNK = 5000


@dataclass(frozen=True)
class TableCopy:
    table: str
    rows: int
    checksum: str


@dataclass
class CopyReport:
    source: str
    target: str
    tables: list[TableCopy] = field(default_factory=list)

    @property
    def rows(self) -> int:
        return sum(t.rows for t in self.tables)


def tables(conn: sqlite3.Connection) -> list[str]:
    if db.is_postgres(conn):
        sql = "SELECT tablename FROM pg_tables WHERE schemaname = current_schema()"
    else:
        sql = "SELECT name FROM sqlite_master WHERE type = 'table'"
    names = sorted(r[0] for r in conn.execute(sql) if r[0] not in SKIP)
    return [t for t in FIRST if t in names] + [t for t in names if t not in FIRST]


def columns(conn: sqlite3.Connection, table: str) -> list[str]:
    desc = conn.execute(f"SELECT * FROM {table} LIMIT 0").description
    return [d[0] for d in desc or ()]


def _canonical(value: Any) -> bytes:
    if value is None:
        return b"\x00N"
    if isinstance(value, bool):
        value = int(value)
    if isinstance(value, bytes | memoryview | bytearray):
        return b"\x00B" + bytes(value)
    if isinstance(value, float):
        return b"\x00F" + repr(value).encode()
    if isinstance(value, int):
        return b"\x00I" + str(value).encode()
    return b"\x00S" + str(value).encode("utf-8")


def _rows(conn: sqlite3.Connection, table: str, cols: Sequence[str]) -> Iterator[tuple[Any, ...]]:
    cur = conn.cursor()
    cur.row_factory = None
    yield from (tuple(r) for r in cur.execute(f"SELECT {', '.join(cols)} FROM {table}"))


def checksum(conn: sqlite3.Connection, table: str, cols: Sequence[str]) -> tuple[int, str]:
    """(rows, checksum) of a table: the same on both backends for the same rows, in any order."""
    total = 0
    n = 0
    for row in _rows(conn, table, cols):
        digest = hashlib.blake2b(b"".join(_canonical(v) for v in row), digest_size=8).digest()
        total = (total + int.from_bytes(digest, "big")) % (1 << 64)
        n += 1
    return n, f"{total:016x}"


def _chunks(rows: Iterable[tuple[Any, ...]], size: int) -> Iterator[list[tuple[Any, ...]]]:
    chunk: list[tuple[Any, ...]] = []
    for row in rows:
        chunk.append(row)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _id_high_water(conn: sqlite3.Connection, table: str) -> int:
    """The highest id ever given out in ``table``'s generated ``id`` column (0: none)."""
    if "id" not in columns(conn, table):
        return 0
    if db.is_postgres(conn):
        row = conn.execute("SELECT pg_get_serial_sequence(?, 'id')", (table,)).fetchone()
        if row is None or row[0] is None:
            return 0
        seq = conn.execute(f"SELECT last_value, is_called FROM {row[0]}").fetchone()
        return int(seq[0]) if seq[1] else 0
    info = conn.execute(
        "SELECT upper(type), pk FROM pragma_table_info(?) WHERE name = 'id'", (table,)
    ).fetchone()
    if info is None or info[0] != "INTEGER" or info[1] != 1:
        return 0  # not a rowid alias: ids are given by us, not by the database
    high = int(conn.execute(f"SELECT coalesce(max(id), 0) FROM {table}").fetchone()[0])
    row = conn.execute("SELECT seq FROM sqlite_sequence WHERE name = ?", (table,)).fetchone()
    return max(high, int(row[0]) if row else 0)


def _set_high_water(conn: sqlite3.Connection, table: str, value: int) -> None:
    if value <= 0 or "id" not in columns(conn, table):
        return
    if db.is_postgres(conn):
        row = conn.execute("SELECT pg_get_serial_sequence(?, 'id')", (table,)).fetchone()
        if row is not None and row[0] is not None:
            conn.execute("SELECT setval(?, ?)", (row[0], value))
    else:  # an AUTOINCREMENT table keeps its counter in sqlite_sequence
        conn.execute("UPDATE sqlite_sequence SET seq = max(seq, ?) WHERE name = ?", (value, table))


def copy_store(
    source: sqlite3.Connection,
    target: sqlite3.Connection,
    *,
    source_name: str,
    target_name: str,
    force: bool = False,
) -> CopyReport:
    """Copy every table of ``source`` into ``target`` (both migrated to the same schema)."""
    names = tables(source)
    missing = sorted(set(names) - set(tables(target)))
    if missing:
        raise StoreError(f"{target_name} lacks the tables {', '.join(missing)}; migrate it first")
    report = CopyReport(source_name, target_name)
    with db.write(target):
        filled = [t for t in names if target.execute(f"SELECT 1 FROM {t} LIMIT 1").fetchone()]
        if filled and not force:
            raise StoreError(
                f"{target_name} is not empty ({', '.join(filled)} hold rows); copy into an "
                "empty store, or pass --force to replace what it holds"
            )
        for table in reversed(names):
            target.execute(f"DELETE FROM {table}")
        for table in names:
            cols = [c for c in columns(source, table) if c in set(columns(target, table))]
            marks = ", ".join("?" * len(cols))
            sql = f"INSERT INTO {table} ({', '.join(cols)}) VALUES ({marks})"
            for chunk in _chunks(_rows(source, table, cols), CHUNK):
                target.executemany(sql, chunk)
            _set_high_water(target, table, _id_high_water(source, table))
        for table in names:
            cols = [c for c in columns(source, table) if c in set(columns(target, table))]
            n_src, sum_src = checksum(source, table, cols)
            n_dst, sum_dst = checksum(target, table, cols)
            if (n_src, sum_src) != (n_dst, sum_dst):
                raise StoreError(
                    f"copy of {table} does not match: {n_src} rows (checksum {sum_src}) in "
                    f"{source_name}, {n_dst} rows (checksum {sum_dst}) in {target_name}; "
                    "nothing was written"
                )
            report.tables.append(TableCopy(table, n_src, sum_src))
    return report
