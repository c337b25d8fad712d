"""The SendGrid transport against our recording fake SendGrid (a real HTTP server on 127.0.0.1)."""

from __future__ import annotations

import json
import logging
import random
import socket
import sqlite3
import time
from collections import Counter
from dataclasses import replace
from pathlib import Path

import pytest
from dispatch_helpers import ISSUE, SENDER, dispatcher, fresh_store, people, prepared

from newsletter.campaign.dispatcher import Options
from newsletter.errors import DeliveryUnknown, ProviderRejected, ProviderUnavailable, RateLimited
from newsletter.providers.sendgrid.fake import FaultPlan, serve_in_thread
from newsletter.providers.sendgrid.transport import (
    SendGridTransport,
    build_body,
    build_payload,
    check_limits,
)
from newsletter.transports.base import Batch, Recipient, Status
from newsletter.transports.pacing import Backoff

KEY = "SG.test-key"


def recipient(i: int, **extra: str) -> Recipient:
    url = f"https://example.org/u/{i}"
    return Recipient(
        email=f"user{i}@example.net",
        name="",
        substitutions={
            "%%UNSUBSCRIBE_URL%%": url,
            "%%FIRST_NAME%%": f"N{i}",
            "%%FIRST_NAME_TEXT%%": f"N{i}",
            "%%EMAIL%%": f"user{i}@example.net",
            "%%EMAIL_TEXT%%": f"user{i}@example.net",
            **extra,
        },
        headers={
            "List-Unsubscribe": f"<{url}>",
            "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
        },
        custom_args={"campaign_id": "c1", "recipient_id": str(i)},
    )


def batch(n: int, **kw: object) -> Batch:
    return Batch("c1", 0, ISSUE, SENDER, [recipient(i) for i in range(n)], **kw)  # type: ignore[arg-type]


def rows(db: Path, sql: str) -> list[tuple]:
    conn = sqlite3.connect(db)
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


def test_payload_is_one_personalization_per_recipient() -> None:
    payload = build_payload(batch(2, categories=("newsletter",), asm_group_id=42, sandbox=True))
    assert payload["from"] == {"email": "news@example.org", "name": "Example News"}
    assert [c["type"] for c in payload["content"]] == ["text/plain", "text/html"]
    assert payload["content"][1]["value"] == ISSUE.html  # once, tokens left in
    assert payload["personalizations"][1] == {
        "to": [{"email": "user1@example.net"}],
        "substitutions": {
            "%%UNSUBSCRIBE_URL%%": "https://example.org/u/1",
            "%%FIRST_NAME%%": "N1",
            "%%FIRST_NAME_TEXT%%": "N1",
        },
        "subject": "News for N1",
        "headers": {
            "List-Unsubscribe": "<https://example.org/u/1>",
            "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
        },
        "custom_args": {"campaign_id": "c1", "recipient_id": "1"},
    }
    assert payload["categories"] == ["newsletter"] and payload["asm"] == {"group_id": 42}
    assert payload["mail_settings"] == {"sandbox_mode": {"enable": True}}


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: batch(1001), "1001 recipients"),
        (lambda: Batch("c", 0, ISSUE, SENDER, [recipient(1), recipient(1)]), "appears twice"),
        (
            lambda: Batch(
                "c", 0, ISSUE, SENDER, [replace(recipient(1), headers={"Reply-To": "x"})]
            ),
            "reserved",
        ),
        (lambda: batch(1, send_at=int(time.time()) + 73 * 3600), "72 hours"),
        (lambda: batch(1, categories=tuple(f"c{i}" for i in range(11))), "categories"),
    ],
)
def test_limits_are_checked_before_any_request(make, message: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ProviderRejected, match=message) as err:
        check_limits(build_payload(make()), now=time.time())
    assert err.value.status is None
    with pytest.raises(ProviderRejected, match=message):
        build_body(make(), now=time.time())


@pytest.mark.parametrize(
    "make",
    [
        lambda: batch(3),
        lambda: batch(2, categories=("a", "b"), asm_group_id=7, sandbox=True, batch_id="B1"),
        lambda: batch(1, send_at=int(time.time()) + 3600, subject_prefix="[TEST] "),
        lambda: Batch(
            "c",
            0,
            replace_issue(subject="Plain subject"),
            replace(SENDER, reply_to="r@example.org", name=""),
            [replace(recipient(1, **{"%%FIRST_NAME%%": 'Zoë "Z" <b>\\ \n'}), name="Zoë Ö")],
        ),
    ],
)
def test_text_body_equals_the_reference_payload(make) -> None:  # type: ignore[no-untyped-def]
    b = make()
    request = build_body(b, now=time.time())
    assert request.rejected == [] and request.body is not None
    body = request.body
    assert body.isascii()
    assert json.loads(body) == build_payload(b)


def test_reference_check_refuses_personal_values_over_the_limit() -> None:
    big = Batch("c", 0, ISSUE, SENDER, [recipient(1, **{"%%FIRST_NAME%%": "x" * 10_001})])
    with pytest.raises(ProviderRejected, match="bytes"):
        check_limits(build_payload(big), now=time.time())


def replace_issue(**changes: str):  # type: ignore[no-untyped-def]
    from newsletter.rendered import RenderedIssue

    fields = {f: getattr(ISSUE, f) for f in ("subject", "preheader", "html", "text", "layout")}
    fields.update(changes)
    return RenderedIssue(**fields)


def test_accepted_batch_is_recorded_exactly(tmp_path: Path) -> None:
    db = tmp_path / "fake.db"
    with serve_in_thread(FaultPlan(), db) as url:
        t = SendGridTransport(KEY, api_url=url, timeout=5)
        result = t.send(batch(3))
        t.close()
    assert result.provider_message_id == "fake-1"
    assert [o.status for o in result.outcomes] == [Status.ACCEPTED] * 3
    got = rows(db, "SELECT email, recipient_id, subject, list_unsubscribe FROM messages")
    assert got[0] == ("user0@example.net", "0", "News for N0", "<https://example.org/u/0>")


def test_library_debug_log_holds_no_key_address_or_token(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # python_http_client formats payload and headers into debug messages on every request
    caplog.set_level(logging.DEBUG, logger="python_http_client")
    with serve_in_thread(FaultPlan(), tmp_path / "fake.db") as url:
        t = SendGridTransport(KEY, api_url=url, timeout=5)
        t.send(batch(3))
        t.close()
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "PAYLOAD: <" in logged and "Bearer [redacted]" in logged  # the library did log
    for secret in (KEY, "user1@example.net", "https://example.org/u/1"):
        assert secret not in logged


def test_http_errors_are_translated(tmp_path: Path) -> None:
    plan = FaultPlan(script=["429", "500", "503", "drop", "drop-before"], reset_seconds=3)
    with serve_in_thread(plan, tmp_path / "fake.db") as url:
        t = SendGridTransport(KEY, api_url=url, timeout=5)
        with pytest.raises(RateLimited) as limited:
            t.send(batch(1))
        assert limited.value.retry_after is not None and 1.5 <= limited.value.retry_after <= 4.0
        with pytest.raises(ProviderUnavailable):
            t.send(batch(1))
        with pytest.raises(ProviderUnavailable, match="injected 503"):
            t.send(batch(1))
        with pytest.raises(DeliveryUnknown):
            t.send(batch(1))  # accepted, then the connection broke
        with pytest.raises(DeliveryUnknown):
            t.send(batch(1))
        t.send(batch(1))  # a fresh connection works again
        bad = SendGridTransport(KEY, api_url=url, timeout=5)
        payload = build_payload(batch(1))
        del payload["from"]
        with pytest.raises(ProviderRejected, match=r"from\.email") as rejected:
            bad.post(payload)
        assert rejected.value.status == 400
        t.close()
        bad.close()


def test_slow_answer_is_unknown_and_refused_connection_is_retryable(tmp_path: Path) -> None:
    with serve_in_thread(FaultPlan(script=["slow"], slow_seconds=3), tmp_path / "f.db") as url:
        t = SendGridTransport(KEY, api_url=url, timeout=0.5)
        with pytest.raises(DeliveryUnknown):
            t.send(batch(1))
        t.close()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    for keep_alive in (True, False):
        t = SendGridTransport(KEY, api_url=f"http://127.0.0.1:{port}", keep_alive=keep_alive)
        with pytest.raises(ProviderUnavailable):
            t.send(batch(1))


def test_plain_library_client_works_too(tmp_path: Path) -> None:
    with serve_in_thread(FaultPlan(script=["ok", "429"]), tmp_path / "f.db") as url:
        t = SendGridTransport(KEY, api_url=url, keep_alive=False)
        assert t.send(batch(2)).provider_message_id == "fake-1"
        with pytest.raises(RateLimited):
            t.send(batch(1))
        t.close()


def test_10000_recipients_exactly_once_with_20_percent_failures(tmp_path: Path) -> None:
    store = fresh_store(tmp_path)
    cid = prepared(store, people(10_000), batch_size=500)
    db = tmp_path / "fake.db"
    plan = FaultPlan(fail_rate=0.2, kinds=("429", "500", "503"), seed=7, reset_seconds=0)
    with serve_in_thread(plan, db) as url:
        t = SendGridTransport(KEY, api_url=url, timeout=10)
        d = dispatcher(store, t, cid, options=Options(max_retries=20, max_consecutive_failures=50))
        # real clock for the transport's 429 handling, tiny backoff so the test is fast
        d.backoff = Backoff(base=0.01, cap=0.05, rng=random.Random(3))
        d.monotonic = time.monotonic
        d.sleep = time.sleep
        d.pacer.clock, d.pacer.sleep = time.monotonic, time.sleep
        summary = d.run(cid)
        t.close()
    assert summary.state == "done" and summary.retries > 0
    failures = rows(db, "SELECT count(*) FROM requests WHERE status != 202")[0][0]
    assert failures >= 3
    sent = Counter(e for (e,) in rows(db, "SELECT email FROM messages"))
    assert len(sent) == 10_000 and set(sent.values()) == {1}
    assert store.campaigns.status(cid).counts == {"accepted": 10_000}  # type: ignore[union-attr]
    subs = json.loads(
        rows(db, "SELECT substitutions FROM messages WHERE email = 'user42@example.net'")[0][0]
    )
    assert subs["%%FIRST_NAME_TEXT%%"] == "Name42"


def test_fake_enforces_what_prism_does_not(tmp_path: Path) -> None:
    db = tmp_path / "f.db"
    with serve_in_thread(FaultPlan(), db) as url:
        t = SendGridTransport(KEY, api_url=url)
        big = build_payload(batch(1000))
        big["personalizations"][0]["cc"] = [{"email": "extra@example.net"}]
        dup = build_payload(batch(2))
        dup["personalizations"][1]["to"] = [{"email": "USER0@example.net"}]
        reserved = build_payload(batch(1))
        reserved["personalizations"][0]["headers"]["Subject"] = "x"
        late = build_payload(batch(1))
        late["send_at"] = int(time.time()) + 80 * 3600
        for payload, why in (
            (big, "1001 recipients"),
            (dup, "unique"),
            (reserved, "reserved"),
            (late, "72 hours"),
        ):
            with pytest.raises(ProviderRejected, match=why):
                t.post(payload)
        t.close()
    assert rows(db, "SELECT count(*) FROM messages")[0][0] == 0
