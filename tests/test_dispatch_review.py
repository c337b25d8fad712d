"""Regression tests for the dispatch bugs found in review (pacing, suppressions, 429s, Ctrl-C)."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from dispatch_helpers import FakeClock, dispatcher, fresh_store, people, prepared
from send_cli_helpers import SEND, make_site, query, run

from newsletter.dispatch import Options
from newsletter.pacing import Pacer, max_batch
from newsletter.store import campaigns as cs
from newsletter.transports.memory import MemoryTransport


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


def test_first_ctrl_c_stops_a_long_pacing_wait_promptly(tmp_path: Path) -> None:
    store = fresh_store(tmp_path)
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


def test_dispatcher_keeps_to_per_hour_across_batches(tmp_path: Path) -> None:
    store = fresh_store(tmp_path)
    cid = prepared(store, people(30), batch_size=10)
    clock = FakeClock()
    pacer = Pacer(per_hour=10, clock=clock, sleep=clock.sleep)
    t = MemoryTransport()
    d = dispatcher(store, t, cid, clock=clock, pacer=pacer, options=Options(concurrency=4))
    assert d.run(cid).state == cs.DONE
    assert len(t.messages) == 30
    assert sum(clock.sleeps) == pytest.approx(7200.0)
