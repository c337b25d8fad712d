"""Sign-up in the store and the library: the migration, who is a recipient, the outcomes of a
sign-up, rate limits across connections, purging, confirmation tokens. Real SQLite files."""

from __future__ import annotations

import base64
import hmac
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from newsletter import signup
from newsletter.config import load_settings
from newsletter.signup.mail import ConfirmationEmail, Mailer, send_queued
from newsletter.signup.tokens import client_hash, make_confirm_token, verify_confirm_token
from newsletter.store import db, open_store
from newsletter.store import signup as ss
from newsletter.store.audience import MIGRATIONS
from newsletter.store.bulk import NewSubscriber
from newsletter.transports.base import Sender
from newsletter.transports.memory import MemoryTransport
from newsletter.unsubscribe import make_token

SECRET = "store-test-secret-0123456789abcdef"
NOW = datetime(2026, 11, 2, 9, 30, tzinfo=UTC)
POLICY = signup.Policy(allowed_tags=("meetups",), per_client_per_hour=0, per_minute=0)


def form(email: str, **kw: str) -> signup.SignupForm:
    return signup.clean_form({"email": email, **kw}, [], POLICY)


def test_existing_subscribers_migrate_as_confirmed_recipients(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    conn = db.connect(path)
    db.migrate(conn, [m for m in MIGRATIONS if m[0] < "audience.0003"])
    conn.executemany(
        "INSERT INTO subscribers(email, email_key, created_at, updated_at) VALUES (?, ?, ?, ?)",
        [(f"p{i}@example.net", f"p{i}@example.net", "2026-01-01", "2026-01-01") for i in range(5)],
    )
    conn.close()
    with open_store(path) as store:
        assert store.audience.count_recipients() == 5
        assert [s.status for s in store.audience.iter_subscribers()] == ["confirmed"] * 5
        st = store.audience.stats()
        assert (st.pending, st.confirmed, st.active) == (0, 5, 5)


def test_pending_subscribers_are_never_recipients(store_target: Path | str) -> None:
    with open_store(store_target) as store:
        with store.audience.import_session() as s:
            s.apply(
                [NewSubscriber(2, "old@example.net", "old@example.net", tags=("meetups",))],
                now=NOW,
                dry_run=False,
            )
            s.apply(
                [NewSubscriber(3, "new@example.net", "new@example.net", tags=("meetups",))],
                now=NOW,
                dry_run=False,
                status="pending",
                consent_source="import:list.csv",
            )
        store.signup.record(
            ss.SignupRecord("web@example.net", tags=("meetups",)),
            now=NOW,
            limits=[],
            resend_after=timedelta(hours=1),
            expires_after=timedelta(days=7),
        )
        aud = store.audience
        for segments in ((), ("meetups",)):
            assert [r[1] for r in aud.iter_recipient_rows(segments)] == ["old@example.net"]
            assert [s.email for s in aud.iter_recipients(segments)] == ["old@example.net"]
            assert aud.count_recipients(segments) == 1
        query = aud.recipient_query()
        rows = store.conn.execute(
            f"SELECT s.email FROM subscribers s WHERE s.id > ?{query.where}", [0, *query.params]
        ).fetchall()
        assert [r[0] for r in rows] == ["old@example.net"]
        st = aud.stats()
        assert (st.subscribers, st.pending, st.confirmed, st.active) == (3, 2, 1, 1)
        assert st.tags == {"meetups": 1}
        [imported] = store.signup.consents("new@example.net")
        assert (imported.action, imported.source) == ("imported", "import:list.csv")


def test_what_each_address_gets(store_target: Path | str) -> None:
    with open_store(store_target) as store:
        with store.audience.import_session() as s:
            s.apply(
                [NewSubscriber(2, "member@example.net", "member@example.net")],
                now=NOW,
                dry_run=False,
            )
        store.audience.suppress("b@example.net", reason="bounced", source="cli", now=NOW)
        store.audience.suppress("u@example.net", reason="unsubscribed", source="sendgrid", now=NOW)
        store.audience.suppress(
            "me@example.net", reason="unsubscribed", source="one-click", now=NOW
        )

        def go(email: str, now: datetime = NOW) -> str:
            return signup.submit(
                store, form(email), client_address="10.0.0.1", secret=SECRET, policy=POLICY,
                now=now,
            )  # fmt: skip

        assert go("new@example.net") == ss.QUEUED
        assert go("NEW@example.net", NOW + timedelta(minutes=59)) == ss.THROTTLED
        assert go("new@example.net", NOW + timedelta(minutes=61)) == ss.QUEUED
        assert go("member@example.net") == ss.ALREADY
        assert go("b@example.net") == ss.REFUSED
        assert go("u@example.net") == ss.REFUSED  # SendGrid's list: it would drop the mail
        assert go("me@example.net") == ss.QUEUED
        bot = signup.clean_form({"email": "x@example.net", "website": "spam"}, [], POLICY)
        assert (
            signup.submit(store, bot, client_address="1", secret=SECRET, policy=POLICY, now=NOW)
            == "bot"
        )
        assert store.audience.get_subscriber("x@example.net") is None
        assert store.signup.queued() == 3


def test_rate_limits_are_shared_by_connections(store_target: Path | str) -> None:
    path = store_target
    policy = signup.Policy(per_client_per_hour=2, per_minute=0)
    with open_store(path) as one, open_store(path) as two:
        outcomes = [
            signup.submit(
                store, form(f"r{i}@example.net"), client_address="203.0.113.9", secret=SECRET,
                policy=policy, now=NOW,
            )
            for i, store in enumerate([one, two, one, two])
        ]  # fmt: skip
        other_client = signup.submit(
            two, form("z@example.net"), client_address="203.0.113.10", secret=SECRET,
            policy=policy, now=NOW,
        )  # fmt: skip
        later = signup.submit(
            one, form("y@example.net"), client_address="203.0.113.9", secret=SECRET,
            policy=policy, now=NOW + timedelta(hours=1),
        )  # fmt: skip
        bucket = "client:" + client_hash(SECRET, "203.0.113.9")
        assert one.signup.hits(bucket, now=NOW, window_seconds=3600) == 0  # pruned
    assert outcomes == [ss.QUEUED, ss.QUEUED, ss.RATE_LIMITED, ss.RATE_LIMITED]
    assert (other_client, later) == (ss.QUEUED, ss.QUEUED)


def test_purge_pending_removes_only_expired_ones(store_target: Path | str) -> None:
    with open_store(store_target) as store:
        for email, when in (("old@example.net", NOW - timedelta(days=8)), ("new@example.net", NOW)):
            signup.submit(
                store, form(email), client_address="1", secret=SECRET, policy=POLICY, now=when
            )
        assert signup.purge_pending(store, policy=POLICY, now=NOW) == 1
        assert store.audience.get_subscriber("old@example.net") is None
        assert store.audience.get_subscriber("new@example.net") is not None
        assert store.signup.consents("old@example.net") == []
        assert store.signup.queued() == 1


def test_confirmation_tokens(tmp_path: Path) -> None:
    expires = NOW + timedelta(days=7)
    token = make_confirm_token(SECRET, 42, "Ann@example.net", expires=expires)
    claims = verify_confirm_token(SECRET, token, now=NOW)
    assert claims.subscriber_id == 42 and claims.matches(SECRET, "ann@EXAMPLE.net")
    assert not claims.matches(SECRET, "bob@example.net")
    with pytest.raises(signup.ExpiredLink):
        verify_confirm_token(SECRET, token, now=expires)
    with pytest.raises(signup.InvalidLink):
        verify_confirm_token(SECRET + "x", token, now=NOW)
    # an unsubscribe token for the same id is no confirmation link (own key purposes)
    with pytest.raises(signup.InvalidLink):
        verify_confirm_token(SECRET, make_token(SECRET, 42, "Ann@example.net"), now=NOW)
    for i in range(len(token)):
        changed = token[:i] + ("A" if token[i] != "A" else "B") + token[i + 1 :]
        with pytest.raises(signup.InvalidLink):
            verify_confirm_token(SECRET, changed, now=NOW)
    assert client_hash(SECRET, "192.0.2.1") != client_hash(SECRET + "x", "192.0.2.1")
    assert "192" not in client_hash(SECRET, "192.0.2.1")


@pytest.mark.parametrize(
    ("secret", "sid", "address", "minutes"),
    [(SECRET, 1, "a@b.org", 29_000_000), ("s" * 100, 300, " Ünï@Example.org", 1)],
)
def test_confirmation_links_and_client_hashes_keep_their_documented_format(
    secret: str, sid: int, address: str, minutes: int
) -> None:
    # links already sent must keep working: the bytes are computed here with the standard hmac
    # module from the module docstring, independently of the code under test
    def key(purpose: bytes) -> bytes:
        return hmac.digest(secret.encode(), b"newsletter/" + purpose, "sha256")

    def varint(n: int) -> bytes:
        out = bytearray()
        while True:
            out.append((n & 0x7F) | (0x80 if n >> 7 else 0))
            n >>= 7
            if not n:
                return bytes(out)

    tag = hmac.digest(key(b"signup-email/v1"), address.strip().lower().encode(), "sha256")[:4]
    payload = b"\x01" + varint(sid) + varint(minutes) + tag
    raw = payload + hmac.digest(key(b"signup-confirm/v1"), payload, "sha256")[:12]
    expires = datetime.fromtimestamp(minutes * 60, UTC)
    token = base64.urlsafe_b64encode(raw).rstrip(b"=").decode()
    assert make_confirm_token(secret, sid, address, expires=expires) == token
    claims = verify_confirm_token(secret, token, now=expires - timedelta(minutes=1))
    assert (claims.subscriber_id, claims.expires, claims.email_tag) == (sid, expires, tag)
    client = hmac.digest(key(b"signup-client/v1"), b"198.51.100.7", "sha256")[:16].hex()
    assert client_hash(secret, "198.51.100.7") == client


def test_the_email_goes_through_a_transport_and_scripted_failures_retry(tmp_path: Path) -> None:
    settings = load_settings(cwd=tmp_path)
    transport = MemoryTransport(script=["500", "ok"])
    mailer = Mailer(
        transport, ConfirmationEmail.render(settings), Sender("news@example.org"), SECRET,
        "https://news.example.org",
    )  # fmt: skip
    clock = [NOW]
    with open_store(tmp_path / "n.db") as store:
        signup.submit(
            store, form("ann@example.net"), client_address="1", secret=SECRET, policy=POLICY,
            now=NOW,
        )  # fmt: skip
        assert send_queued(store, mailer, now=lambda: clock[0]).later == 1
        assert transport.messages == [] and store.signup.queued() == 1  # 500: later
        assert send_queued(store, mailer, now=lambda: clock[0]).taken == 0  # not yet
        clock[0] += timedelta(seconds=5)
        assert send_queued(store, mailer, now=lambda: clock[0]).sent == 1
        assert store.signup.queued() == 0
        [msg] = transport.messages
        assert msg.email == "ann@example.net" and msg.subject.startswith("Confirm your")
        assert "https://news.example.org/subscribe/confirm/" in msg.text
        assert "https://news.example.org/subscribe/confirm/" in msg.html
        # suppressed after signing up: dropped, not mailed
        signup.submit(
            store, form("bea@example.net"), client_address="1", secret=SECRET, policy=POLICY,
            now=NOW,
        )  # fmt: skip
        store.audience.suppress("bea@example.net", reason="bounced", source="cli", now=NOW)
        assert send_queued(store, mailer, now=lambda: clock[0]).dropped == 1
        assert len(transport.messages) == 1 and store.signup.queued() == 0


def test_an_owners_import_confirms_a_pending_reader_and_never_the_reverse(
    store_target: Path | str,
) -> None:
    with open_store(store_target) as store:
        signup.submit(
            store, form("ann@example.net"), client_address="1", secret=SECRET, policy=POLICY,
            now=NOW,
        )  # fmt: skip
        with store.audience.import_session() as s:
            s.apply(
                [NewSubscriber(2, "old@example.net", "old@example.net")], now=NOW, dry_run=False
            )
        with store.audience.import_session() as s:
            counts = s.apply(
                [
                    NewSubscriber(2, "old@example.net", "old@example.net", "Old"),
                    NewSubscriber(3, "ann@example.net", "ann@example.net"),
                ],
                now=NOW,
                dry_run=False,
                status="pending",
                consent_source="import:b.csv",
            )
            assert counts.updated == 1  # a name for old@; ann@ stays pending, unchanged
            assert store.audience.get_subscriber("old@example.net").status == "confirmed"
            assert store.audience.get_subscriber("ann@example.net").status == "pending"
        with store.audience.import_session() as s:  # another import, another file
            counts = s.apply(
                [NewSubscriber(2, "ann@example.net", "ann@example.net")],
                now=NOW,
                dry_run=False,
                consent_source="import:owners-list.csv",
            )
        assert counts.updated == 1
        ann = store.audience.get_subscriber("ann@example.net")
        assert ann is not None and ann.status == "confirmed" and ann.subscribed_at
        actions = [(c.action, c.source) for c in store.signup.consents("ann@example.net")]
        assert actions == [("requested", "form:form"), ("imported", "import:owners-list.csv")]


def test_batches_overlap_and_each_batch_gets_its_own_outcome(tmp_path: Path) -> None:
    settings = load_settings(cwd=tmp_path)
    transport = MemoryTransport(script=["ok", "500", "ok"])
    mailer = Mailer(
        transport, ConfirmationEmail.render(settings), Sender("news@example.org"), SECRET,
        "https://news.example.org",
    )  # fmt: skip
    with open_store(tmp_path / "n.db") as store:
        for i in range(5):
            signup.submit(
                store, form(f"r{i}@example.net"), client_address="1", secret=SECRET,
                policy=POLICY, now=NOW,
            )  # fmt: skip
        report = send_queued(store, mailer, now=lambda: NOW, batch_size=2, concurrency=4)
        assert transport.calls == report.batches == 3  # batches of 2, 2 and 1
        assert report.sent + report.later == report.taken == 5 and report.later in (1, 2)
        sent = {m.email for m in transport.messages}
        left = {e for (e,) in store.conn.execute("SELECT email FROM confirmation_queue")}
        assert len(sent) == report.sent and len(left) == report.later and not sent & left
        # each email carries its own reader's link
        for m in transport.messages:
            token = m.text.split("/subscribe/confirm/")[1].split()[0]
            claims = signup.tokens.verify_confirm_token(SECRET, token, now=NOW)
            assert claims.matches(SECRET, m.email)


def test_no_secret_in_reprs(tmp_path: Path) -> None:
    from newsletter.signup.mail import MailProcess
    from newsletter.web.signup import SignupConfig

    settings = load_settings(cwd=tmp_path)
    things = [
        MailProcess(settings, SECRET, "outbox"),
        Mailer(MemoryTransport(), ConfirmationEmail("s", "h", "t"), Sender("a@b.org"), SECRET, ""),
        SignupConfig(tmp_path / "n.db", SECRET, settings, POLICY, None, lambda: NOW),
    ]
    for thing in things:
        assert SECRET not in repr(thing)
