"""POST /subscribe and the confirmation link, on a real uvicorn on 127.0.0.1, called with httpx.

The confirmation emails are the real ones the outbox transport writes; the campaign after the
confirmation is a real `newsletter send` through the outbox.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from signup_helpers import (
    SECRET,
    html_of,
    messages,
    serve_signup,
    text_of,
    wait_for,
)
from signup_helpers import (
    link_in as link_of,
)

from newsletter.store import open_store
from newsletter.store.bulk import NewSubscriber

ROOT = Path(__file__).resolve().parent.parent
SITE = "https://harbour-lights.example.org"
FORM = {"Content-Type": "application/x-www-form-urlencoded", "Origin": SITE}


def status_of(db: Path, email: str) -> str | None:
    with open_store(db) as store:
        sub = store.audience.get_subscriber(email)
        return None if sub is None else sub.status


def queue_empty(db: Path) -> bool:
    with open_store(db) as store:
        return store.signup.queued() == 0


def test_sign_up_confirm_and_get_the_next_campaign(tmp_path: Path) -> None:
    with serve_signup(tmp_path / "site") as srv:
        r = httpx.post(
            f"{srv.url}/subscribe",
            data={"email": "Mira@Example.net", "first_name": "Mira", "tags": "meetups"},
            headers={"Origin": SITE, "Referer": f"{SITE}/news/"},
        )
        assert r.status_code == 303 and r.headers["location"] == "/subscribe/thanks"
        assert r.headers["access-control-allow-origin"] == SITE
        thanks = httpx.get(srv.url + r.headers["location"])
        assert thanks.status_code == 200 and "Check your inbox" in thanks.text
        with open_store(srv.db) as store:
            assert store.audience.get_subscriber("mira@example.net").status == "pending"
            assert store.audience.count_recipients() == 0
            assert list(store.audience.iter_recipient_rows()) == []
            [consent] = store.signup.consents("mira@example.net")
        assert (consent.action, consent.source, consent.page) == (
            "requested",
            "form:form",
            f"{SITE}/news/",
        )
        assert consent.tags == "meetups"
        assert len(consent.client_hash) == 32 and "127" not in consent.client_hash

        assert wait_for(lambda: len(messages(srv.outbox)) == 1)
        [msg] = messages(srv.outbox)
        assert msg["To"] == "Mira@example.net"
        assert msg["Subject"] == "Confirm your subscription to Harbour Lights Meetup"
        assert "Mira" not in text_of(msg)  # nothing typed into the form is mailed back
        link = link_of(msg)
        assert link.startswith(srv.url + "/subscribe/confirm/")

        for _ in range(3):  # mail scanners and prefetchers may open the link many times
            page = httpx.get(link)
            assert page.status_code == 200
            assert '<form method="post">' in page.text and "Mira@example.net" in page.text
            assert page.headers["referrer-policy"] == "no-referrer"
        assert httpx.head(link).status_code == 200
        assert status_of(srv.db, "mira@example.net") == "pending"

        done = httpx.post(link)
        assert done.status_code == 200 and "You are subscribed" in done.text
        assert status_of(srv.db, "mira@example.net") == "confirmed"
        again = httpx.post(link)  # a second click changes nothing and says the same
        assert again.status_code == 200 and "You are subscribed" in again.text
        assert "Yes, subscribe me" not in httpx.get(link).text
        with open_store(srv.db) as store:
            actions = [c.action for c in store.signup.consents("mira@example.net")]
            assert actions == ["requested", "confirmed"]
            assert store.audience.count_recipients(["meetups"]) == 1

        # someone else signs up and never confirms: not in the campaign
        httpx.post(f"{srv.url}/subscribe", data={"email": "lurker@example.net"}, headers=FORM)
        assert wait_for(lambda: len(messages(srv.outbox)) == 2)

    site = srv.settings.root
    shutil.copytree(ROOT / "content", site / "content")
    env = {"NEWSLETTER_SECRET": SECRET, "PATH": "/usr/bin:/bin"}
    proc = subprocess.run(
        [
            *(sys.executable, "-c", "from newsletter.cli import main; main()", "send"),
            *("--month", "2026-10", "--now", "2026-11-01T09:00", "--transport", "outbox"),
            *("--yes", "--no-progress"),
        ],
        cwd=site,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    campaigns = [p for p in (site / "outbox").iterdir() if p.name != "signup-confirmations"]
    [campaign] = campaigns
    sent_to = [m["To"] for m in messages(campaign)]
    assert sent_to == ["Mira@example.net"]


def test_expired_and_tampered_links_are_400_and_change_nothing(tmp_path: Path) -> None:
    with serve_signup(tmp_path / "site") as srv:
        httpx.post(f"{srv.url}/subscribe", data={"email": "kai@example.net"}, headers=FORM)
        assert wait_for(lambda: len(messages(srv.outbox)) == 1)
        link = link_of(messages(srv.outbox)[0])
        token = link.rsplit("/", 1)[1]
        tampered = [
            token[:-1] + ("A" if token[-1] != "A" else "B"),
            token[:5] + ("x" if token[5] != "x" else "y") + token[6:],
            token[:-3],
            token + "AAAA",
            "not-a-token",
        ]
        for bad in tampered:
            for method in ("GET", "POST"):
                r = httpx.request(method, f"{srv.url}/subscribe/confirm/{bad}")
                assert r.status_code == 400, (bad, method)
                assert "This link is not valid" in r.text
        srv.clock.now += timedelta(days=7, minutes=1)
        for method in ("GET", "POST"):
            r = httpx.request(method, link)
            assert r.status_code == 400 and "This link has expired" in r.text
        assert status_of(srv.db, "kai@example.net") == "pending"
        with open_store(srv.db) as store:
            assert [c.action for c in store.signup.consents("kai@example.net")] == ["requested"]
        srv.clock.now -= timedelta(minutes=2)  # still inside its seven days
        assert httpx.post(link).status_code == 200
        assert status_of(srv.db, "kai@example.net") == "confirmed"


def test_a_thousand_sign_ups_of_one_address_send_one_email(tmp_path: Path) -> None:
    limits = "per_client_per_hour = 0\nper_minute = 0\n"
    with serve_signup(tmp_path / "site", signup=limits) as srv, httpx.Client() as client:
        bodies = set()
        for i in range(1000):
            r = client.post(
                f"{srv.url}/subscribe",
                data={"email": "target@example.net", "first_name": f"Spam {i}"},
                headers=FORM,
            )
            assert r.status_code == 303
            bodies.add((r.content, r.headers["location"]))
        assert len(bodies) == 1
        assert wait_for(lambda: queue_empty(srv.db))
        assert wait_for(lambda: len(messages(srv.outbox)) >= 1)
        assert len(messages(srv.outbox)) == 1
        with open_store(srv.db) as store:
            sub = store.audience.get_subscriber("target@example.net")
            assert sub is not None and sub.first_name == "Spam 0"  # later tries changed nothing
            assert len(store.signup.consents("target@example.net")) == 1
        # an hour later, one more email
        srv.clock.now += timedelta(hours=1, seconds=1)
        client.post(f"{srv.url}/subscribe", data={"email": "target@example.net"}, headers=FORM)
        assert wait_for(lambda: len(messages(srv.outbox)) == 2)


def _known(db: Path) -> None:
    with open_store(db) as store:
        with store.audience.import_session() as s:
            s.apply(
                [
                    NewSubscriber(2, "member@example.net", "member@example.net", "Mem"),
                    NewSubscriber(3, "gone@example.net", "gone@example.net", "Gone"),
                ],
                now=store_now(),
                dry_run=False,
            )
        store.audience.suppress(
            "bounced@example.net", reason="bounced", source="sendgrid-webhook", now=store_now()
        )
        store.audience.suppress(
            "spam@example.net", reason="spam_report", source="sendgrid-sync", now=store_now()
        )
        store.audience.suppress(
            "gone@example.net", reason="unsubscribed", source="one-click", now=store_now()
        )


def store_now() -> datetime:
    return datetime(2026, 1, 5, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize("kind", ["form", "json"])
def test_the_answer_is_the_same_for_every_address(tmp_path: Path, kind: str) -> None:
    with serve_signup(tmp_path / "site") as srv:
        _known(srv.db)
        httpx.post(f"{srv.url}/subscribe", data={"email": "waiting@example.net"}, headers=FORM)
        assert wait_for(lambda: len(messages(srv.outbox)) == 1)
        addresses = [
            "brand-new@example.net",  # unknown
            "waiting@example.net",  # pending, mailed a moment ago
            "member@example.net",  # confirmed subscriber
            "bounced@example.net",  # suppressed: bounced
            "spam@example.net",  # suppressed: spam report
            "gone@example.net",  # unsubscribed by their own click: may come back
        ]
        answers = set()
        for address in addresses:
            if kind == "json":
                r = httpx.post(
                    f"{srv.url}/subscribe",
                    json={"email": address, "tags": ["workshops"]},
                    headers={"Origin": SITE},
                )
            else:
                r = httpx.post(
                    f"{srv.url}/subscribe",
                    data={"email": address, "tags": "workshops"},
                    headers=FORM,
                )
            headers = tuple(sorted((k, v) for k, v in r.headers.items() if k != "date"))
            answers.add((r.status_code, headers, r.content))
        assert len(answers) == 1, answers
        assert wait_for(lambda: queue_empty(srv.db))
        to = sorted(m["To"] for m in messages(srv.outbox))
        # the new address and the reader who unsubscribed themselves get a link; nobody else
        assert to == ["brand-new@example.net", "gone@example.net", "waiting@example.net"]
        with open_store(srv.db) as store:
            assert store.audience.get_subscriber("bounced@example.net") is None
            assert store.audience.get_subscriber("member@example.net").tags == ()
            assert store.audience.is_suppressed("gone@example.net")
        # the unsubscribed reader comes back only by confirming
        gone = next(m for m in messages(srv.outbox) if m["To"] == "gone@example.net")
        assert httpx.post(link_of(gone)).status_code == 200
        with open_store(srv.db) as store:
            assert not store.audience.is_suppressed("gone@example.net")
            rows = [r[1] for r in store.audience.iter_recipient_rows()]
            assert rows == ["member@example.net", "gone@example.net"]


def test_rate_limits_hold_across_two_servers(tmp_path: Path) -> None:
    limits = "per_client_per_hour = 3\n"
    with serve_signup(tmp_path / "site", signup=limits) as one:
        # a second server process on the same store: the limits are counted in the store
        from signup_helpers import Clock, free_socket, run_uvicorn

        from newsletter.signup import Policy
        from newsletter.web.app import WebConfig, create_app
        from newsletter.web.signup import SignupConfig, SignupWeb

        sock, port = free_socket()
        web = SignupWeb(
            SignupConfig(one.db, SECRET, one.settings, Policy.from_settings(one.settings), None,
                         Clock(one.clock.now))
        )  # fmt: skip
        app = create_app(WebConfig(store_path=one.db, secret=SECRET, signup=web))
        with run_uvicorn(app, sock):
            two = f"http://127.0.0.1:{port}"
            codes = [
                httpx.post(
                    f"{url}/subscribe", data={"email": f"r{i}@example.net"}, headers=FORM
                ).status_code
                for i, url in enumerate([one.url, two, one.url, two, one.url])
            ]
            busy = httpx.post(f"{two}/subscribe", json={"email": "x@example.net"})
    assert codes == [303, 303, 303, 429, 429]
    assert busy.status_code == 429 and busy.headers["retry-after"] == "60"
    assert "Too many sign-ups" in busy.json()["message"]
    with open_store(one.db) as store:
        assert store.audience.stats().pending == 3


def test_global_limit(tmp_path: Path) -> None:
    with serve_signup(tmp_path / "site", signup="per_minute = 2\n") as srv:
        codes = [
            httpx.post(
                f"{srv.url}/subscribe", data={"email": f"g{i}@example.net"}, headers=FORM
            ).status_code
            for i in range(3)
        ]
        assert codes == [303, 303, 429]
        srv.clock.now += timedelta(minutes=1)
        r = httpx.post(f"{srv.url}/subscribe", data={"email": "g9@example.net"}, headers=FORM)
        assert r.status_code == 303


def test_origins_and_cors(tmp_path: Path) -> None:
    with serve_signup(tmp_path / "site") as srv:
        for origin in ("https://evil.example.com", "null", "http://harbour-lights.example.org"):
            r = httpx.post(
                f"{srv.url}/subscribe",
                data={"email": "victim@example.net"},
                headers={"Origin": origin},
            )
            assert r.status_code == 403 and "access-control-allow-origin" not in r.headers
            pre = httpx.options(
                f"{srv.url}/subscribe",
                headers={"Origin": origin, "Access-Control-Request-Method": "POST"},
            )
            assert pre.status_code == 403 and "access-control-allow-origin" not in pre.headers
        pre = httpx.options(
            f"{srv.url}/subscribe",
            headers={"Origin": SITE, "Access-Control-Request-Method": "POST"},
        )
        assert pre.status_code == 204
        assert pre.headers["access-control-allow-origin"] == SITE
        assert "Content-Type" in pre.headers["access-control-allow-headers"]
        # no Origin at all (curl, a server-side form handler): allowed, and rate-limited
        r = httpx.post(f"{srv.url}/subscribe", json={"email": "curl@example.net"})
        assert r.status_code == 200 and r.json()["ok"] is True
        assert "access-control-allow-origin" not in r.headers
        assert status_of(srv.db, "victim@example.net") is None
        assert status_of(srv.db, "curl@example.net") == "pending"


def test_bad_fields_say_which_and_record_nothing(tmp_path: Path) -> None:
    with serve_signup(tmp_path / "site") as srv:
        url = f"{srv.url}/subscribe"
        r = httpx.post(url, data={"email": "not an address"}, headers=FORM)
        assert r.status_code == 400 and "Email is not a valid email address" in r.text
        assert "<h1>Please check the form</h1>" in r.text
        r = httpx.post(
            url, json={"email": "a@example.net", "tags": ["vip"]}, headers={"Origin": SITE}
        )
        assert r.status_code == 400 and r.json()["field"] == "tags"
        assert "'vip' is not a list this form offers" in r.json()["message"]
        r = httpx.post(url, json={"email": "a@example.net", "first_name": "A\nB"})
        assert r.status_code == 400 and r.json()["field"] == "first_name"
        r = httpx.post(url, content=b"[1, 2]", headers={"Content-Type": "application/json"})
        assert r.status_code == 400 and r.json()["field"] == "body"
        r = httpx.post(url, content=b"x" * 20_000, headers=FORM)
        assert r.status_code == 413
        r = httpx.post(url, content=b"email=a@example.net", headers={"Content-Type": "text/xml"})
        assert r.status_code == 400
        multipart = httpx.post(url, files={"email": (None, "multi@example.net")})
        assert multipart.status_code == 303
        # the honeypot: the same answer as a real sign-up, and nothing recorded or mailed
        bot = httpx.post(url, data={"email": "bot@example.net", "website": "http://spam"})
        real = httpx.post(url, data={"email": "human@example.net", "website": ""})
        assert (bot.status_code, bot.content) == (real.status_code, real.content)
        assert status_of(srv.db, "bot@example.net") is None
        assert status_of(srv.db, "human@example.net") == "pending"
        assert status_of(srv.db, "a@example.net") is None
        assert status_of(srv.db, "multi@example.net") == "pending"


def test_the_form_can_be_switched_off(tmp_path: Path) -> None:
    with serve_signup(tmp_path / "site", signup="enabled = false\n") as srv:
        r = httpx.post(f"{srv.url}/subscribe", data={"email": "x@example.net"}, headers=FORM)
        assert r.status_code in (404, 405)
        assert httpx.get(f"{srv.url}/healthz").status_code == 200
        assert status_of(srv.db, "x@example.net") is None


def test_pages_and_email_wear_the_theme(tmp_path: Path) -> None:
    theme = (
        '\n[theme]\naccent = "#7a1f5c"\ndark_accent = "#f0a6d8"\nfont_family = "Georgia, serif"\n'
    )
    with serve_signup(tmp_path / "site", extra=theme) as srv:
        r = httpx.post(f"{srv.url}/subscribe", data={"email": "t@example.net"}, headers=FORM)
        page = httpx.get(srv.url + r.headers["location"]).text
        assert "background: #7a1f5c" in page and "#f0a6d8" in page
        assert "font-family: Georgia, serif" in page
        assert wait_for(lambda: len(messages(srv.outbox)) == 1)
        email_html = html_of(messages(srv.outbox)[0])
        assert "#7a1f5c" in email_html and "Georgia, serif" in email_html
        assert "#1f5fa8" not in email_html  # the default accent is gone
