"""SendGrid's event webhook on a real server: signatures, event mapping, duplicates, the ledger."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from audience_helpers import WebhookSigner, serve

from newsletter.errors import ConfigError
from newsletter.providers.sendgrid.webhooks import Event, Verifier, parse_events, suppression_for
from newsletter.store import open_store
from newsletter.web.app import WebConfig, create_app

NOW = datetime(2026, 11, 3, 10, 0, tzinfo=UTC)
TS = int(NOW.timestamp())
CAMPAIGN = "2026-11-abc123"


@dataclass
class Site:
    url: str
    db: Path
    signer: WebhookSigner

    def post(
        self, events: list[dict[str, object]], *, ts: int = TS, sign: bool = True
    ) -> httpx.Response:
        body = json.dumps(events).encode()
        headers = self.signer.headers(body, ts) if sign else {"Content-Type": "application/json"}
        return httpx.post(f"{self.url}/webhooks/sendgrid", content=body, headers=headers)


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    db = tmp_path / "n.db"
    with open_store(db) as store:
        store.campaigns.begin(
            CAMPAIGN, now=NOW, subject="s", layout="digest", segment="", transport="sendgrid",
            content_hash="h", newest_post_date="", posts=[], batch_size=1000,
        )  # fmt: skip
        store.campaigns.add_recipients(
            CAMPAIGN, [("1", "ann@x.org", "Ann"), ("2", "bob@x.org", "Bob")], batch_size=1000
        )
    signer = WebhookSigner()
    verifier = Verifier(signer.public_key_b64, max_age_seconds=600)
    app = create_app(
        WebConfig(store_path=db, secret="s" * 20, verifier=verifier, clock=lambda: NOW)
    )
    with serve(app) as url:
        yield Site(url, db, signer)


def ev(event: str, email: str = "ann@x.org", n: int = 1, **extra: object) -> dict[str, object]:
    base: dict[str, object] = {
        "email": email,
        "timestamp": TS - 60,
        "event": event,
        "sg_event_id": f"{event}-{email}-{n}",
        "sg_message_id": "msg.1",
        "campaign_id": CAMPAIGN,
        "recipient_id": "1" if email.startswith("ann") else "2",
    }
    base.update(extra)
    return base


def reasons(db: Path) -> dict[str, str]:
    with open_store(db) as store:
        return {s.email: s.reason for s in store.audience.iter_suppressions()}


def ledger(db: Path) -> dict[str, str]:
    with open_store(db) as store:
        rows = store.conn.execute(
            "SELECT recipient_id, last_event FROM campaign_ledger WHERE campaign_id = ?",
            (CAMPAIGN,),
        ).fetchall()
        return {str(r[0]): r[1] for r in rows}


def test_signed_events_become_suppressions_and_ledger_updates(site: Site) -> None:
    r = site.post([ev("processed"), ev("delivered"), ev("open", "bob@x.org")])
    assert r.status_code == 200
    assert r.json()["ledger"] == 3
    assert ledger(site.db) == {"1": "delivered", "2": "open"}
    r = site.post(
        [
            ev(
                "bounce",
                "hard@x.org",
                type="bounce",
                reason="550 5.1.1 no such user",
                status="5.1.1",
            ),
            ev("bounce", "soft@x.org", type="blocked", reason="421 try later"),
            ev("dropped", "old@x.org", reason="Bounced Address"),
            ev("dropped", "spammy@x.org", reason="Spam Content (if spam checker app enabled)"),
            ev("spamreport", "angry@x.org"),
            ev("unsubscribe", "bye@x.org"),
            ev("group_unsubscribe", "grp@x.org", asm_group_id=42),
            ev("deferred", "bob@x.org"),
            ev("click", "nobody@x.org", campaign_id="", recipient_id=""),
        ]
    )
    assert r.status_code == 200
    body = r.json()
    assert (body["suppressed"], body["unmatched"]) == (5, 1)
    assert reasons(site.db) == {
        "hard@x.org": "bounced",
        "old@x.org": "bounced",
        "angry@x.org": "spam_report",
        "bye@x.org": "unsubscribed",
        "grp@x.org": "group_unsubscribed",
    }
    assert ledger(site.db)["2"] == "deferred"


def test_duplicate_deliveries_are_processed_once(site: Site) -> None:
    batch = [ev("unsubscribe", "bye@x.org"), ev("delivered"), ev("delivered")]
    first = site.post(batch).json()
    assert (first["duplicates"], first["suppressed"], first["ledger"]) == (1, 1, 2)
    again = site.post(batch).json()  # SendGrid retried the whole request
    assert (again["duplicates"], again["suppressed"], again["ledger"]) == (3, 0, 0)
    with open_store(site.db) as store:
        assert store.audience.webhook_event_counts() == {"delivered": 1, "unsubscribe": 1}
        n = store.conn.execute("SELECT count(*) FROM campaign_events").fetchone()[0]
        assert n == 2
        assert len(store.audience.suppression_history("bye@x.org")) == 1


def test_events_without_an_id_are_deduplicated_by_content(site: Site) -> None:
    e = ev("spamreport", "a@x.org")
    del e["sg_event_id"]
    assert site.post([e]).json()["suppressed"] == 1
    assert site.post([e]).json()["duplicates"] == 1


def test_group_resubscribe_lifts_only_a_group_unsubscribe(site: Site) -> None:
    site.post([ev("group_unsubscribe", "g@x.org", asm_group_id=7), ev("bounce", "b@x.org")])
    r = site.post([ev("group_resubscribe", "g@x.org", 2), ev("group_resubscribe", "b@x.org", 2)])
    assert r.json()["resubscribed"] == 1
    assert reasons(site.db) == {"b@x.org": "bounced"}


@pytest.mark.parametrize(
    "case", ["unsigned", "bad-signature", "other-key", "too-old", "future", "tampered-body"]
)
def test_bad_or_missing_signatures_are_rejected_and_change_nothing(site: Site, case: str) -> None:
    events = [ev("unsubscribe", "victim@x.org")]
    body = json.dumps(events).encode()
    headers = site.signer.headers(body, TS)
    if case == "unsigned":
        r = site.post(events, sign=False)
    elif case == "bad-signature":
        headers["X-Twilio-Email-Event-Webhook-Signature"] = "MEUCIQDbad" + "A" * 80
        r = httpx.post(f"{site.url}/webhooks/sendgrid", content=body, headers=headers)
    elif case == "other-key":
        headers = WebhookSigner().headers(body, TS)
        r = httpx.post(f"{site.url}/webhooks/sendgrid", content=body, headers=headers)
    elif case == "too-old":
        r = site.post(events, ts=TS - 601)
    elif case == "future":
        r = site.post(events, ts=TS + 3600)
    else:
        tampered = json.dumps([ev("unsubscribe", "other@x.org")]).encode()
        r = httpx.post(f"{site.url}/webhooks/sendgrid", content=tampered, headers=headers)
    assert r.status_code == 403
    assert reasons(site.db) == {}
    with open_store(site.db) as store:
        assert store.audience.webhook_event_counts() == {}


def test_malformed_body_is_400(site: Site) -> None:
    for body in (b"{not json", b'{"event": "open"}'):
        headers = site.signer.headers(body, TS)
        r = httpx.post(f"{site.url}/webhooks/sendgrid", content=body, headers=headers)
        assert r.status_code == 400


def test_unsigned_events_are_refused_without_a_key_unless_insecure(tmp_path: Path) -> None:
    db = tmp_path / "n.db"
    body = json.dumps([ev("spamreport", "x@x.org")]).encode()
    app = create_app(WebConfig(store_path=db, secret="s" * 20, clock=lambda: NOW))
    with serve(app) as url:
        r = httpx.post(f"{url}/webhooks/sendgrid", content=body)
        assert (r.status_code, r.text) == (
            403,
            "webhook refused: no verification key is configured (unsubscribe.webhook_public_key)\n",
        )
    config = WebConfig(store_path=db, secret="s" * 20, clock=lambda: NOW, insecure_webhook=True)
    with serve(create_app(config)) as url:
        r = httpx.post(f"{url}/webhooks/sendgrid", content=body)
        assert r.status_code == 200 and r.json()["suppressed"] == 1


def test_a_bad_configured_key_is_a_config_error() -> None:
    with pytest.raises(ConfigError) as err:
        Verifier("not base64!", max_age_seconds=600)
    assert err.value.format().startswith("unsubscribe.webhook_public_key: not a valid")
    rsa_der = (
        "MFwwDQYJKoZIhvcNAQEBBQADSwAwSAJBAMWvU3hfKKn0Yj0U0GxqyDlk0aVjQnR7"
        "XlyKGpyCtWdBk0F1bxhDGJPK0EWB8kvxjfOd9XtrLs2p1Wv3y6VQcU0CAwEAAQ=="
    )
    with pytest.raises(ConfigError):
        Verifier(rsa_der, max_age_seconds=600)


def test_suppression_mapping_is_conservative() -> None:
    def one(**data: object) -> tuple[str, str] | None:
        return suppression_for(parse_events(json.dumps([data]).encode())[0])

    assert one(event="bounce", email="a@x.org")[0] == "bounced"  # type: ignore[index]
    assert one(event="bounce", type="blocked", email="a@x.org") is None
    assert one(event="dropped", reason="Unsubscribed Address")[0] == "unsubscribed"  # type: ignore[index]
    assert one(event="dropped", reason="Recipient List over Package Quota") is None
    assert one(event="open") is None and one(event="click") is None
    assert isinstance(parse_events(b"[]"), list)
    assert isinstance(parse_events(b'[{"event": "open", "email": "a@x.org"}]')[0], Event)
    assert datetime.fromtimestamp(TS, UTC) - NOW == timedelta(0)


@pytest.mark.parametrize(
    "email",
    [None, "", "   ", 42, ["a@x.org"], "None"],
    ids=["null", "empty", "blank", "number", "list", "None-text"],
)
def test_events_without_a_usable_address_are_skipped_and_counted(site: Site, email: object) -> None:
    junk = ev("bounce", "placeholder@x.org")
    junk["email"] = email
    r = site.post([ev("unsubscribe", "real@x.org"), junk])
    assert r.status_code == 200
    body = r.json()
    assert (body["events"], body["invalid"], body["suppressed"]) == (2, 1, 1)
    assert reasons(site.db) == {"real@x.org": "unsubscribed"}
    with open_store(site.db) as store:
        assert store.audience.webhook_event_counts() == {"unsubscribe": 1}
