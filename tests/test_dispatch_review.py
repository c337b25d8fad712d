"""Regression tests for the dispatch bugs found in review (pacing, suppressions, 429s, Ctrl-C)."""

from __future__ import annotations

import contextlib
import json
import sqlite3
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from dispatch_helpers import (
    ISSUE,
    NOW,
    SENDER,
    FakeClock,
    dispatcher,
    fresh_store,
    people,
    prepared,
)
from send_cli_helpers import SEND, make_site, query, run, start

from newsletter.campaign.dispatcher import Envelope, Options, prepare
from newsletter.campaign.lock import CampaignLock
from newsletter.errors import RateLimited
from newsletter.providers.sendgrid.fake import FaultPlan, serve_in_thread
from newsletter.providers.sendgrid.transport import SendGridTransport
from newsletter.store import campaigns as cs
from newsletter.store import open_store
from newsletter.transports.base import Batch, Recipient, Status
from newsletter.transports.memory import MemoryTransport
from newsletter.transports.pacing import Pacer, max_batch

SG = {"SENDGRID_API_KEY": "SG.test", "NEWSLETTER_SECRET": "test-secret-value-0123456789abcdef"}


def states(store, cid: str) -> dict[str, int]:  # type: ignore[no-untyped-def]
    status = store.campaigns.status(cid)
    return {k: v for k, v in status.counts.items() if v}


# -- 1. pacing -------------------------------------------------------------------------------


def test_batch_larger_than_per_hour_waits_for_an_empty_window() -> None:
    clock = FakeClock()
    pacer = Pacer(per_hour=500, clock=clock, sleep=clock.sleep)
    pacer.acquire(1000)  # a resumed campaign prepared under a looser limit
    clock.t += 60
    assert pacer.wait_time(1000) == pytest.approx(3540.0)
    assert pacer.wait_time(1) == pytest.approx(3540.0)
    pacer.acquire(1000)
    assert clock.sleeps == [pytest.approx(3540.0)]


def test_wait_time_when_the_batch_equals_the_limit() -> None:
    clock = FakeClock()
    pacer = Pacer(per_hour=500, clock=clock, sleep=clock.sleep)
    pacer.acquire(100)
    clock.t += 100
    pacer.acquire(300)
    assert pacer.wait_time(100) == 0
    assert pacer.wait_time(101) == pytest.approx(3500.0)  # the first 100 must age out
    assert pacer.wait_time(500) == pytest.approx(3600.0)  # everything must age out


def test_batch_size_is_capped_to_the_limits() -> None:
    assert max_batch(0, 0, 1000) == 1000
    assert max_batch(0, 500, 1000) == 500
    assert max_batch(25.5, 0, 1000) == 25
    assert max_batch(0.2, 0, 1000) == 1
    assert max_batch(100, 40, 1000) == 40


def test_send_prepares_batches_no_larger_than_the_limit(tmp_path: Path) -> None:
    site = make_site(tmp_path)  # 20 subscribers
    proc = run(site, *SEND, "--max-per-second", "8")
    assert "batches of 8 recipients (not 1,000)" in proc.stderr
    assert "20 accepted" in proc.stderr
    sizes = query(site / "newsletter.db", "SELECT size FROM campaign_batches ORDER BY batch_no")
    assert [s for (s,) in sizes] == [8, 8, 4]


def test_first_ctrl_c_stops_a_long_pacing_wait_promptly(store_target: Path | str) -> None:
    store = fresh_store(store_target)
    cid = prepared(store, people(30), batch_size=10)
    clock = FakeClock()
    stop = threading.Event()

    def sleep(seconds: float) -> None:
        clock.sleep(seconds)
        if clock.t > 1010:  # ten seconds into the hour-long wait the user presses Ctrl-C
            stop.set()

    pacer = Pacer(per_hour=10, clock=clock, sleep=sleep)
    d = dispatcher(store, MemoryTransport(), cid, clock=clock, pacer=pacer)
    d.stop = stop
    summary = d.run(cid)
    assert summary.state == cs.PAUSED and "interrupted" in summary.note
    assert states(store, cid) == {"accepted": 10, "pending": 20}
    assert max(clock.sleeps) <= 0.25 and sum(clock.sleeps) < 11


def test_dispatcher_keeps_to_per_hour_across_batches(store_target: Path | str) -> None:
    store = fresh_store(store_target)
    cid = prepared(store, people(30), batch_size=10)
    clock = FakeClock()
    pacer = Pacer(per_hour=10, clock=clock, sleep=clock.sleep)
    t = MemoryTransport()
    d = dispatcher(store, t, cid, clock=clock, pacer=pacer, options=Options(concurrency=4))
    assert d.run(cid).state == cs.DONE
    assert len(t.messages) == 30
    assert sum(clock.sleeps) == pytest.approx(7200.0)


def _campaign(store, cid: str, start: int, transport: str, sent_at=None):  # type: ignore[no-untyped-def]
    """A prepared 10-recipient campaign, its one batch accepted at ``sent_at`` if given."""
    prepare(
        store.campaigns,
        cid,
        Envelope(ISSUE, SENDER),
        people(10, start=start),
        segment="",
        transport=transport,
        now=NOW,
        batch_size=10,
    )
    if sent_at is not None:
        store.campaigns.mark(cid, 0, cs.SENDING, now=sent_at, count_attempt=True)
        store.campaigns.mark(cid, 0, cs.ACCEPTED, now=sent_at)


def test_a_new_process_counts_the_last_hours_sends_against_per_hour(tmp_path: Path) -> None:
    from newsletter.campaign.wiring import seed_hourly_window

    store = fresh_store(tmp_path)
    _campaign(store, "earlier", 0, "test", sent_at=NOW - timedelta(minutes=30))
    _campaign(store, "rehearsal", 50, "outbox", sent_at=NOW)  # another transport: not counted
    cid = "next-campaign"
    _campaign(store, cid, 100, "test")
    clock = FakeClock()
    pacer = Pacer(per_hour=15, clock=clock, sleep=clock.sleep)
    seed_hourly_window(pacer, store, cid, now=NOW)
    t = MemoryTransport()
    assert dispatcher(store, t, cid, clock=clock, pacer=pacer).run(cid).state == cs.DONE
    assert len(t.messages) == 10
    # 10 went out 30 minutes ago: 10 more would make 20 > 15 in one hour, so it waits for them
    # to age out of the window
    assert sum(clock.sleeps) == pytest.approx(1800.0, abs=1)


# -- 2. suppressions before every batch --------------------------------------------------------


def test_suppressed_during_a_fresh_send_is_skipped_with_one_query_per_batch(
    tmp_path: Path,
) -> None:
    store = fresh_store(tmp_path)
    cid = prepared(store, people(30), batch_size=10)
    store.audience.suppress("USER3@example.net", reason="bounced", source="test", now=NOW)
    queries: list[str] = []
    store.audience.conn.set_trace_callback(
        lambda sql: queries.append(sql) if "FROM suppressions" in sql else None
    )
    t = MemoryTransport()
    d = dispatcher(
        store, t, cid, options=Options(concurrency=1), suppressed=store.audience.suppressed_among
    )

    def unsubscribe_mid_send(done: int, total: int) -> None:
        if done == 10:  # after the first batch: user25 unsubscribes
            store.audience.suppress(
                " user25@Example.net", reason="unsubscribed", source="t", now=NOW
            )

    d.on_progress = unsubscribe_mid_send
    assert d.run(cid).state == cs.DONE
    sent = {m.email for m in t.messages}
    assert len(sent) == 28 and not {"user3@example.net", "user25@example.net"} & sent
    assert states(store, cid) == {"accepted": 28, "skipped": 2}
    assert len(queries) == 3  # one per batch
    reasons = store.campaigns.conn.execute(
        "SELECT email, reason FROM campaign_ledger WHERE state = 'skipped' ORDER BY email"
    ).fetchall()
    assert [r[0] for r in reasons] == ["user25@example.net", "user3@example.net"]
    assert all("suppressed" in r[1] for r in reasons)


def test_suppressed_among_normalises_and_ignores_others(store_target: Path | str) -> None:
    store = fresh_store(store_target)
    aud = store.audience
    aud.suppress("Ann@Example.org", reason="bounced", source="t", now=NOW)
    assert aud.suppressed_among([" ann@example.ORG ", "bob@example.org"]) == {"ann@example.org"}
    assert aud.suppressed_among([]) == set()


def test_fresh_cli_send_skips_who_unsubscribes_while_it_runs(tmp_path: Path) -> None:
    site = make_site(tmp_path, batch_size=5)  # 20 subscribers, 4 batches
    fake_db = tmp_path / "fake.db"
    with serve_in_thread(FaultPlan(latency=0.4), fake_db) as url:
        sg = ["--transport", "sendgrid", "--concurrency", "1", "--skip-sync"]
        proc = start(site, *SEND, *sg, SENDGRID_API_URL=url, **SG)
        db = site / "newsletter.db"
        deadline = time.monotonic() + 30
        last: list[tuple] = []
        while not last and time.monotonic() < deadline:
            time.sleep(0.05)
            with contextlib.suppress(sqlite3.OperationalError):  # not created yet
                last = query(db, "SELECT email FROM campaign_ledger WHERE batch_no = 3 LIMIT 1")
        assert last, "the campaign was never prepared"
        # in this process, not a `suppressions add` subprocess: on a loaded machine its start-up
        # alone could outlast the batches still to go
        with open_store(db) as store:
            store.audience.suppress(
                last[0][0], reason="unsubscribed", source="test", now=datetime.now(UTC)
            )
        _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    sent = {e for (e,) in query(fake_db, "SELECT email FROM messages")}
    assert last[0][0] not in sent and len(sent) == 19
    assert "19 accepted" in err


# -- 3. one recipient over a per-recipient limit -----------------------------------------------


def test_one_oversized_or_malformed_recipient_does_not_sink_the_batch(
    tmp_path: Path, store_target: Path | str
) -> None:
    store = fresh_store(store_target)
    rows = people(5)
    rows[1] = ("1", "user1@example.net", "N" * 5000)  # 2 x 5000 bytes of first name tokens
    rows[3] = ("3", "user 3@example", "Three")
    cid = prepared(store, rows)
    fake_db = tmp_path / "fake.db"
    with serve_in_thread(FaultPlan(), fake_db) as url:
        t = SendGridTransport("SG.test", api_url=url, timeout=5)
        summary = dispatcher(store, t, cid).run(cid)
        t.close()
    assert summary.state == cs.DONE
    assert states(store, cid) == {"accepted": 3, "rejected": 2}
    sent = {e for (e,) in query(fake_db, "SELECT email FROM messages")}
    assert sent == {"user0@example.net", "user2@example.net", "user4@example.net"}
    reasons = dict(
        store.campaigns.conn.execute(
            "SELECT email, reason FROM campaign_ledger WHERE state = 'rejected'"
        ).fetchall()
    )
    assert "user1@example.net" in reasons["user1@example.net"]
    assert "bytes" in reasons["user1@example.net"] and "10000" in reasons["user1@example.net"]
    assert "not a valid email address" in reasons["user 3@example"]


def test_a_batch_with_nobody_left_makes_no_request(tmp_path: Path) -> None:
    fake_db = tmp_path / "fake.db"
    env_ = Envelope(ISSUE, SENDER)
    r = Recipient("not-an-address", "", {}, {})
    with serve_in_thread(FaultPlan(), fake_db) as url:
        t = SendGridTransport("SG.test", api_url=url, timeout=5)
        result = t.send(Batch("c", 0, env_.issue, env_.sender, [r]))
        t.close()
    assert [(o.email, o.status) for o in result.outcomes] == [("not-an-address", Status.REJECTED)]
    assert query(fake_db, "SELECT count(*) FROM messages") == [(0,)]


# -- 4. 429s waited out are not failures -------------------------------------------------------


def test_a_burst_of_429s_does_not_pause_the_campaign(store_target: Path | str) -> None:
    store = fresh_store(store_target)
    cid = prepared(store, people(50), batch_size=10)
    burst = [RateLimited("slow down", retry_after=1.0) for _ in range(8)]
    t = MemoryTransport(burst)
    opts = Options(concurrency=2, max_consecutive_failures=3, max_retries=5)
    summary = dispatcher(store, t, cid, options=opts).run(cid)
    assert summary.state == cs.DONE, summary.note
    assert states(store, cid) == {"accepted": 50} and summary.retries == 8


def test_429s_still_exhaust_max_retries_per_batch(store_target: Path | str) -> None:
    store = fresh_store(store_target)
    cid = prepared(store, people(10))
    t = MemoryTransport([RateLimited("slow down", retry_after=1.0) for _ in range(3)])
    opts = Options(concurrency=1, max_consecutive_failures=5, max_retries=2)
    summary = dispatcher(store, t, cid, options=opts).run(cid)
    assert states(store, cid) == {"failed": 10} and t.calls == 3
    assert summary.state == cs.DONE


# -- 5. Ctrl-C after the last answer ------------------------------------------------------------


def test_ctrl_c_after_the_last_answer_finishes_as_done(store_target: Path | str) -> None:
    store = fresh_store(store_target)
    cid = prepared(store, people(25), batch_size=10)
    d = dispatcher(store, MemoryTransport(), cid, options=Options(concurrency=1))
    d.on_progress = lambda done, total: d.stop.set() if done == total else None
    summary = d.run(cid)
    assert summary.state == cs.DONE and "interrupted" not in summary.note
    assert store.campaigns.get(cid).state == cs.DONE  # type: ignore[union-attr]
    assert states(store, cid) == {"accepted": 25}


# -- 6. status after kill -9 --------------------------------------------------------------------


def test_status_says_interrupted_when_no_sender_holds_the_lock(tmp_path: Path) -> None:
    site = make_site(tmp_path)
    run(site, *SEND)
    db = site / "newsletter.db"
    ((cid,),) = query(db, "SELECT id FROM campaigns")
    conn = sqlite3.connect(db)
    with conn:  # what a sender killed with -9 mid-send leaves behind
        conn.execute("UPDATE campaigns SET state = 'sending'")
    conn.close()
    out = run(site, "status", cid).stdout
    assert f"[interrupted (no sender running; run newsletter resume {cid})]" in out
    data = json.loads(run(site, "status", cid, "--json").stdout)
    assert data["interrupted"] is True and data["sender_running"] is False
    assert "interrupted" in run(site, "campaigns").stdout
    with CampaignLock(db, cid):  # a live sender
        out = run(site, "status", cid).stdout
        assert "[sending]" in out and "interrupted" not in out
        data = json.loads(run(site, "status", cid, "--json").stdout)
        assert data["sender_running"] is True and data["interrupted"] is False


def test_first_ctrl_c_stops_a_long_429_wait_promptly(store_target: Path | str) -> None:
    store = fresh_store(store_target)
    cid = prepared(store, people(10))
    clock = FakeClock()
    d = dispatcher(
        store, MemoryTransport([RateLimited("slow down", retry_after=3600.0)]), cid, clock=clock
    )
    sleep = clock.sleep

    def sleep_then_ctrl_c(seconds: float) -> None:
        sleep(seconds)
        if clock.t > 1010:
            d.stop.set()

    d.sleep = sleep_then_ctrl_c
    summary = d.run(cid)
    assert summary.state == cs.PAUSED and "interrupted" in summary.note
    assert states(store, cid) == {"pending": 10} and sum(clock.sleeps) < 11


class _SlowTransport(MemoryTransport):
    def send(self, batch: Batch):  # type: ignore[no-untyped-def]
        time.sleep(0.2)
        return super().send(batch)


def test_waiting_for_an_answer_does_not_spin(tmp_path: Path) -> None:
    # With every request slot busy and batches queued, the loop must block until an answer
    # (or the Ctrl-C poll), not wake in a busy loop that takes the CPU (and the GIL) from the
    # threads doing the requests. Each wake-up reads the clock, so the reads are counted.
    reads = 0

    def clock() -> float:
        nonlocal reads
        reads += 1
        return time.monotonic()

    with fresh_store(tmp_path) as store:
        cid = prepared(store, people(40), batch_size=10)
        d = dispatcher(store, _SlowTransport(), cid, options=Options(concurrency=1))
        d.monotonic = clock
        d.pacer = Pacer(clock=clock)
        summary = d.run(cid)
    assert summary.counts.get(cs.ACCEPTED) == 40 and summary.requests == 4
    assert reads < 200, f"{reads} clock reads while waiting for 4 answers of 0.2 s"
