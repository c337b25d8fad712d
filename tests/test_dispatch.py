"""The dispatcher and its ledger, with the memory transport and a fake clock (no sleeping)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import pytest
from dispatch_helpers import CID, NOW, FakeClock, dispatcher, fresh_store, people, prepared

from newsletter.campaign.dispatcher import Options
from newsletter.campaign.lock import CampaignLock
from newsletter.errors import CampaignLocked, ProviderRejected, RateLimited, StoreError
from newsletter.store import campaigns as cs
from newsletter.transports.memory import MemoryTransport
from newsletter.transports.pacing import Pacer


def states(store, cid: str) -> dict[str, int]:  # type: ignore[no-untyped-def]
    status = store.campaigns.status(cid)
    return {k: v for k, v in status.counts.items() if v}


def test_every_recipient_once_and_personalized(store_target: Path | str) -> None:
    store = fresh_store(store_target)
    cid = prepared(store, people(2500))
    t = MemoryTransport()
    summary = dispatcher(store, t, cid).run(cid)
    assert summary.state == cs.DONE
    assert states(store, cid) == {"accepted": 2500}
    counts = Counter(m.email for m in t.messages)
    assert len(counts) == 2500 and set(counts.values()) == {1}
    m = next(m for m in t.messages if m.email == "user7@example.net")
    assert m.subject == "News for Name7"
    assert "Hi Name7" in m.html and "https://example.org/u/7" in m.html
    assert m.headers["List-Unsubscribe"] == "<https://example.org/u/7>"
    assert m.custom_args == {"campaign_id": cid, "recipient_id": "7"}
    assert t.calls == 3  # 1000 + 1000 + 500


def test_batches_have_fixed_membership_and_order(store_target: Path | str) -> None:
    store = fresh_store(store_target)
    cid = prepared(store, people(250), batch_size=100)
    assert [b.size for b in store.campaigns.batches(cid)] == [100, 100, 50]
    rows = store.campaigns.batch_rows(cid, 2)
    assert [r.email for r in rows][:2] == ["user200@example.net", "user201@example.net"]


def test_429_waits_as_told_and_5xx_backs_off(store_target: Path | str) -> None:
    store = fresh_store(store_target)
    cid = prepared(store, people(10))
    clock = FakeClock()
    t = MemoryTransport([RateLimited("slow down", retry_after=7.0), "500", "500"])
    summary = dispatcher(store, t, cid, clock=clock).run(cid)
    assert summary.state == cs.DONE and summary.retries == 3
    assert len(t.messages) == 10
    # slept in short steps (a Ctrl-C is noticed): 7 s as told (+ up to 0.5 s jitter), then
    # base 0.5 * 2**1 * U(0.5, 1) and 0.5 * 2**2 * U(0.5, 1)
    assert max(clock.sleeps) <= 0.25
    assert 7.0 + 0.5 + 1.0 - 1e-9 <= sum(clock.sleeps) <= 7.5 + 1.0 + 2.0 + 1e-9


def test_other_4xx_is_rejected_and_not_retried(store_target: Path | str) -> None:
    store = fresh_store(store_target)
    cid = prepared(store, people(1500))
    bad = ProviderRejected("SendGrid refused the request: from.email: invalid", status=400)
    t = MemoryTransport([bad])
    summary = dispatcher(store, t, cid).run(cid)
    assert t.calls == 2
    assert states(store, cid) == {"rejected": 1000, "accepted": 500}
    assert summary.errors[0][1].startswith("SendGrid refused the request: from.email: invalid")


def test_unknown_is_not_resent_unless_asked(store_target: Path | str) -> None:
    store = fresh_store(store_target)
    cid = prepared(store, people(2000))
    t = MemoryTransport(["unknown"])
    summary = dispatcher(store, t, cid).run(cid)
    assert summary.state == cs.DONE and "--retry-unknown" in summary.note
    assert states(store, cid) == {"unknown": 1000, "accepted": 1000}
    again = MemoryTransport()
    dispatcher(store, again, cid).run(cid)
    assert again.calls == 0
    dispatcher(store, again, cid).run(cid, retry_unknown=True)
    assert again.calls == 1 and len(again.messages) == 1000
    assert states(store, cid) == {"accepted": 2000}


def test_batch_in_flight_at_a_crash_becomes_unknown(store_target: Path | str) -> None:
    store = fresh_store(store_target)
    cid = prepared(store, people(3000))
    store.campaigns.mark(cid, 0, cs.ACCEPTED, now=NOW)
    store.campaigns.mark(cid, 1, cs.SENDING, now=NOW)  # the process died here
    t = MemoryTransport()
    dispatcher(store, t, cid).run(cid)
    assert {m.batch_no for m in t.messages} == {2}
    assert states(store, cid) == {"accepted": 2000, "unknown": 1000}


def test_retries_exhausted_fail_then_resume_sends_them(store_target: Path | str) -> None:
    store = fresh_store(store_target)
    cid = prepared(store, people(5))
    t = MemoryTransport(["500"] * 3)
    opts = Options(max_retries=2, max_consecutive_failures=10)
    summary = dispatcher(store, t, cid, options=opts).run(cid)
    assert t.calls == 3 and states(store, cid) == {"failed": 5}
    assert summary.state == cs.DONE
    again = MemoryTransport()
    dispatcher(store, again, cid).run(cid)
    assert len(again.messages) == 5 and states(store, cid) == {"accepted": 5}


def test_too_many_consecutive_failures_pause_with_progress_saved(store_target: Path | str) -> None:
    store = fresh_store(store_target)
    cid = prepared(store, people(5000))
    t = MemoryTransport(["ok"] + ["500"] * 20)
    opts = Options(concurrency=1, max_consecutive_failures=3, max_retries=10)
    summary = dispatcher(store, t, cid, options=opts).run(cid)
    assert summary.state == cs.PAUSED
    assert "3 failures in a row" in summary.note and f"newsletter resume {cid}" in summary.note
    assert store.campaigns.get(cid).state == cs.PAUSED  # type: ignore[union-attr]
    assert states(store, cid) == {"accepted": 1000, "pending": 4000}
    rest = MemoryTransport()
    assert dispatcher(store, rest, cid).run(cid).state == cs.DONE
    assert len(rest.messages) == 4000


def test_bad_credentials_pause_at_once(store_target: Path | str) -> None:
    store = fresh_store(store_target)
    cid = prepared(store, people(3000))
    t = MemoryTransport([ProviderRejected("bad key", status=401)] * 3)
    summary = dispatcher(store, t, cid, options=Options(concurrency=1)).run(cid)
    assert summary.state == cs.PAUSED and "credentials" in summary.note
    assert states(store, cid) == {"pending": 3000}


def test_suppressed_since_preparation_are_skipped(store_target: Path | str) -> None:
    store = fresh_store(store_target)
    cid = prepared(store, people(10))
    gone = {"user3@example.net", "user4@example.net"}
    t = MemoryTransport()
    dispatcher(store, t, cid, suppressed=lambda emails: gone & set(emails)).run(cid)
    assert {m.email for m in t.messages}.isdisjoint(gone) and len(t.messages) == 8
    assert states(store, cid) == {"accepted": 8, "skipped": 2}


def test_pacing_per_second_spaces_batches(store_target: Path | str) -> None:
    store = fresh_store(store_target)
    cid = prepared(store, people(300), batch_size=100)
    clock = FakeClock()
    pacer = Pacer(per_second=50, clock=clock, sleep=clock.sleep)
    dispatcher(
        store, MemoryTransport(), cid, clock=clock, pacer=pacer, options=Options(concurrency=1)
    ).run(cid)
    # 2 s after each batch of 100, slept in short steps so a Ctrl-C is noticed
    assert sum(clock.sleeps) == pytest.approx(4.0) and max(clock.sleeps) <= 0.25


def test_pacing_per_hour_waits_for_the_window() -> None:
    clock = FakeClock()
    pacer = Pacer(per_hour=1000, clock=clock, sleep=clock.sleep)
    pacer.acquire(600)
    clock.t += 10
    pacer.acquire(400)
    assert clock.sleeps == []
    pacer.acquire(500)
    assert clock.sleeps == [pytest.approx(3590.0)]


def test_events_are_recorded_once_and_last_issue_date(store_target: Path | str) -> None:
    store = fresh_store(store_target)
    assert store.campaigns.digest_cursor("") is None
    cid = prepared(store, people(3))
    at = datetime(2026, 11, 26, 10, tzinfo=UTC)
    assert store.campaigns.record_event(cid, 1, "delivered", at, "ev-1") is True
    assert store.campaigns.record_event(cid, 1, "delivered", at, "ev-1") is False
    assert store.campaigns.record_event(cid, "2", "open", at, "ev-2") is True
    assert store.campaigns.status(cid).events == {"delivered": 1, "open": 1}  # type: ignore[union-attr]
    # a campaign without a recorded window: the cursor starts just after its newest post
    cursor = store.campaigns.digest_cursor("")
    assert cursor is not None and cursor[1].id == cid
    assert cursor[0] == datetime(2026, 11, 20, 10, 0, 0, 1, tzinfo=UTC)


def test_interrupted_preparation_starts_over(store_target: Path | str) -> None:
    store = fresh_store(store_target)

    def rows():  # type: ignore[no-untyped-def]
        yield from people(1500)
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        prepared(store, rows())
    cid = CID
    assert store.campaigns.get(cid).state == cs.PREPARING  # type: ignore[union-attr]
    prepared(store, people(20))
    assert store.campaigns.get(cid).total == 20  # type: ignore[union-attr]


def test_one_sender_per_campaign_and_kill_9_releases_the_lock(tmp_path: Path) -> None:
    db = tmp_path / "newsletter.db"
    fresh_store(tmp_path).close()
    with CampaignLock(db, "c1"):
        with pytest.raises(CampaignLocked) as err:
            CampaignLock(db, "c1").acquire()
        assert str(os.getpid()) in err.value.format()
        with CampaignLock(db, "c2"):
            pass
    code = (
        "import sys, time; from pathlib import Path;"
        "from newsletter.campaign.lock import CampaignLock;"
        "CampaignLock(Path(sys.argv[1]), 'c1').acquire(); print('held', flush=True); time.sleep(60)"
    )
    # the same database through a symlink: still the same lease
    (tmp_path / "elsewhere").mkdir()
    symlink = tmp_path / "elsewhere" / "linked.db"
    symlink.symlink_to(db)
    args = [sys.executable, "-c", code, str(db)]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
        for path in (db, symlink):
            with pytest.raises(CampaignLocked) as err:
                CampaignLock(path, "c1").acquire()
            assert f"process {proc.pid}" in err.value.format()
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
        # a dead holder on this host is taken over at once (no waiting for its lease to age)
        with CampaignLock(symlink, "c1"):
            pass
    finally:
        proc.kill()
        proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()
    # a second name for the file (a hard link) would give SQLite two journals: refused
    hardlink = tmp_path / "elsewhere" / "hard.db"
    os.link(db, hardlink)
    for path in (db, hardlink):
        with pytest.raises(StoreError) as refused:
            CampaignLock(path, "c1").acquire()
        assert "2 names (hard links)" in refused.value.format()


def test_a_lease_of_another_host_is_taken_over_only_when_its_heartbeat_is_stale(
    store_target: Path | str,
) -> None:
    import time

    from newsletter.store import db as dbmod

    db = store_target
    fresh_store(db).close()
    conn = dbmod.connect(db)
    conn.execute(
        "INSERT INTO campaign_leases(campaign_id, token, host, pid, started, heartbeat)"
        " VALUES ('c1', 't', 'another-host', 1, '', ?)",
        (time.time(),),
    )
    with pytest.raises(CampaignLocked) as err:
        CampaignLock(db, "c1").acquire()
    assert "on another-host" in err.value.format()
    conn.execute("UPDATE campaign_leases SET heartbeat = heartbeat - 60")
    conn.close()
    with CampaignLock(db, "c1", stale_after=20):
        pass


def test_status_shows_batches_in_flight_as_sending(store_target: Path | str) -> None:
    store = fresh_store(store_target)
    cid = prepared(store, people(2500))
    store.campaigns.mark(cid, 1, cs.SENDING, now=NOW)
    assert states(store, cid) == {"pending": 1500, "sending": 1000}


def test_last_issue_prefers_real_sends_over_outbox_rehearsals(store_target: Path | str) -> None:
    store = fresh_store(store_target)
    c = store.campaigns

    def campaign(cid: str, transport: str, end: str, kind: str = "digest") -> None:
        c.begin(
            cid,
            now=NOW,
            subject="s",
            layout="digest",
            segment="",
            transport=transport,
            content_hash="h",
            newest_post_date="",
            posts=(),
            batch_size=1000,
            kind=kind,
            window=("2026-01-01T00:00:00+00:00", end),
            rehearsal=transport != "sendgrid",
        )
        c.ready(cid, now=NOW)

    def cursor() -> tuple[datetime, str] | None:
        found = c.digest_cursor("")
        return (found[0], found[1].id) if found else None

    campaign("rehearsal", "outbox", "2026-10-20T00:00:00+00:00")
    assert cursor() == (datetime(2026, 10, 20, tzinfo=UTC), "rehearsal")
    campaign("real", "sendgrid", "2026-09-30T00:00:00+00:00")
    campaign("newer-rehearsal", "outbox", "2026-11-20T00:00:00+00:00")
    assert cursor() == (datetime(2026, 9, 30, tzinfo=UTC), "real")
    # a blast never moves the digest cursor
    campaign("blast", "sendgrid", "2026-12-20T00:00:00+00:00", kind="blast")
    assert cursor() == (datetime(2026, 9, 30, tzinfo=UTC), "real")
    # another audience has a cursor of its own
    assert c.digest_cursor("members") is None


def test_stop_flag_pauses_after_the_batch_in_flight(store_target: Path | str) -> None:
    store = fresh_store(store_target)
    cid = prepared(store, people(3000))
    t = MemoryTransport()
    d = dispatcher(store, t, cid, options=Options(concurrency=1))
    d.on_progress = lambda done, total: d.stop.set() if done else None
    summary = d.run(cid)
    assert summary.state == cs.PAUSED and "interrupted" in summary.note
    assert states(store, cid) == {"accepted": 1000, "pending": 2000}
