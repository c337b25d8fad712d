"""Helpers for the audience tests: a real uvicorn server on 127.0.0.1, signed webhook bodies."""

from __future__ import annotations

import base64
import json
import socket
import sqlite3
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec


def free_socket() -> tuple[socket.socket, int]:
    """A listening-ready socket on a free 127.0.0.1 port, and the port."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock, sock.getsockname()[1]


@contextmanager
def run_uvicorn(app: Any, sock: socket.socket) -> Iterator[None]:
    """Run an ASGI app with uvicorn in a thread on ``sock`` until the block ends."""
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("test server did not start")
        time.sleep(0.01)
    try:
        yield
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


@contextmanager
def serve(app: Any) -> Iterator[str]:
    """Run an ASGI app with uvicorn in a thread on a free 127.0.0.1 port; yield its base URL."""
    sock, port = free_socket()
    with run_uvicorn(app, sock):
        yield f"http://127.0.0.1:{port}"


class WebhookSigner:
    """Signs event webhook bodies the way SendGrid does (ECDSA P-256, SHA-256)."""

    def __init__(self) -> None:
        self.key = ec.generate_private_key(ec.SECP256R1())
        der = self.key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        self.public_key_b64 = base64.b64encode(der).decode("ascii")

    def headers(self, body: bytes, timestamp: int) -> dict[str, str]:
        stamp = str(timestamp)
        sig = self.key.sign(stamp.encode("ascii") + body, ec.ECDSA(hashes.SHA256()))
        return {
            "X-Twilio-Email-Event-Webhook-Signature": base64.b64encode(sig).decode("ascii"),
            "X-Twilio-Email-Event-Webhook-Timestamp": stamp,
            "Content-Type": "application/json",
        }


def wait_until_serving(proc: subprocess.Popen[str], base: str, seconds: float = 30) -> None:
    """Wait until the ``newsletter serve`` in ``proc`` answers ``GET /healthz`` at ``base``;
    fail with its output if it exits first, or after ``seconds``."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            if httpx.get(f"{base}/healthz").status_code == 200:
                return
        except httpx.HTTPError:
            pass
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, f"{base} did not answer within {seconds} s"
        time.sleep(0.1)


def replay_processed_events(store: Path, fake_db: Path, secret: str, campaign: str = "") -> int:
    """What SendGrid's event webhook would say after a send: a signed ``processed`` event for
    every message the recording fake accepted (of ``campaign``, or of every campaign), POSTed
    in arrays of 5000 to the real endpoint of an app on ``store``. Returns how many."""
    from newsletter.providers.sendgrid.webhooks import Verifier
    from newsletter.web.app import WebConfig, create_app

    signer = WebhookSigner()
    app = create_app(
        WebConfig(
            store_path=store,
            secret=secret,
            verifier=Verifier(signer.public_key_b64, max_age_seconds=600),
            clock=lambda: datetime.now(UTC),
        )
    )
    conn = sqlite3.connect(fake_db, timeout=30)
    try:
        rows = conn.execute(
            "SELECT campaign_id, recipient_id, email FROM messages"
            + (" WHERE campaign_id = ?" if campaign else ""),
            (campaign,) if campaign else (),
        ).fetchall()
    finally:
        conn.close()
    now = int(time.time())
    with serve(app) as web, httpx.Client(timeout=60) as client:
        for start in range(0, len(rows), 5000):
            events = [
                {
                    "email": email,
                    "timestamp": now - 1,
                    "event": "processed",
                    "sg_event_id": f"processed-{cid}-{rid}",
                    "sg_message_id": f"m-{rid}",
                    "campaign_id": cid,
                    "recipient_id": rid,
                }
                for cid, rid, email in rows[start : start + 5000]
            ]
            body = json.dumps(events).encode()
            answer = client.post(
                f"{web}/webhooks/sendgrid", content=body, headers=signer.headers(body, now)
            )
            assert answer.status_code in (200, 204), answer.text
    return len(rows)
