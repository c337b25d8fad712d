"""One sender per campaign: an OS file lock that dies with its process."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
from types import TracebackType

from newsletter.errors import CampaignLocked


class CampaignLock:
    """One sender per campaign: an OS lock (``flock``) on ``<lock_dir>/<campaign>.lock``.

    The kernel drops the lock when the process dies, even by ``kill -9``, so a crash never
    leaves a campaign locked. The file holds the owner's pid for the error message.
    """

    def __init__(self, lock_dir: Path, campaign_id: str) -> None:
        self.path = lock_dir / f"{campaign_id}.lock"
        self._fd: int | None = None

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as err:
            owner = os.read(fd, 32).decode("ascii", "replace").strip() or "another process"
            os.close(fd)
            raise CampaignLocked(
                f"campaign {self.path.stem} is being sent by process {owner}; wait for it to "
                "finish (see `newsletter status`) — only one send per campaign runs at a time"
            ) from err
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode("ascii"))
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> CampaignLock:
        self.acquire()
        return self

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.release()


def lock_dir_for(db_path: Path) -> Path:
    """Where the campaign lock files of a store live: next to the database file."""
    return db_path.parent / f"{db_path.name}.locks"


def sender_running(lock_dir: Path, campaign_id: str) -> bool:
    """Whether a process holds the campaign's lock (a non-blocking flock attempt, let go at once).

    A shared lock is enough to tell: it fails while a sender holds the exclusive one, and the
    kernel drops that one when the sender dies, even by ``kill -9``.
    """
    try:
        fd = os.open(lock_dir / f"{campaign_id}.lock", os.O_RDONLY)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # closing drops our shared lock, if we got it
    return False
