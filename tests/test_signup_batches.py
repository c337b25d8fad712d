"""Confirmation emails leave in batches: one SendGrid request for many readers, each with their
own link, and every failure settles the rows it concerns, nobody lost and nobody mailed twice.

Real parts: the recording fake SendGrid on 127.0.0.1 (with its FaultPlan), the SendGrid
transport, SQLite stores, the outbox."""

from __future__ import annotations

import json
import logging
import sqlite3
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from signup_helpers import link_in, messages

from newsletter import signup
from newsletter.config import load_settings
from newsletter.errors import RenderError
from newsletter.personalize import CONFIRM_URL
from newsletter.providers.sendgrid.fake import FaultPlan, serve_in_thread
from newsletter.providers.sendgrid.transport import SendGridTransport
from newsletter.signup.mail import CAMPAIGN, ConfirmationEmail, Mailer, send_queued
from newsletter.store import Store, open_store
from newsletter.transports.base import Sender, Transport
from newsletter.transports.outbox import OutboxTransport

SECRET = "batch-test-secret-0123456789abcdef"
NOW = datetime(2026, 11, 2, 9, 30, tzinfo=UTC)
POLICY = signup.Policy(per_client_per_hour=0, per_minute=0)
BASE = "https://news.example.org"


@pytest.fixture(scope="module")
def email(tmp_path_factory: pytest.TempPathFactory) -> ConfirmationEmail:
    return ConfirmationEmail.render(load_settings(cwd=tmp_path_factory.mktemp("site")))


def sign_up(store: Store, addresses: list[str], now: datetime = NOW) -> None:
    for address in addresses:
        form = signup.clean_form({"email": address}, [], POLICY)
        outcome = signup.submit(
            store, form, client_address="1", secret=SECRET, policy=POLICY, now=now
        )
        assert outcome == signup.QUEUED


def mailer(transport: Transport, email: ConfirmationEmail) -> Mailer:
    return Mailer(transport, email, Sender("news@news.example.org", "News"), SECRET, BASE)


@dataclass
class Fake:
    url: str
    db: Path

    def statuses(self) -> list[int]:
        with sqlite3.connect(self.db) as conn:
            return [r[0] for r in conn.execute("SELECT status FROM requests ORDER BY no")]

    def sizes(self) -> list[int]:
        with sqlite3.connect(self.db) as conn:
            return [r[0] for r in conn.execute("SELECT recipients FROM requests ORDER BY no")]

    def mailed(self) -> list[tuple[str, dict[str, str]]]:
        with sqlite3.connect(self.db) as conn:
            rows = conn.execute("SELECT email, substitutions FROM messages").fetchall()
        return [(e, json.loads(s)) for e, s in rows]


@contextmanager
def fake_sendgrid(
    tmp_path: Path, plan: FaultPlan
) -> Iterator[tuple[Fake, SendGridTransport, Store]]:
    """The fake with ``plan``, a SendGrid transport pointed at it, and a fresh store."""
    with serve_in_thread(plan, tmp_path / "fake.db") as url, open_store(tmp_path / "n.db") as st:
        transport = SendGridTransport("SG.batch-test", api_url=url, timeout=5)
        try:
            yield Fake(url, tmp_path / "fake.db"), transport, st
        finally:
            transport.close()


def assert_each_once_with_own_link(store: Store, fake: Fake, addresses: list[str]) -> None:
    """Every address got exactly one message, and its link confirms that address."""
    mailed = fake.mailed()
    assert Counter(e for e, _ in mailed) == Counter({a: 1 for a in addresses})
    for address, subs in mailed:
        assert set(subs) == {CONFIRM_URL}  # the link, and nothing else of the reader's
        token = subs[CONFIRM_URL].removeprefix(f"{BASE}/subscribe/confirm/")
        target = signup.check_link(store, token, secret=SECRET, now=NOW)
        assert target.email == address


def test_a_burst_of_sign_ups_goes_out_in_three_requests(
    tmp_path: Path, email: ConfirmationEmail
) -> None:
    people = [f"reader{i}@example.net" for i in range(250)]
    with fake_sendgrid(tmp_path, FaultPlan()) as (fake, transport, store):
        sign_up(store, people)
        m = mailer(transport, email)
        first = send_queued(store, m, now=lambda: NOW, concurrency=2)
        assert (first.sent, first.batches) == (200, 2)  # one round: two batches in flight
        second = send_queued(store, m, now=lambda: NOW, concurrency=2)
        assert (second.sent, second.batches) == (50, 1)
        assert send_queued(store, m, now=lambda: NOW).taken == 0
        assert store.signup.queued() == 0
        assert fake.statuses() == [202, 202, 202]
        assert sorted(fake.sizes()) == [50, 100, 100]
        assert_each_once_with_own_link(store, fake, people)


def test_a_429_puts_its_batch_back_and_each_reader_still_gets_one(
    tmp_path: Path, email: ConfirmationEmail
) -> None:
    people = [f"reader{i}@example.net" for i in range(130)]
    plan = FaultPlan(script=["429"], reset_seconds=30)
    clock = [NOW]
    with fake_sendgrid(tmp_path, plan) as (fake, transport, store):
        sign_up(store, people)
        m = mailer(transport, email)
        first = send_queued(store, m, now=lambda: clock[0])
        assert (first.later, first.batches) == (100, 1)  # the first 100 were refused for now
        assert send_queued(store, m, now=lambda: clock[0]).sent == 30  # the rest go on
        assert store.signup.queued() == 100
        clock[0] += timedelta(seconds=10)  # SendGrid asked for ~30 s: not yet
        assert send_queued(store, m, now=lambda: clock[0]).taken == 0
        clock[0] += timedelta(seconds=60)
        second = send_queued(store, m, now=lambda: clock[0])
        assert (second.sent, second.batches) == (100, 1)
        assert fake.statuses() == [429, 202, 202]
        assert store.signup.queued() == 0
        assert_each_once_with_own_link(store, fake, people)


def test_a_refused_address_costs_only_itself(tmp_path: Path, email: ConfirmationEmail) -> None:
    people = [f"reader{i}@example.net" for i in range(10)]
    plan = FaultPlan(refuse=frozenset({"reader0@example.net"}))
    with fake_sendgrid(tmp_path, plan) as (fake, transport, store):
        sign_up(store, people)
        report = send_queued(store, mailer(transport, email), now=lambda: NOW)
        assert (report.sent, report.failed, report.later) == (9, 1, 0)
        assert store.signup.queued() == 0  # the refused one is not retried forever
        # 10 refused -> 5 refused -> 2 refused -> 1 refused alone; 1, 3 and 5 accepted
        assert fake.statuses() == [400, 400, 400, 400, 202, 202, 202]
        assert fake.sizes() == [10, 5, 2, 1, 1, 3, 5]
        assert_each_once_with_own_link(store, fake, people[1:])


def test_a_lost_answer_is_not_resent(
    tmp_path: Path, email: ConfirmationEmail, caplog: pytest.LogCaptureFixture
) -> None:
    people = [f"reader{i}@example.net" for i in range(12)]
    # the fake records the first request, then breaks the connection before answering
    with fake_sendgrid(tmp_path, FaultPlan(script=["drop"])) as (fake, transport, store):
        sign_up(store, people)
        m = mailer(transport, email)
        with caplog.at_level(logging.WARNING, logger="newsletter.signup"):
            report = send_queued(store, m, now=lambda: NOW, batch_size=5, limit=15)
        assert (report.sent, report.failed, report.batches) == (7, 5, 3)
        assert "5 confirmation email(s)" in caplog.text and "may have" in caplog.text
        assert store.signup.queued() == 0
        later = NOW + timedelta(hours=1)
        assert send_queued(store, m, now=lambda: later).taken == 0
        assert_each_once_with_own_link(store, fake, people)  # the lost one did go out


def test_rows_of_a_sender_that_died_go_out_once_its_lease_ends(
    tmp_path: Path, email: ConfirmationEmail
) -> None:
    people = [f"reader{i}@example.net" for i in range(40)]
    with fake_sendgrid(tmp_path, FaultPlan()) as (fake, transport, store):
        sign_up(store, people)
        assert len(store.signup.claim(now=NOW, limit=25)) == 25  # then it died
        m = mailer(transport, email)
        assert send_queued(store, m, now=lambda: NOW).sent == 15
        later = NOW + timedelta(seconds=121)
        assert send_queued(store, m, now=lambda: later).sent == 25
        assert fake.statuses() == [202, 202]
        assert_each_once_with_own_link(store, fake, people)


def test_an_address_queued_twice_gets_the_newest_email_once(
    tmp_path: Path, email: ConfirmationEmail
) -> None:
    with fake_sendgrid(tmp_path, FaultPlan(script=["500"])) as (fake, transport, store):
        sign_up(store, ["ann@example.net"])
        m = mailer(transport, email)
        assert send_queued(store, m, now=lambda: NOW).later == 1  # a 500: ann waits
        again = NOW + timedelta(hours=2)
        sign_up(store, ["ann@example.net", "bo@example.net"], now=again)
        assert store.signup.queued() == 3
        report = send_queued(store, m, now=lambda: again)
        assert (report.sent, report.superseded, report.batches) == (2, 1, 1)
        assert store.signup.queued() == 0
        assert_each_once_with_own_link(store, fake, ["ann@example.net", "bo@example.net"])
        [ann] = [subs for e, subs in fake.mailed() if e == "ann@example.net"]
        token = ann[CONFIRM_URL].rsplit("/", 1)[1]
        claims = signup.tokens.verify_confirm_token(SECRET, token, now=again)
        assert claims.expires > NOW + POLICY.confirm_for  # the newer row's link


def test_the_outbox_writes_one_message_per_reader_with_their_link(
    tmp_path: Path, email: ConfirmationEmail
) -> None:
    people = [f"reader{i}@example.net" for i in range(5)]
    transport = OutboxTransport(tmp_path / "outbox", now=lambda: NOW)
    with open_store(tmp_path / "n.db") as store:
        sign_up(store, people)
        report = send_queued(store, mailer(transport, email), now=lambda: NOW)
        assert (report.sent, report.batches) == (5, 1)
        got = messages(tmp_path / "outbox" / CAMPAIGN)
        assert sorted(str(m["To"]) for m in got) == people
        assert len({m["Message-ID"] for m in got}) == 5
        for m in got:
            token = link_in(m).rsplit("/", 1)[1]
            assert signup.check_link(store, token, secret=SECRET, now=NOW).email == str(m["To"])
            assert "%%" not in m.as_string()


def test_a_confirmation_template_without_the_link_is_refused(tmp_path: Path) -> None:
    folder = tmp_path / "templates" / "signup"
    folder.mkdir(parents=True)
    (folder / "confirm_email.txt.j2").write_text("Welcome to {{ site.name }}!\n", "utf-8")
    with pytest.raises(RenderError) as err:
        ConfirmationEmail.render(load_settings(cwd=tmp_path))
    assert err.value.format() == (
        "signup/confirm_email.txt.j2: the confirmation email has no link: put {{ confirm_url }} "
        "in it"
    )


def test_a_refused_api_key_keeps_the_emails_for_later(
    tmp_path: Path, email: ConfirmationEmail
) -> None:
    people = ["ann@example.net", "bo@example.net"]
    with fake_sendgrid(tmp_path, FaultPlan()) as (fake, _, store):
        sign_up(store, people)
        bad_key = SendGridTransport("SG", api_url=fake.url, timeout=5)  # the fake answers 401
        report = send_queued(store, mailer(bad_key, email), now=lambda: NOW)
        bad_key.close()
        assert (report.later, report.failed, fake.statuses()) == (2, 0, [401])
        assert store.signup.queued() == 2
        good = SendGridTransport("SG.fixed-key", api_url=fake.url, timeout=5)
        later = NOW + timedelta(seconds=5)
        assert send_queued(store, mailer(good, email), now=lambda: later).sent == 2
        good.close()
        assert_each_once_with_own_link(store, fake, people)
