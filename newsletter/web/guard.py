"""``newsletter serve`` under abuse: bounded connections, request deadlines, quiet logs.

uvicorn closes idle keep-alive connections, but a connection that never finishes its request (a
port scan, a load balancer's half-open probe, a slowloris sending a byte now and then, a slow
POST body) stays open for good, and thousands of them exhaust the file descriptors: every
accept then fails and asyncio logs the failure with a traceback, again and again. Here:

- each request head must be complete within ``header_timeout`` seconds of its first byte (of
  the connection, for the first request), and its body within ``body_timeout`` seconds of the
  head: on every request of a keep-alive connection, not only the first;
- at most ``max_pending`` connections may be waiting for their first request head; past that
  the oldest waiting one is closed (a real client sends its request at once, so it is never
  the oldest for long);
- uvicorn's ``limit_concurrency`` (``max_pending + max_active``, since uvicorn counts waiting
  connections too) answers 503 past that many, and ``timeout_keep_alive`` closes idle ones;
- the soft open-files limit is raised to the hard one, and the limits above are fitted into it;
- the same log message is written at most ``burst`` times a minute, then counted.

The guard is a subclass of uvicorn's h11 protocol given to ``uvicorn.Config(http=...)`` (its
documented way to choose the protocol class); it adds to ``connection_made``,
``data_received`` and ``connection_lost`` (the asyncio.Protocol interface) and calls the
originals. Where a request stands it reads from the protocol's h11 connection (``conn``, an
attribute of uvicorn's, with h11's public states): uvicorn is pinned for that, and
tests/test_hardening_server.py fails if the attribute goes.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

_END_OF_HEAD = b"\r\n\r\n"


@dataclass(frozen=True)
class ServerLimits:
    max_pending: int = 1024  # connections still sending their first request head
    max_active: int = 1024  # connections past their first head; more get 503 for requests
    header_timeout: float = 10.0  # seconds to send a complete request head
    body_timeout: float = 30.0  # seconds to send a request's body once its head is in
    timeout_keep_alive: float = 5.0
    backlog: int = 2048
    max_head_bytes: int = 16 * 1024  # request line + headers

    @property
    def limit_concurrency(self) -> int:
        """uvicorn's limit: it counts every open connection, waiting ones included."""
        return self.max_pending + self.max_active

    def fitted(self, open_files: int) -> ServerLimits:
        """These limits, shrunk to fit ``open_files``.

        asyncio accepts up to ``backlog`` connections in one go before any of them reaches
        ``connection_made`` (where the guard counts it), so twice the backlog is kept free
        beside the pending and active connections.
        """
        room = max(64, open_files - 64)  # the database, logs, the listening socket
        if self.limit_concurrency + 2 * self.backlog <= room:
            return self
        backlog = max(8, min(self.backlog, room // 8))
        rest = room - 2 * backlog
        pending = max(8, rest // 2)
        return ServerLimits(
            max_pending=pending,
            max_active=max(8, rest - pending),
            header_timeout=self.header_timeout,
            body_timeout=self.body_timeout,
            timeout_keep_alive=self.timeout_keep_alive,
            backlog=backlog,
            max_head_bytes=self.max_head_bytes,
        )


def raise_open_files_limit() -> int:
    """Raise the soft RLIMIT_NOFILE to the hard limit; return the soft limit now in force."""
    try:
        import resource
    except ImportError:  # not on Windows
        return 1024
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and soft < hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
        except (ValueError, OSError):
            pass
    return int(soft) if soft != resource.RLIM_INFINITY else 1 << 20


class _Pending:
    """The connections of one server still waiting for a request head, oldest first."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.waiting: OrderedDict[int, asyncio.Transport] = OrderedDict()
        self.evicted = 0
        self.timed_out = 0

    def add(self, key: int, transport: asyncio.Transport) -> None:
        self.waiting[key] = transport
        while len(self.waiting) > self.limit:
            _, oldest = self.waiting.popitem(last=False)
            self.evicted += 1
            oldest.abort()

    def discard(self, key: int) -> None:
        self.waiting.pop(key, None)


def guarded_protocol(limits: ServerLimits) -> type[H11Protocol]:
    """uvicorn's h11 protocol with deadlines on each request and a bound on waiting connections.

    Each call makes a class with its own registry, so two servers in one process (tests) do
    not share one.
    """
    pending = _Pending(limits.max_pending)

    class GuardedH11Protocol(H11Protocol):
        registry = pending

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._guard_transport = transport
            self._guard_tail = b""
            self._guard_loop = asyncio.get_running_loop()
            self._guard_timer: asyncio.TimerHandle | None = None
            self._guard_body = False  # the timer running is the body's (else the head's)
            self._arm(limits.header_timeout, body=False)
            pending.add(id(self), transport)

        def _arm(self, seconds: float, *, body: bool) -> None:
            if self._guard_timer is not None:
                self._guard_timer.cancel()
            self._guard_body = body
            self._guard_timer = self._guard_loop.call_later(seconds, self._too_slow)

        def _disarm(self) -> None:
            if self._guard_timer is not None:
                self._guard_timer.cancel()
                self._guard_timer = None
            pending.discard(id(self))

        def _too_slow(self) -> None:
            self._guard_timer = None
            pending.discard(id(self))
            pending.timed_out += 1
            self._guard_transport.abort()

        def _their_state(self) -> object:
            conn = getattr(self, "conn", None)
            return conn.their_state if isinstance(conn, h11.Connection) else None

        def data_received(self, data: bytes) -> None:
            if self._guard_timer is None and self._their_state() is h11.IDLE:
                # the first bytes of a later request on a keep-alive connection
                self._arm(limits.header_timeout, body=False)
                self._guard_tail = b""
            if self._guard_timer is not None and not self._guard_body:
                seen = self._guard_tail + data
                if _END_OF_HEAD in seen:
                    self._disarm()  # the head is in (h11 says below whether a body follows)
                else:
                    self._guard_tail = seen[-3:]
            super().data_received(data)
            state = self._their_state()
            if state is h11.SEND_BODY:
                if self._guard_timer is None or not self._guard_body:
                    self._arm(limits.body_timeout, body=True)
            elif self._guard_body and self._guard_timer is not None:
                self._guard_timer.cancel()  # the whole request is in
                self._guard_timer = None

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            super().connection_lost(exc)

    return GuardedH11Protocol


class RateLimitedLog(logging.Filter):
    """Let the same message through ``burst`` times per ``window`` seconds, then count it.

    When a message comes back after a quiet window, it carries how many were left out, so the
    log says how bad it was without growing by megabytes.
    """

    def __init__(self, burst: int = 5, window: float = 60.0, clock: Any = time.monotonic) -> None:
        super().__init__()
        self.burst = burst
        self.window = window
        self.clock = clock
        self.seen: dict[tuple[str, str], tuple[float, int, int]] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        key = (record.name, str(record.msg).partition("\n")[0][:200])
        now = self.clock()
        start, count, dropped = self.seen.get(key, (now, 0, 0))
        if now - start >= self.window:
            if dropped:
                record.msg = f"{record.msg} [{dropped} more like this in the last minute]"
            start, count, dropped = now, 0, 0
        count += 1
        if count > self.burst:
            dropped += 1
            if len(self.seen) < 1000 or key in self.seen:
                self.seen[key] = (start, count, dropped)
            return False
        if len(self.seen) < 1000 or key in self.seen:
            self.seen[key] = (start, count, dropped)
        return True


_NOISY = ("asyncio", "uvicorn.error", "newsletter.web")


def quiet_logs(burst: int = 5, window: float = 60.0) -> None:
    """Put one rate limit on the loggers a flood of bad connections writes to (a filter on a
    logger sees the records logged to that logger itself, which is where these are logged).
    Calling it again (a second server in one process) adds nothing."""
    for name in _NOISY:
        logger = logging.getLogger(name)
        if not any(isinstance(f, RateLimitedLog) for f in logger.filters):
            logger.addFilter(RateLimitedLog(burst, window))
