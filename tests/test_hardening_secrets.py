"""Issue 10 item 6: a strong NEWSLETTER_SECRET for the server (real sends check it with their
other unsafe settings: tests/test_journeys.py); the webhook needs a verification key (or
--insecure-webhook); hostile JSON bodies get a 400, never a 500."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from audience_helpers import WebhookSigner, serve, wait_until_serving

from newsletter.providers.sendgrid.webhooks import Verifier
from newsletter.web.app import WebConfig, create_app

MAKE = 'Make one with: python -c "import secrets; print(secrets.token_urlsafe(32))"'
WEAK = (
    "error: NEWSLETTER_SECRET: too short (1 bytes): the server needs at least 32 bytes, or "
    f"anyone could forge unsubscribe links. {MAKE}"
)
STRONG = "q" * 32


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _serve(tmp_path: Path, secret: str, *flags: str) -> tuple[subprocess.Popen[str], str]:
    toml = tmp_path / "newsletter.toml"
    toml.write_text(f'[store]\npath = "{tmp_path / "n.db"}"\n', encoding="utf-8")
    port = _port()
    proc = subprocess.Popen(
        [sys.executable, "-c", "from newsletter.cli import main; main()", "--config", str(toml),
         "serve", "--port", str(port), *flags],
        env={**os.environ, "NEWSLETTER_SECRET": secret},
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    return proc, f"http://127.0.0.1:{port}"


def test_serve_refuses_a_weak_secret(tmp_path: Path) -> None:
    proc, _ = _serve(tmp_path, "a")
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 2 and err.strip() == WEAK


@pytest.mark.parametrize("insecure", [False, True])
def test_serve_refuses_the_webhook_without_a_key_unless_insecure(
    tmp_path: Path, insecure: bool
) -> None:
    proc, base = _serve(tmp_path, STRONG, *(["--insecure-webhook"] if insecure else []))
    try:
        wait_until_serving(proc, base, 20)
        body = json.dumps([{"event": "spamreport", "email": "x@x.org", "sg_event_id": "e1"}])
        r = httpx.post(f"{base}/webhooks/sendgrid", content=body)
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=10)
    if insecure:
        assert r.status_code == 200 and r.json()["suppressed"] == 1
        assert (
            "--insecure-webhook: /webhooks/sendgrid accepts unsigned events; anyone who finds it "
            "can suppress any address" in err
        )
    else:
        assert r.status_code == 403
        assert r.text == (
            "webhook refused: no verification key is configured (unsubscribe.webhook_public_key)\n"
        )
        assert (
            "unsubscribe.webhook_public_key is not set: /webhooks/sendgrid refuses every event "
            "(403). Paste the verification key SendGrid shows under Settings > Mail Settings > "
            "Event Webhook > Signature Verification into newsletter.toml, or run serve "
            "--insecure-webhook to accept unsigned events (testing only: anyone could suppress "
            "any address)" in err
        )


NOW = datetime(2026, 11, 3, 10, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            b"[" * 100_000 + b"]" * 100_000,
            "body nests arrays or objects more than 32 deep; SendGrid's events never do\n",
        ),
        (
            b'[{"event": "open", "email": "a@x.org", "x": ' + b"[" * 40 + b"]" * 40 + b"}]",
            "body nests arrays or objects more than 32 deep; SendGrid's events never do\n",
        ),
        (
            b'[{"event": "open", "timestamp": ' + b"9" * 5000 + b"}]",
            "body holds a number too long to read\n",
        ),
    ],
)
def test_hostile_signed_bodies_get_400_not_500(tmp_path: Path, body: bytes, message: str) -> None:
    signer = WebhookSigner()
    verifier = Verifier(signer.public_key_b64, max_age_seconds=600)
    config = WebConfig(store_path=tmp_path / "n.db", secret=STRONG, verifier=verifier,
                       clock=lambda: NOW)  # fmt: skip
    with serve(create_app(config)) as url:
        headers = signer.headers(body, int(NOW.timestamp()))
        r = httpx.post(f"{url}/webhooks/sendgrid", content=body, headers=headers)
        assert (r.status_code, r.text) == (400, message)
        fine = json.dumps([{"event": "delivered", "email": "a@x.org"}]).encode()
        headers = signer.headers(fine, int(NOW.timestamp()))
        ok = httpx.post(f"{url}/webhooks/sendgrid", content=fine, headers=headers)
        assert ok.status_code == 200 and ok.json()["events"] == 1
