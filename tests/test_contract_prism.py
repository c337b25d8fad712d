"""Every kind of request the SendGrid transport makes is accepted by Prism with SendGrid's spec.

Prism (../shared/sendgrid/start-prism) validates requests against SendGrid's own OpenAPI
documents. Skipped only when it cannot start and NEWSLETTER_REQUIRE_PRISM is unset.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from dispatch_helpers import ISSUE, SENDER

from newsletter.errors import ProviderRejected, RateLimited
from newsletter.providers.sendgrid.transport import SendGridTransport, build_payload
from newsletter.transports.base import Batch, Recipient, Status

START = Path(__file__).resolve().parents[2] / "shared" / "sendgrid" / "start-prism"
if not START.exists():
    START = Path("/work/shared/sendgrid/start-prism")


@pytest.fixture(scope="module")
def prism() -> Iterator[str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    try:
        out = subprocess.run(
            [str(START), str(port)], capture_output=True, text=True, timeout=300, check=True
        ).stdout
        pid = int(out.strip().splitlines()[-1])
    except (OSError, subprocess.SubprocessError, ValueError, IndexError) as err:
        if os.environ.get("NEWSLETTER_REQUIRE_PRISM"):
            raise
        pytest.skip(f"Prism could not start ({err})")
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        os.kill(pid, signal.SIGTERM)


def people(n: int) -> list[Recipient]:
    out = []
    for i in range(n):
        url = f"https://news.example.org/u/token{i}"
        out.append(
            Recipient(
                email=f"reader{i}@example.net",
                name=f"Reader {i}" if i % 2 else "",
                substitutions={
                    "%%UNSUBSCRIBE_URL%%": url,
                    "%%FIRST_NAME%%": f"Reader{i}",
                    "%%FIRST_NAME_TEXT%%": f"Reader{i}",
                },
                headers={
                    "List-Unsubscribe": f"<{url}>, <mailto:unsub@example.org?subject=unsubscribe>",
                    "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
                },
                custom_args={"campaign_id": "2026-11-abc", "recipient_id": str(i + 1)},
            )
        )
    return out


def send(url: str, batch: Batch) -> None:
    t = SendGridTransport("SG.contract-test", api_url=url, timeout=30)
    try:
        result = t.send(batch)
    finally:
        t.close()
    assert {o.status for o in result.outcomes} == {Status.ACCEPTED}
    assert len(result.outcomes) == len(batch.recipients)


def test_a_full_batch_of_1000(prism: str) -> None:
    send(
        prism,
        Batch(
            "c",
            0,
            ISSUE,
            SENDER,
            people(1000),
            categories=("newsletter", "digest"),
            asm_group_id=123,
        ),
    )


def test_a_single_test_send(prism: str) -> None:
    send(prism, Batch("c", 0, ISSUE, SENDER, people(1), subject_prefix="[TEST] "))


def test_a_scheduled_send(prism: str) -> None:
    at = int(time.time()) + 3600
    send(prism, Batch("c", 0, ISSUE, SENDER, people(10), send_at=at, batch_id="YOUR_BATCH_ID"))


def test_creating_a_batch_id_and_cancelling_a_scheduled_send(prism: str) -> None:
    t = SendGridTransport("SG.contract-test", api_url=prism, timeout=30)
    try:
        batch_id = t.create_batch()  # read from Prism's example answer
        assert batch_id
        t.cancel_scheduled(batch_id)
        with pytest.raises(ProviderRejected):  # Prism checks this endpoint's requests too
            t.cancel_scheduled("-not-an-id")  # the spec: a batch id starts alphanumeric
    finally:
        t.close()


def test_a_sandbox_send(prism: str) -> None:
    send(prism, Batch("c", 0, ISSUE, SENDER, people(5), sandbox=True))


def test_a_broken_request_is_rejected(prism: str) -> None:
    t = SendGridTransport("SG.contract-test", api_url=prism, timeout=30)
    try:
        payload = build_payload(Batch("c", 0, ISSUE, SENDER, people(2)))
        payload["from"] = {"email": "not an address"}
        with pytest.raises(ProviderRejected) as err:
            t.post(payload)
        assert err.value.status is not None and 400 <= err.value.status < 500
        assert "from" in err.value.format()  # Prism's sl-violations say what is wrong
        payload = build_payload(Batch("c", 0, ISSUE, SENDER, people(2)))
        payload["categories"] = [f"c{i}" for i in range(11)]
        with pytest.raises(ProviderRejected):
            t.post(payload)
    finally:
        t.close()


def test_a_forced_429_is_rate_limited(prism: str) -> None:
    t = SendGridTransport("SG.contract-test", api_url=prism, timeout=30)
    t._sg.client.request_headers["Prefer"] = "code=429"
    try:
        with pytest.raises(RateLimited):
            t.send(Batch("c", 0, ISSUE, SENDER, people(1)))
    finally:
        t._sg.client.request_headers.pop("Prefer", None)
        t.close()
