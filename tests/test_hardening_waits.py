"""Issue 10 item 5: rate-limit waits are capped, read right (milliseconds), and visible; the
suppression sync retries 429, 5xx and timeouts with the backoff of mail/send."""

from __future__ import annotations

import random
import re
from datetime import UTC, datetime
from pathlib import Path

import pytest
from dispatch_helpers import FakeClock, dispatcher, fresh_store, people, prepared
from send_cli_helpers import SEND, make_site, run

from newsletter.errors import ProviderUnavailable, RateLimited
from newsletter.providers.sendgrid.fake import FaultPlan, serve_in_thread
from newsletter.providers.sendgrid.http_errors import retry_after
from newsletter.providers.sendgrid.suppression_sync import SuppressionClient, sync_suppressions
from newsletter.store import campaigns as cs
from newsletter.store import open_store
from newsletter.transports.memory import MemoryTransport
from newsletter.transports.pacing import Backoff, Pacer, Wait

NOW = 1_790_000_000.0  # 2026-09-21
SG = {"SENDGRID_API_KEY": "SG.test", "NEWSLETTER_SECRET": "w" * 43}


@pytest.mark.parametrize(
    ("headers", "seconds"),
    [
        ({"X-RateLimit-Reset": str(int(NOW) + 30)}, 30.0),  # Unix seconds (SendGrid's own)
        ({"X-RateLimit-Reset": str(int(NOW) * 1000 + 30_000)}, 30.0),  # milliseconds
        ({"X-RateLimit-Reset": "30"}, 30.0),  # a small number: seconds to wait
        ({"X-RateLimit-Reset": str(int(NOW) - 5)}, 0.0),  # already passed
        ({"Retry-After": "12"}, 12.0),
        ({"Retry-After": "Mon, 21 Sep 2026 14:13:40 GMT"}, 20.0),  # an HTTP date, NOW + 20 s
        ({"Retry-After": "soon"}, None),
        ({"X-RateLimit-Reset": "nan"}, None),
        ({"X-RateLimit-Reset": "inf", "Retry-After": "3"}, 3.0),
        ({}, None),
    ],
)
def test_the_one_retry_after_parser(headers: dict[str, str], seconds: float | None) -> None:
    assert retry_after(headers, now=NOW) == seconds


def test_a_wait_is_capped_and_the_cap_is_said() -> None:
    backoff = Backoff(base=1.0, rng=random.Random(1), max_wait=900)
    assert backoff.delay(0, 1.7e12) == 900  # the 55,000 years of a misread reset
    assert 30 <= backoff.delay(0, 30) <= 31
    assert backoff.delay(20) <= 60
    wait = Wait("the rate limit of sendgrid (HTTP 429)", datetime(2026, 9, 21, 13, 8, tzinfo=UTC),
                900, asked=1.7e12)  # fmt: skip
    assert wait.describe() == (
        "waiting for the rate limit of sendgrid (HTTP 429) until 13:08:00 UTC (15 min); the "
        "provider asked for 53,870 years, more than the cap (send.max_wait_seconds): trying "
        "again then"
    )


def test_the_dispatcher_says_what_it_waits_for(tmp_path: Path) -> None:
    store = fresh_store(tmp_path)
    cid = prepared(store, people(3))
    clock = FakeClock()
    t = MemoryTransport([RateLimited("slow down", retry_after=1.7e12)])
    d = dispatcher(store, t, cid, clock=clock)
    d.backoff.max_wait = 60
    seen: list[Wait] = []
    d.on_wait = seen.append
    assert d.run(cid).state == cs.DONE
    (wait,) = seen
    assert wait.seconds == 60 and wait.asked == 1.7e12 and d.waiting == wait
    assert wait.reason == "the rate limit of memory (HTTP 429)"
    assert (wait.until - d.now()).total_seconds() == 60
    assert 59 <= sum(clock.sleeps) <= 61  # not 55,000 years


def _limit(site: Path, seconds: int) -> None:
    toml = site / "newsletter.toml"
    toml.write_text(toml.read_text().replace("[send]\n", f"[send]\nmax_wait_seconds = {seconds}\n"))


WAIT_LINE = re.compile(
    r"waiting for the rate limit of sendgrid \(HTTP 429\) until \d\d:\d\d:\d\d UTC \((\d+) s\)"
)


def test_a_reset_in_milliseconds_waits_seconds_and_far_future_waits_the_cap(
    tmp_path: Path,
) -> None:
    site = make_site(tmp_path, subscribers=5)
    _limit(site, 2)
    plan = FaultPlan(script=["429"], reset_seconds=1, reset_unit="ms")
    with serve_in_thread(plan, tmp_path / "f.db") as url:
        out = run(site, *SEND, "--transport", "sendgrid", SENDGRID_API_URL=url, **SG)
    assert out.returncode == 0 and "5 accepted" in out.stderr
    waited = WAIT_LINE.search(out.stderr)
    assert waited and int(waited.group(1)) <= 2 and "asked for" not in out.stderr

    (tmp_path / "far").mkdir()
    site2 = make_site(tmp_path / "far", subscribers=5)
    _limit(site2, 1)
    plan = FaultPlan(script=["429"], reset_seconds=3.2e8)  # a reset 10 years away
    with serve_in_thread(plan, tmp_path / "f2.db") as url:
        out = run(site2, *SEND, "--transport", "sendgrid", SENDGRID_API_URL=url, **SG)
    assert out.returncode == 0 and "5 accepted" in out.stderr
    assert WAIT_LINE.search(out.stderr)
    assert "asked for 10 years, more than the cap (send.max_wait_seconds)" in out.stderr


def test_max_wait_seconds_is_checked(tmp_path: Path) -> None:
    site = make_site(tmp_path)
    _limit(site, 0)
    out = run(site, *SEND, "--transport", "outbox", check=False)
    assert out.returncode == 2
    assert out.stderr.strip().endswith(
        "newsletter.toml: send.max_wait_seconds: expected seconds between 1 and 86400 "
        "(default 900, 15 min)"
    )


def test_the_presend_sync_retries_503_429_and_says_so(tmp_path: Path) -> None:
    site = make_site(tmp_path, subscribers=4)
    plan = FaultPlan(list_faults=["503", "429"], reset_seconds=0)
    remote = {"unsubscribes": ["p1@example.net"]}
    with serve_in_thread(plan, tmp_path / "f.db", suppressions=remote) as url:
        out = run(site, *SEND, "--transport", "sendgrid", SENDGRID_API_URL=url, **SG)
    assert out.returncode == 0 and "3 accepted" in out.stderr
    assert re.search(
        r"waiting for a retry of GET /v3/\S+ after: SendGrid failed on GET /v3/\S+: "
        r"injected 503 \(HTTP 503\) until \d\d:\d\d:\d\d UTC \(\d s\)",
        out.stderr,
    ), out.stderr
    assert "waiting for the SendGrid rate limit (HTTP 429) until" in out.stderr


def test_the_sync_retries_timeouts_then_gives_up_with_the_count(tmp_path: Path) -> None:
    plan = FaultPlan(list_faults=["slow"], slow_seconds=1.0)
    sleeps: list[float] = []
    with (
        serve_in_thread(plan, tmp_path / "f.db", suppressions={"bounces": ["b@x.org"]}) as url,
        open_store(tmp_path / "n.db") as store,
        SuppressionClient("SG.test", url, timeout=0.3, sleep=sleeps.append) as client,
    ):
        report = sync_suppressions(store.audience, client, now=datetime.now(UTC))
        assert report.added["bounces"] == 1 and len(sleeps) == 1
    plan = FaultPlan(list_faults=["500"] * 20)
    with (
        serve_in_thread(plan, tmp_path / "g.db") as url,
        open_store(tmp_path / "m.db") as store,
        SuppressionClient("SG.test", url, sleep=sleeps.append, max_retries=2) as client,
        pytest.raises(ProviderUnavailable) as err,
    ):
        sync_suppressions(store.audience, client, now=datetime.now(UTC))
    assert re.fullmatch(
        r"SendGrid failed on GET /v3/\S+: injected 500 \(gave up after 3 tries\) \(HTTP 500\)",
        err.value.format(),
    )


def test_a_pacing_wait_is_announced_too(tmp_path: Path) -> None:
    store = fresh_store(tmp_path)
    cid = prepared(store, people(20), batch_size=10)
    clock = FakeClock()
    pacer = Pacer(per_hour=10, clock=clock, sleep=clock.sleep)
    d = dispatcher(store, MemoryTransport(), cid, clock=clock, pacer=pacer)
    seen: list[Wait] = []
    d.on_wait = seen.append
    assert d.run(cid).state == cs.DONE
    (wait,) = seen
    assert wait.reason == "the sending limit (max per second / per hour)"
    assert wait.seconds == 3600 and wait.describe().endswith("UTC (60 min)")


def test_one_wait_hit_by_several_requests_is_said_once(tmp_path: Path) -> None:
    store = fresh_store(tmp_path)
    cid = prepared(store, people(40), batch_size=10)
    clock = FakeClock()
    limited = [RateLimited("slow down", retry_after=30.0) for _ in range(4)]
    d = dispatcher(store, MemoryTransport(limited), cid, clock=clock)
    seen: list[Wait] = []
    d.on_wait = seen.append
    assert d.run(cid).state == cs.DONE
    assert [w.reason for w in seen] == ["the rate limit of memory (HTTP 429)"]
