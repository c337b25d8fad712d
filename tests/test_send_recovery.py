"""Recovering what a send could not settle (issue #10): refusals, lost answers, signals."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from collections import Counter
from pathlib import Path

from audience_helpers import replay_processed_events
from send_cli_helpers import make_site, query, run, start

from newsletter.errors import ProviderRejected
from newsletter.providers.sendgrid.fake import FaultPlan, serve_in_thread
from newsletter.transports.isolating import about_recipients

SG = {"SENDGRID_API_KEY": "SG.test", "NEWSLETTER_SECRET": "recovery-secret-0123456789abcdefgh"}
UNKNOWN = "SELECT email FROM campaign_ledger WHERE state = 'unknown'"
SEND = ["send", "--month", "2026-10", "--now", "2026-11-01T09:00", "--yes", "--no-progress",
        "--transport", "sendgrid"]  # fmt: skip


def sent(fake_db: Path) -> Counter[str]:
    return Counter(e for (e,) in query(fake_db, "SELECT email FROM messages"))


def settle(fake_db: Path) -> None:
    """Wait until the fake has recorded every request that reached it (its count holds still)."""
    last, still_since = -1, time.monotonic()
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        n = query(fake_db, "SELECT count(*) FROM requests")[0][0]
        if n != last:
            last, still_since = n, time.monotonic()
        elif time.monotonic() - still_since > 0.6:
            return
        time.sleep(0.05)


def test_a_refused_address_costs_only_itself_and_can_be_retried(tmp_path: Path) -> None:
    site = make_site(tmp_path, subscribers=50, batch_size=25)
    fake_db = tmp_path / "fake.db"
    bad = frozenset({"p7@example.net", "p30@example.net"})
    with serve_in_thread(FaultPlan(refuse=bad), fake_db) as url:
        out = run(site, *SEND, check=False, SENDGRID_API_URL=url, **SG)
        assert out.returncode == 6, out.stderr  # finished, but not everyone was accepted
        got = sent(fake_db)
        assert len(got) == 48 and set(got.values()) == {1} and not bad & set(got)
        requests = query(fake_db, "SELECT count(*) FROM requests")[0][0]
        assert requests <= 2 + 2 * 2 * 5  # two batches, each split ~log2(25) times
        (cid,) = query(site / "newsletter.db", "SELECT id FROM campaigns")[0]
        status = json.loads(run(site, "status", cid, "--json").stdout)
        assert status["counts"]["rejected"] == 2 and status["counts"]["accepted"] == 48
        assert {r["email"] for r in status["rejected"]} == bad
        assert all("Does not contain a valid address" in r["reason"] for r in status["rejected"])
        text = run(site, "status", cid).stdout
        assert "p7@example.net" in text and f"newsletter resume {cid} --retry-rejected" in text
        # the same send again: still says it is not finished, exit 6, nothing sent
        again = run(site, *SEND, check=False, SENDGRID_API_URL=url, **SG)
        assert again.returncode == 6 and "was already sent" in again.stdout
        assert sum(sent(fake_db).values()) == 48
    # the addresses were fixed at SendGrid's end (a new fake that accepts them)
    with serve_in_thread(FaultPlan(), fake_db) as url:
        run(site, "resume", cid, "--retry-rejected", "--no-progress", SENDGRID_API_URL=url, **SG)
    got = sent(fake_db)
    assert len(got) == 50 and set(got.values()) == {1}
    assert query(site / "newsletter.db", "SELECT DISTINCT state FROM campaign_ledger") == [
        ("accepted",)
    ]


def test_only_refusals_about_recipients_are_split() -> None:
    def refused(status: int, field: str | None) -> ProviderRejected:
        body = json.dumps({"errors": [{"message": "x", "field": field}]})
        return ProviderRejected("refused", status=status, body=body)

    assert about_recipients(refused(400, "personalizations.3.to.0.email"))
    assert about_recipients(refused(413, None))
    assert not about_recipients(refused(400, "from.email"))  # every half would fail too
    assert not about_recipients(refused(400, None))
    assert not about_recipients(refused(401, "personalizations.0"))
    assert not about_recipients(ProviderRejected("x", status=400, body="<html>"))


def _kill_mid_send(site: Path, url: str, fake_db: Path, after: int, sig: int) -> int:
    """Signal a send after ``after`` requests; for SIGTERM, signal again once it said it stops."""
    proc = start(site, *SEND, "--concurrency", "2", SENDGRID_API_URL=url, **SG)
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(proc.stderr or []), daemon=True)
    reader.start()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if query(fake_db, "SELECT count(*) FROM requests")[0][0] >= after:
                break
        except Exception:
            pass
        time.sleep(0.005)
    os.kill(proc.pid, sig)
    if sig != signal.SIGKILL:
        # two signals sent before Python runs its handler count as one: wait until the first
        # was handled (the sender says it stops after the requests in flight), then again
        deadline = time.monotonic() + 30
        while not any("stopping after the requests in flight" in x for x in lines):
            assert time.monotonic() < deadline and proc.poll() is None, lines
            time.sleep(0.005)
        os.kill(proc.pid, sig)
    proc.wait(timeout=60)
    reader.join(timeout=10)
    for stream in (proc.stdout, proc.stderr):
        if stream is not None:
            stream.close()
    return proc.returncode


def test_lost_answers_are_settled_by_webhook_events_then_only_the_rest_resent(
    tmp_path: Path,
) -> None:
    people = 400
    site = make_site(tmp_path, subscribers=people, batch_size=20)
    fake_db = tmp_path / "fake.db"
    db = site / "newsletter.db"
    # after four answers: one request SendGrid takes but answers only after 4 s, and one whose
    # connection breaks before SendGrid records it; both answers are lost to the sender
    plan = FaultPlan(script=["ok"] * 4 + ["slow", "drop-before"], latency=0.15, slow_seconds=4)
    with serve_in_thread(plan, fake_db) as url:
        # a second SIGTERM kills at once: the batches whose answers were lost stay unknown
        code = _kill_mid_send(site, url, fake_db, after=5, sig=signal.SIGTERM)  # slow: in flight
        assert code == -signal.SIGTERM
        settle(fake_db)  # let the fake finish answering what was in flight
        rerun = run(site, *SEND, check=False, SENDGRID_API_URL=url, **SG)
        assert rerun.returncode == 6, rerun.stderr  # done, with unknown recipients
        (cid,) = query(db, "SELECT id FROM campaigns")[0]
        unknown = {
            e for (e,) in query(db, "SELECT email FROM campaign_ledger WHERE state = 'unknown'")
        }
        # the slow batch; the broken one unless it broke before it was sent (then retried); and
        # the one taken in its place, if it was still in flight at the second signal
        assert len(unknown) in (20, 40, 60)
        accepted_by_fake = set(sent(fake_db))
        assert unknown & accepted_by_fake  # SendGrid did take (some of) them

    # SendGrid's event webhook reports on what it accepted; replay those events
    replay_processed_events(db, fake_db, SG["NEWSLETTER_SECRET"])
    still = {e for (e,) in query(db, UNKNOWN)}
    assert still == unknown - accepted_by_fake  # only those SendGrid never took
    status = json.loads(run(site, "status", cid, "--json").stdout)
    assert status["reconciled"] == len(unknown & accepted_by_fake)
    assert "reconciled" in run(site, "status", cid).stdout

    with serve_in_thread(FaultPlan(), fake_db) as url:
        if still:
            run(site, "resume", cid, "--retry-unknown", "--no-progress", SENDGRID_API_URL=url, **SG)
    got = sent(fake_db)
    assert len(got) == people and set(got.values()) == {1}  # nobody lost, nobody twice


def test_sighup_pauses_like_ctrl_c_with_nothing_unknown(tmp_path: Path) -> None:
    site = make_site(tmp_path, subscribers=300, batch_size=20)
    fake_db = tmp_path / "fake.db"
    with serve_in_thread(FaultPlan(latency=0.1), fake_db) as url:
        proc = start(site, *SEND, "--concurrency", "2", SENDGRID_API_URL=url, **SG)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if query(fake_db, "SELECT count(*) FROM requests")[0][0] >= 3:
                    break
            except Exception:
                pass
            time.sleep(0.005)
        proc.send_signal(signal.SIGHUP)
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 5, err
        assert "interrupted (SIGHUP)" in err
        states = Counter(
            s for (s,) in query(site / "newsletter.db", "SELECT state FROM campaign_ledger")
        )
        assert set(states) == {"accepted", "pending"}
        run(site, *SEND, SENDGRID_API_URL=url, **SG)  # the same command finishes it
    got = sent(fake_db)
    assert len(got) == 300 and set(got.values()) == {1}
