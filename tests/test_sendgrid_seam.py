"""The one place we reach into python_http_client's private code (the keep-alive client).

These tests fail when an upgrade of ``sendgrid`` or ``python-http-client`` changes what the seam
depends on; then re-check ``KeepAliveClient`` against the new code, update the pins in
pyproject.toml and the fingerprints below.
"""

from __future__ import annotations

import hashlib
import inspect
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib.metadata import version
from pathlib import Path

import python_http_client.client

from newsletter.providers.sendgrid.transport import SendGridTransport
from newsletter.rendered import RenderedIssue
from newsletter.transports.base import Batch, Recipient, Sender

ROOT = Path(__file__).resolve().parent.parent

# sha256 of the source of each library method the keep-alive client overrides or relies on:
# _make_request and _build_client are overridden; __getattr__ builds the request and calls
# _make_request(opener, request, timeout=...); __init__ sets the attributes _build_client copies
FINGERPRINTS = {
    "_make_request": "e4e1e0c6a37a1c9bf2d85244074fbe3b7e33dfa101b6fc84b2f93b8fafe88917",
    "_build_client": "441c739eace269dc53a78f79711900369b321d7a9c1f083baf53089849f4d6d4",
    "__getattr__": "f7c435fec0b4e89fcb6f083247d2be1049a441501f7f90988279498c4188c441",
    "__init__": "19e2a09a36d796b041677a55bb6152fddaf1492d6d17b22ae6461e1791791731",
}


def test_installed_versions_are_the_pinned_ones() -> None:
    pyproject = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    for dist in ("sendgrid", "python-http-client"):
        pin = re.search(rf'"{dist}==([^"]+)"', pyproject)
        assert pin, f"pyproject.toml must pin {dist} exactly (the keep-alive seam)"
        assert version(dist) == pin.group(1), f"{dist} {version(dist)} is not the pinned one"


def test_the_private_methods_we_depend_on_are_unchanged() -> None:
    client = python_http_client.client.Client
    for name, expected in FINGERPRINTS.items():
        source = inspect.getsource(getattr(client, name))
        got = hashlib.sha256(source.encode("utf-8")).hexdigest()
        assert got == expected, f"python_http_client.Client.{name} changed: re-check the seam"


class _Counting(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    connections: list[int] = []  # noqa: RUF012 (one list per test, reset by the fixture)

    def setup(self) -> None:
        super().setup()
        self.connections.append(1)

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        self.send_response(202)
        self.send_header("X-Message-Id", "seam")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@contextmanager
def counting_server() -> Iterator[tuple[str, list[int]]]:
    _Counting.connections = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Counting)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", _Counting.connections
    finally:
        server.shutdown()
        server.server_close()


def _batch() -> Batch:
    issue = RenderedIssue(subject="Seam", preheader="", html="<p>hi</p>", text="hi", layout="post")
    people = [Recipient("ann@example.net", "", {}, {}, {"recipient_id": "1"})]
    return Batch("seam", 0, issue, Sender("news@example.org"), people)


def test_keep_alive_reuses_one_connection_and_the_plain_client_does_not() -> None:
    """Fails if the library stops routing requests through the overridden ``_make_request``."""
    for keep_alive, expected in ((True, 1), (False, 3)):
        with counting_server() as (url, connections):
            t = SendGridTransport("SG.seam", api_url=url, keep_alive=keep_alive)
            for _ in range(3):
                assert t.send(_batch()).provider_message_id == "seam"
            t.close()
        assert len(connections) == expected, (keep_alive, connections)
