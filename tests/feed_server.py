"""A real HTTP server on 127.0.0.1 for feed tests: fixed routes, a 50 MB stream, a server that
does not answer, and ETag/Last-Modified revalidation. Records every request it gets."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

ETAG = '"v1"'
LAST_MODIFIED = "Tue, 03 Mar 2026 18:00:00 GMT"


@dataclass
class FeedServer:
    url: str
    routes: dict[str, tuple[str, bytes]]  # path -> (content type, body)
    requests: list[tuple[str, dict[str, str]]] = field(default_factory=list)
    statuses: list[int] = field(default_factory=list)
    release: threading.Event = field(default_factory=threading.Event)


@contextmanager
def feed_server(routes: dict[str, tuple[str, bytes]]) -> Iterator[FeedServer]:
    state: FeedServer

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:  # quiet
            return

        def _send(self, status: int, headers: dict[str, str], body: bytes = b"") -> None:
            state.statuses.append(status)
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.end_headers()
            if body:
                self.wfile.write(body)

        def do_GET(self) -> None:
            state.requests.append((self.path, dict(self.headers.items())))
            if self.path == "/slow.xml":  # answers only when the test ends
                state.release.wait(10)
                return
            if self.path == "/huge.xml":  # 50 MB, no Content-Length: the limit must stop it
                state.statuses.append(200)
                self.send_response(200)
                self.send_header("Content-Type", "application/rss+xml")
                self.end_headers()
                chunk = b"<!-- " + b"x" * (1024 * 1024 - 9) + b" -->\n"
                try:
                    self.wfile.write(b'<?xml version="1.0"?><rss version="2.0"><channel>')
                    for _ in range(50):
                        self.wfile.write(chunk)
                except (BrokenPipeError, ConnectionResetError):
                    return
                return
            if self.path == "/declared-50mb.xml":  # says its size up front: refused unread
                self._send(
                    200, {"Content-Type": "application/rss+xml", "Content-Length": "52428800"}
                )
                return
            if self.path == "/cached.xml":
                if self.headers.get("If-None-Match") == ETAG:
                    self._send(304, {"ETag": ETAG})
                    return
                kind, body = state.routes["/rss.xml"]
                headers = {"Content-Type": kind, "ETag": ETAG, "Last-Modified": LAST_MODIFIED}
                self._send(200, {**headers, "Content-Length": str(len(body))}, body)
                return
            if self.path not in state.routes:
                self._send(404, {"Content-Length": "0"})
                return
            kind, body = state.routes[self.path]
            self._send(200, {"Content-Type": kind, "Content-Length": str(len(body))}, body)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    state = FeedServer(url=f"http://127.0.0.1:{server.server_address[1]}", routes=routes)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        state.release.set()
        server.shutdown()
        server.server_close()
