"""Issue 10 item 7: ``newsletter serve`` under a flood of half-open connections.

Everything stays on 127.0.0.1, the number of sockets is bounded, and every socket is closed in
``finally`` blocks, whatever happens.
"""

from __future__ import annotations

import contextlib
import logging
import os
import resource
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
from audience_helpers import wait_until_serving

from newsletter.store import open_store
from newsletter.subscribers import import_subscribers
from newsletter.unsubscribe import make_token
from newsletter.web.app import WebConfig, create_app, guarded_server
from newsletter.web.guard import RateLimitedLog, ServerLimits

SECRET = "flood-test-secret-0123456789abcdefgh"
FLOOD = 3000  # more than the server's 512 open files allow
NOFILE = 512


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def half_open(port: int, n: int) -> Iterator[list[socket.socket]]:
    """``n`` connections that never finish a request: most send nothing, every 4th sends half
    a request head (a slowloris)."""
    socks: list[socket.socket] = []
    try:
        for i in range(n):
            s = socket.socket()
            s.setblocking(False)
            with contextlib.suppress(BlockingIOError):
                s.connect(("127.0.0.1", port))
            socks.append(s)
            if i % 4 == 3:
                with contextlib.suppress(OSError):
                    s.send(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        yield socks
    finally:
        for s in socks:
            s.close()


def _closed_by_server(socks: list[socket.socket]) -> int:
    closed = 0
    for s in socks:
        try:
            if s.recv(1) == b"":
                closed += 1
        except BlockingIOError:
            pass
        except OSError:  # reset by the server (abort), or never connected
            closed += 1
    return closed


def _limit_open_files() -> None:
    resource.setrlimit(resource.RLIMIT_NOFILE, (NOFILE, NOFILE))


def test_healthz_and_one_click_answer_during_a_flood_and_the_log_stays_small(
    tmp_path: Path,
) -> None:
    db = tmp_path / "n.db"
    (tmp_path / "newsletter.toml").write_text(f'[store]\npath = "{db}"\n', encoding="utf-8")
    (tmp_path / "people.csv").write_text("email\nann@x.org\n", encoding="utf-8")
    with open_store(db) as store:
        import_subscribers(store.audience, tmp_path / "people.csv", now=datetime.now(UTC))
        sub = store.audience.get_subscriber("ann@x.org")
        assert sub is not None
    token = make_token(SECRET, sub.id, sub.email)
    port = _port()
    base = f"http://127.0.0.1:{port}"
    proc = subprocess.Popen(
        [sys.executable, "-c", "from newsletter.cli import main; main()", "--config",
         str(tmp_path / "newsletter.toml"), "serve", "--port", str(port)],
        env={**os.environ, "NEWSLETTER_SECRET": SECRET},
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        preexec_fn=_limit_open_files,  # the server may hold 512 files: the flood is 3000
    )  # fmt: skip
    try:
        wait_until_serving(proc, base, 20)
        with half_open(port, FLOOD) as socks:
            # the server closes the oldest waiting connections to stay within its files (the
            # kernel keeps the rest of the flood waiting in, or dropped from, the listen queue)
            deadline = time.monotonic() + 20
            while _closed_by_server(socks) < FLOOD // 10:
                assert time.monotonic() < deadline, "the server did not shed waiting connections"
                time.sleep(0.2)
            assert len(os.listdir(f"/proc/{proc.pid}/fd")) < NOFILE
            for _ in range(5):
                assert httpx.get(f"{base}/healthz", timeout=10).status_code == 200
            r = httpx.post(f"{base}/u/{token}", content=b"List-Unsubscribe=One-Click", timeout=10)
            assert (r.status_code, r.text) == (200, "unsubscribed\n")
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=20)
    assert "Too many open files" not in err and "Traceback" not in err
    assert len(err) < 4000, err[-2000:]
    with open_store(db) as store:
        assert store.audience.is_suppressed("ann@x.org")


@contextlib.contextmanager
def guarded(tmp_path: Path, limits: ServerLimits) -> Iterator[int]:
    app = create_app(WebConfig(store_path=tmp_path / "n.db", secret=SECRET))
    port = _port()
    server = guarded_server(app, port=port, limits=limits)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while not server.started:
            assert time.monotonic() < deadline and thread.is_alive()
            time.sleep(0.01)
        yield port
    finally:
        server.should_exit = True
        thread.join(10)


def test_a_connection_that_never_sends_its_request_head_is_closed(tmp_path: Path) -> None:
    with (
        guarded(tmp_path, ServerLimits(header_timeout=0.3)) as port,
        socket.create_connection(("127.0.0.1", port)) as silent,
        socket.create_connection(("127.0.0.1", port)) as slow,
    ):
        slow.sendall(b"GET /healthz HTTP/1.1\r\n")
        started = time.monotonic()
        for s in (silent, slow):
            _closed_within(s, 5)
        assert time.monotonic() - started < 3
        # a request that comes at once is served
        assert httpx.get(f"http://127.0.0.1:{port}/healthz").text == "ok\n"


def _answer(s: socket.socket) -> bytes:
    """One whole response (these are small, with a Content-Length)."""
    data = b""
    while b"\r\n\r\n" not in data:
        data += s.recv(4096)
    head, _, body = data.partition(b"\r\n\r\n")
    length = int(next(
        line.split(b":", 1)[1] for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    ))  # fmt: skip
    while len(body) < length:
        body += s.recv(4096)
    return head + b"\r\n\r\n" + body


def _closed_within(s: socket.socket, seconds: float) -> float:
    """Seconds until the server closed ``s`` (fails if it stays open ``seconds``)."""
    s.settimeout(seconds)
    started = time.monotonic()
    with contextlib.suppress(ConnectionResetError):
        assert s.recv(1) == b"", "the server answered instead of closing"
    return time.monotonic() - started


def test_every_request_of_a_keep_alive_connection_has_a_deadline(tmp_path: Path) -> None:
    # This is also the test of the guard's one reliance on uvicorn's inside (its h11 protocol
    # keeps the h11.Connection in `conn`; uvicorn is pinned for it): without it, the guard
    # would bound only the first request, and the slow second head below would stay open.
    # keep-alive is long, so only the guard's deadlines can close these connections
    limits = ServerLimits(header_timeout=0.4, body_timeout=0.6, timeout_keep_alive=30)
    get = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
    with guarded(tmp_path, limits) as port:
        # a well-behaved client: several requests, slower in total than the head deadline
        with socket.create_connection(("127.0.0.1", port)) as s:
            s.settimeout(5)
            for _ in range(3):
                s.sendall(get)
                assert _answer(s).endswith(b"ok\n")
                time.sleep(0.3)
        # a slowloris on the second request: a byte every 0.1 s keeps it from being idle,
        # so uvicorn's keep-alive timeout never fires
        with socket.create_connection(("127.0.0.1", port)) as s:
            s.settimeout(5)
            s.sendall(get)
            assert _answer(s).endswith(b"ok\n")
            started = time.monotonic()
            with contextlib.suppress(OSError):
                for byte in b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 100:
                    s.send(bytes([byte]))
                    time.sleep(0.1)
                    if time.monotonic() - started > 5:
                        break
            assert time.monotonic() - started < 3, "the slow second head was not cut off"
            _closed_within(s, 3)
        # a slow body: the head is complete, the body never comes
        with socket.create_connection(("127.0.0.1", port)) as s:
            path = f"/u/{make_token(SECRET, 1, 'ann@x.org')}".encode()
            s.sendall(b"POST " + path + b" HTTP/1.1\r\nHost: x\r\nContent-Length: 50\r\n\r\nL")
            waited = _closed_within(s, 5)
            assert 0.4 < waited < 3
        # a fresh connection is still served
        assert httpx.get(f"http://127.0.0.1:{port}/healthz").text == "ok\n"


def test_the_same_log_line_is_written_a_few_times_a_minute_then_counted() -> None:
    clock = [0.0]
    limit = RateLimitedLog(burst=3, window=60, clock=lambda: clock[0])
    record = logging.LogRecord("asyncio", logging.ERROR, "x", 1, "accept failed", None, None)
    passed = [limit.filter(record) for _ in range(10_000)]
    assert passed.count(True) == 3
    clock[0] = 61
    again = logging.LogRecord("asyncio", logging.ERROR, "x", 1, "accept failed", None, None)
    assert limit.filter(again)
    assert again.msg == "accept failed [9997 more like this in the last minute]"
