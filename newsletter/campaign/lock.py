"""One sender per campaign, whatever path the store is reached by: a lease row in the store.

The lease lives in the database itself (``campaign_leases``), so a symlink, a hard link or a
second copy of ``newsletter.toml`` pointing at the same file all meet the same row; a lock file
beside the path would not. A holder is ``host``, ``pid``, the process's start time and a random
token, and it refreshes ``heartbeat`` every few seconds from a thread with its own connection.

A lease is free when its holder is gone:

- on this host, the process no longer exists (or the pid was reused by a process that started
  at another time): taken over at once, so a re-run right after ``kill -9`` goes ahead;
- on another host (a store on a shared disk), its heartbeat is older than ``stale_after``.

Taking a lease is one ``BEGIN IMMEDIATE`` transaction, so two processes cannot both take it.

Several senders, one campaign (a PostgreSQL store): a lease is per process, and ``shared`` ones
coexist. A sender prepares the campaign under an exclusive lease, then :meth:`CampaignLock.share`
turns it into a shared one; other processes (``send --workers N``, or the same command on
another host) take shared leases and claim batches one at a time (``claimed_by`` = their lease
token). When a holder is found dead, its lease row is deleted (:func:`prune`) and the batches it
had in flight become ``unknown`` (see ``CampaignStore.recover_orphans``).
"""

from __future__ import annotations

import os
import secrets
import socket
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from newsletter.errors import CampaignLocked, StoreError
from newsletter.store import db

HEARTBEAT_SECONDS = 2.0
STALE_AFTER_SECONDS = 20.0


def _process_start(pid: int) -> str:
    """When ``pid`` started (clock ticks since boot, from /proc), or "" where unknown."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="ascii", errors="replace")
    except OSError:
        return ""
    # the command name (field 2) may hold spaces and parentheses: count from the last ")"
    fields = stat[stat.rfind(")") + 2 :].split()
    return fields[19] if len(fields) > 19 else ""


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    return True


@dataclass(frozen=True)
class Holder:
    host: str
    pid: int
    started: str
    heartbeat: float

    def alive(self, *, now: float, stale_after: float) -> bool:
        if self.host == socket.gethostname():
            if not _pid_alive(self.pid):
                return False
            return not self.started or _process_start(self.pid) in ("", self.started)
        return now - self.heartbeat < stale_after


@dataclass(frozen=True)
class Lease:
    token: str
    holder: Holder
    shared: bool


def leases_of(conn: sqlite3.Connection, campaign_id: str) -> list[Lease]:
    rows = conn.execute(
        "SELECT token, host, pid, started, heartbeat, shared FROM campaign_leases"
        " WHERE campaign_id = ? ORDER BY heartbeat",
        (campaign_id,),
    ).fetchall()
    return [
        Lease(str(r[0]), Holder(str(r[1]), int(r[2]), str(r[3]), float(r[4])), bool(r[5]))
        for r in rows
    ]


def holder_of(conn: sqlite3.Connection, campaign_id: str) -> Holder | None:
    """A live holder of the campaign's lease (any of them), else the first dead one, or None."""
    leases = leases_of(conn, campaign_id)
    now = time.time()
    for lease in leases:
        if lease.holder.alive(now=now, stale_after=STALE_AFTER_SECONDS):
            return lease.holder
    return leases[0].holder if leases else None


def prune(
    conn: sqlite3.Connection, campaign_id: str, *, stale_after: float = STALE_AFTER_SECONDS
) -> set[str]:
    """Delete the leases of dead holders (call inside a write transaction); returns the tokens
    of the live ones."""
    now = time.time()
    live: set[str] = set()
    for lease in leases_of(conn, campaign_id):
        if lease.holder.alive(now=now, stale_after=stale_after):
            live.add(lease.token)
        else:
            conn.execute(
                "DELETE FROM campaign_leases WHERE campaign_id = ? AND token = ?",
                (campaign_id, lease.token),
            )
    return live


class CampaignLock:
    """The send lease of one campaign in the store at ``db_path``; a context manager."""

    def __init__(
        self,
        db_path: db.Target,
        campaign_id: str,
        *,
        heartbeat: float = HEARTBEAT_SECONDS,
        stale_after: float = STALE_AFTER_SECONDS,
        shared: bool = False,
    ) -> None:
        self.shared = shared
        self.db_path = db_path
        self.campaign_id = campaign_id
        self.heartbeat = heartbeat
        self.stale_after = stale_after
        self.token = secrets.token_hex(8)
        self._conn: sqlite3.Connection | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def acquire(self) -> None:
        conn = db.connect(self.db_path)
        now = time.time()
        try:
            with db.write(conn):
                live = prune(conn, self.campaign_id, stale_after=self.stale_after)
                for lease in leases_of(conn, self.campaign_id):
                    if lease.token not in live or (self.shared and lease.shared):
                        continue
                    held = lease.holder
                    where = "" if held.host == socket.gethostname() else f" on {held.host}"
                    raise CampaignLocked(
                        f"campaign {self.campaign_id} is being sent by process {held.pid}"
                        f"{where}; wait for it to finish (see `newsletter status`): only one "
                        "send per campaign runs at a time"
                        + (
                            ""
                            if lease.shared
                            else "; on PostgreSQL senders can join once it is prepared"
                        )
                    )
                conn.execute(
                    "INSERT INTO campaign_leases(campaign_id, token, host, pid,"
                    " started, heartbeat, shared) VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (
                        self.campaign_id,
                        self.token,
                        socket.gethostname(),
                        os.getpid(),
                        _process_start(os.getpid()),
                        now,
                        int(self.shared),
                    ),
                )
        except BaseException:
            conn.close()
            raise
        self._conn = conn
        self._stop.clear()
        self._thread = threading.Thread(target=self._beat, name="lease-heartbeat", daemon=True)
        self._thread.start()

    def _beat(self) -> None:
        # its own connection: the sending thread's is not to be shared between threads
        conn = db.connect(self.db_path)
        try:
            while not self._stop.wait(self.heartbeat):
                try:
                    with db.write(conn):
                        conn.execute(
                            "UPDATE campaign_leases SET heartbeat = ? WHERE campaign_id = ?"
                            " AND token = ?",
                            (time.time(), self.campaign_id, self.token),
                        )
                except (sqlite3.Error, StoreError):
                    continue  # busy for a moment: the next beat will do; 20 s of grace
        finally:
            conn.close()

    def share(self) -> None:
        """Let other senders join: this exclusive lease becomes a shared one."""
        assert self._conn is not None, "acquire() first"
        with db.write(self._conn):
            self._conn.execute(
                "UPDATE campaign_leases SET shared = 1 WHERE campaign_id = ? AND token = ?",
                (self.campaign_id, self.token),
            )
        self.shared = True

    def live_senders(self) -> set[str]:
        """Prune dead holders' leases; the tokens of the live ones (this one included)."""
        assert self._conn is not None, "acquire() first"
        with db.write(self._conn):
            return prune(self._conn, self.campaign_id, stale_after=self.stale_after)

    def release(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None
        if self._conn is not None:
            try:
                with db.write(self._conn):
                    self._conn.execute(
                        "DELETE FROM campaign_leases WHERE campaign_id = ? AND token = ?",
                        (self.campaign_id, self.token),
                    )
            finally:
                self._conn.close()
                self._conn = None

    def __enter__(self) -> CampaignLock:
        self.acquire()
        return self

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.release()


def sender_running(conn: sqlite3.Connection, campaign_id: str) -> bool:
    """Whether a live process holds the campaign's lease (for ``status``)."""
    held = holder_of(conn, campaign_id)
    return held is not None and held.alive(now=time.time(), stale_after=STALE_AFTER_SECONDS)
